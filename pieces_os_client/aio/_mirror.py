"""A live set of conversation ids for asyncio code, fed by :class:`AsyncIdentifiersStream`."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any, Callable, FrozenSet, Mapping, Optional, cast

from pieces_os_client._core.connect import IDENTIFIERS_PATH, ClientLike
from pieces_os_client._core.events import MirrorUpdate, StreamEvent
from pieces_os_client._core.forks import reset_in_forked_child
from pieces_os_client._core.identifiers import MirrorState, MirrorView, notify_change
from pieces_os_client._core.options import check_callback
from pieces_os_client.aio._stream import AsyncIdentifiersStream
from pieces_os_client.exceptions import StreamClosedError

__all__ = ["AsyncConversationIdsMirror"]

class AsyncConversationIdsMirror(MirrorView):
    """The set of conversation ids, kept current from the identifiers stream, on one event loop.

    ``mirror = await AsyncConversationIdsMirror.open(api)`` (or ``async with``) starts a task
    that reads the stream and applies every message; :meth:`aclose` ends it. Or feed a mirror
    yourself with :meth:`apply`. The set arithmetic is the sync
    :class:`~pieces_os_client.stream.ConversationIdsMirror`'s: a snapshot (the first message of
    every connection) replaces the set, so after a reconnect it equals the server's list again.

    :param on_change: called with a :class:`MirrorUpdate` after every change and every snapshot;
        exceptions from it are logged.
    """

    def __init__(self, *, on_change: Optional[Callable[[MirrorUpdate], object]] = None) -> None:
        check_callback("on_change", on_change)
        self._state = MirrorState()
        self._on_change = on_change
        self._ended = False
        self._changed: Optional[asyncio.Condition] = None
        self._task: Optional[asyncio.Task[None]] = None
        self.stream: Optional[AsyncIdentifiersStream] = None
        """The stream this mirror owns (set by :meth:`open`), else ``None``."""
        self.error: Optional[BaseException] = None
        """Why the owned stream ended on its own, if it did."""
        reset_in_forked_child(self)

    @classmethod
    async def open(
        cls,
        api: Any,
        *,
        on_change: Optional[Callable[[MirrorUpdate], object]] = None,
        path: str = IDENTIFIERS_PATH,
        headers: Optional[Mapping[str, Any]] = None,
        **stream_options: Any,
    ) -> AsyncConversationIdsMirror:
        """Open a stream that feeds a new mirror, and the task that reads it.

        ``api`` has ``conversations_stream_identifiers()`` (an ``AsyncConversationsApi``), or is
        a client with ``configuration`` and ``default_headers``. Raises like the stream does when
        Pieces OS cannot be reached; the mirror is then not created.
        """
        mirror = cls(on_change=on_change)
        opener = getattr(api, "conversations_stream_identifiers", None)
        if opener is not None:
            if headers is not None:
                stream_options["headers"] = headers
            made = opener(**stream_options)
            if not isinstance(made, AsyncIdentifiersStream) and inspect.isawaitable(made):
                made = await made  # an ``async def`` opener
            stream = cast(AsyncIdentifiersStream, made)
        else:
            stream = AsyncIdentifiersStream(cast(ClientLike, api), path, headers=headers, **stream_options)
        try:
            await stream.open()
        except BaseException:
            await stream.aclose()
            raise
        mirror.stream = stream
        mirror._task = asyncio.get_running_loop().create_task(mirror._feed(stream))
        return mirror

    async def __aenter__(self) -> AsyncConversationIdsMirror:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the owned stream, end the feeding task and wake every waiter."""
        if self.stream is not None:
            await self.stream.aclose()
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._mark_ended()

    async def _feed(self, stream: AsyncIdentifiersStream) -> None:
        try:
            async for event in stream.events():
                await self.apply(event)
        except StreamClosedError as exc:
            self.error = exc
        except Exception as exc:  # a bug: end visibly rather than leave an exception no one retrieves
            logging.getLogger("pieces_os_client.stream").exception("AsyncConversationIdsMirror: feeding failed")
            self.error = exc
        finally:
            await self._mark_ended()

    # ------------------------------------------------------------------ feeding
    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def apply(self, event: StreamEvent) -> Optional[MirrorUpdate]:
        """Apply one stream event; returns what changed (``None`` if nothing did)."""
        update = self._state.apply(event)
        if update is None:
            return None
        notify_change(self._on_change, update, "AsyncConversationIdsMirror")
        async with self._condition():
            self._condition().notify_all()
        return update

    async def _mark_ended(self) -> None:
        self._ended = True
        async with self._condition():
            self._condition().notify_all()

    # ------------------------------------------------------------------ reading
    @property
    def ended(self) -> bool:
        """``True`` once the feeding stream has ended."""
        return self._ended

    async def wait_for(self, predicate: Callable[[FrozenSet[str]], bool], timeout: Optional[float] = None) -> bool:
        """Wait until ``predicate(ids)`` is true (after the first snapshot); ``False`` on timeout
        or when the stream ended first."""
        return await self._wait_until(lambda: self._state.snapshots > 0 and predicate(self._state.frozen()), timeout)

    async def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Wait until the first snapshot arrived."""
        return await self.wait_for(lambda _ids: True, timeout)

    async def wait_for_change(self, since: Optional[int] = None, timeout: Optional[float] = None) -> bool:
        """Wait until :attr:`version` exceeds ``since`` (default: the version now)."""
        start = self._state.version if since is None else since
        return await self._wait_until(lambda: self._state.version > start, timeout)

    async def _wait_until(self, done: Callable[[], bool], timeout: Optional[float]) -> bool:
        condition = self._condition()

        async def wait() -> bool:
            async with condition:
                while not done():
                    if self._ended:
                        return False
                    await condition.wait()
                return True

        if done():
            return True
        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            return False

    def _after_fork_in_child(self) -> None:
        """In a forked child: the loop and the stream are the parent's, so the mirror has ended
        (its set stays as it was at the fork) and forgets the parent's condition and task."""
        self._changed = None
        self._task = None
        if self.stream is not None:
            self._ended = True
