"""Client settings: where Pieces OS is, how long to wait, what to retry, TLS, proxy, logging.

The constructor takes the official SDK's keyword arguments (``host``, ``api_key``,
``api_key_prefix``, ``ssl_ca_cert``, ``retries``, ``debug``, ...) and adds a few of its own
(``connect_timeout``, ``read_timeout``, ``max_retries``, ``backoff_factor``, ...). See
docs/configuration.md for the full table.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import threading
from types import TracebackType
from typing import Any, Callable, ClassVar, Dict, List, Mapping, NamedTuple, Optional, Tuple, TypedDict, Union
from urllib.parse import urlsplit

from typing_extensions import Self, Unpack
from urllib3.exceptions import InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from pieces_os_client import _lazy
from pieces_os_client._core.urls import mask_userinfo
from pieces_os_client.exceptions import ApiTypeError, ApiValueError, unknown_names_message

__all__ = ["DEFAULT_HOST", "Configuration", "HostSetting"]

DEFAULT_HOST = "http://localhost:1000"
#: The largest response body the client reads by default (bytes); see max_response_size.
DEFAULT_MAX_RESPONSE_SIZE = 256 * 1024 * 1024
LOGGER_NAME = "pieces_os_client"

#: HTTP statuses a GET is retried on (overload and transient server failures).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class _PiecesRetry(Retry):
    """urllib3's ``Retry`` with two guards for a misbehaving server.

    A ``Retry-After`` longer than ``backoff_max`` is cut to ``backoff_max`` (urllib3 alone would
    sleep up to six hours), and one that cannot be parsed is ignored in favour of the normal
    backoff instead of failing the call with a urllib3 ``InvalidHeader``.
    """

    def get_retry_after(self, response: BaseHTTPResponse) -> Optional[float]:
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:
            return None
        return None if seconds is None else min(seconds, self.backoff_max)

    def increment(
        self,
        method: Optional[str] = None,
        url: Optional[str] = None,
        response: Optional[BaseHTTPResponse] = None,
        error: Optional[Exception] = None,
        _pool: Any = None,
        _stacktrace: Optional[TracebackType] = None,
    ) -> Self:
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        if response is not None:
            # A response about to be retried: urllib3 would read its body to the end to reuse
            # the connection, however long or slow that body is. Drop the connection instead.
            response.close()
        return retry


AuthSettings = Dict[str, Dict[str, Any]]


class HostSetting(TypedDict):
    url: str
    description: str
    variables: Dict[str, Any]


# ---------------------------------------------------------------------- checks
# Each check takes (setting name, value) and returns the value to store, or raises
# ApiTypeError / ApiValueError naming the setting and the value.
Check = Callable[[str, Any], Any]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ApiTypeError(f"{name} must be a number of seconds, not {type(value).__name__} ({value!r})")
    if not math.isfinite(value):
        raise ApiValueError(f"{name} must be a finite number of seconds, not {value!r}")
    return value


def positive_seconds(name: str, value: Any) -> float:
    """A finite number of seconds above zero (timeouts, waits)."""
    seconds = _number(name, value)
    if seconds <= 0:
        raise ApiValueError(f"{name} must be more than 0 seconds, not {value!r}")
    return seconds


def non_negative_seconds(name: str, value: Any) -> float:
    """A finite number of seconds, zero allowed (backoff values)."""
    seconds = _number(name, value)
    if seconds < 0:
        raise ApiValueError(f"{name} must be 0 or more seconds, not {value!r}")
    return seconds


def _integer(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiTypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ApiValueError(f"{name} must be {minimum} or more, not {value!r}")
    return value


def count(name: str, value: Any) -> int:
    """An int >= 0 (retry counts)."""
    return _integer(name, value, 0)


def positive_count(name: str, value: Any) -> int:
    """An int >= 1 (sizes)."""
    return _integer(name, value, 1)


def optional_size(name: str, value: Any) -> Optional[int]:
    """``None`` (no bound) or an int >= 1 (byte limits)."""
    return None if value is None else _integer(name, value, 1)


def optional_callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ApiTypeError(f"{name} must be callable or None, not {type(value).__name__} ({value!r})")
    return value


def _retries(name: str, value: Any) -> Any:
    if value is None or isinstance(value, Retry):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiTypeError(f"{name} must be an int, a urllib3 Retry or None, not {type(value).__name__} ({value!r})")
    return count(name, value)


def _host(name: str, value: Any) -> str:
    hint = "Check Configuration.host (for example http://localhost:39300)."
    if not isinstance(value, str):
        raise ApiTypeError(f"{name} must be a URL string, not {type(value).__name__} ({value!r}). {hint}")
    shown = mask_userinfo(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise ApiValueError(f"{name} {shown!r} is not a valid URL: {mask_userinfo(str(exc))}. {hint}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ApiValueError(f"{name} {shown!r} is not an http:// or https:// URL with a host. {hint}")
    return value.rstrip("/")


class Setting(NamedTuple):
    """One keyword setting of :class:`Configuration`: its default and its check."""

    default: Any
    check: Optional[Check] = None


#: Every keyword-only setting: name -> (default, check). Adding a setting is one line here,
#: plus one line in :class:`ConfigurationSettings` for type checkers; the constructor takes it
#: as a keyword argument and every assignment (constructor or later) goes through its check.
#: Order matters where a setter reads another setting (``logger_format`` before ``logger_file``).
SETTINGS: Dict[str, Setting] = {
    # transport
    "connect_timeout": Setting(5.0, positive_seconds),
    "read_timeout": Setting(60.0, positive_seconds),
    "max_retries": Setting(2, count),
    "backoff_factor": Setting(0.25, non_negative_seconds),
    "backoff_max": Setting(8.0, non_negative_seconds),
    "backoff_jitter": Setting(0.25, non_negative_seconds),
    "connection_pool_maxsize": Setting(max(4, (os.cpu_count() or 1) * 5), positive_count),
    "pool_timeout": Setting(30.0, positive_seconds),
    "proxy": Setting(None),
    "proxy_headers": Setting(None),
    "socket_options": Setting(None),
    # TLS
    "verify_ssl": Setting(True),
    "cert_file": Setting(None),
    "key_file": Setting(None),
    "assert_hostname": Setting(None),
    "tls_server_name": Setting(None),
    # limits
    "max_response_size": Setting(DEFAULT_MAX_RESPONSE_SIZE, optional_size),
    "stream_max_message_size": Setting(32 * 1024 * 1024, optional_size),
    # requests and models
    "refresh_api_key_hook": Setting(None, optional_callable),
    "safe_chars_for_path_param": Setting(""),
    "client_side_validation": Setting(True),
    "datetime_format": Setting("%Y-%m-%dT%H:%M:%S.%f%z"),
    "date_format": Setting("%Y-%m-%d"),
    "temp_folder_path": Setting(None),
    # logging
    "logger_format": Setting("%(asctime)s %(levelname)s %(name)s %(message)s"),
    "logger_file": Setting(None),
}

#: Checks for attributes that are positional constructor arguments (official order).
_POSITIONAL_CHECKS: Dict[str, Check] = {"host": _host, "retries": _retries}

#: Every checked attribute, whether set in the constructor or assigned later.
_CHECKS: Dict[str, Check] = {
    **_POSITIONAL_CHECKS,
    **{name: setting.check for name, setting in SETTINGS.items() if setting.check is not None},
}


class ConfigurationSettings(TypedDict, total=False):
    """The keyword-only settings of :class:`Configuration` (see ``SETTINGS``)."""

    discover: Optional[bool]
    connect_timeout: float
    read_timeout: float
    max_retries: int
    backoff_factor: float
    backoff_max: float
    backoff_jitter: float
    connection_pool_maxsize: int
    pool_timeout: float
    proxy: Optional[str]
    proxy_headers: Optional[Dict[str, str]]
    socket_options: Optional[List[Tuple[int, int, Union[int, bytes]]]]
    verify_ssl: bool
    cert_file: Optional[str]
    key_file: Optional[str]
    assert_hostname: Union[bool, str, None]
    tls_server_name: Optional[str]
    max_response_size: Optional[int]
    stream_max_message_size: Optional[int]
    refresh_api_key_hook: Optional[Callable[[Configuration], object]]
    safe_chars_for_path_param: str
    client_side_validation: bool
    datetime_format: str
    date_format: str
    temp_folder_path: Optional[str]
    logger_format: str
    logger_file: Optional[str]


# Discovery runs at most once per Configuration even when many threads read ``host`` first.
_DISCOVERY_LOCK = threading.Lock()


class Configuration:
    """Settings for an :class:`~pieces_os_client.ApiClient`.

    The positional arguments are the official SDK's, in its order; everything else is a
    keyword-only setting listed in ``SETTINGS`` (docs/configuration.md has the table). Every
    setting is also an attribute, and every value is checked when it is set, in the
    constructor or later: a wrong type raises ``ApiTypeError``, a wrong value
    ``ApiValueError``, both naming the setting and the value.

    :param host: base URL of Pieces OS (``http://`` or ``https://``, may hold a path prefix).
        When left out, the client finds a running Pieces OS by itself on first use
        (``PIECES_OS_URL``, then the ports Pieces OS uses) and falls back to
        ``http://localhost:1000``, the documented default.
    :param api_key: ``{"application": "<id>"}`` sends the ``X-Application-ID`` header.
    :param retries: the official knob. An ``int`` sets ``max_retries``; a
        ``urllib3.util.Retry`` replaces the policy entirely.
    :param connect_timeout: seconds to wait for a connection (default 5).
    :param read_timeout: seconds to wait for each read of the response (default 60).
    :param max_retries: how many times a failed request may be tried again (default 2). GETs
        are retried on connection errors, 429 and 5xx; POSTs only when the connection was
        never made (so a conversation is never created twice).
    :param backoff_max: the longest wait between two attempts, in seconds (default 8); a
        server's ``Retry-After`` is honoured up to this long.
    :param connection_pool_maxsize: the most connections open to one host at a time; a call
        that finds them all busy waits for one (default 5 per CPU, at least 4).
    :param pool_timeout: how long, in seconds, a call waits for a free connection before
        failing with ``ApiTimeoutError`` (default 30).
    :param max_response_size: the largest response body, in bytes, the client reads into
        memory (default 256 MiB); a larger one raises ``ResponseTooLargeError``. ``None``
        lifts the limit.
    """

    _default: ClassVar[Optional[Configuration]] = None

    # Keyword settings (see SETTINGS); declared here for type checkers.
    discover: bool
    connect_timeout: float
    read_timeout: float
    max_retries: int
    backoff_factor: float
    backoff_max: float
    backoff_jitter: float
    connection_pool_maxsize: int
    pool_timeout: float
    proxy: Optional[str]
    proxy_headers: Optional[Dict[str, str]]
    socket_options: Optional[List[Tuple[int, int, Union[int, bytes]]]]
    verify_ssl: bool
    cert_file: Optional[str]
    key_file: Optional[str]
    assert_hostname: Union[bool, str, None]
    tls_server_name: Optional[str]
    max_response_size: Optional[int]
    stream_max_message_size: Optional[int]
    refresh_api_key_hook: Any
    safe_chars_for_path_param: str
    client_side_validation: bool
    datetime_format: str
    date_format: str
    temp_folder_path: Optional[str]
    logger_format: str

    def __init__(
        self,
        host: Optional[str] = None,
        api_key: Optional[Dict[str, str]] = None,
        api_key_prefix: Optional[Dict[str, str]] = None,
        username: Optional[str] = None,
        password: Optional[str] = None,
        access_token: Optional[str] = None,
        server_index: Optional[int] = None,
        server_variables: Optional[Dict[str, str]] = None,
        server_operation_index: Optional[Dict[int, int]] = None,
        server_operation_variables: Optional[Dict[int, Dict[str, str]]] = None,
        ignore_operation_servers: bool = False,
        ssl_ca_cert: Optional[str] = None,
        retries: Union[int, Retry, None] = None,
        ca_cert_data: Union[str, bytes, None] = None,
        *,
        debug: Optional[bool] = None,
        **settings: Unpack[ConfigurationSettings],
    ) -> None:
        unknown = sorted(set(settings) - set(SETTINGS) - {"discover"})
        if unknown:
            valid = [*SETTINGS, "discover", "debug"]
            raise ApiTypeError("Configuration(): " + unknown_names_message("setting", unknown, valid))
        self._host: Optional[str] = None if host is None else _host("host", host)
        self._resolved_host: Optional[str] = None
        #: Find a running Pieces OS when no host was given (see pieces_os_client.discovery).
        discover = settings.get("discover")
        self.discover = (host is None) if discover is None else bool(discover)
        self.server_index = 0 if server_index is None and host is None else server_index
        self.server_operation_index = server_operation_index or {}
        self.server_variables = server_variables or {}
        self.server_operation_variables = server_operation_variables or {}
        self.ignore_operation_servers = ignore_operation_servers

        self.api_key: Dict[str, str] = dict(api_key) if api_key else {}
        self.api_key_prefix: Dict[str, str] = dict(api_key_prefix) if api_key_prefix else {}
        self.username = username
        self.password = password
        self.access_token = access_token
        self.ssl_ca_cert = ssl_ca_cert
        self.ca_cert_data = ca_cert_data
        self.retries = retries

        # logging: only the "pieces_os_client" logger is ever touched
        self.logger = {"package_logger": logging.getLogger(LOGGER_NAME)}
        self._logger_file: Optional[str] = None
        self._logger_file_handler: Optional[logging.Handler] = None
        self._debug = False
        self._debug_handler: Optional[logging.Handler] = None
        # the logger's level before debug turned it to DEBUG, put back when debug goes off
        self._level_before_debug: Optional[int] = None

        given: Mapping[str, Any] = settings
        for name, setting in SETTINGS.items():
            setattr(self, name, given.get(name, setting.default))
        if debug is not None:
            self.debug = debug

    def __setattr__(self, name: str, value: Any) -> None:
        check = _CHECKS.get(name)
        object.__setattr__(self, name, value if check is None else check(name, value))

    # ------------------------------------------------------------------ host
    @property
    def host(self) -> str:
        """The base URL requests go to.

        With no host given and discovery on, the first read looks for a running Pieces OS
        and remembers the answer; without one, ``http://localhost:1000``.
        """
        if self._host is not None:
            return self._host
        resolved = self._resolved_host
        if resolved is None:
            with _DISCOVERY_LOCK:  # many threads may ask first: search once
                resolved = self._resolved_host
                if resolved is None:
                    found: Optional[str] = None
                    if self.discover:
                        from pieces_os_client.discovery import find_pieces_os

                        found = find_pieces_os()
                    resolved = self._resolved_host = found or DEFAULT_HOST
        return resolved

    @host.setter
    def host(self, value: str) -> None:  # checked by __setattr__ (see _host)
        self._host = value
        self.server_index = None
        self.discover = False

    @property
    def host_was_given(self) -> bool:
        """True when the host was set by the user rather than found or defaulted."""
        return self._host is not None

    def get_host_settings(self) -> List[HostSetting]:
        return [{"url": DEFAULT_HOST, "description": "Pieces OS on this machine", "variables": {}}]

    def get_host_from_settings(
        self,
        index: Optional[int],
        variables: Optional[Dict[str, str]] = None,
        servers: Optional[List[HostSetting]] = None,
    ) -> str:
        if index is None:
            return self.host
        servers = servers or self.get_host_settings()
        if not 0 <= index < len(servers):
            raise ApiValueError(f"invalid host index {index}; there are {len(servers)} host settings")
        url = servers[index]["url"]
        for name, spec in servers[index]["variables"].items():
            value = (variables or {}).get(name, spec.get("default_value"))
            url = url.replace("{" + name + "}", str(value))
        return url

    # ------------------------------------------------------------------ timeouts & retries
    @property
    def timeout(self) -> Tuple[float, float]:
        """The default (connect, read) timeout in seconds."""
        return (self.connect_timeout, self.read_timeout)

    def retry_policy(self) -> Retry:
        """The urllib3 retry policy the transport uses.

        GET/HEAD/OPTIONS are retried on connection failures, read failures and the statuses
        in ``RETRY_STATUSES``; other methods only when the connection itself failed (the
        request never left), so a create or delete is never sent twice.
        """
        if isinstance(self.retries, Retry):
            return self.retries
        attempts = self.max_retries if self.retries is None else int(self.retries)
        return _PiecesRetry(
            total=attempts,
            connect=attempts,
            read=attempts,
            status=attempts,
            other=0,
            redirect=0,
            allowed_methods=frozenset({"GET", "HEAD", "OPTIONS"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            backoff_jitter=self.backoff_jitter,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )

    # ------------------------------------------------------------------ auth
    def get_api_key_with_prefix(self, identifier: str, alias: Optional[str] = None) -> Optional[str]:
        if self.refresh_api_key_hook is not None:
            self.refresh_api_key_hook(self)
        key = self.api_key.get(identifier, self.api_key.get(alias) if alias is not None else None)
        if key is None:
            return None
        prefix = self.api_key_prefix.get(identifier)
        return f"{prefix} {key}" if prefix else key

    def get_basic_auth_token(self) -> Optional[str]:
        if self.username is None and self.password is None:
            return None
        import base64

        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def auth_settings(self) -> AuthSettings:
        """The credentials to attach, by the API document's security scheme names."""
        auth: AuthSettings = {}
        key = self.get_api_key_with_prefix("application")
        if key is not None:
            auth["application"] = {"type": "api_key", "in": "header", "key": "X-Application-ID", "value": key}
        if self.access_token is not None:
            auth["auth0"] = {
                "type": "oauth2",
                "in": "header",
                "key": "Authorization",
                "value": "Bearer " + self.access_token,
            }
        return auth

    def auth_headers(self) -> Dict[str, str]:
        """Every credential that goes in a header, as a plain header dict."""
        return {s["key"]: s["value"] for s in self.auth_settings().values() if s["in"] == "header"}

    # ------------------------------------------------------------------ logging
    @property
    def debug(self) -> bool:
        """Debug logging for this package's logger only (never urllib3's or http.client's)."""
        return self._debug

    @debug.setter
    def debug(self, value: bool) -> None:
        logger = logging.getLogger(LOGGER_NAME)
        self._debug = bool(value)
        if self._debug:
            if self._level_before_debug is None:
                self._level_before_debug = logger.level
            logger.setLevel(logging.DEBUG)
            if self._debug_handler is None and self._logger_file_handler is None:
                self._debug_handler = logging.StreamHandler()
                self._debug_handler.setFormatter(logging.Formatter(self.logger_format))
                logger.addHandler(self._debug_handler)
        else:
            # only undo what turning debug on did; an application's own level stays as it is
            if self._level_before_debug is not None:
                logger.setLevel(self._level_before_debug)
                self._level_before_debug = None
            if self._debug_handler is not None:
                logger.removeHandler(self._debug_handler)
                self._debug_handler = None

    @property
    def logger_file(self) -> Optional[str]:
        return self._logger_file

    @logger_file.setter
    def logger_file(self, value: Optional[str]) -> None:
        logger = logging.getLogger(LOGGER_NAME)
        if self._logger_file_handler is not None:
            logger.removeHandler(self._logger_file_handler)
            self._logger_file_handler.close()
            self._logger_file_handler = None
        self._logger_file = value
        if value:
            handler = logging.FileHandler(value)
            handler.setFormatter(logging.Formatter(self.logger_format))
            logger.addHandler(handler)
            self._logger_file_handler = handler

    # ------------------------------------------------------------------ defaults
    @classmethod
    def set_default(cls, default: Optional[Configuration]) -> None:
        cls._default = default

    @classmethod
    def get_default(cls) -> Configuration:
        default = cls._default
        if default is None:
            with _lazy.BUILD_LOCK:  # built once, whichever thread asks first
                default = cls._default
                if default is None:
                    default = cls._default = cls()
        return default

    @classmethod
    def get_default_copy(cls) -> Configuration:
        return copy.deepcopy(cls.get_default())

    def __deepcopy__(self, memo: Dict[int, Any]) -> Configuration:
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        for name, value in self.__dict__.items():
            if name in ("logger", "_debug_handler", "_logger_file_handler"):
                setattr(clone, name, value)
            else:
                setattr(clone, name, copy.deepcopy(value, memo))
        return clone

    def to_debug_report(self) -> str:
        import platform
        import sys

        from pieces_os_client import __version__

        return (
            "Python SDK Debug Report:\n"
            f"OS: {sys.platform}\n"
            f"Python Version: {platform.python_version()}\n"
            "Version of the API: 1.0\n"
            f"SDK Package Version: {__version__}"
        )

    def __repr__(self) -> str:
        shown: Mapping[str, Any] = {
            "host": mask_userinfo(self._host) if self._host else "(discover)",
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "verify_ssl": self.verify_ssl,
            "api_key": {k: "***" for k in self.api_key},
        }
        return f"Configuration({', '.join(f'{k}={v!r}' for k, v in shown.items())})"
