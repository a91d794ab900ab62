"""An asyncio client left unclosed gives one ResourceWarning that names this SDK.

The client is used in a fresh event loop (``testkit.aio.run``); warnings are errors elsewhere
in the suite (pyproject.toml), so the test records them itself.
"""

from __future__ import annotations

import gc
import warnings
from typing import Any, Dict

from testkit.aio import config, run

from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.emulator import Emulator


def test_a_leaked_client_gives_one_resource_warning_naming_this_sdk(emu: Emulator) -> None:
    async def leak() -> AsyncApiClient:
        client = AsyncApiClient(config(emu.url))
        await AsyncConversationsApi(client).conversations_identifiers_snapshot()
        return client

    holder: Dict[str, Any] = {"client": run(leak())}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        holder.clear()
        gc.collect()
    assert [str(w.message).split(" ")[0] for w in caught] == ["AsyncApiClient"], [str(w.message) for w in caught]
    assert all(w.category is ResourceWarning for w in caught)
