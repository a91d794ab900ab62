"""Cancelling an asyncio call in every phase (connecting, waiting for the answer, reading the
body, sleeping between retries, waiting for a pool slot) sends nothing more and loses no slot.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from testkit.aio import IDENTIFIERS, cancelled_after, config, run, unanswered_listener

from pieces_os_client import ApiConnectionError
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.emulator import Emulator


async def all_slots_usable(client: AsyncApiClient, emu: Emulator, size: int) -> None:
    """``size`` calls held by the server at once all get through: no slot was lost."""
    emu.delay_next(0.5, count=size, path=IDENTIFIERS)
    api = AsyncConversationsApi(client)
    started = time.monotonic()
    await asyncio.gather(*(api.conversations_identifiers_snapshot(_request_timeout=20) for _ in range(size)))
    assert time.monotonic() - started < 0.5 * size - 0.1 or size == 1


def test_cancellation_in_every_phase_sends_nothing_more_and_loses_no_slot(emu: Emulator) -> None:
    async def main() -> None:
        cfg = config(emu.url, connection_pool_maxsize=2)
        async with AsyncApiClient(cfg) as client:
            api = AsyncConversationsApi(client)
            # waiting for the answer
            emu.delay_next(2.0, path=IDENTIFIERS)
            await cancelled_after(0.2, api.conversations_identifiers_snapshot())
            # reading the body
            emu.stall_body_next(2.0, after_bytes=3, path=IDENTIFIERS)
            await cancelled_after(0.2, api.conversations_identifiers_snapshot())
            # an unread response whose read is cancelled
            emu.stall_body_next(2.0, after_bytes=3, path=IDENTIFIERS)
            unread = await api.conversations_identifiers_snapshot_without_preload_content()
            await cancelled_after(0.2, unread.read())
            unread.release()
            # sleeping between retries
            emu.fail_next(503, retry_after=5, path=IDENTIFIERS)
            await cancelled_after(0.3, api.conversations_identifiers_snapshot())
            # waiting for a pool slot
            emu.delay_next(1.0, count=2, path=IDENTIFIERS)
            held = [asyncio.ensure_future(api.conversations_identifiers_snapshot()) for _ in range(2)]
            await asyncio.sleep(0.2)
            await cancelled_after(0.1, api.conversations_identifiers_snapshot())
            await asyncio.gather(*held)
            assert emu.request_count("GET", IDENTIFIERS) == 6  # not one attempt more
            assert client._slots.free == 2
            await all_slots_usable(client, emu, 2)

    run(main())


def test_cancelling_while_connecting_gives_the_slot_back() -> None:
    async def main() -> None:
        with unanswered_listener() as url:
            async with AsyncApiClient(config(url, connection_pool_maxsize=1, max_retries=0)) as client:
                task = asyncio.ensure_future(client.request("GET", url + IDENTIFIERS))
                await asyncio.sleep(0.2)
                task.cancel()
                with pytest.raises((asyncio.CancelledError, ApiConnectionError)):
                    await task
                assert client._slots.free == 1

    run(main())


def test_random_cancels_under_contention_lose_no_slot(emu: Emulator) -> None:
    rng = random.Random(12)

    async def main() -> None:
        async with AsyncApiClient(config(emu.url, connection_pool_maxsize=2, pool_timeout=30)) as client:
            api = AsyncConversationsApi(client)
            emu.delay_next(0.05, count=None, path=IDENTIFIERS)
            tasks = [asyncio.ensure_future(api.conversations_identifiers_snapshot()) for _ in range(50)]
            for _ in range(20):
                await asyncio.sleep(rng.uniform(0, 0.05))
                rng.choice(tasks).cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            emu.clear_faults()
            finished = sum(1 for outcome in outcomes if not isinstance(outcome, BaseException))
            cancelled = sum(1 for outcome in outcomes if isinstance(outcome, asyncio.CancelledError))
            assert finished + cancelled == 50, outcomes
            assert emu.request_count("GET", IDENTIFIERS) <= 50
            assert client._slots.free == 2
            await all_slots_usable(client, emu, 2)

    run(main())
