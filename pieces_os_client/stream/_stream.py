"""The identifiers stream's life: connect, read, keep alive, reconnect, deliver, end."""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
import weakref
from types import EllipsisType
from typing import TYPE_CHECKING, Any, Callable, Deque, Iterator, Mapping, Optional, Tuple, Union

from typing_extensions import Never

from pieces_os_client._core.frames import PeerClosed
from pieces_os_client._core.session import Dropped as _Dropped
from pieces_os_client._core.session import StreamSession, StreamStatus
from pieces_os_client._core.websocket import CLOSE_READ_LIMIT, CLOSE_TIMEOUT, Event
from pieces_os_client.exceptions import (
    ApiConnectionError,
    StreamClosedError,
    StreamError,
)
from pieces_os_client.stream._connect import IDENTIFIERS_PATH, ClientLike, Closing, Connector
from pieces_os_client.stream._events import (
    CloseCallback,
    ErrorCallback,
    EventCallback,
    MessageCallback,
    StreamEvent,
)
from pieces_os_client.stream._link import Connection, Link, close_ws
from pieces_os_client.stream._options import callback_style, check_stream_options, keyword_options, reject_unknown

if TYPE_CHECKING:
    from types import TracebackType

    from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers

__all__ = ["IdentifiersStream"]

_CHUNK = 64 * 1024

logger = logging.getLogger("pieces_os_client.stream")



class IdentifiersStream(StreamStatus):
    """A live connection to ``/conversations/stream/identifiers``.

    Usually obtained from ``ConversationsApi.conversations_stream_identifiers()``.

    :param api_client: the :class:`~pieces_os_client.ApiClient` whose configuration (host,
        credentials, TLS, proxy, connect timeout) and default headers are used. The handshake
        goes to the configured host only: a redirect is refused, never followed.
    :param path: the WebSocket path, appended to the configured host's base path.
    :param headers: extra handshake headers for this stream (they win over the defaults).
    :param on_message: called with each :class:`StreamedIdentifiers`; giving it (or
        ``on_event``) runs the stream in a background daemon thread.
    :param on_event: called with each :class:`StreamEvent` (message + snapshot flag).
    :param on_error: called with every problem the stream lives through (a malformed or
        oversized message: :class:`StreamError`; a dropped connection: :class:`ApiConnectionError`)
        and with the :class:`StreamClosedError` that ends it when it cannot go on.
    :param on_close: called once, when the stream has ended for any reason.

        Callbacks are checked against their signatures here. Besides this SDK's style above,
        the official style (websocket-client's ``WebSocketApp``) is accepted, the stream taking
        the place of ``ws``: ``on_message(stream, message)``, ``on_error(stream, error)``,
        ``on_close(stream, code, reason)`` (the server's close code and reason; ``1000, ""``
        after :meth:`close`; ``None`` and the error's text when the stream gave up). A callback
        that raises never stops the stream: the exception is logged with its traceback, counted
        in :attr:`callback_errors` and kept in :attr:`last_callback_error`.
    :param reconnect: reconnect after the connection drops (default). When ``False`` a drop
        ends the stream with :class:`StreamClosedError`.
    :param max_reconnect_attempts: failed attempts since the last healthy connection before
        giving up; ``None`` (default) tries for as long as the stream is open. A connection is
        healthy once its first message (the snapshot) arrived and parsed, or once it stayed up
        ``HEALTHY_AFTER`` (10) seconds; one that the server drops before that counts as a failed
        attempt, so a server that accepts the WebSocket and drops it at once ends the stream.
    :param initial_backoff: delay before the first reconnect attempt, in seconds; each further
        attempt doubles it, up to ``max_backoff``, until a connection is healthy again.
    :param backoff_jitter: the fraction (0..1) of each delay that is random, so that many
        clients do not reconnect in lockstep.
    :param ping_interval: send a ping after this many idle seconds (``None`` or 0: never);
    :param ping_timeout: and consider the peer dead when nothing at all arrives within this
        many seconds after the ping.
    :param connect_timeout: seconds for each connection attempt as a whole: TCP connect, proxy
        tunnel, TLS and the WebSocket handshake share this one deadline, however slowly the
        server sends its answer. Defaults to the configuration's ``connect_timeout``.
    :param close_timeout: how long :meth:`close` waits, in all, for the server to answer the close
        frame and for the background thread to finish; also how long the stream waits for the
        server's close after it failed a connection for a protocol error.
    :param close_read_limit: after failing a connection for a protocol error, the most bytes
        read (and dropped) while waiting for the server's close, before the socket is closed
        without waiting longer (default 64 KiB).
    :param max_message_size: the largest message accepted, in bytes, checked against each frame
        header before its payload is read; ``None`` lifts the bound. Defaults to the
        configuration's ``stream_max_message_size``. A larger message closes the connection
        (status 1009) and is reported as a :class:`StreamError`.
    :raises ApiTypeError: an unknown option, a callback that is not callable or takes
        neither style's arguments, a wrong type.
    :raises ApiValueError: a number out of range; a handshake header (per-call, default,
        credential, ``Host``, ``Origin``) that is not a valid HTTP header or holds CR, LF or
        NUL -- named, before anything is sent.
    :raises ApiConnectionError: Pieces OS could not be reached (``ApiTimeoutError`` when the
        opening did not finish within ``connect_timeout``; the message names the step).
    :raises StreamError: the server answered but refused the WebSocket handshake, a redirect
        included (its status and ``Location`` are named).

    Wherever the stream shows a URL (:attr:`url`, ``repr``, errors, log lines) any
    ``user:password@`` of the configured host is masked as ``***@``.
    """

    def __init__(
        self,
        api_client: ClientLike,
        path: str = IDENTIFIERS_PATH,
        *,
        headers: Optional[Mapping[str, Any]] = None,
        on_message: Optional[MessageCallback] = None,
        on_event: Optional[EventCallback] = None,
        on_error: Optional[ErrorCallback] = None,
        on_close: Optional[CloseCallback] = None,
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
        reject_unknown(unknown, keyword_options(IdentifiersStream.__init__))
        styles = {name: callback_style(name, callback) for name, callback in (
            ("on_message", on_message), ("on_event", on_event), ("on_error", on_error), ("on_close", on_close))}
        max_message_size = check_stream_options(
            api_client.configuration.stream_max_message_size, path=path, headers=headers, reconnect=reconnect,
            max_reconnect_attempts=max_reconnect_attempts, initial_backoff=initial_backoff, max_backoff=max_backoff,
            backoff_jitter=backoff_jitter, ping_interval=ping_interval, ping_timeout=ping_timeout,
            connect_timeout=connect_timeout, close_timeout=close_timeout, close_read_limit=close_read_limit,
            max_message_size=max_message_size,
        )

        self._connector = Connector(api_client, path, headers, connect_timeout, max_message_size=max_message_size,
                                    close_timeout=close_timeout, close_read_limit=close_read_limit)
        self.url: str = self._connector.url
        """The WebSocket URL (``ws://`` or ``wss://``), any ``user:password@`` masked."""
        self._max_message_size: Optional[int] = max_message_size

        self._on_message = on_message
        self._on_event = on_event
        self._on_error = on_error
        self._on_close = on_close
        self._styles = styles  # callback name -> "sdk" | "official"
        self._session = StreamSession.start(
            self.url, self._connector.host, reconnect=reconnect, max_reconnect_attempts=max_reconnect_attempts,
            initial_backoff=initial_backoff, max_backoff=max_backoff, backoff_jitter=backoff_jitter,
            ping_interval=ping_interval, ping_timeout=ping_timeout,
        )
        self._close_timeout = close_timeout

        self._link = Link()
        self._events: Deque[Event] = collections.deque()  # what the last read produced, not yet handled
        self._state_lock = threading.Lock()
        self._iter_lock = threading.Lock()  # held by the thread reading in iterator mode
        self._mode: Optional[str] = None  # "iterator" | "background"
        self._thread: Optional[threading.Thread] = None
        self._finished = threading.Event()
        self._close_fired = False
        self._callback_errors = 0
        self._last_callback_error: Optional[BaseException] = None

        ws = self._connect()  # eager: raises ApiConnectionError / StreamError right here
        self._install(ws)
        # Close the socket quietly if the stream is dropped without close() (no ResourceWarning).
        self._finalizer = weakref.finalize(self, self._link.shutdown)
        self._finalizer.atexit = False
        if on_message is not None or on_event is not None:
            self.start()

    # ------------------------------------------------------------------ public surface
    def __enter__(self) -> IdentifiersStream:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __iter__(self) -> IdentifiersStream:
        return self

    def __next__(self) -> StreamedIdentifiers:
        event = self._next_for_iterator()
        if event is None:
            raise StopIteration
        return event.message

    def events(self) -> Iterator[StreamEvent]:
        """Iterate :class:`StreamEvent` wrappers (the message plus its snapshot flag).

        Ends cleanly when the stream is closed; raises :class:`StreamClosedError` when the
        stream ends on its own (server gone and reconnects off or exhausted). Threads that
        iterate one stream take turns: each message goes to one of them. A ``KeyboardInterrupt``
        or ``SystemExit`` raised while waiting closes the stream.
        """
        while True:
            event = self._next_for_iterator()
            if event is None:
                return
            yield event

    def start(self) -> IdentifiersStream:
        """Read in a background daemon thread and deliver to the callbacks. Idempotent."""
        if self._link.inherited:
            raise self._session.inherited()
        with self._state_lock:
            if self._link.closing.is_set():
                raise StreamClosedError(f"the identifiers stream for {self.url} is closed")
            if self._mode == "iterator":
                raise StreamError("this stream is being iterated; it cannot also run in the background")
            if self._thread is not None:
                return self
            self._mode = "background"
            self._thread = threading.Thread(target=self._run, name="pieces-identifiers-stream", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Close the stream. Prompt and idempotent: it takes at most ``close_timeout`` in all.

        Sends a close frame, waits for the server's answer, wakes the reader, and waits for the
        background thread (if any) to finish, so that ``on_close`` has normally run when this
        returns. Both waits share the one deadline.

        In a child process that inherited the stream through ``os.fork()`` the stream is
        already closed and this does nothing: the connection belongs to the parent.
        """
        if self._link.inherited:
            self._finalizer.detach()
            return
        deadline = time.monotonic() + self._close_timeout
        self._link.shutdown(deadline=deadline)
        self._finalizer.detach()
        thread = self._thread
        if thread is None:
            self._finished.set()
            self._fire_close()
        elif thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the stream has ended (closed, or given up). ``True`` if it has."""
        if self._link.inherited:
            return True  # closed in this process since the fork; the reader thread was the parent's
        return self._finished.wait(timeout)

    @property
    def closed(self) -> bool:
        """``True`` once ``close()`` was called or the stream ended on its own."""
        return self._link.closing.is_set() or self._session.ended

    @property
    def connected(self) -> bool:
        """``True`` while a connection is open (``False`` while reconnecting)."""
        ws = self._link.ws
        return ws is not None and bool(ws.connected) and not self.closed

    @property
    def callback_errors(self) -> int:
        """How many times a callback raised (each is logged with its traceback, and the stream goes on)."""
        return self._callback_errors

    @property
    def last_callback_error(self) -> Optional[BaseException]:
        """The exception a callback raised most recently, or ``None``."""
        return self._last_callback_error

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("connected" if self.connected else "reconnecting")
        return f"<IdentifiersStream {self.url} {state} connections={self.connections}>"

    # ------------------------------------------------------------------ reading
    def _next_for_iterator(self) -> Optional[StreamEvent]:
        if self._link.inherited:
            return None  # a stream inherited across fork() is closed in the child
        with self._state_lock:
            if self._mode == "background":
                raise StreamError("this stream delivers to callbacks in a background thread; it cannot be iterated")
            self._mode = "iterator"
        if self._session.ended:
            return None  # the terminal error was raised once already
        try:
            with self._iter_lock:  # one reader at a time: each message goes to one thread, whole
                return self._next_event()
        except BaseException as exc:
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: the reader is done
                self.close()
            raise

    def _next_event(self) -> Optional[StreamEvent]:
        """The next event; ``None`` once closed. Raises StreamClosedError when it ends on its own."""
        while True:
            if self._link.closing.is_set() or self._session.ended:
                self._release()
                return None
            ws = self._link.ws
            if ws is None:
                self._reconnect()
                continue
            try:
                event = self._recv(ws)
            except _Dropped as dropped:
                if not self._link.closing.is_set():
                    self._drop(ws, dropped)
                continue
            if event is None:
                continue
            outcome = self._session.handle(event, closing=self._link.closing.is_set())
            if outcome.report is not None:
                self._report(outcome.report, logging.WARNING)
            if outcome.drop is not None:
                self._drop(ws, outcome.drop)
            elif outcome.deliver is not None:
                return outcome.deliver

    def _recv(self, ws: Connection) -> Optional[Event]:
        """The next protocol event, reading the socket when none is left; ``None``: nothing yet."""
        if self._events:
            return self._events.popleft()
        with self._link.lock:
            if self._link.closing.is_set():
                return None
            self._link.reading = True
        try:
            sock = ws.sock
            sock.settimeout(self._read_timeout())
            data = sock.recv(_CHUNK)
            events = ws.receive(data)
        except TimeoutError:  # socket.timeout, also from ssl
            self._keepalive(ws)
            return None
        except (OSError, ValueError, AttributeError) as exc:  # also closed by close()
            raise _Dropped.reading_failed(exc) from exc
        finally:
            with self._link.lock:
                self._link.reading = False
        if not data:
            raise _Dropped.reading_failed(PeerClosed("the connection was closed"))
        self._session.received(time.monotonic())
        if not events:
            return None
        first = events[0]
        if len(events) > 1:
            self._events.extend(events[1:])
        return first

    def _read_timeout(self) -> Optional[float]:
        return self._session.read_timeout(time.monotonic())

    def _keepalive(self, ws: Connection) -> None:
        now = time.monotonic()
        if self._session.keepalive(now):  # raises _Dropped when the last ping went unanswered
            try:
                ws.send_ping()
            except Exception as exc:
                raise _Dropped.ping_failed(exc) from exc
            self._session.pinged(now)

    # ------------------------------------------------------------------ connections
    def _connect(self) -> Connection:
        try:
            return self._connector.open(self._link)
        except Closing as exc:
            raise _Dropped("closed while connecting", exc) from exc

    def _install(self, ws: Connection) -> None:
        with self._link.lock:
            if self._link.closing.is_set():
                close_ws(ws)
                return
            self._link.ws = ws
        self._events.clear()
        self._events.extend(ws.protocol.events_received())  # frames that came with the handshake's answer
        self._session.connected(time.monotonic())
        logger.debug("identifiers stream connected to %s (connection %d)", self.url, self.connections)

    def _drop(self, ws: Connection, dropped: _Dropped) -> None:
        """The current connection is gone: close it and report, or end the stream.

        A close frame the protocol sent (failing the connection) is first given ``close_timeout``
        to be answered. ``dropped.retry=False``: a new connection would fail the same way, so the
        stream ends.
        """
        self._link.detach(ws)
        ws.wait_closed()
        close_ws(ws)
        self._events.clear()
        if self._link.closing.is_set():
            return
        error = self._session.dropped(time.monotonic(), dropped.reason, dropped.cause, retry=dropped.retry)
        if isinstance(error, StreamClosedError):
            raise self._end(error)
        self._report(error, logging.INFO)  # routine: the stream recovers by itself

    def _reconnect(self) -> None:
        """Connect again after the policy's delay; raises StreamClosedError when it gives up.

        The delay grows with every attempt since the last *healthy* connection (one whose
        snapshot arrived, or that stayed up ``HEALTHY_AFTER`` seconds), so a server that accepts
        the WebSocket and drops it at once is not hammered, and such connections count as failed
        attempts against ``max_reconnect_attempts``.
        """
        while not self._link.closing.is_set():
            delay = self._session.next_delay(random.random())
            if isinstance(delay, StreamClosedError):
                raise self._end(delay)
            if self._link.closing.wait(delay):
                return
            try:
                ws = self._connect()
            except _Dropped:
                return
            except (ApiConnectionError, StreamError) as exc:
                logger.info("%s", self._session.attempt_failed(exc))
                continue
            self._install(ws)
            return

    def _release(self) -> None:
        """Close the socket once the stream is over (the reader's side of close())."""
        with self._link.lock:
            ws, self._link.ws = self._link.ws, None
        if ws is not None:
            close_ws(ws)

    # ------------------------------------------------------------------ ending & callbacks
    def _end(self, error: StreamClosedError) -> StreamClosedError:
        """The stream cannot go on: record and report ``error``, release the socket; returns it (to raise)."""
        self._session.end(error)
        self._report(error, logging.ERROR)
        self._link.shutdown()
        self._finalizer.detach()
        if self._thread is None:
            self._finished.set()
            self._fire_close()
        return error

    def _run(self) -> None:
        try:
            while True:
                try:
                    event = self._next_event()
                except StreamClosedError:
                    return  # reported by _end
                except Exception as exc:  # a bug: end the stream visibly instead of silently
                    logger.exception("identifiers stream: unexpected failure in the reader thread")
                    final = StreamClosedError(f"the identifiers stream at {self.url} failed: {exc}")
                    final.__cause__ = exc
                    self._end(final)
                    return
                if event is None:
                    return
                self._deliver(event)
        finally:
            self._release()
            self._fire_close()
            self._finished.set()

    def _deliver(self, event: StreamEvent) -> None:
        if self._on_event is not None:
            self._call("on_event", self._on_event, event)
        if self._on_message is not None:
            self._call("on_message", self._on_message, event.message)

    def _call(self, name: str, callback: Callable[..., object], *args: Any) -> None:
        """Call a callback in the style its signature asked for; record what it raises.

        Official style (websocket-client's ``WebSocketApp``) gets the stream first:
        ``on_message(stream, message)``, ``on_error(stream, error)`` and
        ``on_close(stream, code, reason)``.
        """
        if self._styles.get(name) == "official":
            args = (self, *args) if name != "on_close" else (self, *self._close_details())
        try:
            callback(*args)
        except Exception as exc:
            self._callback_errors += 1
            self._last_callback_error = exc
            logger.exception("identifiers stream: the %s callback raised (stream.callback_errors: %d)",
                             name, self._callback_errors)

    def _close_details(self) -> Tuple[Optional[int], Optional[str]]:
        """``(code, reason)`` for an official-style ``on_close``."""
        session = self._session
        if session.close_frame is not None:
            return session.close_frame
        if session.error is not None:
            return None, str(session.error)
        return 1000, ""  # closed by close()

    def _report(self, error: Exception, level: int) -> None:
        logger.log(level, "%s", error)
        if self._on_error is not None:
            self._call("on_error", self._on_error, error)

    def _fire_close(self) -> None:
        with self._state_lock:
            if self._close_fired:
                return
            self._close_fired = True
        if self._on_close is not None:
            self._call("on_close", self._on_close)
