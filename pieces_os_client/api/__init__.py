"""API classes (one per tag of the API document)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pieces_os_client.api.conversations_api import ConversationsApi

__all__ = ["ConversationsApi"]


def __getattr__(name: str) -> Any:
    if name == "ConversationsApi":
        from pieces_os_client.api.conversations_api import ConversationsApi

        return ConversationsApi
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
