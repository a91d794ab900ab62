"""The identifiers stream's rules that do not depend on how bytes are read: parsing a message
into a :class:`StreamEvent`, the texts of the errors a stream reports, and the set arithmetic
of a conversation-ids mirror. Shared by the sync and the asyncio stream and mirror; no I/O.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, FrozenSet, Iterator, Optional, Union

from pieces_os_client._core.reconnect import ReconnectPolicy
from pieces_os_client._core.text import one_line, preview

if TYPE_CHECKING:
    from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers
    from pieces_os_client.stream._events import MirrorUpdate, StreamEvent

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

    Not thread-safe by itself: the sync mirror holds its lock around it, the asyncio one runs on
    one loop.
    """

    def __init__(self) -> None:
        self.ids: FrozenSet[str] = frozenset()
        self.version = 0
        self.snapshots = 0

    def apply(self, event: StreamEvent) -> Optional[MirrorUpdate]:
        """Apply one event: a snapshot replaces the set, other messages add and remove ids.

        Returns what changed; ``None`` when nothing did (a snapshot always counts as a change).
        """
        from pieces_os_client.stream._events import MirrorUpdate

        before = self.ids
        if event.snapshot:
            after = frozenset(event.ids)
            self.snapshots += 1
        else:
            current = set(before)
            for ident in event.message.iterable or ():
                if ident.conversation is None:
                    continue
                if ident.deleted:
                    current.discard(ident.conversation.id)
                else:
                    current.add(ident.conversation.id)
            after = frozenset(current)
        if after == before and not event.snapshot:
            return None
        self.ids = after
        self.version += 1
        return MirrorUpdate(
            ids=after, added=after - before, removed=before - after,
            snapshot=event.snapshot, resync=event.resync, version=self.version,
        )


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

    Each value is read in one step (the state swaps in a new frozenset, never changes one), so
    these need no lock.
    """

    _state: MirrorState

    def snapshot(self) -> FrozenSet[str]:
        """The current set of conversation ids (an immutable copy)."""
        return self._state.ids

    @property
    def ids(self) -> FrozenSet[str]:
        """Same as :meth:`snapshot`."""
        return self._state.ids

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
        return conversation_id in self._state.ids

    def __len__(self) -> int:
        return len(self._state.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._state.ids))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self)} ids version={self.version}>"
