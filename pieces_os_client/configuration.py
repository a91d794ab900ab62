"""Client settings: where Pieces OS is, how long to wait, what to retry, TLS, proxy, logging.

The constructor takes the official SDK's keyword arguments (``host``, ``api_key``,
``api_key_prefix``, ``ssl_ca_cert``, ``retries``, ``debug``, ...) and adds a few of its own
(``connect_timeout``, ``read_timeout``, ``max_retries``, ``backoff_factor``, ...). See
docs/configuration.md for the full table.
"""

from __future__ import annotations

import copy
import logging
import os
from types import TracebackType
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple, TypedDict, Union

from typing_extensions import Self
from urllib3.exceptions import InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from pieces_os_client.exceptions import ApiValueError

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


class Configuration:
    """Settings for an :class:`~pieces_os_client.ApiClient`.

    :param host: base URL of Pieces OS. When left out, the client finds a running Pieces OS
        by itself on first use (``PIECES_OS_URL``, then the ports Pieces OS uses) and falls
        back to ``http://localhost:1000``, the documented default.
    :param api_key: ``{"application": "<id>"}`` sends the ``X-Application-ID`` header.
    :param connect_timeout: seconds to wait for a connection (default 5).
    :param read_timeout: seconds to wait for each read of the response (default 60).
    :param max_retries: how many times a failed request may be tried again (default 2). GETs
        are retried on connection errors, 429 and 5xx; POSTs only when the connection was
        never made (so a conversation is never created twice).
    :param backoff_max: the longest wait between two attempts, in seconds (default 8); a
        server's ``Retry-After`` is honoured up to this long.
    :param max_response_size: the largest response body, in bytes, the client reads into
        memory (default 256 MiB); a larger one raises ``ResponseTooLargeError``. ``None``
        lifts the limit.
    :param retries: the official knob. An ``int`` sets ``max_retries``; a
        ``urllib3.util.Retry`` replaces the policy entirely.
    """

    _default: ClassVar[Optional[Configuration]] = None

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
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_retries: int = 2,
        backoff_factor: float = 0.25,
        backoff_max: float = 8.0,
        backoff_jitter: float = 0.25,
        discover: Optional[bool] = None,
        max_response_size: Optional[int] = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        self._host: Optional[str] = host.rstrip("/") if host else None
        self._resolved_host: Optional[str] = None
        #: Find a running Pieces OS when no host was given (see pieces_os_client.discovery).
        self.discover = (host is None) if discover is None else discover
        self.server_index = 0 if server_index is None and host is None else server_index
        self.server_operation_index = server_operation_index or {}
        self.server_variables = server_variables or {}
        self.server_operation_variables = server_operation_variables or {}
        self.ignore_operation_servers = ignore_operation_servers
        self.temp_folder_path: Optional[str] = None

        self.api_key: Dict[str, str] = dict(api_key) if api_key else {}
        self.api_key_prefix: Dict[str, str] = dict(api_key_prefix) if api_key_prefix else {}
        self.refresh_api_key_hook: Any = None
        self.username = username
        self.password = password
        self.access_token = access_token

        # TLS
        self.verify_ssl = True
        self.ssl_ca_cert = ssl_ca_cert
        self.ca_cert_data = ca_cert_data
        self.cert_file: Optional[str] = None
        self.key_file: Optional[str] = None
        self.assert_hostname: Union[bool, str, None] = None
        self.tls_server_name: Optional[str] = None

        # transport
        self.connection_pool_maxsize = max(4, (os.cpu_count() or 1) * 5)
        self.proxy: Optional[str] = None
        self.proxy_headers: Optional[Dict[str, str]] = None
        self.socket_options: Optional[List[Tuple[int, int, Union[int, bytes]]]] = None
        self.safe_chars_for_path_param = ""
        self.client_side_validation = True
        self.datetime_format = "%Y-%m-%dT%H:%M:%S.%f%z"
        self.date_format = "%Y-%m-%d"

        # timeouts and retries
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self.backoff_factor = backoff_factor
        self.backoff_max = backoff_max
        self.backoff_jitter = backoff_jitter
        self.retries = retries
        #: The largest response body read into memory, in bytes (after any decompression
        #: the caller asked for); ``None`` lifts the limit.
        self.max_response_size = max_response_size

        # the identifiers WebSocket: the largest message read, in bytes (None: no bound)
        self.stream_max_message_size: Optional[int] = 32 * 1024 * 1024

        # logging: only the "pieces_os_client" logger is ever touched
        self.logger = {"package_logger": logging.getLogger(LOGGER_NAME)}
        self.logger_format = "%(asctime)s %(levelname)s %(name)s %(message)s"
        self._logger_file: Optional[str] = None
        self._logger_file_handler: Optional[logging.Handler] = None
        self._debug = False
        self._debug_handler: Optional[logging.Handler] = None
        # the logger's level before debug turned it to DEBUG, put back when debug goes off
        self._level_before_debug: Optional[int] = None
        if debug is not None:
            self.debug = debug

    # ------------------------------------------------------------------ host
    @property
    def host(self) -> str:
        """The base URL requests go to.

        With no host given and discovery on, the first read looks for a running Pieces OS
        and remembers the answer; without one, ``http://localhost:1000``.
        """
        if self._host is not None:
            return self._host
        if self._resolved_host is None:
            found: Optional[str] = None
            if self.discover:
                from pieces_os_client.discovery import find_pieces_os

                found = find_pieces_os()
            self._resolved_host = found or DEFAULT_HOST
        return self._resolved_host

    @host.setter
    def host(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise ApiValueError(f"host must be a non-empty URL string, not {value!r}")
        self._host = value.rstrip("/")
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
        if cls._default is None:
            cls._default = cls()
        return cls._default

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
            "host": self._host or "(discover)",
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "verify_ssl": self.verify_ssl,
            "api_key": {k: "***" for k in self.api_key},
        }
        return f"Configuration({', '.join(f'{k}={v!r}' for k, v in shown.items())})"
