"""What a stream hands its consumer: :class:`StreamEvent`, :class:`MirrorUpdate`, callback types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, FrozenSet, List, Optional, Tuple, Union

if TYPE_CHECKING:
    from pieces_os_client._core.identifiers import MirrorState
    from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers

__all__ = ["CloseCallback", "ErrorCallback", "EventCallback", "MessageCallback", "MirrorUpdate", "StreamEvent"]

# Callbacks may return anything; the value is ignored. Besides this SDK's style, the official
# style of websocket-client's WebSocketApp is accepted, with the stream in place of ``ws``:
# on_message(stream, message), on_error(stream, error), on_close(stream, code, reason).
MessageCallback = Union[Callable[["StreamedIdentifiers"], object], Callable[[Any, "StreamedIdentifiers"], object]]
EventCallback = Callable[["StreamEvent"], object]
ErrorCallback = Union[Callable[[Exception], object], Callable[[Any, Exception], object]]
CloseCallback = Union[Callable[[], object], Callable[[Any, Optional[int], Optional[str]], object]]


@dataclass(frozen=True)
class StreamEvent:
    """One message from the stream, with where it sits in the connection's life.

    :ivar message: the parsed message.
    :ivar snapshot: ``True`` for the first message of a connection: the server's complete
        list of conversations at that moment, which replaces whatever the consumer knew.
    :ivar connection: 1 for the first connection, 2 after the first reconnect, and so on.
    :ivar received_at: ``time.monotonic()`` when the message was read off the socket.
    """

    message: StreamedIdentifiers
    snapshot: bool
    connection: int
    received_at: float

    @property
    def resync(self) -> bool:
        """``True`` for the snapshot that follows a reconnect (changes may have been missed)."""
        return self.snapshot and self.connection > 1

    @property
    def ids(self) -> List[str]:
        """Ids of the conversations this message lists as existing (new, changed or, in a
        snapshot, simply present), in message order."""
        return [ident.conversation.id for ident in self.message.iterable or () if
                ident.conversation is not None and not ident.deleted]

    @property
    def deleted_ids(self) -> List[str]:
        """Ids of the conversations this message reports as deleted, in message order."""
        return [ident.conversation.id for ident in self.message.iterable or () if
                ident.conversation is not None and ident.deleted]


class MirrorUpdate:
    """What one stream message changed in a :class:`ConversationIdsMirror`. Immutable.

    :ivar ids: every conversation id after the change (a ``frozenset``, built when first read:
        a change costs what the message names, not the size of the set).
    :ivar added: ids that were not there before.
    :ivar removed: ids that are gone.
    :ivar snapshot: the message was a full snapshot that replaced the set.
    :ivar resync: the snapshot followed a reconnect.
    :ivar version: the mirror's version after the change.
    """

    __slots__ = ("__weakref__", "_ids", "_source", "added", "removed", "resync", "snapshot", "version")

    _ids: Optional[FrozenSet[str]]
    _source: Optional[MirrorState]
    added: FrozenSet[str]
    removed: FrozenSet[str]
    snapshot: bool
    resync: bool
    version: int

    def __init__(
        self,
        ids: Optional[FrozenSet[str]] = None,
        added: FrozenSet[str] = frozenset(),
        removed: FrozenSet[str] = frozenset(),
        snapshot: bool = False,
        resync: bool = False,
        version: int = 0,
        *,
        source: Optional[MirrorState] = None,
    ) -> None:
        if ids is None and source is None:
            raise TypeError("MirrorUpdate needs ids")
        init = object.__setattr__
        init(self, "_ids", None if ids is None else frozenset(ids))
        init(self, "_source", source)
        init(self, "added", frozenset(added))
        init(self, "removed", frozenset(removed))
        init(self, "snapshot", snapshot)
        init(self, "resync", resync)
        init(self, "version", version)

    @property
    def ids(self) -> FrozenSet[str]:
        ids = self._ids
        if ids is not None:
            return ids
        assert self._source is not None
        return self._source.ids_of(self)

    def _keep(self, ids: FrozenSet[str]) -> None:
        """The set after this change, built by the mirror (under its lock) before the next one."""
        object.__setattr__(self, "_ids", ids)
        object.__setattr__(self, "_source", None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"MirrorUpdate is immutable (cannot set {name!r})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"MirrorUpdate is immutable (cannot delete {name!r})")

    def _key(self) -> Tuple[FrozenSet[str], FrozenSet[str], FrozenSet[str], bool, bool, int]:
        return self.ids, self.added, self.removed, self.snapshot, self.resync, self.version

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MirrorUpdate):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> Tuple[Any, ...]:  # pickle and copy: by value, the set built
        return MirrorUpdate, (self.ids, self.added, self.removed, self.snapshot, self.resync, self.version)

    def __repr__(self) -> str:
        return (f"MirrorUpdate(ids={self.ids!r}, added={self.added!r}, removed={self.removed!r}, "
                f"snapshot={self.snapshot!r}, resync={self.resync!r}, version={self.version!r})")
