"""The identifiers stream's rules that do not depend on how bytes are read: parsing a message
into a :class:`StreamEvent`, the texts of the errors a stream reports, and the set arithmetic
of a conversation-ids mirror. Shared by the sync and the asyncio stream and mirror; no I/O.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Dict, FrozenSet, Iterator, Optional, Set, Union

from pieces_os_client._core.reconnect import ReconnectPolicy
from pieces_os_client._core.text import one_line, preview

if TYPE_CHECKING:
    from pieces_os_client._core.events import MirrorUpdate, StreamEvent
    from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers

__all__ = [
    "MAX_SIZE_SETTING",
    "MirrorState",
    "MirrorView",
    "ended_text",
    "explain",
    "gave_up_text",
    "interrupted_text",
    "malformed_text",
    "notify_change",
    "parse_message",
    "too_large_text",
]

MAX_SIZE_SETTING = "Configuration.stream_max_message_size"


def parse_message(payload: Union[bytes, bytearray]) -> StreamedIdentifiers:
    """One message's JSON as the model.

    :raises pydantic.ValidationError, ValueError: not a valid ``StreamedIdentifiers``.
    """
    from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers  # the model graph is big

    message = StreamedIdentifiers.from_json(payload)
    if message is None:
        raise ValueError("the message is JSON null")
    return message


def explain(exc: BaseException) -> str:
    """One bounded line about a parsing error (pydantic's own text lists every error in full)."""
    import pydantic

    if isinstance(exc, pydantic.ValidationError):
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        where = ".".join(str(part) for part in errors[0]["loc"]) or "the top level"
        count = exc.error_count()
        more = f" (and {count - 1} more)" if count > 1 else ""
        return one_line(f"{errors[0]['msg']} at {where}{more}", 160)
    return one_line(str(exc)[:1000], 160)


def malformed_text(url: str, exc: BaseException, payload: Union[bytes, bytearray]) -> str:
    """A bad message, shown by a bounded prefix of it: never decoded or copied whole."""
    return (f"Skipped a malformed message of {len(payload)} bytes on the identifiers stream at "
            f"{url}: {explain(exc)} (message: {preview(payload)!r})")


def too_large_text(url: str, size: int, limit: int) -> str:
    setting = f"max_message_size (default: {MAX_SIZE_SETTING})"
    return (f"A message on the identifiers stream at {url} is at least {size} bytes, over the "
            f"limit of {limit} bytes set by {setting}; raise the limit, or set it to None to lift it.")


def interrupted_text(url: str, reason: str) -> str:
    return f"The identifiers stream at {url} was interrupted ({reason}); reconnecting."


def ended_text(url: str, reason: str, retry: bool) -> str:
    why = "reconnects are turned off" if retry else "a new connection would meet the same problem"
    return f"The identifiers stream at {url} ended: {reason}; {why}."


def gave_up_text(url: str, policy: ReconnectPolicy) -> str:
    count = policy.attempts
    detail = policy.give_up_reason()
    return (f"Gave up reconnecting to the identifiers stream at {url} after "
            f"{count} failed attempt{'s' if count != 1 else ''}{'; ' + detail if detail else ''}.")


class MirrorState:
    """The ids of a mirror, its version and snapshot count; :meth:`apply` is the set arithmetic.

    A change costs what the message names, not the size of the set: the ids live in one mutable
    set, and the immutable ``frozenset`` that readers get is built when first asked for after a
    change (:meth:`frozen`), then kept until the next one. A :class:`MirrorUpdate` builds its
    ``ids`` the same way; if one is still referenced when the next change comes, its set is
    built first, so every update keeps showing the set right after its own change.

    :param lock: held around every read and change (the sync mirror's, whose readers are other
        threads); the asyncio mirror, on one loop, needs none.
    """

    def __init__(self, lock: Optional[ContextManager[Any]] = None) -> None:
        self.lock: ContextManager[Any] = lock if lock is not None else contextlib.nullcontext()
        self._live: Set[str] = set()
        self._frozen: Optional[FrozenSet[str]] = frozenset()
        self._last: Optional[weakref.ReferenceType[MirrorUpdate]] = None  # the newest update, if alive
        self.version = 0
        self.snapshots = 0

    def frozen(self) -> FrozenSet[str]:
        """The ids now, as an immutable set (built once per change, when first asked for)."""
        with self.lock:
            frozen = self._frozen
            if frozen is None:
                frozen = self._frozen = frozenset(self._live)
            return frozen

    def contains(self, conversation_id: object) -> bool:
        with self.lock:
            return conversation_id in self._live

    def count(self) -> int:
        with self.lock:
            return len(self._live)

    def ids_of(self, update: MirrorUpdate) -> FrozenSet[str]:
        """``update.ids``: the set right after its change (see the class docstring)."""
        with self.lock:
            ids = update._ids
            if ids is None:  # not built yet, so no change came since: it is the current set
                ids = self.frozen()
                update._keep(ids)
            return ids

    def apply(self, event: StreamEvent) -> Optional[MirrorUpdate]:
        """Apply one event: a snapshot replaces the set, other messages add and remove ids.

        Returns what changed; ``None`` when nothing did (a snapshot always counts as a change).
        """
        from pieces_os_client._core.events import MirrorUpdate

        with self.lock:
            if event.snapshot:
                fresh = frozenset(event.ids)
                added, removed = fresh.difference(self._live), frozenset(self._live.difference(fresh))
                self.snapshots += 1
            else:
                before: Dict[str, bool] = {}  # each id the message names: there before it?
                after: Dict[str, bool] = {}  # and after it (the last mention wins)
                live = self._live
                for ident in event.message.iterable or ():
                    if ident.conversation is None:
                        continue
                    cid = ident.conversation.id
                    if cid not in before:
                        before[cid] = cid in live
                    after[cid] = not ident.deleted
                added = frozenset(c for c, there in after.items() if there and not before[c])
                removed = frozenset(c for c, there in after.items() if not there and before[c])
                if not added and not removed:
                    return None
            last = self._last() if self._last is not None else None
            if last is not None and last._ids is None:
                last._keep(self.frozen())  # still referenced: it keeps the set of its own change
            if event.snapshot:
                self._live = set(fresh)
                self._frozen = fresh
            else:
                self._live.difference_update(removed)
                self._live.update(added)
                self._frozen = None
            self.version += 1
            update = MirrorUpdate(added=added, removed=removed, snapshot=event.snapshot, resync=event.resync,
                                  version=self.version, ids=fresh if event.snapshot else None, source=self)
            self._last = weakref.ref(update)
            return update


def notify_change(callback: Optional[Callable[[MirrorUpdate], object]], update: MirrorUpdate, who: str) -> None:
    """Call a mirror's ``on_change`` listener; what it raises is logged, never passed on."""
    if callback is None:
        return
    try:
        callback(update)
    except Exception:
        logging.getLogger("pieces_os_client.stream").exception("%s: the on_change callback raised", who)


class MirrorView:
    """What both mirrors show of their :class:`MirrorState` (``self._state``).

    Each read takes the state's lock (the sync mirror's; none on a loop), so a reader in
    another thread never sees a change half made.
    """

    _state: MirrorState

    def snapshot(self) -> FrozenSet[str]:
        """The current set of conversation ids (an immutable copy)."""
        return self._state.frozen()

    @property
    def ids(self) -> FrozenSet[str]:
        """Same as :meth:`snapshot`."""
        return self._state.frozen()

    @property
    def version(self) -> int:
        """Increases by one with every applied change or snapshot."""
        return self._state.version

    @property
    def ready(self) -> bool:
        """``True`` once the first snapshot arrived (before that the set is just empty)."""
        return self._state.snapshots > 0

    @property
    def resyncs(self) -> int:
        """Snapshots applied after the first one, i.e. how often the set was rebuilt after a reconnect."""
        return max(0, self._state.snapshots - 1)

    def __contains__(self, conversation_id: object) -> bool:
        return self._state.contains(conversation_id)

    def __len__(self) -> int:
        return self._state.count()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._state.frozen()))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self)} ids version={self.version}>"
