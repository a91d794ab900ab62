"""The identifiers WebSocket for asyncio: :class:`AsyncIdentifiersStream`.

The same stream as :class:`~pieces_os_client.stream.IdentifiersStream`, read by the task that
iterates it: the same options and checks, the same handshake rules (no redirect followed, every
header checked, one ``connect_timeout`` for the whole opening), the same frame rules and size
bound, the same reconnect policy and the same error texts. Only the waiting is asyncio's.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
import warnings
import weakref
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Deque, Generator, Mapping, Optional, Union

from typing_extensions import Never

from pieces_os_client._core.connect import IDENTIFIERS_PATH, ClientLike, Endpoint
from pieces_os_client._core.events import StreamEvent
from pieces_os_client._core.forks import reset_in_forked_child
from pieces_os_client._core.frames import PeerClosed
from pieces_os_client._core.options import check_stream_options, keyword_options, reject_unknown
from pieces_os_client._core.session import Dropped as _Dropped
from pieces_os_client._core.session import StreamSession, StreamStatus
from pieces_os_client._core.websocket import CLOSE_READ_LIMIT, CLOSE_TIMEOUT, Event
from pieces_os_client.aio._connect import open_wire
from pieces_os_client.aio._link import Wire
from pieces_os_client.exceptions import ApiConnectionError, StreamClosedError, StreamError

if TYPE_CHECKING:
    from types import TracebackType

    from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers

__all__ = ["AsyncIdentifiersStream"]

logger = logging.getLogger("pieces_os_client.stream")


class _Closed(Exception):
    """Internal: :meth:`AsyncIdentifiersStream.aclose` ended the step that was waiting."""


class AsyncIdentifiersStream(StreamStatus):
    """A live connection to ``/conversations/stream/identifiers`` for asyncio code.

    Usually obtained from ``AsyncConversationsApi.conversations_stream_identifiers()``::

        async with api.conversations_stream_identifiers() as stream:
            async for message in stream:      # StreamedIdentifiers
                ...

        stream = await api.conversations_stream_identifiers()   # opened; aclose() it

    :param client: what supplies ``configuration`` and ``default_headers`` (an
        ``AsyncApiClient`` or an ``ApiClient``).
    :param path: the WebSocket path under the configured host.
    :param headers: extra handshake headers (they win over the defaults).

    The other options are those of the sync :class:`~pieces_os_client.stream.IdentifiersStream`,
    checked the same way: ``reconnect``, ``max_reconnect_attempts``, ``initial_backoff``,
    ``max_backoff``, ``backoff_jitter``, ``ping_interval``, ``ping_timeout``,
    ``connect_timeout``, ``close_timeout`` (how long :meth:`aclose` waits for a read it ends),
    ``close_read_limit`` and ``max_message_size``. There are no callbacks: iterate instead.

    Opening (``await stream``, ``async with``, or the first ``async for`` step) raises
    :class:`~pieces_os_client.exceptions.ApiConnectionError` (``ApiTimeoutError`` after
    ``connect_timeout``) when Pieces OS cannot be reached and
    :class:`~pieces_os_client.exceptions.StreamError` when it refuses the handshake (a redirect
    included, never followed). Cancelling the task that waits on the stream raises
    ``CancelledError`` as it is, at any step, and leaves no socket or task behind; the stream
    stays open for the next iteration. One task iterates at a time.
    """

    def __init__(
        self,
        client: ClientLike,
        path: str = IDENTIFIERS_PATH,
        *,
        headers: Optional[Mapping[str, Any]] = None,
        reconnect: bool = True,
        max_reconnect_attempts: Optional[int] = None,
        initial_backoff: float = 0.25,
        max_backoff: float = 10.0,
        backoff_jitter: float = 0.5,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: float = 10.0,
        connect_timeout: Optional[float] = None,
        close_timeout: float = CLOSE_TIMEOUT,
        close_read_limit: int = CLOSE_READ_LIMIT,
        max_message_size: Union[int, EllipsisType, None] = ...,
        **unknown: Never,
    ) -> None:
        reject_unknown(unknown, keyword_options(AsyncIdentifiersStream.__init__))
        self._max_message_size = check_stream_options(
            client.configuration.stream_max_message_size, path=path, headers=headers, reconnect=reconnect,
            max_reconnect_attempts=max_reconnect_attempts, initial_backoff=initial_backoff, max_backoff=max_backoff,
            backoff_jitter=backoff_jitter, ping_interval=ping_interval, ping_timeout=ping_timeout,
            connect_timeout=connect_timeout, close_timeout=close_timeout, close_read_limit=close_read_limit,
            max_message_size=max_message_size,
        )
        self._connector = Endpoint(  # checks every header now
            client, path, headers, connect_timeout, max_message_size=self._max_message_size,
            close_timeout=close_timeout, close_read_limit=close_read_limit,
        )
        self.url: str = self._connector.url
        """The WebSocket URL (``ws://`` or ``wss://``), any ``user:password@`` masked."""
        self._session = StreamSession.start(
            self.url, self._connector.host, reconnect=reconnect, max_reconnect_attempts=max_reconnect_attempts,
            initial_backoff=initial_backoff, max_backoff=max_backoff, backoff_jitter=backoff_jitter,
            ping_interval=ping_interval, ping_timeout=ping_timeout,
        )
        self._close_timeout = close_timeout

        self._wire: Optional[Wire] = None  # the open connection
        self._pending: Optional[Wire] = None  # a connection being opened
        self._events: Deque[Event] = collections.deque()  # what the last read produced, not yet handled
        self._step: Optional[asyncio.Task[Any]] = None  # the connection attempt the iterating task waits on
        self._waiter: Optional[asyncio.Future[Optional[bool]]] = None  # ends the iterating task's read wait
        self._timer: Optional[asyncio.TimerHandle] = None  # the keep-alive deadline
        self._timer_at = 0.0  # when it goes off (time.monotonic)
        self._wake: Optional[asyncio.Future[None]] = None  # ends a backoff wait early
        self._lock: Optional[asyncio.Lock] = None
        self._opened = False
        self._closing = False
        self._inherited = False
        reset_in_forked_child(self)

    # ------------------------------------------------------------------ opening and closing
    async def open(self) -> AsyncIdentifiersStream:
        """Open the first connection (idempotent). Raises like the sync stream's constructor."""
        if self._opened:
            return self
        self._check_usable()
        async with self._iteration_lock():
            if not self._opened:
                if self._closing:
                    raise StreamClosedError(f"the identifiers stream for {self.url} is closed")
                try:
                    wire = await self._open_step()  # ApiConnectionError / StreamError right here
                except _Closed:
                    raise StreamClosedError(
                        f"the identifiers stream for {self.url} was closed while it was being opened"
                    ) from None
                self._install(wire)
                self._opened = True
        return self

    def __await__(self) -> Generator[Any, None, AsyncIdentifiersStream]:
        return self.open().__await__()

    async def __aenter__(self) -> AsyncIdentifiersStream:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the stream: prompt and idempotent.

        Ends a connect, read or backoff wait that another task is in (its iteration then ends
        cleanly), sends a close frame without waiting on the peer, and closes the socket.
        In a process forked from the one that opened the stream it only marks it closed.
        """
        if self._closing:
            return
        self._closing = True
        if self._inherited:
            return
        wire = self._wire
        if wire is not None and not wire.closed and wire.protocol is not None:
            wire.protocol.send_close()
            wire.flush_nowait()
        self._end_wait(None)
        step = self._step
        if step is not None and not step.done():
            step.cancel()
            await asyncio.wait({step}, timeout=self._close_timeout)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        if wire is not None and not wire.closed:
            self._stop_timer()
            self._wire = None
            await asyncio.sleep(0)  # a read that was ending unwinds first (it leaves the socket to us)
            await wire.wait_closed()  # the server's answer to the close, for at most close_timeout
        self._release()
        if wire is not None and not wire.closed:
            wire.close()

    def _release(self) -> None:
        self._stop_timer()
        wire, self._wire = self._wire, None
        if wire is not None and not wire.closed:
            wire.close()

    def __del__(self, _warn: Any = warnings.warn) -> None:
        # Only plain socket closes here: nothing is scheduled on a loop from a finalizer.
        open_wires = [w for w in (getattr(self, "_wire", None), getattr(self, "_pending", None))
                      if w is not None and not w.closed]
        if not open_wires:
            return
        if not getattr(self, "_inherited", False):
            _warn(f"unclosed {self!r}; use 'async with' or await aclose()", ResourceWarning, source=self)
        for wire in open_wires:
            wire.forget()

    def _after_fork_in_child(self) -> None:
        """In a forked child: closed, and this process's copies of the sockets dropped quietly."""
        self._inherited = True
        self._closing = True
        for wire in (self._wire, self._pending):
            if wire is not None:
                wire.forget()
        self._wire = self._pending = None
        self._step = None
        self._wake = None
        self._waiter = None
        self._timer = None  # a handle of the parent's loop: dropped, not cancelled
        self._lock = None

    # ------------------------------------------------------------------ iteration
    def __aiter__(self) -> AsyncIdentifiersStream:
        return self

    async def __anext__(self) -> StreamedIdentifiers:
        event = await self._next_for_iterator()
        if event is None:
            raise StopAsyncIteration
        return event.message

    def events(self) -> _Events:
        """An async iterator of :class:`~pieces_os_client.stream.StreamEvent` (message + snapshot flag).

        Ends cleanly when the stream is closed; raises :class:`StreamClosedError` when it ends on
        its own (reconnects off or given up).
        """
        return _Events(self)

    # ------------------------------------------------------------------ properties
    @property
    def closed(self) -> bool:
        """``True`` once :meth:`aclose` was called or the stream ended on its own."""
        return self._closing or self._session.ended

    @property
    def connected(self) -> bool:
        """``True`` while a connection is open (``False`` while reconnecting)."""
        return self._wire is not None and not self._wire.closed and not self.closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("connected" if self.connected else "not connected")
        return f"<AsyncIdentifiersStream {self.url} {state} connections={self.connections}>"

    # ------------------------------------------------------------------ reading
    def _iteration_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _check_usable(self) -> None:
        if self._inherited:
            raise self._session.inherited()

    async def _next_for_iterator(self) -> Optional[StreamEvent]:
        if self._inherited or self._session.ended or self._closing:
            self._release()
            return None
        async with self._iteration_lock():  # one reader at a time: each message goes to one task, whole
            if not self._opened:
                if self._closing:
                    return None
                try:
                    self._install(await self._open_step())
                except _Closed:
                    return None
                self._opened = True
            return await self._next_event()

    async def _next_event(self) -> Optional[StreamEvent]:
        """The next event; ``None`` once closed. Raises StreamClosedError when it ends on its own."""
        while True:
            if self._closing or self._session.ended:
                self._release()
                return None
            wire = self._wire
            if wire is None:
                await self._reconnect()
                continue
            try:
                event = await self._recv(wire)
            except _Closed:
                continue
            except _Dropped as dropped:
                if not self._closing:
                    await self._drop(wire, dropped)
                continue
            if event is None:
                continue
            outcome = self._session.handle(event, closing=self._closing)
            if outcome.report is not None:
                logger.warning("%s", outcome.report)
            if outcome.drop is not None:
                await self._drop(wire, outcome.drop)
            elif outcome.deliver is not None:
                return outcome.deliver

    async def _run_step(self, task: asyncio.Task[Any]) -> None:
        """Wait for ``task`` (a connection attempt).

        :raises _Closed: :meth:`aclose` cancelled it.
        :raises asyncio.CancelledError: the waiting task was cancelled; ``task`` is then
            cancelled too and has finished when this raises.
        """
        self._step = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task})  # let it close what it opened before this task goes on
            if not task.cancelled() and task.exception() is None:
                result = task.result()
                if isinstance(result, Wire):
                    result.close()
            raise
        finally:
            if self._step is task:
                self._step = None
        if task.cancelled():
            raise _Closed

    async def _open_step(self) -> Wire:
        task = asyncio.get_running_loop().create_task(
            open_wire(self._connector, self._adopt))
        await self._run_step(task)
        return task.result()  # ApiConnectionError / StreamError

    def _adopt(self, wire: Optional[Wire]) -> None:
        self._pending = wire

    async def _recv(self, wire: Wire) -> Optional[Event]:
        """The next protocol event; ``None``: nothing yet (keep-alive).

        Read by the iterating task itself: an event left from the last read (one read often
        brings several frames) is taken at once; else the socket is read without blocking, and
        only when it has nothing does the task wait (:meth:`_wait_readable`).
        """
        if self._events:
            return self._events.popleft()
        protocol = wire.protocol
        assert protocol is not None
        try:
            while True:
                data = wire.read_nowait()
                if data is None:
                    woke = await self._wait_readable(wire)
                    if woke is None:
                        raise _Closed
                    if not woke:  # the keep-alive timer
                        await self._keepalive(wire)
                        return None
                    continue
                if not data:
                    protocol.receive_eof()
                    raise PeerClosed("the connection was closed")
                protocol.receive_data(data)
                events = protocol.events_received()
                await wire.flush()  # a pong, a close
                self._session.received(time.monotonic())
                if events:
                    break
        except (PeerClosed, OSError) as exc:
            raise _Dropped.reading_failed(exc) from exc
        if len(events) > 1:
            self._events.extend(events[1:])
        return events[0]

    async def _wait_readable(self, wire: Wire) -> Optional[bool]:
        """Wait for the socket: ``True`` readable, ``False`` the keep-alive deadline came (perhaps
        early: :meth:`_keepalive` then waits on), ``None`` :meth:`aclose` ended the wait.

        The wait is a future, not a task, so cancelling the iterating task cancels it and
        nothing else; the keep-alive timer is one ``call_later`` per stream, moved only when the
        deadline comes sooner than the armed one (arrivals push it later, so it is rarely moved).
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Optional[bool]] = loop.create_future()
        now = time.monotonic()
        timeout = self._session.read_timeout(now)
        if timeout is not None:
            deadline = now + timeout
            if self._timer is None or self._timer_at > deadline:
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = loop.call_later(timeout, _timer_went_off, weakref.ref(self))
                self._timer_at = deadline
        self._waiter = waiter
        try:
            result: Optional[bool] = await wire.readable(waiter)
            return result
        finally:
            self._waiter = None

    def _end_wait(self, result: Optional[bool]) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(result)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    async def _keepalive(self, wire: Wire) -> None:
        now = time.monotonic()
        if self._session.keepalive(now):  # raises _Dropped when the last ping went unanswered
            try:
                assert wire.protocol is not None
                wire.protocol.send_ping()
                await wire.flush()
            except OSError as exc:
                raise _Dropped.ping_failed(exc) from exc
            self._session.pinged(now)

    # ------------------------------------------------------------------ connections
    def _install(self, wire: Wire) -> None:
        if self._closing:
            wire.close()
            return
        self._wire = wire
        self._events.clear()
        assert wire.protocol is not None
        self._events.extend(wire.protocol.events_received())  # frames that came with the handshake's answer
        self._session.connected(time.monotonic())
        logger.debug("identifiers stream connected to %s (connection %d)", self.url, self.connections)

    async def _drop(self, wire: Wire, dropped: _Dropped) -> None:
        """The current connection is gone: close it and report, or end the stream.

        A close frame the protocol sent (failing the connection) is first given ``close_timeout``
        to be answered.
        """
        await wire.wait_closed()
        if self._wire is wire:
            self._wire = None
        wire.close()
        self._events.clear()
        if self._closing:
            return
        error = self._session.dropped(time.monotonic(), dropped.reason, dropped.cause, retry=dropped.retry)
        if isinstance(error, StreamClosedError):
            raise self._end(error)
        logger.info("%s", error)  # routine: the stream recovers by itself

    async def _reconnect(self) -> None:
        """Connect again after the policy's delay; raises StreamClosedError when it gives up."""
        while not self._closing:
            delay = self._session.next_delay(random.random())
            if isinstance(delay, StreamClosedError):
                raise self._end(delay)
            if await self._sleep(delay):
                return
            try:
                wire = await self._open_step()
            except _Closed:
                return
            except (ApiConnectionError, StreamError) as exc:
                logger.info("%s", self._session.attempt_failed(exc))
                continue
            self._install(wire)
            return

    async def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds; ``True`` when :meth:`aclose` ended the wait."""
        wake = self._wake = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait({wake}, timeout=delay)
        finally:
            self._wake = None
        return self._closing

    def _end(self, error: StreamClosedError) -> StreamClosedError:
        """The stream cannot go on: record and report ``error``, release the socket; returns it (to raise)."""
        self._session.end(error)
        logger.error("%s", error)
        self._release()
        return error


def _timer_went_off(ref: weakref.ReferenceType[AsyncIdentifiersStream]) -> None:
    # by weak reference: a pending timer must not keep an abandoned stream (and its socket) alive
    stream = ref()
    if stream is not None:
        stream._timer = None
        stream._end_wait(False)


class _Events:
    """``stream.events()``: the stream's :class:`StreamEvent` objects, as an async iterator."""

    def __init__(self, stream: AsyncIdentifiersStream) -> None:
        self._stream = stream

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> StreamEvent:
        event = await self._stream._next_for_iterator()
        if event is None:
            raise StopAsyncIteration
        return event
