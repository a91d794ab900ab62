"""One asyncio client across event loops: loops in turn, another loop while open, and uvloop.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``, or a uvloop loop),
whose exception handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict

import pytest
from testkit.aio import IDENTIFIERS, cancelled_once_seen, config, run, until

from pieces_os_client import ApiValueError
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.emulator import Emulator


def test_two_loops_in_turn_and_another_loop_while_open(emu: Emulator) -> None:
    held: Dict[str, Any] = {"client": AsyncApiClient(config(emu.url))}
    held["api"] = AsyncConversationsApi(held["client"])

    async def use(close: bool) -> None:
        assert (await held["api"].conversations_identifiers_snapshot()).iterable == []
        if close:
            await held["client"].aclose()

    run(use(True))
    run(use(True))
    run(use(False))

    async def other_loop() -> None:
        with pytest.raises(ApiValueError, match="another event loop"):
            await held["api"].conversations_identifiers_snapshot()

    run(other_loop())
    # the first loop is gone: aclose() in another one closes the sockets directly, no warning
    run(held["client"].aclose())
    run(use(True))


def test_uvloop_works_when_installed() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with Emulator(port=0) as emu, AsyncApiClient(config(emu.url, connection_pool_maxsize=2)) as client:
            api = AsyncConversationsApi(client)
            created = await api.conversations_create_specific_conversation()
            assert [c.id for c in (await api.conversations_snapshot()).iterable] == [created.id]
            emu.break_next("hang", path=IDENTIFIERS)  # cancelled once the server has the request
            await cancelled_once_seen(emu, 1, api.conversations_identifiers_snapshot())
            assert client._slots.free == 2
            # the stream waits on uvloop's reader callbacks and timers: messages, a cancelled
            # read that loses nothing and leaves nothing registered, a keep-alive ping
            async with api.conversations_stream_identifiers(ping_interval=0.2, ping_timeout=5) as stream:
                events = stream.events()
                assert (await events.__anext__()).ids == [created.id]
                heard = stream._session.last_rx
                reading = asyncio.ensure_future(events.__anext__())
                # nothing is created meanwhile, so what the stream hears next is a pong
                await until(lambda: stream._session.last_rx > heard or reading.done())
                assert not reading.done()
                reading.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await reading
                assert stream._wire is not None and not asyncio.get_running_loop().remove_reader(stream._wire.fd)
                second = await api.conversations_create_specific_conversation()
                assert (await asyncio.wait_for(events.__anext__(), 5)).ids == [second.id]
                assert stream.connected and stream.reconnects == 0

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        loop.close()
