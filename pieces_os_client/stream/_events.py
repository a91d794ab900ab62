"""What a stream hands its consumer: :class:`StreamEvent`, :class:`MirrorUpdate`, callback types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, FrozenSet, List, Optional, Union

if TYPE_CHECKING:
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


@dataclass(frozen=True)
class MirrorUpdate:
    """What one stream message changed in a :class:`ConversationIdsMirror`.

    :ivar ids: every conversation id after the change.
    :ivar added: ids that were not there before.
    :ivar removed: ids that are gone.
    :ivar snapshot: the message was a full snapshot that replaced the set.
    :ivar resync: the snapshot followed a reconnect.
    :ivar version: the mirror's version after the change.
    """

    ids: FrozenSet[str]
    added: FrozenSet[str]
    removed: FrozenSet[str]
    snapshot: bool
    resync: bool
    version: int
