"""Many tasks on one asyncio client: the pool is a bound, and a long wait for a slot fails
with the pool timeout, as in the sync client.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio

import pytest
from testkit.aio import RawServer, config, json_answer, run, until

from pieces_os_client import ApiClient, ApiTimeoutError, ConversationsApi
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi


def test_the_pool_is_a_bound_and_a_long_wait_fails_with_pool_timeout() -> None:
    async def main() -> None:
        async with RawServer(lambda head: json_answer(), delay=0.02) as server:
            async with AsyncApiClient(config(server.url, connection_pool_maxsize=4)) as client:
                api = AsyncConversationsApi(client)
                results = await asyncio.gather(*(api.conversations_identifiers_snapshot() for _ in range(100)))
                assert len(results) == 100
            assert server.most_open <= 4 and server.connections <= 4, (server.most_open, server.connections)
        # the first call's answer is held until the second has timed out waiting for the one
        # connection: the wait that times out is the pool's, by construction, not by timing
        release = asyncio.Event()
        async with RawServer(lambda head: json_answer(), hold=release) as slow:
            cfg = config(slow.url, connection_pool_maxsize=1, pool_timeout=0.2)
            with ApiClient(cfg) as sync_client:
                first = asyncio.ensure_future(asyncio.to_thread(
                    ConversationsApi(sync_client).conversations_identifiers_snapshot))
                await until(lambda: len(slow.heads) == 1)  # the first call holds the only connection
                with pytest.raises(ApiTimeoutError) as sync_wait:
                    await asyncio.to_thread(ConversationsApi(sync_client).conversations_identifiers_snapshot)
                release.set()
                await first
            release.clear()
            async with AsyncApiClient(cfg) as client:
                api = AsyncConversationsApi(client)
                held = asyncio.ensure_future(api.conversations_identifiers_snapshot())
                await until(lambda: len(slow.heads) == 2)
                with pytest.raises(ApiTimeoutError) as wait:
                    await api.conversations_identifiers_snapshot()
                release.set()
                await held
            assert len(slow.heads) == 2  # the calls that timed out were never sent
            assert str(wait.value) == str(sync_wait.value)
            assert "pool_timeout=0.2" in str(wait.value) and "connection_pool_maxsize=1" in str(wait.value)

    run(main())
