"""Cancelling an asyncio call in every phase (connecting, waiting for the answer, reading the
body, sleeping between retries, waiting for a pool slot) sends nothing more and loses no slot.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
import random

import pytest
from testkit.aio import IDENTIFIERS, cancelled_once_seen, config, run, unanswered_listener, until

from pieces_os_client import ApiConnectionError
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.emulator import Emulator


async def all_slots_usable(client: AsyncApiClient, emu: Emulator, size: int) -> None:
    """``size`` calls reach the server at once, while it answers none of them: no slot was lost.

    The server holds each of them (30 s), so all ``size`` being in its log proves each had a
    slot of its own at the same time, with no clock involved; then they are cancelled, and one
    more call goes through.
    """
    emu.delay_next(30.0, count=size, path=IDENTIFIERS)
    api = AsyncConversationsApi(client)
    before = emu.request_count("GET", IDENTIFIERS)
    calls = [asyncio.ensure_future(api.conversations_identifiers_snapshot()) for _ in range(size)]
    await until(lambda: emu.request_count("GET", IDENTIFIERS) - before == size or any(c.done() for c in calls))
    assert not any(call.done() for call in calls)
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    emu.clear_faults()
    assert (await api.conversations_identifiers_snapshot()).iterable is not None


def test_cancellation_in_every_phase_sends_nothing_more_and_loses_no_slot(emu: Emulator) -> None:
    async def main() -> None:
        cfg = config(emu.url, connection_pool_maxsize=2)
        async with AsyncApiClient(cfg) as client:
            api = AsyncConversationsApi(client)
            # each cancel comes once the emulator has the call's request (counted), so it lands
            # in the phase named, never before the request was sent, however busy the machine
            # waiting for the answer
            emu.delay_next(30.0, path=IDENTIFIERS)
            await cancelled_once_seen(emu, 1, api.conversations_identifiers_snapshot())
            # reading the body
            emu.stall_body_next(30.0, after_bytes=3, path=IDENTIFIERS)
            await cancelled_once_seen(emu, 2, api.conversations_identifiers_snapshot())
            # an unread response whose read is cancelled
            emu.stall_body_next(30.0, after_bytes=3, path=IDENTIFIERS)
            unread = await api.conversations_identifiers_snapshot_without_preload_content()
            await cancelled_once_seen(emu, 3, unread.read())
            unread.release()
            # sleeping between retries
            emu.fail_next(503, retry_after=30, path=IDENTIFIERS)
            await cancelled_once_seen(emu, 4, api.conversations_identifiers_snapshot(), settle=0.3)
            # waiting for a pool slot: both slots held by calls the emulator keeps waiting
            emu.delay_next(30.0, count=2, path=IDENTIFIERS)
            held = [asyncio.ensure_future(api.conversations_identifiers_snapshot()) for _ in range(2)]
            await until(lambda: emu.request_count("GET", IDENTIFIERS) >= 6)
            await cancelled_once_seen(emu, 6, api.conversations_identifiers_snapshot(), settle=0.1)
            for task in held:  # then the two holding calls, mid-answer
                task.cancel()
            await asyncio.gather(*held, return_exceptions=True)
            emu.clear_faults()
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
