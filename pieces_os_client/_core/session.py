"""One identifiers stream's life as state and decisions, free of I/O.

Both streams (the sync one on threads, the asyncio one on a loop) keep a :class:`StreamSession`
and tell it what happened -- a connection opened, a frame arrived, the read timed out, the
connection dropped -- with the clock values they read; it answers what to do (ping, drop,
reconnect after a delay, give up) and builds the events and errors. The counters both streams
show come from :class:`StreamStatus`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Tuple, Union

from pieces_os_client._core.frames import MessageTooLarge, PeerClosed, ProtocolError
from pieces_os_client._core.identifiers import (
    ended_text,
    gave_up_text,
    interrupted_text,
    malformed_text,
    parse_message,
    too_large_text,
)
from pieces_os_client._core.reconnect import ReconnectPolicy
from pieces_os_client._core.text import one_line
from pieces_os_client._core.websocket import Close, Event, Failed, Message
from pieces_os_client.exceptions import ApiConnectionError, StreamClosedError, StreamError

if TYPE_CHECKING:
    from pieces_os_client._core.events import StreamEvent

__all__ = ["Dropped", "Outcome", "StreamSession", "StreamStatus"]


class Dropped(Exception):
    """The current connection is gone (``reason`` says why); ``retry=False`` when a new
    connection would fail the same way. Raised and caught inside a stream's reading loop."""

    def __init__(self, reason: str, cause: Optional[BaseException] = None, *, retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause
        self.retry = retry

    @classmethod
    def reading_failed(cls, exc: BaseException) -> Dropped:
        """Why a read ended the connection: the peer closed, broke the protocol, or the socket failed."""
        if isinstance(exc, PeerClosed):
            return cls(str(exc), exc)
        if isinstance(exc, ProtocolError):
            return cls(f"the server broke the WebSocket protocol: {exc} (closed with {exc.code})", exc)
        return cls(one_line(f"{type(exc).__name__}: {exc}"), exc)

    @classmethod
    def ping_failed(cls, exc: BaseException) -> Dropped:
        return cls(one_line(f"sending a ping failed: {exc}"), exc)


@dataclass(frozen=True)
class Outcome:
    """What a stream does with one event of its connection's protocol (:meth:`StreamSession.handle`),
    in this order: report ``report`` (a warning), end the connection for ``drop``, or hand
    ``deliver`` to the consumer. All ``None``: nothing (a ping the protocol answered, a pong).

    A shell ending a connection first lets the server answer a close frame the protocol sent
    (the protocol is then :attr:`~pieces_os_client._core.websocket.State.CLOSING`), for at most
    ``close_timeout``, then closes the socket.
    """

    deliver: Optional[StreamEvent] = None
    report: Optional[StreamError] = None
    drop: Optional[Dropped] = None


_NOTHING = Outcome()


class StreamSession:
    """Counters, snapshot flag, keep-alive clock and reconnect policy of one stream."""

    def __init__(
        self,
        url: str,
        host: str,
        policy: ReconnectPolicy,
        *,
        reconnect: bool,
        ping_interval: Optional[float],
        ping_timeout: float,
    ) -> None:
        self.url = url
        self.host = host
        self.policy = policy
        self.reconnect = reconnect
        self.ping_interval = ping_interval or None
        self.ping_timeout = ping_timeout
        self.connections = 0
        self.messages = 0
        self.malformed = 0
        self.last_event: Optional[StreamEvent] = None
        self.error: Optional[StreamClosedError] = None
        self.ended = False
        self.awaiting_snapshot = True
        self.last_rx = 0.0
        self.ping_sent: Optional[float] = None
        #: the last connection's close frame: (status, reason)
        self.close_frame: Optional[Tuple[int, str]] = None
        #: why the last connection dropped
        self.last_problem: Optional[Exception] = None

    @classmethod
    def start(
        cls,
        url: str,
        host: str,
        *,
        reconnect: bool,
        max_reconnect_attempts: Optional[int],
        initial_backoff: float,
        max_backoff: float,
        backoff_jitter: float,
        ping_interval: Optional[float],
        ping_timeout: float,
    ) -> StreamSession:
        """A session for a stream with these (already checked) options."""
        policy = ReconnectPolicy(initial_backoff=initial_backoff, max_backoff=max_backoff, jitter=backoff_jitter,
                                 max_attempts=max_reconnect_attempts)
        return cls(url, host, policy, reconnect=reconnect, ping_interval=ping_interval, ping_timeout=ping_timeout)

    # ------------------------------------------------------------------ a connection
    def connected(self, now: float) -> None:
        """A connection was opened at ``now``; its first message will be a snapshot."""
        self.connections += 1
        self.awaiting_snapshot = True
        self.last_rx = now
        self.close_frame = None
        self.policy.connected(now)
        self.ping_sent = None

    def received(self, now: float) -> None:
        """Something arrived: the connection is alive."""
        self.last_rx = now
        self.ping_sent = None

    def read_timeout(self, now: float) -> Optional[float]:
        """How long the next read may wait before the keep-alive must act; ``None``: for ever."""
        if self.ping_interval is None:
            return None
        if self.ping_sent is not None:
            deadline = self.ping_sent + self.ping_timeout
        else:
            deadline = self.last_rx + self.ping_interval
        return max(0.001, deadline - now)

    def keepalive(self, now: float) -> bool:
        """After a read timed out: ``True`` to send a ping now (then :meth:`pinged`), ``False`` to go
        on waiting.

        :raises Dropped: the last ping went unanswered for ``ping_timeout``.
        """
        if self.ping_sent is not None:
            if now - self.ping_sent >= self.ping_timeout:
                raise Dropped(f"no answer to a ping within {self.ping_timeout:g} s")
            return False
        return self.ping_interval is not None and now - self.last_rx >= self.ping_interval

    def pinged(self, now: float) -> None:
        self.ping_sent = now

    def server_closed(self, code: int, reason: str) -> str:
        """The server's (valid) close frame: remembers it and answers the reason to drop with."""
        self.close_frame = (code, reason)
        if code == 1005:
            return "the server closed the connection"
        return one_line(f"the server closed the connection (code {code}{', ' + reason if reason else ''})")

    # ------------------------------------------------------------------ protocol events
    def handle(self, event: Event, *, closing: bool = False) -> Outcome:
        """What to do with ``event``; ``closing``: the stream is being closed by its user.

        A message is parsed (a malformed one is reported and skipped, or -- the opening
        snapshot, with reconnects on -- ends the connection to start over). The server's valid
        close ends the connection (not when it answers the stream's own close). A failed
        connection (the protocol has sent its close code) ends; one failed for a message over
        the bound is reported first, and not retried when the bound was met by the snapshot.
        """
        if isinstance(event, Message):
            try:
                return Outcome(deliver=self.message(event.data))
            except Exception as exc:  # pydantic.ValidationError (bad JSON or shape), ValueError
                error, restart = self.malformed_message(exc, event.data)
                # without the opening snapshot the consumer's picture would be incomplete:
                # start over on a fresh connection, which begins with a fresh snapshot
                drop = Dropped("its opening snapshot was malformed", exc) if restart else None
                return Outcome(report=error, drop=drop)
        if isinstance(event, Close):
            if closing:
                return _NOTHING
            return Outcome(drop=Dropped(self.server_closed(event.code, event.reason)))
        if isinstance(event, Failed):
            failure = event.error
            if isinstance(failure, MessageTooLarge):
                error, reason, retry = self.too_large(failure)
                return Outcome(report=error, drop=Dropped(reason, error, retry=retry))
            return Outcome(drop=Dropped.reading_failed(failure))
        return _NOTHING

    # ------------------------------------------------------------------ messages
    def message(self, payload: Union[bytes, bytearray]) -> StreamEvent:
        """A message's event (the first of a connection is its snapshot, which makes it healthy).

        :raises pydantic.ValidationError, ValueError: a malformed message (see :meth:`malformed`).
        """
        from pieces_os_client._core.events import StreamEvent

        message = parse_message(payload)
        snapshot = self.awaiting_snapshot
        self.awaiting_snapshot = False
        if snapshot:
            self.policy.healthy()  # a whole, valid snapshot: the backoff starts over
        self.messages += 1
        event = StreamEvent(message, snapshot, self.connections, self.last_rx)
        self.last_event = event
        return event

    def malformed_message(self, exc: BaseException, payload: Union[bytes, bytearray]) -> Tuple[StreamError, bool]:
        """The error to report for a bad message, and whether to start over on a new connection
        (when the opening snapshot was the bad one and reconnects are on)."""
        self.malformed += 1
        error = StreamError(malformed_text(self.url, exc, payload))
        error.__cause__ = exc
        restart = self.awaiting_snapshot and self.reconnect
        if not restart:
            self.awaiting_snapshot = False
        return error, restart

    def too_large(self, exc: MessageTooLarge) -> Tuple[StreamError, str, bool]:
        """The error to report for a message over the bound, the reason to drop with, and whether
        a new connection may help: not when the snapshot was too large, it would come again."""
        error = StreamError(too_large_text(self.url, exc.size, exc.limit))
        error.__cause__ = exc
        return error, f"a message was larger than max_message_size ({exc.limit} bytes)", not self.awaiting_snapshot

    # ------------------------------------------------------------------ drops and reconnects
    def dropped(
        self, now: float, reason: str, cause: Optional[BaseException], *, retry: bool = True
    ) -> Union[ApiConnectionError, StreamClosedError]:
        """The connection ended. Answers the error to report and go on with (reconnecting), or the
        :class:`StreamClosedError` that ends the stream (then already recorded by :meth:`end`)."""
        self.policy.dropped(now)
        if not (retry and self.reconnect):
            final = StreamClosedError(ended_text(self.url, reason, retry))
            final.__cause__ = cause
            self.end(final)
            return final
        error = ApiConnectionError(interrupted_text(self.url, reason), host=self.host, url=self.url, method="GET")
        error.__cause__ = cause
        self.last_problem = error
        return error

    def next_delay(self, rand: float) -> Union[float, StreamClosedError]:
        """The wait before the next attempt, or the error that gives up (recorded by :meth:`end`;
        its cause is :attr:`last_problem`)."""
        delay = self.policy.next_delay(rand)
        if delay is not None:
            return delay
        final = StreamClosedError(gave_up_text(self.url, self.policy))
        final.__cause__ = self.last_problem
        self.end(final)
        return final

    def inherited(self) -> StreamClosedError:
        """The error for using, in a forked child, a stream the parent opened."""
        return StreamClosedError(
            f"the identifiers stream for {self.url} was inherited from the parent process (fork) "
            "and is closed here; open a new stream in this process"
        )

    def attempt_failed(self, error: Exception) -> str:
        """A reconnect attempt failed with ``error`` (kept as :attr:`last_problem`); the line to log."""
        self.policy.failed()
        self.last_problem = error
        return f"identifiers stream: reconnect attempt {self.policy.attempts} failed: {error}"

    def end(self, error: StreamClosedError) -> None:
        self.error = error
        self.ended = True


class StreamStatus:
    """The counters and state both streams show, read from their :class:`StreamSession`."""

    _session: StreamSession

    @property
    def connections(self) -> int:
        """How many connections were made: 1 at first, +1 per successful reconnect."""
        return self._session.connections

    @property
    def reconnects(self) -> int:
        """How many times the stream reconnected (each one followed by a resync snapshot)."""
        return max(0, self._session.connections - 1)

    @property
    def messages_received(self) -> int:
        """Valid messages received so far."""
        return self._session.messages

    @property
    def malformed_messages(self) -> int:
        """Messages skipped because they could not be parsed."""
        return self._session.malformed

    @property
    def last_event(self) -> Optional[StreamEvent]:
        """The most recent event delivered, if any."""
        return self._session.last_event

    @property
    def error(self) -> Optional[StreamClosedError]:
        """Why the stream ended on its own, or ``None``."""
        return self._session.error
