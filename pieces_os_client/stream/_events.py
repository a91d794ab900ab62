"""What a stream hands its consumer (defined in :mod:`pieces_os_client._core.events`, shared with
the asyncio stream)."""

from __future__ import annotations

from pieces_os_client._core.events import (
    CloseCallback,
    ErrorCallback,
    EventCallback,
    MessageCallback,
    MirrorUpdate,
    StreamEvent,
)

__all__ = ["CloseCallback", "ErrorCallback", "EventCallback", "MessageCallback", "MirrorUpdate", "StreamEvent"]
