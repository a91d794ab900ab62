"""The asyncio client: ``AsyncApiClient`` and ``AsyncConversationsApi`` (HTTP/1.1 on sockets of its own).

Needs no library beyond the SDK's own dependencies. Every name is loaded on first use, so
``import pieces_os_client.aio`` costs nothing; see docs/async.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:
    from pieces_os_client.aio._api import AsyncConversationsApi as AsyncConversationsApi
    from pieces_os_client.aio._client import AsyncApiClient as AsyncApiClient
    from pieces_os_client.aio._client import AsyncResponse as AsyncResponse

_LOCATIONS: Dict[str, str] = {
    "AsyncApiClient": "pieces_os_client.aio._client",
    "AsyncResponse": "pieces_os_client.aio._client",
    "AsyncConversationsApi": "pieces_os_client.aio._api",
    "AsyncIdentifiersStream": "pieces_os_client.aio._stream",
    "AsyncConversationIdsMirror": "pieces_os_client.aio._mirror",
}

__all__: List[str] = list(_LOCATIONS)


def __getattr__(name: str) -> Any:
    module_name = _LOCATIONS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'pieces_os_client.aio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted({*globals(), *__all__})
