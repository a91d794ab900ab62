"""AsyncApiClient: the asyncio transport, on sockets of its own, over the same I/O-free core as the sync client.

What this module does itself is only I/O: the sockets (``aio/_link.Wire``, the layer the
asyncio stream reads through, TLS included), the pool of keep-alive connections, the bound on
connections, the deadlines, the reads and the sleeps. No HTTP library is involved. Every rule
comes from elsewhere and is shared with the sync client: requests are built and responses
parsed by ``ApiClient.build_request`` / ``ApiClient.finish_response``, the request head is
written and the answer read by ``_core.http11`` (the framing decision is ``_core.framing``'s,
the sync client's), bodies are read through ``_core.body.BodyReader``, failures become SDK
errors through ``_core.failures.translate``, retries follow ``_core.retry`` driving the
configuration's ``urllib3.Retry``, and stale keep-alive connections follow
``_core.exchange.may_resend_stale``.

The request carries the sync client's headers, no more: no automatic ``Accept`` or
``User-Agent`` beyond what the builder sets, ``Accept-Encoding: identity`` unless the call
asks for a coding, which the SDK then decodes itself. No redirects are followed, no proxies
are taken from the environment, and nothing is resent but what ``_core`` allows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.client
import logging
import math
import os
import socket
import ssl
import sys
import time
import warnings
import weakref
from collections import deque
from types import TracebackType
from typing import Any, Deque, Dict, List, NamedTuple, Optional, Set, Tuple, Type, Union
from urllib.parse import unquote

import urllib3
from urllib3 import HTTPHeaderDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from pieces_os_client._core import retry as _retry
from pieces_os_client._core.body import BodyReader, BodyTerms
from pieces_os_client._core.connect import tls_context
from pieces_os_client._core.exchange import may_resend_stale
from pieces_os_client._core.failures import (
    head_read_timeout,
    parse_request_timeout,
    pool_timeout_error,
    reason_text,
    translate,
)
from pieces_os_client._core.framing import FramingError, framing_error
from pieces_os_client._core.headers import check_headers, header_value, redact_headers
from pieces_os_client._core.http11 import Answer, ResponseReader, request_head
from pieces_os_client._core.urls import mask_userinfo, origin_of
from pieces_os_client.aio._link import Wire
from pieces_os_client.api_client import USER_AGENT, ApiClient, DefaultHeaders, Operation
from pieces_os_client.api_response import ApiResponse
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import ApiConnectionError, ApiValueError, OpenApiException
from pieces_os_client.rest import is_socks_proxy_url

__all__ = ["AsyncApiClient", "AsyncResponse"]

logger = logging.getLogger("pieces_os_client")

#: how often the callers waiting for a pool slot look for slots freed by garbage collection
_SLICE = 0.25
#: a wait for a pool slot ending this close to its end (seconds) has ended (the loop fires a
#: timer up to its clock resolution early)
_EARLY = 1e-6
#: what a read that waited too long raises (asyncio's is not the builtin TimeoutError on 3.10)
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, ReadTimeoutError)
#: what one attempt's I/O and the answer's reading may raise (anything else goes out as it is)
_ATTEMPT_FAILURES = (OSError, asyncio.TimeoutError, http.client.HTTPException, ProtocolError, ValueError)
#: methods whose request carries ``Content-Length: 0`` when it has no body (as urllib3 sends)
_EXPECT_BODY = frozenset({"POST", "PUT", "PATCH"})
#: the longest answer to a proxy's CONNECT read
_MAX_TUNNEL_ANSWER = 65536
#: origins whose route (TLS context, proxy) one client remembers
_MAX_ROUTES = 64


# ---------------------------------------------------------------------------- deadlines
class _Deadline:
    """A deadline for the awaits inside ``with``, movable while it runs (Python 3.10 too).

    When it passes, the task is cancelled and ``asyncio.TimeoutError`` comes out of the block,
    with ``expired`` set; a cancellation from outside still comes out as ``CancelledError``.
    A plain context manager (entering and leaving it awaits nothing): no coroutine per use, and
    no timer while it has no deadline.
    """

    __slots__ = ("_cancelling", "_handle", "_loop", "_task", "_when", "expired")

    def __init__(self, when: Optional[float], loop: asyncio.AbstractEventLoop) -> None:
        self._when = when
        self._handle: Optional[asyncio.TimerHandle] = None
        self._task: Optional[asyncio.Task[Any]] = None
        self._loop = loop
        self._cancelling = 0
        self.expired = False

    def reschedule(self, when: Optional[float]) -> None:
        self._when = when
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if when is not None and self._task is not None and not self.expired:
            loop = self._loop
            self._handle = loop.call_at(loop.time() + (when - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.expired = True
        if self._task is not None:
            self._task.cancel()

    def __enter__(self) -> _Deadline:
        task = self._task = asyncio.current_task(self._loop)
        if sys.version_info >= (3, 11) and task is not None:
            self._cancelling = task.cancelling()
        if self._when is not None:
            self.reschedule(self._when)
        return self

    def __exit__(
        self, kind: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> Optional[bool]:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        task, self._task = self._task, None
        if not self.expired:
            return None
        outside = False
        if sys.version_info >= (3, 11) and task is not None:
            outside = task.uncancel() > self._cancelling  # cancelled from outside as well: that wins
        # (Python 3.10 cannot tell the two apart: an outside cancel at the very moment the
        # deadline passes comes out as the timeout)
        if kind is asyncio.CancelledError and not outside:
            raise asyncio.TimeoutError from exc
        return None


class _NoDeadline:
    """What a read without a deadline runs within: nothing."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_DEADLINE = _NoDeadline()


class _HeadDeadlines:
    """The head deadlines of one client's attempts (those without a total deadline), one timer for all.

    Each such attempt must have its whole head within the read timeout from the moment it has
    a connection. With one read timeout for every call (the usual case) these deadlines end in
    the order they start, so they wait in a queue and a single timer, at the earliest one still
    running, serves them all: no timer made and cancelled per call. A deadline that would end
    before the last one queued gets a timer of its own. An attempt leaves the queue lazily once
    its block is left; since at most ``connection_pool_maxsize`` attempts run at once, the queue
    is compacted when it holds many more entries than that.
    """

    __slots__ = ("_handle", "_limit", "_loop", "_queue")

    def __init__(self, loop: asyncio.AbstractEventLoop, running: int) -> None:
        self._loop = loop
        self._queue: Deque[Tuple[float, _Deadline]] = deque()
        self._handle: Optional[asyncio.TimerHandle] = None
        self._limit = 2 * running + 64

    def start(self, deadline: _Deadline, when: float) -> None:
        """``deadline`` (entered, with no end so far) ends at ``when`` (``time.monotonic()``)."""
        queue = self._queue
        while queue and queue[0][1]._task is None:  # attempts done: their block was left
            queue.popleft()
        if queue and when < queue[-1][0]:
            deadline.reschedule(when)  # out of order (a shorter read timeout): a timer of its own
            return
        deadline._when = when
        queue.append((when, deadline))
        if len(queue) > self._limit:
            self._queue = deque(entry for entry in queue if entry[1]._task is not None)
        if self._handle is None:
            self._arm(when)

    def _arm(self, when: float) -> None:
        loop = self._loop
        self._handle = loop.call_at(loop.time() + (when - time.monotonic()), self._fire)

    def _fire(self) -> None:
        self._handle = None
        queue = self._queue
        now = time.monotonic()
        while queue:
            when, deadline = queue[0]
            if deadline._task is None or deadline._when != when:  # done, or moved to a timer of its own
                queue.popleft()
                continue
            if when - now > _EARLY:
                self._arm(when)
                return
            queue.popleft()
            deadline._fire()


# ---------------------------------------------------------------------------- pool slots
class _Slots:
    """A bound on the requests (so connections) in flight, with a timed wait for a free slot.

    A caller that finds no free slot waits on a future of its own, which ``release`` resolves
    with ``True`` (the slot is handed over, first come first served). One timer per bound, not
    one per caller, runs while anyone waits: every ``_SLICE`` seconds, or sooner at a waiter's
    ``pool_timeout``, it takes back orphaned slots and resolves the waiters whose wait is over
    with ``False``.

    A slot freed by garbage collection (a response dropped unread) cannot touch the event loop
    from ``__del__``: it is counted in ``orphans`` and taken back by the next caller or tick.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size
        self.orphans = 0
        #: (future, loop time its wait ends), in arrival order
        self._waiters: Deque[Tuple[asyncio.Future[bool], float]] = deque()
        self._tick: Optional[asyncio.TimerHandle] = None
        self._tick_at = math.inf

    def _reclaim(self) -> None:
        while self.orphans > 0:
            self.orphans -= 1
            self.release()

    def take(self) -> bool:
        """Take a free slot if there is one and no one waits for it, without waiting."""
        if self.orphans:
            self._reclaim()
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return True
        return False

    async def acquire(self, timeout: Optional[float]) -> bool:
        """Take a slot; False when none became free within ``timeout`` seconds."""
        if self.take():
            return True
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        entry = (waiter, math.inf if timeout is None else loop.time() + timeout)
        self._waiters.append(entry)
        self._schedule(loop, entry[1])
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result():
                self.release()  # a slot was handed over as the wait ended: pass it on
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(entry)
            raise

    def _schedule(self, loop: asyncio.AbstractEventLoop, until: float) -> None:
        when = min(until, loop.time() + _SLICE)
        if when < self._tick_at:
            if self._tick is not None:
                self._tick.cancel()
            self._tick_at = when
            self._tick = loop.call_at(when, self._on_tick, loop)

    def _on_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._tick, self._tick_at = None, math.inf
        self._reclaim()
        now = loop.time()
        waiting: Deque[Tuple[asyncio.Future[bool], float]] = deque()
        for waiter, until in self._waiters:
            if waiter.done():
                continue
            if until - now <= _EARLY:
                waiter.set_result(False)  # pool_timeout passed: no slot for this one
            else:
                waiting.append((waiter, until))
        self._waiters = waiting
        if waiting:
            self._schedule(loop, min(until for _, until in waiting))

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()[0]
            if not waiter.done():
                waiter.set_result(True)
                return
        self.free += 1


class _Slot:
    """One taken slot, given back exactly once."""

    __slots__ = ("_slots",)

    def __init__(self, slots: _Slots) -> None:
        self._slots: Optional[_Slots] = slots

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.release()

    def orphan(self) -> None:
        """Give the slot back from a finalizer: no loop call, counted for the next caller."""
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.orphans += 1


# ---------------------------------------------------------------------------- connections
_TIME_UP = object()


def _time_up(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_TIME_UP)


class _Route(NamedTuple):
    """Where the requests to one origin go, and how: the key of its idle connections."""

    scheme: str
    host: str  # to connect to (an IPv6 address without brackets)
    port: int
    authority: str  # the Host header
    tls: Optional[ssl.SSLContext]
    server_name: str
    proxy: Optional[_ProxyRoute]


class _ProxyRoute(NamedTuple):
    url: str  # as shown (credentials masked)
    host: str
    port: int
    tls: Optional[ssl.SSLContext]
    #: Proxy-Authorization (from the proxy URL's user:password, unless proxy_headers has one) and proxy_headers
    headers: Tuple[Tuple[str, str], ...]


class _TunnelRefused(OSError):
    """The proxy did not open a tunnel (its status line in the message)."""


class _Conn:
    """One connection of the pool: a socket (TLS optional) to one route, and whether it carried an exchange."""

    __slots__ = ("__weakref__", "route", "used", "wire")

    def __init__(self, wire: Wire, route: _Route) -> None:
        self.wire = wire
        self.route = route
        self.used = False

    async def receive(self, wait: Optional[float]) -> bytes:
        """What arrives next (``b""``: the connection ended). :raises TimeoutError: nothing came within ``wait`` s."""
        wire = self.wire
        while True:
            data = wire.read_nowait()
            if data is not None:
                return data
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[Any] = loop.create_future()
            if wait is None:
                await wire.readable(waiter)
                continue
            timer = loop.call_later(wait, _time_up, waiter)
            try:
                woken = await wire.readable(waiter)
            finally:
                timer.cancel()
            if woken is _TIME_UP:
                data = wire.read_nowait()  # (a byte that came at the very end still counts)
                if data is not None:
                    return data
                raise TimeoutError("no bytes arrived within the read timeout")

    def drop(self) -> None:
        """Close the socket and nothing else (a finalizer, a forked child, a loop that is gone)."""
        self.wire.forget()


class _Pool:
    """The open connections of one client in one event loop, and the idle ones by route.

    Every connection carrying an exchange holds one of the client's pool slots, so at most
    ``size`` are busy; before a new one is opened, an idle one is closed if that many are
    open, so ``connection_pool_maxsize`` bounds the open connections too, whatever the routes.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.size = size
        self.closed = False
        self.idle: Dict[_Route, List[_Conn]] = {}
        self.live: Set[_Conn] = set()

    def take(self, route: _Route) -> Optional[_Conn]:
        """The idle connection to ``route`` used last, if one is still open (None: open a new one)."""
        conns = self.idle.get(route)
        while conns:
            conn = conns.pop()
            try:
                quiet = conn.wire.read_nowait() is None
            except (OSError, ValueError):
                quiet = False
            if quiet:
                return conn
            self.discard(conn)  # the server closed it meanwhile, or sent something unasked
        return None

    def make_room(self) -> None:
        while len(self.live) >= self.size:
            oldest = next((conns for conns in self.idle.values() if conns), None)
            if oldest is None:
                return
            self.discard(oldest.pop(0))

    def put(self, conn: _Conn) -> None:
        if self.closed or conn not in self.live:
            self.discard(conn)
            return
        self.idle.setdefault(conn.route, []).append(conn)

    def discard(self, conn: _Conn) -> None:
        self.live.discard(conn)
        if not conn.wire.closed:
            conn.wire.close()

    def close(self, *, in_loop: bool) -> None:
        """Close every connection; ``in_loop`` False: the loop is gone or not ours, close the sockets only."""
        self.closed = True
        for conn in list(self.live):
            if in_loop:
                conn.wire.close()
            else:
                conn.drop()
        self.live.clear()
        self.idle.clear()

    def forget(self) -> None:
        """In a forked child: close this process's copies of the sockets, never touching the parent's."""
        self.closed = True
        for conn in list(self.live):
            conn.drop()
        self.live.clear()
        self.idle.clear()


class _AsyncConnection:
    """Stands in for urllib3's connection in the messages of classified failures."""

    def __str__(self) -> str:
        return "<asyncio connection>"


def _classify(exc: BaseException, *, connected: bool, expired: bool, received: int, url: str, host: str) -> Exception:
    """The urllib3 exception meaning what the attempt raised (or that our deadline passed)."""
    if expired:
        if not connected:
            return ConnectTimeoutError(_AsyncConnection(), "timed out while connecting")
        return head_read_timeout(url, received)
    if not connected:
        if isinstance(exc, _TunnelRefused):
            return ProxyError("Unable to connect to proxy", exc)
        if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
            return SSLError(exc)
        if isinstance(exc, socket.gaierror):
            return NameResolutionError(host, _AsyncConnection(), exc)  # type: ignore[arg-type]
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return ConnectTimeoutError(_AsyncConnection(), f"Connection timed out: {exc}")
        return NewConnectionError(_AsyncConnection(), f"Failed to establish a new connection: {exc}")  # type: ignore[arg-type]
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return head_read_timeout(url, received)
    if isinstance(exc, ProtocolError):
        return exc
    return ProtocolError("Connection aborted.", exc)


class _RetryView:
    """The parts of a response a ``urllib3.Retry`` looks at."""

    __slots__ = ("_close", "headers", "status")

    def __init__(self, status: int, headers: HTTPHeaderDict, close: Any) -> None:
        self.status = status
        self.headers = headers
        self._close = close

    def get_redirect_location(self) -> bool:
        return False  # redirects are never followed

    def close(self) -> None:
        self._close()


def _header_dict(fields: List[Tuple[str, str]]) -> HTTPHeaderDict:
    """The response headers as the sync client has them (Latin-1, repeats kept, names as sent)."""
    headers = HTTPHeaderDict()
    add = headers.add
    for name, value in fields:
        add(name, value)
    return headers


# ---------------------------------------------------------------------------- the response
class AsyncResponse:
    """An HTTP response whose body is read once with ``await read()``, within the client's limits.

    The ``*_without_preload_content`` methods return one unread: read it (``await
    resp.read()``), then ``resp.release()``; reading to the end gives the connection back by
    itself, and ``release()`` on one not read to the end closes its connection. A response
    dropped unread is closed when it is garbage collected.
    """

    def __init__(
        self, conn: _Conn, reader: ResponseReader, answer: Answer, pool: _Pool, slot: _Slot, terms: BodyTerms,
        headers: HTTPHeaderDict, *, read_timeout: Optional[float] = None,
    ) -> None:
        self.status: int = answer.status
        self.reason: Optional[str] = answer.reason
        self.headers = headers
        self.data: Optional[bytes] = None
        self._conn: Optional[_Conn] = conn
        self._reader = reader
        self._answer = answer
        self._pool = pool
        self._slot = slot
        self._terms = terms
        self._done = False
        #: the wait allowed for each read of the body (None: no bound but the attempt's deadline)
        self._read_timeout = read_timeout

    def getheaders(self) -> HTTPHeaderDict:
        return self.headers

    def getheader(self, name: str, default: Optional[str] = None) -> Optional[str]:
        value = self.headers.get(name, default)
        return value if value is None else str(value)

    async def read(self) -> bytes:
        """The whole body (read once); a body cut short raises ``ApiConnectionError``."""
        if self.data is not None:
            return self.data
        if self._done:
            raise ApiValueError("this response was released before its body was read")
        conn = self._conn
        assert conn is not None
        complete = False
        terms = self._terms
        parser = self._reader
        reader: Optional[BodyReader] = None
        try:
            reader = terms.reader(self.status, self.reason, self.headers, self._answer.framing.length)
            bounded = terms.deadline is not None
            within: Union[_Deadline, _NoDeadline] = (
                _Deadline(terms.deadline, asyncio.get_running_loop()) if bounded else _NO_DEADLINE)
            wait = self._read_timeout
            with within:
                while True:
                    chunk = parser.body(reader.read_size(bounded_time=bounded))
                    if chunk is None:
                        data = await conn.receive(wait)
                        if data:
                            parser.feed(data)
                        else:
                            parser.feed_eof()
                        continue
                    if not chunk:
                        break
                    reader.feed(chunk)
            self.data = reader.finish()
            complete = True
        except (OpenApiException, HTTPError, OSError, ValueError, asyncio.TimeoutError,
                http.client.HTTPException) as exc:
            failure = terms.failure(exc, self.status, self.reason, self.headers, _TIMEOUTS)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            self._finish(reuse=complete)
        return self.data

    def release(self) -> None:
        """Give the connection back (closed unless the body was read to the end) and the pool slot."""
        self._finish(reuse=self.data is not None)

    close = release

    def _finish(self, *, reuse: bool) -> None:
        if self._done:
            return
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            if reuse and self._reader.reusable:
                self._pool.put(conn)
            else:
                self._pool.discard(conn)  # part of the body is unread: the connection cannot be reused
        self._slot.release()

    async def __aenter__(self) -> AsyncResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def __del__(self) -> None:
        if getattr(self, "_done", True):
            return
        self._done = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # a finalizer never raises, and touches no loop
                self._pool.live.discard(conn)
                conn.drop()
        self._slot.orphan()


# ---------------------------------------------------------------------------- the client
class AsyncApiClient(DefaultHeaders):
    """The asyncio counterpart of :class:`~pieces_os_client.ApiClient`.

    ``async with AsyncApiClient(configuration) as client:`` or ``await client.aclose()``. Its
    connections are made in the event loop of the first call; after ``aclose()`` the client
    may be used again, in that loop or another one. While they are open, it is used from that
    one loop only.
    """

    def __init__(self, configuration: Optional[Configuration] = None) -> None:
        self.configuration = configuration if configuration is not None else Configuration.get_default()
        # the request building and response parsing of the sync client, whose pool is never used
        self._builder = ApiClient.__new__(ApiClient)
        self._builder.configuration = self.configuration
        self._builder.default_headers = {"User-Agent": USER_AGENT}
        self._builder.cookie = None
        self._builder.client_side_validation = self.configuration.client_side_validation
        self.default_headers: Dict[str, str] = self._builder.default_headers
        self.retries = self.configuration.retry_policy()
        self._pool: Optional[_Pool] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._slots = _Slots(self.configuration.connection_pool_maxsize)
        self._heads: Optional[_HeadDeadlines] = None
        #: the last call's URL up to its path ("scheme://netloc/"), its checked origin and its route
        self._origin: Tuple[str, str, Optional[_Route]] = ("\x00", "", None)
        #: the route of each origin called ("scheme://netloc/"), until aclose()
        self._routes: Dict[str, _Route] = {}
        #: the last call's headers (as given) that passed check_headers, and their Accept-Encoding
        self._checked: Tuple[Tuple[Tuple[str, Any], ...], Optional[str]] = ((("\x00", None),), None)
        self._pid = os.getpid()
        _LIVE_CLIENTS.add(self)

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> AsyncApiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; the client can be used again afterwards."""
        pool, loop = self._pool, self._loop
        if pool is not None and self._pid == os.getpid() and loop is not asyncio.get_running_loop():
            if not (loop is None or loop.is_closed()):
                raise ApiValueError(
                    "aclose() must run in the event loop that uses this AsyncApiClient (its connections "
                    "belong to that loop)"
                )
            pool.close(in_loop=False)  # its loop is gone: close the sockets directly
            pool = None
        # (attempts still running keep the head deadlines they started with)
        self._pool, self._loop, self._heads = None, None, None
        self._origin = ("\x00", "", None)
        self._routes = {}
        if pool is not None:
            if self._pid == os.getpid():
                pool.close(in_loop=True)
            else:
                pool.forget()
        self._slots = _Slots(self.configuration.connection_pool_maxsize)

    def _start_fresh_after_fork(self) -> None:
        """In a forked child: forget the parent's connections without touching them."""
        pool, self._pool = self._pool, None
        self._loop, self._heads = None, None
        self._pid = os.getpid()
        self._slots = _Slots(self.configuration.connection_pool_maxsize)
        if pool is not None:
            pool.forget()

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is None or pool.closed:
            return
        self._pool = None
        if getattr(self, "_pid", None) == os.getpid():
            warnings.warn(
                f"AsyncApiClient {id(self):#x} was never closed: use `async with AsyncApiClient(...)` or "
                "`await client.aclose()`", ResourceWarning, stacklevel=2,
            )
            pool.close(in_loop=False)  # the sockets only: nothing is scheduled on a loop from here
        else:
            pool.forget()

    def _pool_for_this_loop(self) -> _Pool:
        if self._pid != os.getpid():  # forked without the at-fork hook
            self._start_fresh_after_fork()
        loop = asyncio.get_running_loop()
        pool = self._pool
        if pool is not None and not pool.closed:
            if self._loop is loop:
                return pool
            raise ApiValueError(
                "this AsyncApiClient's connections belong to another event loop: a client is used from "
                "one event loop at a time. Call `await client.aclose()` in the loop that used it before "
                "using it in another (or give each loop its own AsyncApiClient)"
            )
        pool = self._pool = _Pool(loop, self.configuration.connection_pool_maxsize)
        self._loop = loop
        self._heads = _HeadDeadlines(loop, self.configuration.connection_pool_maxsize)
        return pool

    def _route(self, url: str) -> _Route:
        """Where requests to ``url``'s origin go (TLS settings and proxy read once per origin)."""
        config = self.configuration
        parsed = urllib3.util.parse_url(url)
        scheme = parsed.scheme or "http"
        raw_host = parsed.host or ""
        host = raw_host[1:-1] if raw_host.startswith("[") else raw_host
        default_port = 443 if scheme == "https" else 80
        port = parsed.port or default_port
        authority = raw_host if port == default_port else f"{raw_host}:{port}"
        context = tls_context(config) if scheme == "https" else None  # ApiValueError naming a bad setting
        server_name = config.tls_server_name
        if server_name is None and isinstance(config.assert_hostname, str):
            server_name = config.assert_hostname
        proxy: Optional[_ProxyRoute] = None
        if config.proxy:
            proxy = self._proxy_route(config)
            if proxy.tls is not None and context is not None:
                raise ApiValueError(
                    f"the async client cannot reach an https:// host through an https:// proxy "
                    f"({mask_userinfo(config.proxy)!r}); use an http:// proxy, or the sync ApiClient"
                )
        return _Route(scheme, host, port, authority, context, server_name or host, proxy)

    @staticmethod
    def _proxy_route(config: Configuration) -> _ProxyRoute:
        url = config.proxy or ""
        if is_socks_proxy_url(url):
            raise ApiValueError(
                f"the async client supports http:// and https:// proxies only, not {mask_userinfo(url)!r}; "
                "use the sync ApiClient for a SOCKS proxy"
            )
        parsed = urllib3.util.parse_url(url)
        scheme = (parsed.scheme or "http").lower()
        if scheme not in ("http", "https") or not parsed.host:
            raise ApiValueError(f"the async client supports http:// and https:// proxies only, not "
                                f"{mask_userinfo(url)!r}")
        raw_host = parsed.host
        host = raw_host[1:-1] if raw_host.startswith("[") else raw_host
        headers = {name: str(value) for name, value in (config.proxy_headers or {}).items()}
        check_headers(headers)
        if parsed.auth is not None and not any(name.lower() == "proxy-authorization" for name in headers):
            user, _, password = parsed.auth.partition(":")
            token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
            headers["Proxy-Authorization"] = f"Basic {token}"
        return _ProxyRoute(mask_userinfo(url), host, parsed.port or (443 if scheme == "https" else 80),
                           tls_context(config) if scheme == "https" else None, tuple(headers.items()))

    async def _open(self, route: _Route, loop: asyncio.AbstractEventLoop) -> _Conn:
        """A new connection to ``route``: TCP (to the proxy, if any), the proxy's tunnel and TLS."""
        proxy = route.proxy
        host, port = (proxy.host, proxy.port) if proxy is not None else (route.host, route.port)
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        wire: Optional[Wire] = None
        last: Optional[OSError] = None
        try:
            for family, kind, proto, _name, address in infos:
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setblocking(False)
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    sock.close()
                    last = exc
                    continue
                except BaseException:
                    sock.close()
                    raise
                wire = Wire(sock)
                break
            if wire is None:
                raise last if last is not None else OSError(f"no address found for {host}")
            wire.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if proxy is not None and proxy.tls is not None:
                await wire.start_tls(proxy.tls, proxy.host)
            if proxy is not None and route.tls is not None:
                await self._tunnel(wire, route, proxy)
            if route.tls is not None:
                await wire.start_tls(route.tls, route.server_name)
        except BaseException:
            if wire is not None:
                wire.close()
            raise
        return _Conn(wire, route)

    @staticmethod
    async def _tunnel(wire: Wire, route: _Route, proxy: _ProxyRoute) -> None:
        authority = f"[{route.host}]:{route.port}" if ":" in route.host else f"{route.host}:{route.port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in proxy.headers]
        await wire.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = wire.read_nowait()
            if data is None:
                await wire.readable(asyncio.get_running_loop().create_future())
                continue
            if not data or len(answer) > _MAX_TUNNEL_ANSWER:
                raise _TunnelRefused(f"the proxy {proxy.url} closed the connection during CONNECT")
            answer += data
        head, _, rest = answer.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or parts[1] != "200" or rest:
            raise _TunnelRefused(f"the proxy {proxy.url} answered CONNECT with {status_line[:120]!r}")

    # ------------------------------------------------------------------ the one request path
    async def call_operation(
        self,
        op: Operation,
        options: Any,
        *,
        path_params: Optional[Dict[str, Any]] = None,
        query_params: Optional[List[Tuple[str, Any]]] = None,
        body: Any = None,
        preload_content: bool = True,
    ) -> Union[ApiResponse[Any], AsyncResponse]:
        """Serialize, send and parse one operation call (see ``ApiClient.call_operation``)."""
        config = self.configuration
        if not config.host_was_given and config._resolved_host is None:
            # discovery probes ports and reads files: off the event loop, once
            await asyncio.to_thread(lambda: config.host)
        method, url, headers, payload, timeout = self._builder.build_request(
            op, options, path_params=path_params, query_params=query_params, body=body
        )
        response = await self.request(method, url, headers=headers, body=payload, _request_timeout=timeout,
                                      preload_content=preload_content)
        if not preload_content:
            return response
        assert response.data is not None
        return self._builder.finish_response(response, response.data, op.responses,
                                             request_line=f"{method} {op.path}")

    async def request(
        self,
        method: str,
        url: str,
        headers: Optional[Dict[str, str]] = None,
        body: Optional[bytes] = None,
        _request_timeout: Any = None,
        *,
        preload_content: bool = True,
    ) -> AsyncResponse:
        """Send one request (with the configured retries); with ``preload_content`` the body is read."""
        pool, loop = self._pool, self._loop
        if pool is None or loop is not asyncio.get_running_loop() or self._pid != os.getpid() or pool.closed:
            pool = self._pool_for_this_loop()
            loop = pool.loop
        assert loop is not None
        method = method.upper()
        headers = dict(headers) if headers else {}
        prefix, host, route = self._origin
        if not url.startswith(prefix) or route is None:  # another origin than the last call's (or the first call)
            host = origin_of(url)
            prefix = "/".join(url.split("/", 3)[:3]) + "/"
            route = self._routes.get(prefix)
            if route is None:  # one route (so one TLS context, one set of idle connections) per origin
                if len(self._routes) >= _MAX_ROUTES:
                    self._routes.clear()
                route = self._routes[prefix] = self._route(url)
            self._origin = (prefix, host, route)
        # headers checked (and their Accept-Encoding found) once for the same headers as last time
        items = tuple(headers.items())
        checked, accept_encoding = self._checked
        try:
            same = items == checked
        except Exception:  # a header value that cannot be compared: checked as any other
            same = False
        if not same:
            check_headers(headers)
            accept_encoding = header_value(headers, "accept-encoding")
            if all(type(value) is str for _, value in items):
                self._checked = (items, accept_encoding)
        config = self.configuration
        connect: Optional[float]
        read: Optional[float]
        total: Optional[float]
        if _request_timeout is None:
            connect, read, total = config.connect_timeout, config.read_timeout, None
        else:
            connect, read, total = parse_request_timeout(_request_timeout)
            if total is None:
                connect = config.connect_timeout if connect is None else connect
                read = config.read_timeout if read is None else read
        # Without a total deadline, the read timeout bounds the whole head (a deadline from the
        # moment the connection is had) and then each wait for bytes of the body. With a total
        # deadline, a read timeout given alongside it bounds each wait, head and body.
        head_timeout = read if total is None else None
        wait_in_head = None if total is None else read
        if accept_encoding is None:
            headers["Accept-Encoding"] = "identity"  # as http.client sends for the sync client
        if route.proxy is not None and route.tls is None:  # plain HTTP through a proxy: the absolute form
            target = url.split("#", 1)[0]
            for name, value in route.proxy.headers:
                headers.setdefault(name, value)
        else:
            target = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
            target = target.split("#", 1)[0]
        if isinstance(body, str):
            body = body.encode("utf-8")
        length = len(body) if body is not None else (0 if method in _EXPECT_BODY else None)
        authority = route.authority
        if "Host" in headers or "host" in headers:  # the caller's own Host, sent once (as urllib3 does)
            for name in ("Host", "host"):
                if name in headers:
                    authority = str(headers.pop(name))
        message = request_head(method, target, authority, headers, length)
        if body:
            message += body
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug("request %s %s headers=%s body=%d bytes", method, url, redact_headers(headers),
                         len(body or b""))
        policy = retries = self.retries
        resends = body_attempt = 0
        slots = self._slots
        head_request = method == "HEAD"
        while True:
            if not slots.take() and not await slots.acquire(config.pool_timeout):
                raise pool_timeout_error(method, url, host, config.pool_timeout, slots.size)
            slot = _Slot(slots)
            started = time.monotonic()
            deadline_at = None if total is None else started + total
            deadline = _Deadline(deadline_at, loop)
            conn: Optional[_Conn] = None
            reader = ResponseReader(head_request=head_request)
            connected = reused = False
            try:
                with deadline:
                    conn = pool.take(route)
                    if conn is None:
                        pool.make_room()
                        if connect is not None:
                            at = started + connect
                            deadline.reschedule(at if deadline_at is None else min(at, deadline_at))
                        conn = await self._open(route, loop)
                        pool.live.add(conn)
                        if connect is not None:
                            deadline.reschedule(deadline_at)
                    connected = True
                    reused, conn.used = conn.used, True
                    if head_timeout is not None:
                        # the whole head within the read timeout
                        bound = time.monotonic() + head_timeout
                        if deadline_at is None and self._heads is not None:
                            self._heads.start(deadline, bound)
                        else:
                            deadline.reschedule(bound if deadline_at is None else min(deadline_at, bound))
                    await conn.wire.send(message)
                    while True:
                        answer = reader.head()
                        if answer is not None:
                            break
                        data = await conn.receive(wait_in_head)
                        if data:
                            reader.feed(data)
                        else:
                            reader.feed_eof()
            except BaseException as exc:
                if conn is not None:
                    pool.discard(conn)
                slot.release()
                if isinstance(exc, FramingError):  # a malformed answer: never retried
                    raise framing_error(host, exc) from None
                if not isinstance(exc, _ATTEMPT_FAILURES) or isinstance(exc, ApiValueError):
                    raise  # cancellation, or a bug: as it is
                failure = _classify(exc, connected=connected, expired=deadline.expired, received=reader.received,
                                    url=url, host=host)
                try:
                    retries, delay = _retry.after_error(retries, method, url, failure)
                except (MaxRetryError, HTTPError) as final:
                    if may_resend_stale(reused=reused and isinstance(failure, ProtocolError),
                                        response_bytes=reader.received, resends=resends, pool_size=slots.size):
                        resends += 1
                        logger.debug("%s %s: the server had closed the reused connection; sending again on "
                                     "another (%d)", method, url, resends)
                        continue
                    shown_timeout = urllib3.Timeout(connect=connect, read=read, total=total)
                    raise translate(final, method, url, host, shown_timeout,
                                    searched=not config.host_was_given) from exc
                logger.info("%s %s: %s; retrying in %.2f s", method, url, reason_text(failure), delay)
                await asyncio.sleep(delay)
                continue
            status = answer.status
            held = conn

            def close_answer(held: _Conn = held) -> None:
                pool.discard(held)

            try:
                header_map = _header_dict(answer.fields)
                decision = (_retry.after_status(retries, method, url, _RetryView(status, header_map, close_answer))
                            if _retry.may_retry_status(retries, status) else None)
            except BaseException:
                close_answer()
                slot.release()
                raise
            if decision is not None:
                close_answer()
                slot.release()
                retries, delay = decision
                logger.info("%s %s: answered %d; retrying in %.2f s", method, url, status, delay)
                await asyncio.sleep(delay)
                continue
            result = AsyncResponse(
                conn, reader, answer, pool, slot,
                BodyTerms(host, config.max_response_size, accept_encoding, deadline_at, total), header_map,
                read_timeout=read,
            )
            if not preload_content:
                return result
            try:
                await result.read()
            except ApiConnectionError:
                body_retries = _retry.body_retries(policy, method)
                if body_attempt >= body_retries:
                    raise
                logger.info("%s %s: response body cut short; retrying (%d of %d)", method, url,
                            body_attempt + 1, body_retries)
                await asyncio.sleep(_retry.backoff(retries, body_attempt))
                body_attempt += 1
                continue
            if debug:
                logger.debug("response %s %s -> %s in %.1f ms", method, url, result.status,
                             (time.monotonic() - started) * 1000)
            return result


#: every async client of this process, so a forked child can forget each one's connections
_LIVE_CLIENTS: weakref.WeakSet[AsyncApiClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE_CLIENTS):
        client._start_fresh_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
