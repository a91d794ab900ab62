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
import os
import re
import ssl
import time
import weakref
from http.client import HTTPException
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import urllib3
from urllib3.exceptions import (
    DecodeError,
    EmptyPoolError,
    HTTPError,
    MaxRetryError,
    ProtocolError,
    ReadTimeoutError,
)

from pieces_os_client._core import retry as _retry
from pieces_os_client._core.body import BodyTerms
from pieces_os_client._core.exchange import may_resend_stale
from pieces_os_client._core.failures import (
    parse_request_timeout,
    pool_timeout_error,
    translate,
)
from pieces_os_client._core.framing import FramingError, framing_error
from pieces_os_client._core.headers import check_headers, header_value, redact_headers
from pieces_os_client._core.urls import origin_of
from pieces_os_client._wire import StaleConnection, close_when_collected, install, pool_route, watch_of
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiValueError,
    OpenApiException,
)

__all__ = ["ApiException", "RESTClientObject", "RESTResponse", "RESTResponseType", "is_socks_proxy_url"]

logger = logging.getLogger("pieces_os_client")

RESTResponseType = urllib3.HTTPResponse
RequestTimeout = Union[None, float, int, Tuple[float, float], urllib3.Timeout]

SUPPORTED_SOCKS_PROXIES = frozenset({"socks5", "socks5h", "socks4", "socks4a"})

#: a request target urllib3's URL parsing would leave exactly as it is: only characters it keeps,
#: percent-encodings already upper-case, and no dot segment it would remove
_PLAIN_TARGET = re.compile(r"/(?:[A-Za-z0-9\-_~/?=&+,:;@!$'()*]|\.(?<!/\.)|%[0-9A-F]{2})*").fullmatch


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
        self._terms = BodyTerms(host, max_size, accept_encoding, deadline, request_timeout)

    def read(self) -> bytes:
        """Read the whole body once; a body cut short raises ``ApiConnectionError``."""
        if self.data is None:
            complete = False
            try:
                self.data = self._read_body()
                complete = True
            except (OpenApiException, DecodeError, TimeoutError, ReadTimeoutError, ProtocolError, HTTPError,
                    HTTPException, OSError, ValueError) as exc:
                # ValueError: http.client on framing it cannot follow, such as a negative chunk size
                # urllib3's read raises its own ReadTimeoutError from the socket's timeout (or the
                # head reader's deadline): the SDK error is caused by that timeout, as a TimeoutError
                cause = exc.__cause__ if isinstance(exc, ReadTimeoutError) and exc.__cause__ is not None else exc
                failure = self._terms.failure(cause, self.status, self.reason, self.getheaders())
                if failure is exc:
                    raise
                raise failure from cause
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
        terms = self._terms
        watch = watch_of(resp)
        framing = watch.framing if watch is not None else None
        length = framing.length if framing is not None else getattr(resp, "length_remaining", None)
        reader = terms.reader(self.status, self.reason, resp.headers, length)
        deadline = terms.deadline
        # undecoded bytes (any content coding is the reader's to check); read1 waits for the
        # socket at most once, so the deadline is checked between waits
        read: Callable[[int], bytes] = functools.partial(
            resp.read1 if deadline is not None else resp.read, decode_content=False)
        if deadline is not None and watch is not None:
            watch.deadline = deadline  # the reader stops at it, however the server paces its bytes
        sock = _socket_of(resp) if deadline is not None and watch is None else None
        saved_timeout = sock.gettimeout() if sock is not None else None
        bounded_time = deadline is not None
        while True:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the attempt's deadline passed")
                if sock is not None:
                    sock.settimeout(left)
            chunk = read(reader.read_size(bounded_time=bounded_time))
            if not chunk:
                break
            reader.feed(chunk)
            if length is not None and reader.received >= length:
                break  # all the declared bytes (http.client has ended the body): no read for its end
        data = reader.finish()
        if sock is not None:
            sock.settimeout(saved_timeout)
        return data


class _AttemptClock(urllib3.Timeout):
    """A total timeout that remembers when urllib3 started the latest attempt.

    urllib3 clones the timeout for every attempt and starts the clone's clock when it
    connects; the clones share ``started``, so the body can be read against the deadline of
    the attempt that produced the response.
    """

    def __init__(self, connect: Any, read: Any, total: Any, started: List[float]) -> None:
        super().__init__(connect=connect, read=read, total=total)
        self.limits = (connect, read)  # as given, for clone()
        self.seconds = float(total)
        self.started = started

    def deadline(self) -> float:
        """When the latest attempt's time is up (a ``time.monotonic()`` value)."""
        return self.started[0] + self.seconds

    def clone(self) -> _AttemptClock:
        return _AttemptClock(self.limits[0], self.limits[1], self.seconds, self.started)

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
            install(self.pool_manager)
        self._pool_size = configuration.connection_pool_maxsize  # fixed for this client's pools
        # With no proxy, a request goes straight to its origin's pool (see _send): the pool key
        # and context of each origin, computed once
        self._direct = not configuration.proxy
        self._routes: Dict[str, Tuple[Any, Dict[str, Any]]] = {}
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
        body_retries = _retry.body_retries(self.retries, method) if preload_content else 0
        resends = 0
        attempt = 0
        while True:
            try:
                resp = self._send(method, url, host, payload, headers, timeout)
            except EmptyPoolError as exc:
                raise pool_timeout_error(method, url, host, self.configuration.pool_timeout, self._pool_size) from exc
            except FramingError as exc:  # a malformed answer: never retried (see _core.framing)
                raise framing_error(host, exc) from exc
            except (MaxRetryError, HTTPError, OSError, ValueError) as exc:
                # ValueError: http.client rejecting a malformed response while urllib3 drains it for a retry
                if may_resend_stale(reused=_is_stale(exc), response_bytes=0, resends=resends,
                                    pool_size=self._pool_size):
                    resends += 1
                    logger.debug("%s %s: the server had closed the reused connection; sending again on "
                                 "another (%d)", method, url, resends)
                    continue
                raise translate(exc, method, url, host, timeout,
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
                time.sleep(_retry.backoff(self.retries, attempt))
                attempt += 1
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("response %s %s -> %s in %.1f ms", method, url, resp.status,
                         (time.monotonic() - started) * 1000)
        return result

    def _send(self, method: str, url: str, origin: str, payload: Optional[bytes], headers: Dict[str, str],
              timeout: urllib3.Timeout) -> urllib3.BaseHTTPResponse:
        """One request through urllib3, retries included, redirects not followed.

        With no proxy the request goes straight to the pool of its origin, as ``PoolManager.urlopen``
        would send it with ``redirect=False``, without parsing the URL and building the pool
        key on every call. A target the URL parser would rewrite (characters it escapes, dot
        segments) and every proxied request take urllib3's own way.
        """
        kw: Dict[str, Any] = {
            "body": payload, "headers": headers, "timeout": timeout, "preload_content": False, "redirect": False,
            "retries": self.retries, "pool_timeout": self.configuration.pool_timeout,
        }
        if self._direct:
            target = url[len(origin):] or "/"
            if url.startswith(origin) and target[0] == "/" and _PLAIN_TARGET(target):
                route = self._routes.get(origin) or self._route(origin)
                pool = self.pool_manager.connection_from_pool_key(route[0], request_context=dict(route[1]))
                return pool.urlopen(method, target, assert_same_host=False, **kw)
        return self.pool_manager.request(method, url, **kw)

    def _route(self, origin: str) -> Tuple[Any, Dict[str, Any]]:
        """The pool key and pool context of ``origin``, as ``PoolManager.connection_from_host`` makes them."""
        route = pool_route(self.pool_manager, origin)
        if len(self._routes) >= 64:  # a client talks to a handful of origins; never grow without bound
            self._routes.clear()
        self._routes[origin] = route
        return route

    def _timeout(self, value: RequestTimeout) -> urllib3.Timeout:
        if value is None:
            config = self.configuration
            if self._default_timeout[0] != (config.connect_timeout, config.read_timeout):
                pair = (config.connect_timeout, config.read_timeout)
                self._default_timeout = (pair, urllib3.Timeout(connect=pair[0], read=pair[1]))
            return self._default_timeout[1]
        if isinstance(value, urllib3.Timeout) and value.total is None:
            return value
        connect, read, total = parse_request_timeout(value)
        if total is not None:
            default = urllib3.Timeout.DEFAULT_TIMEOUT
            return _AttemptClock(default if connect is None else connect, default if read is None else read, total,
                                 [time.monotonic()])
        return urllib3.Timeout(connect=connect, read=read)


#: every client of this process, so a forked child can give each one fresh pools
_LIVE_CLIENTS: weakref.WeakSet[RESTClientObject] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE_CLIENTS):
        client._start_fresh_after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_stale(exc: BaseException) -> bool:
    """True when urllib3 gave up on a request because its reused connection had gone stale."""
    reason = exc.reason if isinstance(exc, MaxRetryError) else exc
    inner = reason.args[1] if isinstance(reason, ProtocolError) and len(reason.args) == 2 else reason
    return isinstance(inner, StaleConnection)


def _socket_of(resp: urllib3.BaseHTTPResponse) -> Any:
    connection = getattr(resp, "connection", None)
    return getattr(connection, "sock", None)
