"""AsyncApiClient: the asyncio transport (aiohttp) over the same I/O-free core as the sync client.

What this module does itself is only I/O: the session, the bound on connections, the
deadlines, the reads and the sleeps. Every rule comes from elsewhere and is shared with the
sync client: requests are built and responses parsed by ``ApiClient.build_request`` /
``ApiClient.finish_response``, bodies are read through ``_core.body.BodyReader``, failures
become SDK errors through ``_core.failures.translate``, retries follow ``_core.retry`` driving
the configuration's ``urllib3.Retry``, and stale keep-alive connections follow
``_core.exchange.may_resend_stale``.

aiohttp's own behaviours that differ from the sync client are switched off: no automatic
``Accept``/``Accept-Encoding``, no decompression, no redirects, no proxies from the
environment, no built-in resend of idempotent requests, no rounding of timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import http.client
import logging
import math
import os
import ssl
import sys
import time
import warnings
import weakref
from collections import deque
from types import TracebackType
from typing import Any, Deque, Dict, List, Optional, Tuple, Type, Union

import aiohttp
import urllib3
from aiohttp import hdrs
from aiohttp.client_proto import ResponseHandler
from urllib3._collections import HTTPHeaderDict
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from pieces_os_client._core import retry as _retry
from pieces_os_client._core.body import BodyReader, BodyTerms
from pieces_os_client._core.exchange import may_resend_stale
from pieces_os_client._core.failures import (
    head_read_timeout,
    parse_request_timeout,
    pool_timeout_error,
    reason_text,
    translate,
)
from pieces_os_client._core.framing import SWITCHED_PROTOCOLS, HeadScan, framing_error
from pieces_os_client._core.headers import check_headers, header_value, redact_headers
from pieces_os_client._core.urls import mask_userinfo, origin_of
from pieces_os_client.api_client import USER_AGENT, ApiClient, DefaultHeaders, Operation
from pieces_os_client.api_response import ApiResponse
from pieces_os_client.configuration import Configuration, load_tls_context
from pieces_os_client.exceptions import ApiConnectionError, ApiValueError, OpenApiException
from pieces_os_client.rest import is_socks_proxy_url

__all__ = ["AsyncApiClient", "AsyncResponse"]

logger = logging.getLogger("pieces_os_client")

#: how often the callers waiting for a pool slot look for slots freed by garbage collection
_SLICE = 0.25
#: a wait for a pool slot ending this close to its end (seconds) has ended (the loop fires a
#: timer up to its clock resolution early)
_EARLY = 1e-6
#: timeouts are never rounded up to whole seconds (aiohttp rounds those above 5 s by default)
_NO_CEIL = 1e12
#: what a read that waited too long raises (asyncio's is not the builtin TimeoutError on 3.10)
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError, ReadTimeoutError)
#: aiohttp headers it would add on its own; the sync client sends none of them unasked
_SKIP_AUTO = frozenset({hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE})


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


# ---------------------------------------------------------------------------- one attempt
class _Attempt:
    """What the connector learns about the attempt running in this task."""

    __slots__ = ("connected", "deadline", "head_request", "head_timeout", "heads", "protocol", "received_before",
                 "reused")

    def __init__(
        self, deadline: Optional[_Deadline], head_timeout: Optional[float], heads: Optional[_HeadDeadlines] = None,
        *, head_request: bool = False,
    ) -> None:
        self.deadline = deadline
        self.head_timeout = head_timeout
        self.heads = heads
        self.head_request = head_request
        self.connected = False
        self.reused = False
        self.protocol: Optional[_CountingHandler] = None
        self.received_before = 0

    def response_bytes(self) -> int:
        """How many bytes of an answer this attempt's connection received while it carried the attempt."""
        protocol = self.protocol
        return 0 if protocol is None else protocol.pieces_received - self.received_before

    def scan(self) -> Optional[HeadScan]:
        """What was seen of the head of this attempt's answer (None before a connection)."""
        protocol = self.protocol
        return None if protocol is None else protocol.pieces_scan


_ATTEMPT: contextvars.ContextVar[Optional[_Attempt]] = contextvars.ContextVar("pieces_os_client_attempt", default=None)


class _CountingHandler(ResponseHandler):
    """aiohttp's connection protocol, counting the bytes its connection received.

    The stale-connection rule (``_core.exchange.may_resend_stale``) resends only a request
    whose reused connection failed before any byte of an answer: a connection closed in the
    middle of a response head has answered something, and is not resent.
    """

    pieces_received = 0
    pieces_used = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the heads of the current exchange: aiohttp's parser refuses some framing that RFC 9112
        #: accepts (equal repeated Content-Length values, Transfer-Encoding beside Content-Length,
        #: lengths past 2**64), so it is given each head in one plain form (see _core.framing)
        self.pieces_scan = HeadScan()

    def data_received(self, data: bytes) -> None:
        if data:  # (aiohttp calls it with none to resume its own work: passed on as it is)
            self.pieces_received += len(data)
            scan = self.pieces_scan
            data = scan.feed(data)
            if not data:  # part of a head, held until it is whole; or a head whose framing is invalid
                if scan.error is not None and self.transport is not None:
                    self.transport.close()  # nothing more is read; the call raises the error (request())
                return
        super().data_received(data)


class _Connector(aiohttp.TCPConnector):
    """Tells the attempt whether its connection is new or reused, and starts the head deadline."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # aiohttp makes each connection's protocol with this factory (the one it sets, with our class)
        self._factory = functools.partial(_CountingHandler, loop=self._loop)  # type: ignore[assignment]

    async def connect(self, req: Any, traces: Any, timeout: Any) -> aiohttp.connector.Connection:
        conn = await super().connect(req, traces, timeout)
        attempt = _ATTEMPT.get()
        protocol = conn.protocol
        if attempt is not None and isinstance(protocol, _CountingHandler):
            attempt.connected = True
            attempt.reused = protocol.pieces_used
            protocol.pieces_used = True
            attempt.protocol = protocol
            attempt.received_before = protocol.pieces_received
            protocol.pieces_scan.start(head_request=attempt.head_request)
            if attempt.deadline is not None and attempt.head_timeout is not None:
                # the whole head within the read timeout (or what is left of the attempt)
                bound = time.monotonic() + attempt.head_timeout
                current = attempt.deadline._when
                if current is None and attempt.heads is not None:
                    attempt.heads.start(attempt.deadline, bound)
                else:
                    attempt.deadline.reschedule(bound if current is None else min(current, bound))
        return conn


class _AsyncConnection:
    """Stands in for urllib3's connection in the messages of classified failures."""

    def __str__(self) -> str:
        return "<aiohttp connection>"


def _new_connection_error(message: str) -> NewConnectionError:
    return NewConnectionError(_AsyncConnection(), message)  # type: ignore[arg-type]


def _classify(exc: BaseException, attempt: _Attempt, expired: bool, url: str) -> Exception:
    """The urllib3 exception meaning what aiohttp (or our deadline) raised."""
    if expired:
        if not attempt.connected:
            return ConnectTimeoutError(_AsyncConnection(), "timed out while connecting")
        return head_read_timeout(url, attempt.response_bytes())
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ConnectTimeoutError(_AsyncConnection(), f"Connection timed out: {exc}")
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return ProxyError("Unable to connect to proxy", exc)
    if isinstance(exc, (aiohttp.ClientConnectorCertificateError, aiohttp.ClientConnectorSSLError,
                        aiohttp.ClientSSLError, ssl.SSLError)):
        return SSLError(exc)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _new_connection_error(f"Failed to establish a new connection: {exc.os_error}")
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return head_read_timeout(url, attempt.response_bytes())
    return ProtocolError("Connection aborted.", exc)


class _RetryView:
    """The parts of a response a ``urllib3.Retry`` looks at."""

    __slots__ = ("_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, headers: HTTPHeaderDict) -> None:
        self._response = response
        self.status = response.status
        self.headers = headers

    def get_redirect_location(self) -> bool:
        return False  # redirects are never followed

    def close(self) -> None:
        self._response.close()


def _header_dict(response: aiohttp.ClientResponse, fields: Optional[List[Tuple[str, str]]] = None) -> HTTPHeaderDict:
    """The response headers as the sync client has them (Latin-1, repeats kept, names as sent).

    Filled as ``HTTPHeaderDict.add`` fills it (its table: lower-case name to ``[name, value,
    ...]``), without a method call per header; the test suite checks the two agree.
    ``fields``: the head's fields as they came, when aiohttp was given them rewritten.
    """
    if fields is not None:
        headers = HTTPHeaderDict()
        for field_name, field_value in fields:
            headers.add(field_name, field_value)
        return headers
    if not _FILL_DIRECTLY:
        headers = HTTPHeaderDict()
        for key, value in response.raw_headers:
            headers.add(key.decode("latin-1"), value.decode("latin-1"))
        return headers
    table: Dict[str, List[str]] = {}
    for raw_name, raw_value in response.raw_headers:
        name = raw_name.decode("latin-1")
        lower = name.lower()
        values = table.get(lower)
        if values is None:
            table[lower] = [name, raw_value.decode("latin-1")]
        else:
            values.append(raw_value.decode("latin-1"))
    headers = HTTPHeaderDict.__new__(HTTPHeaderDict)
    headers._container = table
    return headers


#: HTTPHeaderDict keeps its headers in ``_container`` (urllib3 2.x): fill that table directly
_FILL_DIRECTLY = isinstance(getattr(HTTPHeaderDict(), "_container", None), dict)


# ---------------------------------------------------------------------------- the response
class AsyncResponse:
    """An HTTP response whose body is read once with ``await read()``, within the client's limits.

    The ``*_without_preload_content`` methods return one unread: read it (``await
    resp.read()``), then ``resp.release()``; reading to the end gives the connection back by
    itself, and ``release()`` on one not read to the end closes its connection. A response
    dropped unread is closed when it is garbage collected.
    """

    def __init__(
        self, response: aiohttp.ClientResponse, slot: _Slot, terms: BodyTerms, headers: HTTPHeaderDict, *,
        no_body: bool = False, read_timeout: Optional[float] = None, content_length: Optional[int] = None,
        framed: bool = False,
    ) -> None:
        self.response = response
        self.status: int = response.status
        self.reason: Optional[str] = response.reason
        self.headers = headers
        self.data: Optional[bytes] = None
        self._slot = slot
        self._terms = terms
        self._done = False
        self._no_body = no_body
        #: the wait allowed for each read of the body (None: aiohttp's sock_read, if any, applies)
        self._read_timeout = read_timeout
        #: the body's length as decided from its head (_core.framing), when ``framed``
        self._content_length = content_length
        self._framed = framed

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
        complete = False
        terms = self._terms
        reader: Optional[BodyReader] = None
        try:
            length = self._content_length if self._framed else 0 if self._no_body else self.response.content_length
            reader = terms.reader(self.status, self.reason, self.headers, length)
            content = self.response.content
            bounded = terms.deadline is not None
            if bounded:
                within: Union[_Deadline, _NoDeadline] = _Deadline(terms.deadline, asyncio.get_running_loop())
            else:
                within = _NO_DEADLINE
                if self._read_timeout is not None and not content.is_eof():
                    self._start_read_timeout(self._read_timeout)
            with within:
                while True:
                    size = reader.read_size(bounded_time=bounded)
                    # all of the body has come (the usual case for a small one): take it as it is
                    chunk = content.read_nowait(size) if content.is_eof() else await content.read(size)
                    if not chunk:
                        break
                    reader.feed(chunk)
                    if length is not None and reader.received >= length:
                        break  # all the declared bytes: aiohttp has ended the body, no read for its end
            self.data = reader.finish()
            complete = True
        except (OpenApiException, aiohttp.ClientError, HTTPError, OSError, ValueError, asyncio.TimeoutError) as exc:
            short = reader.cut_short() if reader is not None and isinstance(exc, aiohttp.ClientPayloadError) else None
            # the body ended before its Content-Length: said as the sync client says it
            failure = terms.failure(short or exc, self.status, self.reason, self.headers, _TIMEOUTS)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            self._finish(reuse=complete)
        return self.data

    def _start_read_timeout(self, seconds: float) -> None:
        """Each read of the rest of the body within ``seconds``, as the sync client's read timeout.

        The head came within the attempt's head deadline, which is what bounded the reads so
        far; from here aiohttp's own per-read timer (``sock_read``) bounds each wait for more of
        the body, from now on: a response left unread a while is not timed out for that.
        It stops by itself at the end of the body, or when the connection closes.
        """
        connection = self.response.connection
        protocol = connection.protocol if connection is not None else None
        if protocol is not None:
            protocol.read_timeout = seconds
            protocol.start_timeout()

    def release(self) -> None:
        """Give the connection back (closed unless the body was read to the end) and the pool slot."""
        self._finish(reuse=self.data is not None)

    close = release

    def _finish(self, *, reuse: bool) -> None:
        if self._done:
            return
        self._done = True
        if reuse:
            self.response.release()
        else:
            self.response.close()  # part of the body is unread: the connection cannot be reused
        self._slot.release()

    async def __aenter__(self) -> AsyncResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()

    def __del__(self) -> None:
        if getattr(self, "_done", True):
            return
        self._done = True
        try:
            loop = self.response._loop
            if not loop.is_closed():
                self.response.close()
            else:
                _drop_connection(self.response)
        except Exception:  # a finalizer never raises
            pass
        self._slot.orphan()


def _drop_connection(response: aiohttp.ClientResponse) -> None:
    """Close a response's socket after its loop closed, without touching the loop."""
    connection = response._connection
    protocol = connection.protocol if connection is not None else None
    _close_socket_of(protocol.transport if protocol is not None else None)
    response._closed = True
    response._connection = None


def _close_socket_of(transport: Any) -> None:
    sock = getattr(transport, "_sock", None)
    if sock is not None:
        try:
            sock.close()
        finally:
            transport._sock = None


# ---------------------------------------------------------------------------- the client
class AsyncApiClient(DefaultHeaders):
    """The asyncio counterpart of :class:`~pieces_os_client.ApiClient`.

    ``async with AsyncApiClient(configuration) as client:`` or ``await client.aclose()``. The
    aiohttp session is made in the event loop of the first call; after ``aclose()`` the client
    may be used again, in that loop or another one. While its session is open, it is used from
    that one loop only.
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
        self._session: Optional[aiohttp.ClientSession] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._slots = _Slots(self.configuration.connection_pool_maxsize)
        self._timeouts: Dict[Tuple[Optional[float], Optional[float]], aiohttp.ClientTimeout] = {}
        self._heads: Optional[_HeadDeadlines] = None
        #: the last call's URL up to its path ("scheme://netloc/") and its checked origin
        self._origin: Tuple[str, str] = ("\x00", "")
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
        """Close the session and its connections; the client can be used again afterwards."""
        session, loop = self._session, self._loop
        if session is not None and self._pid == os.getpid() and loop is not asyncio.get_running_loop():
            if not (loop is None or loop.is_closed()):
                raise ApiValueError(
                    "aclose() must run in the event loop that uses this AsyncApiClient (its connections "
                    "belong to that loop)"
                )
            _forget(session, close_sockets=True)  # its loop is gone: close the sockets directly
            session = None
        # (attempts still running keep the head deadlines they started with)
        self._session, self._loop, self._heads = None, None, None
        if session is not None and self._pid == os.getpid():
            await session.close()
        self._slots = _Slots(self.configuration.connection_pool_maxsize)

    def _start_fresh_after_fork(self) -> None:
        """In a forked child: forget the parent's session without touching it."""
        session, self._session = self._session, None
        self._loop, self._heads = None, None
        self._pid = os.getpid()
        self._slots = _Slots(self.configuration.connection_pool_maxsize)
        if session is not None:
            _forget(session, close_sockets=False)

    def __del__(self) -> None:
        session = getattr(self, "_session", None)
        if session is None or session.closed:
            return
        self._session = None
        if getattr(self, "_pid", None) == os.getpid():
            warnings.warn(
                f"AsyncApiClient {id(self):#x} was never closed: use `async with AsyncApiClient(...)` or "
                "`await client.aclose()`", ResourceWarning, stacklevel=2,
            )
        _forget(session, close_sockets=getattr(self, "_pid", None) == os.getpid())

    def _session_for_this_loop(self) -> aiohttp.ClientSession:
        if self._pid != os.getpid():  # forked without the at-fork hook
            self._start_fresh_after_fork()
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and not session.closed:
            if self._loop is loop:
                return session
            raise ApiValueError(
                "this AsyncApiClient's connections belong to another event loop: a client is used from "
                "one event loop at a time. Call `await client.aclose()` in the loop that used it before "
                "using it in another (or give each loop its own AsyncApiClient)"
            )
        config = self.configuration
        ssl_context: Union[bool, ssl.SSLContext] = False
        if config.verify_ssl:
            ssl_context = load_tls_context(config)  # ApiValueError naming a setting that cannot be loaded
            if config.assert_hostname is False:
                ssl_context.check_hostname = False
        connector = _Connector(
            limit=0, limit_per_host=0, ssl=ssl_context, timeout_ceil_threshold=_NO_CEIL,
        )
        session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, trust_env=False, skip_auto_headers=_SKIP_AUTO,
            timeout=aiohttp.ClientTimeout(total=None, connect=None, sock_connect=None, sock_read=None,
                                          ceil_threshold=_NO_CEIL),
        )
        # aiohttp resends an idempotent request once after any connection failure; the SDK's
        # rule (_core.exchange) resends only on a reused connection, and creates too
        session._retry_connection = False
        self._session, self._loop = session, loop
        self._heads = _HeadDeadlines(loop, self.configuration.connection_pool_maxsize)
        return session

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
        session, loop = self._session, self._loop
        if (session is None or loop is not asyncio.get_running_loop() or self._pid != os.getpid()
                or session.closed):
            session = self._session_for_this_loop()
            loop = self._loop
        assert loop is not None
        method = method.upper()
        headers = dict(headers) if headers else {}
        prefix, host = self._origin
        if not url.startswith(prefix):  # another origin than the last call's (or the first call)
            host = origin_of(url)
            self._origin = ("/".join(url.split("/", 3)[:3]) + "/", host)
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
        # Without a total deadline, the read timeout bounds the whole head (a deadline of ours,
        # from the moment the connection is had) and then each read of the rest of the body
        # (aiohttp's sock_read, started by AsyncResponse when it reads the body): aiohttp's
        # per-read timer is not run during the head, which the deadline already bounds. With a
        # total deadline, a read timeout given alongside it is aiohttp's sock_read throughout.
        head_timeout = read if total is None else None
        client_timeout = self._client_timeout(connect, None if total is None else read)
        if accept_encoding is None:
            headers["Accept-Encoding"] = "identity"  # as http.client sends for the sync client
        proxy = config.proxy or None
        if proxy is not None and is_socks_proxy_url(proxy):
            raise ApiValueError(
                f"the async client supports http:// and https:// proxies only, not {mask_userinfo(proxy)!r}; "
                "use the sync ApiClient for a SOCKS proxy"
            )
        proxy_headers = config.proxy_headers if proxy else None
        server_hostname = config.tls_server_name or None
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            logger.debug("request %s %s headers=%s body=%d bytes", method, url, redact_headers(headers),
                         len(body or b""))
        policy = retries = self.retries
        resends = body_attempt = 0
        slots = self._slots
        while True:
            if not slots.take() and not await slots.acquire(config.pool_timeout):
                raise pool_timeout_error(method, url, host, config.pool_timeout, slots.size)
            slot = _Slot(slots)
            started = time.monotonic()
            deadline_at = None if total is None else started + total
            deadline = _Deadline(deadline_at, loop)
            attempt = _Attempt(deadline, head_timeout, self._heads, head_request=method == "HEAD")
            token = _ATTEMPT.set(attempt)
            try:
                with deadline:
                    resp = await session.request(
                        method, url, data=body, headers=headers, timeout=client_timeout, allow_redirects=False,
                        proxy=proxy, proxy_headers=proxy_headers, server_hostname=server_hostname,
                    )
                    if resp.status == 101:  # not HTTP any more: a broken exchange, as in the sync client
                        resp.close()
                        raise http.client.HTTPException(SWITCHED_PROTOCOLS)
            except BaseException as exc:
                slot.release()
                if not isinstance(exc, (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError,
                                        http.client.HTTPException)):
                    raise  # cancellation, or a bug: as it is
                scan = attempt.scan()
                if scan is not None and scan.error is not None:  # a malformed answer: never retried
                    raise framing_error(host, scan.error) from exc
                failure = _classify(exc, attempt, deadline.expired, url)
                try:
                    retries, delay = _retry.after_error(retries, method, url, failure)
                except (MaxRetryError, HTTPError) as final:
                    if may_resend_stale(reused=attempt.reused and isinstance(failure, ProtocolError),
                                        response_bytes=attempt.response_bytes(), resends=resends,
                                        pool_size=slots.size):
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
            finally:
                _ATTEMPT.reset(token)
            status = resp.status
            scan = attempt.scan()
            framing = scan.framing if scan is not None else None
            try:
                header_map = _header_dict(resp, scan.fields if scan is not None else None)
                decision = (_retry.after_status(retries, method, url, _RetryView(resp, header_map))
                            if _retry.may_retry_status(retries, status) else None)
            except BaseException:
                resp.close()
                slot.release()
                raise
            if decision is not None:
                resp.close()
                slot.release()
                retries, delay = decision
                logger.info("%s %s: answered %d; retrying in %.2f s", method, url, status, delay)
                await asyncio.sleep(delay)
                continue
            result = AsyncResponse(
                resp, slot, BodyTerms(host, config.max_response_size, accept_encoding, deadline_at, total), header_map,
                no_body=method == "HEAD" or status == 204 or status == 304, read_timeout=head_timeout,
                content_length=framing.length if framing is not None else None, framed=framing is not None,
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

    def _client_timeout(self, connect: Optional[float], sock_read: Optional[float]) -> aiohttp.ClientTimeout:
        """aiohttp's timeouts for these values, made once (they are immutable)."""
        key = (connect, sock_read)
        timeout = self._timeouts.get(key)
        if timeout is None:
            if len(self._timeouts) >= 64:
                self._timeouts.clear()
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(
                total=None, connect=None, sock_connect=connect, sock_read=sock_read, ceil_threshold=_NO_CEIL,
            )
        return timeout


def _forget(session: aiohttp.ClientSession, *, close_sockets: bool) -> None:
    """Drop a session that can no longer be closed in its loop, so aiohttp does not warn about it.

    ``close_sockets``: close its sockets here (this process owns them); in a forked child they
    are left to the parent.
    """
    connector = session._connector
    session._connector = None
    if connector is None:
        return
    if close_sockets:
        for protocols in list(connector._conns.values()):
            for protocol, _ in protocols:
                _close_socket_of(protocol.transport)
        for protocol in list(connector._acquired):
            _close_socket_of(protocol.transport)
    connector._conns.clear()
    connector._acquired.clear()
    connector._closed = True


#: every async client of this process, so a forked child can forget each one's session
_LIVE_CLIENTS: weakref.WeakSet[AsyncApiClient] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE_CLIENTS):
        client._start_fresh_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
