"""The HTTP transport: one urllib3 pool, timeouts, retries, and error translation.

Every urllib3 failure is turned into an SDK error here (``ApiConnectionError``,
``ApiTimeoutError``), with the urllib3 exception kept as ``__cause__``. ``ApiException`` is
re-exported so that ``from pieces_os_client.rest import ApiException`` works as in the
official SDK.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import re
import ssl
import time
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    EmptyPoolError,
    HTTPError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiTimeoutError,
    ApiValueError,
    ResponseFormatError,
)

__all__ = ["ApiException", "RESTClientObject", "RESTResponse", "RESTResponseType", "is_socks_proxy_url"]

logger = logging.getLogger("pieces_os_client")

RESTResponseType = urllib3.HTTPResponse
RequestTimeout = Union[None, float, int, Tuple[float, float], urllib3.Timeout]

SUPPORTED_SOCKS_PROXIES = frozenset({"socks5", "socks5h", "socks4", "socks4a"})
_REDACTED_HEADERS = frozenset({"x-application-id", "authorization", "cookie", "proxy-authorization", "x-api-key"})
# RFC 9110 token characters for header names; values may not hold CR, LF or NUL.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")
# "HTTPConnection(host='127.0.0.1', port=39300): " at the start of urllib3 2 messages
_CONNECTION_PREFIX = re.compile(r"^\w+\(host=[^)]*\): ")


def is_socks_proxy_url(url: Optional[str]) -> bool:
    if not url:
        return False
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return scheme in SUPPORTED_SOCKS_PROXIES


def redact_headers(headers: Mapping[str, Any]) -> Dict[str, Any]:
    """A copy of ``headers`` with credentials masked, safe to log."""
    return {k: ("***" if k.lower() in _REDACTED_HEADERS else v) for k, v in headers.items()}


class RESTResponse:
    """A response with its body read (the official wrapper's interface)."""

    def __init__(self, resp: urllib3.BaseHTTPResponse, host: str = "") -> None:
        self.response = resp
        self.status: int = resp.status
        self.reason: Optional[str] = resp.reason
        self.data: Optional[bytes] = None
        self._host = host

    def read(self) -> bytes:
        """Read the whole body once; a body cut short raises ``ApiConnectionError``."""
        if self.data is None:
            try:
                self.data = self.response.data
            except DecodeError as exc:
                encoding = self.response.headers.get("Content-Encoding", "(none)")
                raise ResponseFormatError(
                    f"Pieces OS answered {self.status} with a body that could not be decoded "
                    f"(Content-Encoding: {encoding}): {_reason_text(exc)}",
                    status=self.status, reason=self.reason, body=None, headers=self.getheaders(),
                    content_type=self.response.headers.get("Content-Type"),
                ) from exc
            except ReadTimeoutError as exc:
                raise ApiTimeoutError(
                    f"Pieces OS at {self._host} stopped sending the response body before the read timeout",
                    host=self._host,
                ) from exc
            except (ProtocolError, HTTPError, OSError, ValueError) as exc:
                # ValueError: http.client on framing it cannot follow, such as a negative chunk size
                raise ApiConnectionError(
                    f"The connection to {self._host} broke while reading the response body "
                    f"(status {self.status}): {_reason_text(exc)}",
                    host=self._host,
                ) from exc
            finally:
                self.response.release_conn()
        return self.data

    def getheaders(self) -> Mapping[str, str]:
        """The response headers, case-insensitive (urllib3's ``HTTPHeaderDict``, as the official SDK)."""
        return self.response.headers

    def getheader(self, name: str, default: Optional[str] = None) -> Optional[str]:
        value = self.response.headers.get(name, default)
        return value if value is None else str(value)


class RESTClientObject:
    """Sends requests through one urllib3 pool manager built from a Configuration."""

    def __init__(self, configuration: Configuration) -> None:
        self.configuration = configuration
        pool_args: Dict[str, Any] = {
            "cert_reqs": ssl.CERT_REQUIRED if configuration.verify_ssl else ssl.CERT_NONE,
            "ca_certs": configuration.ssl_ca_cert,
            "cert_file": configuration.cert_file,
            "key_file": configuration.key_file,
            "ca_cert_data": configuration.ca_cert_data,
            "maxsize": configuration.connection_pool_maxsize,
            # A real bound: a call that finds every connection busy waits for one (up to
            # pool_timeout, see _BoundedPool) instead of opening another.
            "block": True,
            "timeout": urllib3.Timeout(connect=configuration.connect_timeout, read=configuration.read_timeout),
        }
        if configuration.assert_hostname is not None:
            pool_args["assert_hostname"] = configuration.assert_hostname
        if configuration.tls_server_name:
            pool_args["server_hostname"] = configuration.tls_server_name
        if configuration.socket_options is not None:
            pool_args["socket_options"] = configuration.socket_options

        self.retries = configuration.retry_policy()
        self._default_timeout: Tuple[Tuple[float, float], urllib3.Timeout] = (
            (configuration.connect_timeout, configuration.read_timeout),
            urllib3.Timeout(connect=configuration.connect_timeout, read=configuration.read_timeout),
        )
        self.pool_manager: urllib3.PoolManager
        if configuration.proxy:
            if is_socks_proxy_url(configuration.proxy):
                from urllib3.contrib.socks import SOCKSProxyManager

                pool_args["headers"] = configuration.proxy_headers
                self.pool_manager = SOCKSProxyManager(configuration.proxy, **pool_args)
            else:
                self.pool_manager = urllib3.ProxyManager(
                    configuration.proxy, proxy_headers=configuration.proxy_headers, **pool_args
                )
        else:
            self.pool_manager = urllib3.PoolManager(**pool_args)
        self.pool_manager.pool_classes_by_scheme = {
            scheme: _bounded_pool_class(base, configuration)
            for scheme, base in self.pool_manager.pool_classes_by_scheme.items()
        }

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool_manager.clear()

    def request(
        self,
        method: str,
        url: str,
        headers: Optional[Dict[str, str]] = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: RequestTimeout = None,
        *,
        preload_content: bool = True,
    ) -> RESTResponse:
        """Send one request (with the configured retries) and return the response.

        ``body`` may be bytes/str (sent as is) or JSON-able data (encoded here).
        With ``preload_content`` the body is read before returning.
        """
        method = method.upper()
        if method not in ("GET", "HEAD", "DELETE", "POST", "PUT", "PATCH", "OPTIONS"):
            raise ApiValueError(f"unsupported HTTP method {method!r}")
        if post_params and body is not None:
            raise ApiValueError("body and post_params cannot be used together")
        headers = dict(headers or {})
        payload: Optional[bytes]
        if body is None:
            payload = None
        elif isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode("utf-8")
        else:
            payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

        host = _origin(url)
        _check_headers(headers)
        timeout = self._timeout(_request_timeout)
        started = time.monotonic()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("request %s %s headers=%s body=%d bytes", method, url, redact_headers(headers),
                         len(payload or b""))
        body_retries = _body_retries(self.retries, method) if preload_content else 0
        for attempt in range(body_retries + 1):
            try:
                resp = self.pool_manager.request(
                    method, url, body=payload, headers=headers, timeout=timeout, preload_content=False,
                    redirect=False, retries=self.retries,
                )
            except (MaxRetryError, HTTPError, OSError, ValueError) as exc:
                # ValueError: http.client rejecting a malformed response while urllib3 drains it for a retry
                raise _translate(exc, method, url, host, timeout,
                                 searched=not self.configuration.host_was_given) from exc
            result = RESTResponse(resp, host)
            if not preload_content:
                break
            try:
                result.read()
                break
            except ApiConnectionError:
                # The body broke off after the headers (server restarting, connection reset).
                # urllib3 has already handed the response over, so an idempotent request is
                # retried here, with the same budget and backoff as urllib3's own retries.
                if attempt == body_retries:
                    raise
                logger.info("%s %s: response body cut short; retrying (%d of %d)", method, url,
                            attempt + 1, body_retries)
                time.sleep(_backoff(self.retries, attempt))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("response %s %s -> %s in %.1f ms", method, url, resp.status,
                         (time.monotonic() - started) * 1000)
        return result

    def _timeout(self, value: RequestTimeout) -> urllib3.Timeout:
        if value is None:
            config = self.configuration
            if self._default_timeout[0] != (config.connect_timeout, config.read_timeout):
                pair = (config.connect_timeout, config.read_timeout)
                self._default_timeout = (pair, urllib3.Timeout(connect=pair[0], read=pair[1]))
            return self._default_timeout[1]
        if isinstance(value, urllib3.Timeout):
            return value
        if isinstance(value, bool):
            raise ApiValueError(f"_request_timeout must be seconds or a (connect, read) pair, not {value!r}")
        if isinstance(value, (int, float)):
            if not value > 0 or not math.isfinite(value):
                raise ApiValueError(f"_request_timeout must be positive, not {value!r}")
            return urllib3.Timeout(total=float(value))
        if isinstance(value, tuple) and len(value) == 2:
            connect, read = value
            for part in value:
                if isinstance(part, bool) or not isinstance(part, (int, float)) or not 0 < part < math.inf:
                    raise ApiValueError(f"_request_timeout pair must hold two positive numbers, not {value!r}")
            return urllib3.Timeout(connect=float(connect), read=float(read))
        raise ApiValueError(f"_request_timeout must be seconds or a (connect, read) pair, not {value!r}")


class PoolWaitTimeout(EmptyPoolError):
    """No pooled connection became free within ``Configuration.pool_timeout``."""


class _BoundedPool(urllib3.HTTPConnectionPool):
    """Mixed into urllib3's pool classes: waits ``pool_timeout`` for a free connection."""

    _pieces_configuration: Configuration

    def _get_conn(self, timeout: Optional[float] = None) -> Any:
        config = self._pieces_configuration
        wait = config.pool_timeout if timeout is None else timeout
        try:
            return super()._get_conn(timeout=wait)
        except EmptyPoolError as exc:
            raise PoolWaitTimeout(
                self,
                f"no connection became free within pool_timeout={wait:g} s "
                f"(all connection_pool_maxsize={self.pool.maxsize if self.pool else '?'} connections were busy); "
                "raise Configuration.pool_timeout or connection_pool_maxsize, or make fewer calls at once",
            ) from exc


def _bounded_pool_class(base: type, configuration: Configuration) -> type:
    """``base`` (a urllib3 pool class) waiting for a free connection as ``configuration`` says."""
    return type(f"Bounded{base.__name__}", (_BoundedPool, base), {"_pieces_configuration": configuration})


def _body_retries(retries: Retry, method: str) -> int:
    """How many times a request whose response body broke off may be sent again."""
    allowed = retries.allowed_methods
    if allowed is not None and method not in allowed:
        return 0
    budgets = [b for b in (retries.total, retries.read) if isinstance(b, int) and not isinstance(b, bool)]
    return max(0, min(budgets)) if budgets else 0


def _backoff(retries: Retry, attempt: int) -> float:
    delay = min(float(retries.backoff_max), float(retries.backoff_factor) * (2.0**attempt))
    jitter = float(getattr(retries, "backoff_jitter", 0.0))
    return delay + (random.uniform(0, jitter) if jitter else 0.0)


def _origin(url: str) -> str:
    """The scheme://host:port part of ``url``; ApiValueError for a URL no request can go to."""
    # Requests of one client share a handful of origins: parse and check each only once.
    return _checked_origin("/".join(url.split("/", 3)[:3]))


@functools.lru_cache(maxsize=64)
def _checked_origin(url: str) -> str:
    try:
        parsed = urllib3.util.parse_url(url)
    except LocationValueError as exc:
        raise ApiValueError(f"{url!r} is not a valid URL: {_reason_text(exc)}. Check Configuration.host.") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ApiValueError(
            f"{url!r} is not an http:// or https:// URL with a host. "
            "Check Configuration.host (for example http://localhost:39300)."
        )
    return f"{parsed.scheme}://{parsed.netloc}"


#: header sets (all values text) already found valid: a client sends the same few again and again
_VALID_HEADER_SETS: Dict[Tuple[Tuple[Any, Any], ...], None] = {}
_VALID_HEADER_SETS_MAX = 256


def _check_headers(headers: Mapping[str, Any]) -> None:
    """Refuse headers http.client would reject mid-request, or that could smuggle extra headers."""
    key = tuple(headers.items())
    try:
        if key in _VALID_HEADER_SETS:
            return
    except TypeError:  # an unhashable value: check it, never remember it
        key = ()
    _check_header_items(headers)
    if key and all(type(value) is str for _, value in key):
        if len(_VALID_HEADER_SETS) >= _VALID_HEADER_SETS_MAX:
            _VALID_HEADER_SETS.clear()
        _VALID_HEADER_SETS[key] = None


def _check_header_items(headers: Mapping[str, Any]) -> None:
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            raise ApiValueError(f"{name!r} is not a valid HTTP header name")
        text = value if isinstance(value, str) else str(value)
        if _HEADER_VALUE_FORBIDDEN.search(text):
            raise ApiValueError(f"the value of header {name!r} contains a line break or NUL, which HTTP forbids")
        try:
            text.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ApiValueError(
                f"the value of header {name!r} has characters HTTP headers cannot carry (Latin-1 only)"
            ) from exc


def _reason_text(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    inner = reason if isinstance(reason, BaseException) else exc
    args = inner.args
    if len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], BaseException):
        # ProtocolError("Connection aborted.", ConnectionResetError(...)): a sentence, then its cause
        head, cause = args
        text = head if str(cause) in head else f"{head} ({type(cause).__name__}: {cause})"
    else:
        text = str(inner)
    # urllib3 prefixes messages with the connection: keep the human part.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    text = _CONNECTION_PREFIX.sub("", text)
    return text or type(inner).__name__


def _seconds(timeout: urllib3.Timeout, which: str) -> str:
    """Describe a timeout without touching urllib3's timer (which raises for total timeouts)."""
    if timeout.total is not None:
        return f"{timeout.total} s in total per attempt"
    value = timeout.connect_timeout if which == "connect" else timeout._read
    return f"{value} s"


def _translate(
    exc: BaseException, method: str, url: str, host: str, timeout: urllib3.Timeout, *, searched: bool = False
) -> ApiConnectionError:
    """The SDK error for a transport failure; ``searched``: the host came from discovery."""
    reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: test for it first, so a
    # refused connection is not reported as a timeout.
    if isinstance(reason, (NewConnectionError, ConnectionRefusedError)):
        if searched:
            from pieces_os_client.discovery import searched_places

            advice = (
                f"No running Pieces OS was found either (looked at {searched_places()}). Start Pieces OS, or "
                "`python -m pieces_os_client.emulator` for a local stand-in, or pass `host=` if it listens elsewhere."
            )
        else:
            advice = (
                "Start Pieces OS (or `python -m pieces_os_client.emulator` for a local stand-in) "
                "and check the host: Pieces OS 11 and later listen on a port in 39300-39333; "
                "leave `host` unset to let the client find it."
            )
        return ApiConnectionError(
            f"Could not connect to Pieces OS at {host}: {_reason_text(reason)}. {advice}",
            host=host, url=url, method=method,
        )
    if isinstance(reason, PoolWaitTimeout):
        return ApiTimeoutError(f"{method} {url}: {_reason_text(reason)}", host=host, url=url, method=method)
    if isinstance(reason, ConnectTimeoutError):
        return ApiTimeoutError(
            f"Timed out connecting to Pieces OS at {host} (connect timeout {_seconds(timeout, 'connect')}). "
            "Is Pieces OS running and is this the right host?",
            host=host, url=url, method=method,
        )
    if isinstance(reason, ReadTimeoutError):
        return ApiTimeoutError(
            f"Pieces OS at {host} accepted the connection but sent no response to {method} {url} "
            f"within the read timeout ({_seconds(timeout, 'read')})",
            host=host, url=url, method=method,
        )
    if isinstance(reason, SSLError):
        return ApiConnectionError(
            f"TLS handshake with {host} failed: {_reason_text(reason)}. Check verify_ssl / ssl_ca_cert.",
            host=host, url=url, method=method,
        )
    if isinstance(reason, ProxyError):
        return ApiConnectionError(
            f"Could not reach {host} through the proxy: {_reason_text(reason)}",
            host=host, url=url, method=method,
        )
    if isinstance(reason, (ProtocolError, OSError)):
        return ApiConnectionError(
            f"The connection to {host} broke during {method} {url}: {_reason_text(reason)}",
            host=host, url=url, method=method,
        )
    return ApiConnectionError(
        f"Request {method} {url} to {host} failed: {_reason_text(reason)}",
        host=host, url=url, method=method,
    )
