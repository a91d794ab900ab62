"""A live, thread-safe set of conversation ids fed by the identifiers stream."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, FrozenSet, Mapping, Optional, Union, cast

from pieces_os_client._core.identifiers import MirrorState, MirrorView, notify_change
from pieces_os_client.stream._connect import IDENTIFIERS_PATH, ClientLike
from pieces_os_client.stream._events import ErrorCallback, MirrorUpdate, StreamEvent
from pieces_os_client.stream._link import reset_in_forked_child
from pieces_os_client.stream._options import check_callback, reject_taken
from pieces_os_client.stream._stream import IdentifiersStream

if TYPE_CHECKING:
    from pieces_os_client.api.conversations_api import ConversationsApi

__all__ = ["ConversationIdsMirror"]


_MIRROR_OWNS = {
    "on_event": "the mirror applies every event itself; pass on_change=, or feed a mirror yourself "
                "with mirror.apply",
    "on_close": "the mirror uses it to wake its waiters; see mirror.ended",
}


class ConversationIdsMirror(MirrorView):
    """The set of conversation ids, kept current from the identifiers stream. Thread-safe.

    Either feed it yourself — ``stream = api.conversations_stream_identifiers(on_event=mirror.apply)``
    — or let it own a stream: ``with ConversationIdsMirror.open(api_client) as mirror: ...``.

    A snapshot (the first message of every connection) replaces the set, so after a reconnect
    the mirror equals the server's list again even if changes were missed while disconnected.

    :param on_change: called (in the thread that applied the message) with a
        :class:`MirrorUpdate` after every message that changed the set, and after every
        snapshot; exceptions from it are logged.

    In a child process created by ``os.fork()`` a mirror that owns its stream has
    :attr:`ended` (the stream is closed there): its waits return at once. Its ids stay as they
    were at the fork.
    """

    def __init__(self, *, on_change: Optional[Callable[[MirrorUpdate], object]] = None) -> None:
        check_callback("on_change", on_change)
        self._cond = threading.Condition()
        self._state = MirrorState(self._cond)
        self._ended = False
        self._on_change = on_change
        self.stream: Optional[IdentifiersStream] = None
        """The stream this mirror owns (set by :meth:`open`), else ``None``."""
        reset_in_forked_child(self)

    @classmethod
    def open(
        cls,
        api: Union[ClientLike, ConversationsApi],
        *,
        on_change: Optional[Callable[[MirrorUpdate], object]] = None,
        on_error: Optional[ErrorCallback] = None,
        path: str = IDENTIFIERS_PATH,
        headers: Optional[Mapping[str, Any]] = None,
        **stream_options: Any,
    ) -> ConversationIdsMirror:
        """Open a background stream that feeds a new mirror.

        ``api`` is an :class:`~pieces_os_client.ApiClient` or a ``ConversationsApi``;
        ``stream_options`` go to :class:`IdentifiersStream` (``reconnect``, backoffs, pings).
        Raises like the stream does when Pieces OS cannot be reached.
        """
        reject_taken(stream_options, _MIRROR_OWNS, "ConversationIdsMirror.open()")
        client = cast(ClientLike, getattr(api, "api_client", api))
        mirror = cls(on_change=on_change)
        mirror.stream = IdentifiersStream(
            client, path, headers=headers, on_event=mirror.apply, on_error=on_error,
            on_close=mirror.mark_ended, **stream_options,
        )
        return mirror

    def __enter__(self) -> ConversationIdsMirror:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the owned stream (if any) and wake every waiter."""
        if self.stream is not None:
            self.stream.close()
        self.mark_ended()

    # ------------------------------------------------------------------ feeding
    def apply(self, event: StreamEvent) -> Optional[MirrorUpdate]:
        """Apply one stream event; returns what changed (``None`` if nothing did)."""
        with self._cond:
            update = self._state.apply(event)
            if update is None:
                return None
        # Listeners first, then waiters (output of a listener comes before what a woken waiter does).
        notify_change(self._on_change, update, "ConversationIdsMirror")
        with self._cond:
            self._cond.notify_all()
        return update

    def mark_ended(self) -> None:
        """Record that no more updates will come, and wake every waiter."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ reading
    @property
    def ended(self) -> bool:
        """``True`` once the feeding stream has ended."""
        with self._cond:
            return self._ended

    def wait_for(self, predicate: Callable[[FrozenSet[str]], bool], timeout: Optional[float] = None) -> bool:
        """Block until ``predicate(ids)`` is true; ``False`` on timeout or when the stream ended first.

        The predicate sees the ids after each change, starting with the current set.
        """
        return self._wait_until(lambda: bool(self._state.snapshots) and predicate(self._state.frozen()), timeout)

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until the first snapshot arrived."""
        return self.wait_for(lambda _ids: True, timeout)

    def wait_for_change(self, since: Optional[int] = None, timeout: Optional[float] = None) -> bool:
        """Block until :attr:`version` exceeds ``since`` (default: the version now)."""
        start = self._state.version if since is None else since
        return self._wait_until(lambda: self._state.version > start, timeout)

    def _wait_until(self, done: Callable[[], bool], timeout: Optional[float]) -> bool:
        """Wait on the mirror's condition until ``done()``; False on timeout or end of stream."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not done():
                if self._ended:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def _after_fork_in_child(self) -> None:
        """In a forked child, before any other code runs: a fresh lock (a thread of the parent
        may have held the old one at the fork), and ended if the stream it owns was inherited."""
        self._cond = threading.Condition()
        self._state.lock = self._cond
        if self.stream is not None:
            self._ended = True

