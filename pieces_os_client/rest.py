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
import os
import random
import re
import ssl
import time
import weakref
import zlib
from http.client import HTTPException
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar, Union

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    EmptyPoolError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

from pieces_os_client._core.exchange import may_resend_stale
from pieces_os_client._core.headers import accepted_codings, check_headers, header_value, redact_headers
from pieces_os_client._core.urls import origin_of
from pieces_os_client._wire import HeadTimeout, StaleConnection, close_when_collected, pool_classes, watch_of
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiTimeoutError,
    ApiValueError,
    OpenApiException,
    ResponseFormatError,
    ResponseTooLargeError,
)

__all__ = ["ApiException", "RESTClientObject", "RESTResponse", "RESTResponseType", "is_socks_proxy_url"]

logger = logging.getLogger("pieces_os_client")

RESTResponseType = urllib3.HTTPResponse
_E = TypeVar("_E", bound=BaseException)
RequestTimeout = Union[None, float, int, Tuple[float, float], urllib3.Timeout]

SUPPORTED_SOCKS_PROXIES = frozenset({"socks5", "socks5h", "socks4", "socks4a"})
# "HTTPConnection(host='127.0.0.1', port=39300): " at the start of urllib3 2 messages
_CONNECTION_PREFIX = re.compile(r"^\w+\(host=[^)]*\): ")
#: read size while a body is counted against a limit or a deadline
_CHUNK = 1024 * 1024
#: compressed bytes handed to the decompressor at a time
_ENCODED_CHUNK = 64 * 1024
#: zlib window settings per content coding (47: a gzip header, detected automatically)
_INFLATE_WBITS = {"gzip": 47, "x-gzip": 47, "deflate": zlib.MAX_WBITS}


def is_socks_proxy_url(url: Optional[str]) -> bool:
    if not url:
        return False
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    return scheme in SUPPORTED_SOCKS_PROXIES


class RESTResponse:
    """A response whose body is read once, within the client's limits (the official interface).

    ``max_size`` bounds the body held in memory (after any decompression the request asked
    for), ``deadline`` (a ``time.monotonic()`` value, from a ``request_timeout`` in seconds)
    bounds the time the whole body may take, and ``accept_encoding`` is what the request's
    ``Accept-Encoding`` allowed: a body in any other content coding is refused, not decoded.
    """

    def __init__(
        self,
        resp: urllib3.BaseHTTPResponse,
        host: str = "",
        *,
        max_size: Optional[int] = None,
        deadline: Optional[float] = None,
        accept_encoding: Optional[str] = None,
        request_timeout: Optional[float] = None,
    ) -> None:
        self.response = resp
        self.status: int = resp.status
        self.reason: Optional[str] = resp.reason
        self.data: Optional[bytes] = None
        self._host = host
        self._max_size = max_size
        self._deadline = deadline
        self._accept_encoding = accept_encoding
        self._request_timeout = request_timeout

    def read(self) -> bytes:
        """Read the whole body once; a body cut short raises ``ApiConnectionError``."""
        if self.data is None:
            complete = False
            try:
                self.data = self._read_body()
                complete = True
            except OpenApiException:
                raise
            except DecodeError as exc:
                encoding = self.response.headers.get("Content-Encoding", "(none)")
                raise ResponseFormatError(
                    f"Pieces OS answered {self.status} with a body that could not be decoded "
                    f"(Content-Encoding: {encoding}): {_reason_text(exc)}",
                    status=self.status, reason=self.reason, body=None, headers=self.getheaders(),
                    content_type=self.response.headers.get("Content-Type"),
                ) from exc
            except (TimeoutError, ReadTimeoutError) as exc:
                if self._deadline is not None:
                    raise ApiTimeoutError(
                        f"Pieces OS at {self._host} did not send the whole response body (status "
                        f"{self.status}) within _request_timeout={self._request_timeout:g} s, which bounds the "
                        "whole attempt, body included",
                        host=self._host,
                    ) from exc
                raise ApiTimeoutError(
                    f"Pieces OS at {self._host} stopped sending the response body before the read timeout",
                    host=self._host,
                ) from exc
            except (ProtocolError, HTTPError, HTTPException, OSError, ValueError) as exc:
                # ValueError: http.client on framing it cannot follow, such as a negative chunk size
                raise ApiConnectionError(
                    f"The connection to {self._host} broke while reading the response body "
                    f"(status {self.status}): {_reason_text(exc)}",
                    host=self._host,
                ) from exc
            finally:
                if not complete:
                    # part of the body is still unread: the connection cannot carry another request
                    self.response.close()
                self.response.release_conn()
        return self.data

    def getheaders(self) -> Mapping[str, str]:
        """The response headers, case-insensitive (urllib3's ``HTTPHeaderDict``, as the official SDK)."""
        return self.response.headers

    def getheader(self, name: str, default: Optional[str] = None) -> Optional[str]:
        value = self.response.headers.get(name, default)
        return value if value is None else str(value)

    # ------------------------------------------------------------------ bounded reading
    def _read_body(self) -> bytes:
        resp = self.response
        inflater = self._inflater()
        length: Optional[int] = getattr(resp, "length_remaining", None)
        limit = self._max_size
        if limit is not None and length is not None and length > limit:
            raise self._too_large(f"its Content-Length is {length} bytes")
        deadline = self._deadline
        fp = getattr(resp, "_fp", None)  # the http.client response: it undoes chunked framing
        read: Callable[[int], bytes]
        if fp is None or not hasattr(fp, "read1"):
            read = functools.partial(resp.read, decode_content=False)
        else:
            # read1 waits for the socket at most once, so the deadline is checked between waits
            read = fp.read1 if deadline is not None else fp.read
        if inflater is not None:
            size = _ENCODED_CHUNK
        elif length is not None and deadline is None:
            size = max(length, 1)  # the common case: the whole body in one read
        else:
            size = _CHUNK
        watch = watch_of(resp) if deadline is not None else None
        if watch is not None:
            watch.deadline = deadline  # the reader stops at it, however the server paces its bytes
        sock = _socket_of(resp) if deadline is not None and watch is None else None
        saved_timeout = sock.gettimeout() if sock is not None else None
        parts: List[bytes] = []
        held = received = 0
        while True:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the attempt's deadline passed")
                if sock is not None:
                    sock.settimeout(left)
            want = size if inflater is not None or limit is None else min(size, limit - held + 1)
            chunk = read(want)
            if not chunk:
                break
            received += len(chunk)
            for piece in inflater.feed(chunk) if inflater is not None else (chunk,):
                held += len(piece)
                if limit is not None and held > limit:
                    raise self._too_large(
                        f"it decompresses ({inflater.coding}) to more than that" if inflater is not None
                        else "more than that arrived, and the client stopped reading"
                    )
                parts.append(piece)
        if length is not None and received < length:
            raise ProtocolError(
                f"Connection broken: IncompleteRead({received} bytes read, {length - received} more expected)"
            )
        if inflater is not None:
            inflater.finish()
        if sock is not None:
            sock.settimeout(saved_timeout)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _inflater(self) -> Optional[_Inflater]:
        """A decoder for the body's content coding; ResponseFormatError for one not asked for."""
        header = self.response.headers.get("Content-Encoding")
        if not header:
            return None
        codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
        if not codings:
            return None
        accepted = accepted_codings(self._accept_encoding)
        sent = self._accept_encoding or "identity"
        if any(c not in accepted and "*" not in accepted for c in codings):
            problem = (
                f"in Content-Encoding {header!r}, which the client did not ask for (it sent "
                f"Accept-Encoding: {sent}); it was not decoded. To accept gzip, send the header "
                "_headers={'Accept-Encoding': 'gzip'}"
            )
        elif len(codings) > 1 or codings[0] not in _INFLATE_WBITS:
            problem = (
                f"in Content-Encoding {header!r}; the client decodes only gzip and deflate (one "
                "coding); read it with a *_without_preload_content method"
            )
        else:
            return _Inflater(codings[0])
        raise ResponseFormatError(
            f"Pieces OS at {self._host} answered {self.status} with a body {problem}.",
            status=self.status, reason=self.reason, body=None, headers=self.getheaders(),
            content_type=self.response.headers.get("Content-Type"),
        )

    def _too_large(self, detail: str) -> ResponseTooLargeError:
        limit = self._max_size or 0
        return ResponseTooLargeError(
            f"The response from {self._host} (status {self.status}) is larger than "
            f"max_response_size allows ({_size_text(limit)}): {detail}. Raise "
            "Configuration.max_response_size, or set it to None to lift the limit.",
            status=self.status, reason=self.reason, headers=self.getheaders(),
            content_type=self.response.headers.get("Content-Type"), limit=limit, host=self._host,
        )


class _Inflater:
    """Undoes gzip or deflate in steps of at most _CHUNK bytes, so the caller can stop at a limit."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._wbits = _INFLATE_WBITS[coding]
        self._zlib: Optional[Any] = None
        self._pending = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data or self._pending:
            if self._zlib is None or self._zlib.eof:
                if self._zlib is not None and self.coding == "deflate":
                    return  # bytes after the end of a deflate stream are not part of it
                # (gzip allows several members, one after another)
                wbits = self._wbits
                if wbits == zlib.MAX_WBITS and not _has_zlib_header(data):
                    wbits = -zlib.MAX_WBITS  # "deflate" sent as a raw stream, as some servers do
                self._zlib = zlib.decompressobj(wbits)
            try:
                out = self._zlib.decompress(data, _CHUNK)
            except zlib.error as exc:
                raise self._error(exc) from exc
            if out:
                yield out
            # a full output step may leave output inside zlib with no input left: ask again
            self._pending = len(out) == _CHUNK and not self._zlib.eof
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof:
            raise self._error(zlib.error("the compressed stream ended early"))

    def _error(self, exc: BaseException) -> DecodeError:
        return DecodeError(f"the {self.coding} body could not be decompressed: {exc}")


class _AttemptClock(urllib3.Timeout):
    """A total timeout that remembers when urllib3 started the latest attempt.

    urllib3 clones the timeout for every attempt and starts the clone's clock when it
    connects; the clones share ``started``, so the body can be read against the deadline of
    the attempt that produced the response.
    """

    def __init__(self, connect: Any, read: Any, total: Any, started: List[float]) -> None:
        super().__init__(connect=connect, read=read, total=total)
        self.seconds = float(total)
        self.started = started

    def deadline(self) -> float:
        """When the latest attempt's time is up (a ``time.monotonic()`` value)."""
        return self.started[0] + self.seconds

    def clone(self) -> _AttemptClock:
        return _AttemptClock(self._connect, self._read, self.seconds, self.started)

    def start_connect(self) -> float:
        now = super().start_connect()
        self.started[0] = now
        return now


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
            # Configuration.pool_timeout, passed with each request) instead of opening another.
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
        if not is_socks_proxy_url(configuration.proxy):
            # connections that skip interim answers, bound the response head and know when they
            # are reused; pools that never pool a part-read connection (see _core.exchange)
            self.pool_manager.pool_classes_by_scheme = pool_classes()
        self._pool_size = configuration.connection_pool_maxsize  # fixed for this client's pools
        self._pid = os.getpid()
        _LIVE_CLIENTS.add(self)

    def _start_fresh_after_fork(self) -> None:
        """In a forked child: new, empty pools; the parent's connections are left alone.

        The inherited pool is not closed or drained: nothing is sent on a socket the parent
        still uses, and no lock the parent may have held at fork time is taken. Its copies of
        the parent's descriptors are released when it is garbage collected (closing a
        descriptor in the child sends nothing on the wire, for TLS too).
        """
        RESTClientObject.__init__(self, self.configuration)

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
        if self._pid != os.getpid():  # forked without the at-fork hook (a C-level fork)
            self._start_fresh_after_fork()
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

        host = origin_of(url)
        check_headers(headers)
        timeout = self._timeout(_request_timeout)
        max_size = self.configuration.max_response_size
        accept_encoding = header_value(headers, "accept-encoding")
        started = time.monotonic()
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("request %s %s headers=%s body=%d bytes", method, url, redact_headers(headers),
                         len(payload or b""))
        body_retries = _body_retries(self.retries, method) if preload_content else 0
        resends = 0
        attempt = 0
        while True:
            try:
                resp = self.pool_manager.request(
                    method, url, body=payload, headers=headers, timeout=timeout, preload_content=False,
                    redirect=False, retries=self.retries, pool_timeout=self.configuration.pool_timeout,
                )
            except EmptyPoolError as exc:
                raise ApiTimeoutError(
                    f"{method} {url}: no connection became free within "
                    f"pool_timeout={self.configuration.pool_timeout:g} s "
                    f"(all connection_pool_maxsize={self._pool_size} connections were busy); "
                    "raise Configuration.pool_timeout or connection_pool_maxsize, or make fewer calls at once",
                    host=host, url=url, method=method,
                ) from exc
            except (MaxRetryError, HTTPError, OSError, ValueError) as exc:
                # ValueError: http.client rejecting a malformed response while urllib3 drains it for a retry
                if may_resend_stale(reused=_is_stale(exc), response_bytes=0, resends=resends,
                                    pool_size=self._pool_size):
                    resends += 1
                    logger.debug("%s %s: the server had closed the reused connection; sending again on "
                                 "another (%d)", method, url, resends)
                    continue
                raise _translate(exc, method, url, host, timeout,
                                 searched=not self.configuration.host_was_given) from exc
            clock = timeout if isinstance(timeout, _AttemptClock) else None
            result = RESTResponse(
                resp, host, max_size=max_size, accept_encoding=accept_encoding,
                deadline=clock.deadline() if clock else None, request_timeout=clock.seconds if clock else None,
            )
            if not preload_content:
                close_when_collected(resp)
                break
            try:
                result.read()
                break
            except ApiConnectionError:
                # The body broke off after the headers (server restarting, connection reset).
                # urllib3 has already handed the response over, so an idempotent request is
                # retried here, with the same budget and backoff as urllib3's own retries.
                if attempt >= body_retries:
                    raise
                logger.info("%s %s: response body cut short; retrying (%d of %d)", method, url,
                            attempt + 1, body_retries)
                time.sleep(_backoff(self.retries, attempt))
                attempt += 1
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
            if value.total is None:
                return value
            return _AttemptClock(value._connect, value._read, value.total, [time.monotonic()])
        if isinstance(value, bool):
            raise ApiValueError(f"_request_timeout must be seconds or a (connect, read) pair, not {value!r}")
        if isinstance(value, (int, float)):
            if not value > 0 or not math.isfinite(value):
                raise ApiValueError(f"_request_timeout must be positive, not {value!r}")
            return _AttemptClock(urllib3.Timeout.DEFAULT_TIMEOUT, urllib3.Timeout.DEFAULT_TIMEOUT, float(value),
                                 [time.monotonic()])
        if isinstance(value, tuple) and len(value) == 2:
            connect, read = value
            for part in value:
                if isinstance(part, bool) or not isinstance(part, (int, float)) or not 0 < part < math.inf:
                    raise ApiValueError(f"_request_timeout pair must hold two positive numbers, not {value!r}")
            return urllib3.Timeout(connect=float(connect), read=float(read))
        raise ApiValueError(f"_request_timeout must be seconds or a (connect, read) pair, not {value!r}")


#: every client of this process, so a forked child can give each one fresh pools
_LIVE_CLIENTS: weakref.WeakSet[RESTClientObject] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE_CLIENTS):
        client._start_fresh_after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _has_zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def _cause_of_type(exc: Optional[BaseException], kind: type[_E]) -> Optional[_E]:
    """``exc`` or the first exception of type ``kind`` in its chain of causes."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, kind):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _is_stale(exc: BaseException) -> bool:
    """True when urllib3 gave up on a request because its reused connection had gone stale."""
    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    inner = reason.args[1] if isinstance(reason, ProtocolError) and len(reason.args) == 2 else reason
    return isinstance(inner, StaleConnection)


def _socket_of(resp: urllib3.BaseHTTPResponse) -> Any:
    connection = getattr(resp, "connection", None)
    return getattr(connection, "sock", None)


def _size_text(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size} bytes, {size / scale:g} {unit}"
    return f"{size} bytes"


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
    if isinstance(reason, ConnectTimeoutError):
        return ApiTimeoutError(
            f"Timed out connecting to Pieces OS at {host} (connect timeout {_seconds(timeout, 'connect')}). "
            "Is Pieces OS running and is this the right host?",
            host=host, url=url, method=method,
        )
    head = _cause_of_type(reason, HeadTimeout)
    if head is not None and head.received:
        limit = (f"_request_timeout={timeout.total:g} s, which bounds the whole attempt" if timeout.total is not None
                 else f"the read timeout ({_seconds(timeout, 'read')}; it bounds the whole response head)")
        return ApiTimeoutError(
            f"Pieces OS at {host} began answering {method} {url} but did not finish the status line and "
            f"headers within {limit} ({head.received} bytes arrived)",
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
