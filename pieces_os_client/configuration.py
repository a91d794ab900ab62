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
import ssl
import threading
from types import TracebackType
from typing import Any, Callable, ClassVar, Dict, List, Mapping, NamedTuple, Optional, Tuple, TypedDict, Union

from typing_extensions import Self, Unpack
from urllib3.exceptions import InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from pieces_os_client import _lazy
from pieces_os_client._core.headers import check_header
from pieces_os_client._core.text import shown_value
from pieces_os_client._core.urls import mask_userinfo, url_problem
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

#: The security schemes the API document declares for the Conversations operations and the
#: identifiers stream: ``application`` (``X-Application-ID``) only. ``access_token`` feeds the
#: official ``auth0`` scheme, which none of them declares, so neither transport sends it (nor
#: does the official SDK on these operations).
API_AUTH: Tuple[str, ...] = ("application",)


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
    problem = url_problem(value)
    if problem is not None:
        raise ApiValueError(f"{name} {shown_value(mask_userinfo(value))} {problem}. {hint}")
    return value.rstrip("/")


def _optional_text(name: str, value: Any) -> Optional[str]:
    """``None`` or a ``str`` (tokens, user names, TLS names)."""
    if value is not None and not isinstance(value, str):
        raise ApiTypeError(f"{name} must be a str or None, not {type(value).__name__} ({value!r})")
    return value


def _secret_text(name: str, value: Any) -> Optional[str]:
    """``None`` or a ``str``, for credentials: a wrong value is described, never shown."""
    if value is not None and not isinstance(value, str):
        raise ApiTypeError(f"{name} must be a str or None, not {type(value).__name__}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ApiTypeError(f"{name} must be a str, not {type(value).__name__} ({value!r})")
    return value


def _optional_path(name: str, value: Any) -> Any:
    """``None`` or a file path (``str`` or ``os.PathLike``); whether the file exists is for its use."""
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ApiTypeError(f"{name} must be a file path (str) or None, not {type(value).__name__} ({value!r})")
    return value


def _cert_data(name: str, value: Any) -> Any:
    if value is not None and not isinstance(value, (str, bytes)):
        raise ApiTypeError(f"{name} must be PEM text (str), DER bytes or None, not {type(value).__name__} ({value!r})")
    return value


def _assert_hostname(name: str, value: Any) -> Any:
    if value is not None and not isinstance(value, (bool, str)):
        raise ApiTypeError(f"{name} must be a host name (str), False or None, not {type(value).__name__} ({value!r})")
    return value


def _key_map(name: str, value: Any) -> Dict[str, str]:
    """A dict of str to str or None (``api_key``, ``api_key_prefix``), copied; ``None`` is an empty one.

    A ``None`` value is no key at all, as in ``{"application": os.environ.get("APP_ID")}``.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ApiTypeError(
            f"{name} must be a dict such as {{'application': '<id>'}}, not {type(value).__name__} ({value!r})"
        )
    for key, item in value.items():
        if not isinstance(key, str):
            raise ApiTypeError(f"{name} must map scheme names (str) to values (str or None), not {key!r}")
        if not (item is None or isinstance(item, str)):  # a credential: described, never shown
            raise ApiTypeError(f"{name}[{key!r}] must be a str or None, not {type(item).__name__}")
    return dict(value)


def _header_map(name: str, value: Any) -> Optional[Dict[str, str]]:
    """``None`` or headers (a dict of str to str), each one checked as every header is."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ApiTypeError(f"{name} must be a dict of header names to values, not {type(value).__name__} ({value!r})")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ApiTypeError(f"{name} must map header names (str) to values (str), not {key!r}: {item!r}")
        try:
            check_header(key, item)
        except ApiValueError as exc:
            raise ApiValueError(f"{name}: {exc}") from None
    return dict(value)


#: proxy schemes the transports know (SOCKS needs urllib3[socks], and the sync client only)
_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h", "socks4", "socks4a")


def _proxy_url(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiTypeError(f"{name} must be a URL string or None, not {type(value).__name__} ({value!r})")
    problem = url_problem(value, _PROXY_SCHEMES)
    if problem is not None:
        raise ApiValueError(f"{name} {shown_value(mask_userinfo(value))} {problem}")
    return value


def _socket_options(name: str, value: Any) -> Any:
    """``None`` or a list of ``(level, option, value)``, as ``socket.setsockopt`` takes them."""
    if value is None:
        return None
    shape = "a list of (level, option, value) tuples, as socket.setsockopt takes them"
    if not isinstance(value, (list, tuple)):
        raise ApiTypeError(f"{name} must be {shape}, not {type(value).__name__} ({value!r})")
    for item in value:
        if (
            not isinstance(item, tuple) or len(item) != 3
            or not all(isinstance(part, int) and not isinstance(part, bool) for part in item[:2])
            or not isinstance(item[2], (int, bytes))
        ):
            raise ApiTypeError(f"{name} must be {shape}; {item!r} is not")
    return list(value)


def _log_format(name: str, value: Any) -> str:
    text = _text(name, value)
    try:
        logging.Formatter(text)  # the handlers' formatter: it checks the format's fields
    except ValueError as exc:
        raise ApiValueError(f"{name} {text!r} is not a logging format: {exc}") from None
    return text


def load_tls_context(config: Configuration) -> ssl.SSLContext:
    """A verifying SSL context with the configuration's CA (``ssl_ca_cert``, ``ca_cert_data``) and
    client certificate (``cert_file``, ``key_file``), for the transports that build their own.

    :raises ApiValueError: one of them cannot be loaded (a missing file, text that is not a
        certificate), naming the setting and the reason.
    """
    cadata: Union[str, bytes, None] = config.ca_cert_data
    if isinstance(cadata, bytes) and cadata.lstrip().startswith(b"-----BEGIN"):
        cadata = cadata.decode("ascii", "replace")
    try:
        context = ssl.create_default_context(cafile=config.ssl_ca_cert, cadata=cadata)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        which = "ssl_ca_cert" if config.ssl_ca_cert else "ca_cert_data"
        shown = f" {config.ssl_ca_cert!r}" if which == "ssl_ca_cert" else ""
        raise ApiValueError(f"{which}{shown} cannot be loaded as CA certificates: {_reason(exc)}") from exc
    if config.cert_file:
        try:
            context.load_cert_chain(config.cert_file, config.key_file)
        except (OSError, ValueError) as exc:
            raise ApiValueError(
                f"cert_file {config.cert_file!r} (with key_file {config.key_file!r}) cannot be loaded as a client "
                f"certificate: {_reason(exc)}"
            ) from exc
    return context


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc)


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
    "discovery_timeout": Setting(5.0, positive_seconds),
    "pool_timeout": Setting(30.0, positive_seconds),
    "proxy": Setting(None, _proxy_url),
    "proxy_headers": Setting(None, _header_map),
    "socket_options": Setting(None, _socket_options),
    # TLS
    "verify_ssl": Setting(True),
    "cert_file": Setting(None, _optional_path),
    "key_file": Setting(None, _optional_path),
    "assert_hostname": Setting(None, _assert_hostname),
    "tls_server_name": Setting(None, _optional_text),
    # limits
    "max_response_size": Setting(DEFAULT_MAX_RESPONSE_SIZE, optional_size),
    "stream_max_message_size": Setting(32 * 1024 * 1024, optional_size),
    # requests and models
    "refresh_api_key_hook": Setting(None, optional_callable),
    "safe_chars_for_path_param": Setting("", _text),
    "client_side_validation": Setting(True),
    "datetime_format": Setting("%Y-%m-%dT%H:%M:%S.%f%z", _text),
    "date_format": Setting("%Y-%m-%d", _text),
    "temp_folder_path": Setting(None, _optional_path),
    # logging
    "logger_format": Setting("%(asctime)s %(levelname)s %(name)s %(message)s", _log_format),
    "logger_file": Setting(None, _optional_path),
}

#: Checks for attributes that are positional constructor arguments (official order).
_POSITIONAL_CHECKS: Dict[str, Check] = {
    "host": _host, "retries": _retries, "api_key": _key_map, "api_key_prefix": _key_map,
    "username": _optional_text, "password": _secret_text, "access_token": _secret_text,
    "ssl_ca_cert": _optional_path, "ca_cert_data": _cert_data,
}

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
    discovery_timeout: float
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
    :param discovery_timeout: with no host given, the longest the first use may spend looking
        for a running Pieces OS, in seconds (default 5); each probe within it takes at most 0.5.
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
    discovery_timeout: float
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

        self.api_key: Dict[str, str] = api_key  # type: ignore[assignment]  # checked and copied by _key_map
        self.api_key_prefix: Dict[str, str] = api_key_prefix  # type: ignore[assignment]
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

        With no host given and discovery on, the first read looks for a running Pieces OS (for
        at most ``discovery_timeout`` seconds) and remembers the answer; without one,
        ``http://localhost:1000``.

        :raises ApiValueError: ``PIECES_OS_URL`` is set to something that is not a usable URL.
        :raises ApiConnectionError: ``PIECES_OS_URL`` names a server that is not Pieces OS.
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

                        found = find_pieces_os(total=self.discovery_timeout)
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

    def auth_headers(self, schemes: Tuple[str, ...] = API_AUTH) -> Dict[str, str]:
        """The credentials of ``schemes`` that go in a header, as a plain header dict.

        By default the API's own schemes (:data:`API_AUTH`): what every HTTP call and the
        stream's handshake carry.
        """
        settings = self.auth_settings()
        return {
            settings[name]["key"]: settings[name]["value"]
            for name in schemes if name in settings and settings[name]["in"] == "header"
        }

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
        handler: Optional[logging.Handler] = None
        if value:
            try:  # opened first: a file that cannot be opened leaves the previous one in place
                handler = logging.FileHandler(value)
            except OSError as exc:
                raise ApiValueError(
                    f"logger_file {value!r} cannot be opened for writing: {exc.strerror or exc}"
                ) from None
            handler.setFormatter(logging.Formatter(self.logger_format))
        if self._logger_file_handler is not None:
            logger.removeHandler(self._logger_file_handler)
            self._logger_file_handler.close()
            self._logger_file_handler = None
        self._logger_file = value
        if handler is not None:
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
