"""The emulator on the caller's event loop: ``astart``/``astop`` and ``async with``.

Each test runs its own loop with ``asyncio.run(..., debug=True)`` (no pytest-asyncio), the
emulator and an aiohttp client in that one loop. The suite turns warnings into errors, so an
unclosed transport, session or socket fails the test that leaked it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Dict, List, TypeVar

import aiohttp
import pytest
from testkit.emulator import DEMO_ASSET

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.emulator import Emulator

T = TypeVar("T")
STREAM = "/conversations/stream/identifiers"


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` in a fresh loop in debug mode, then collect garbage so leaks warn here."""
    result = asyncio.run(asyncio.wait_for(main(), 30), debug=True)
    gc.collect()
    return result


def emulator_threads() -> List[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("pieces-os-emulator:")]


async def next_message(ws: aiohttp.ClientWebSocketResponse[bool]) -> Dict[str, Any]:
    message = await asyncio.wait_for(ws.receive(), 5)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    result: Dict[str, Any] = json.loads(message.data)
    return result


def test_async_with_serves_on_the_callers_loop_with_no_thread_of_its_own() -> None:
    async def main() -> None:
        before = emulator_threads()
        async with Emulator() as emu, aiohttp.ClientSession() as session:
            assert emu.running and emulator_threads() == before
            async with session.get(emu.url + "/.well-known/health") as reply:
                assert (reply.status, await reply.text()) == (200, "ok")
            async with session.post(emu.url + f"/conversations/create/from_asset/{DEMO_ASSET}") as reply:
                created = (await reply.json())["conversation"]["id"]
            async with session.get(emu.url + "/conversations/identifiers") as reply:
                assert [item["id"] for item in (await reply.json())["iterable"]] == [created]
        assert not emu.running
        with pytest.raises(RuntimeError, match="not running"):
            emu.port  # noqa: B018

    run(main)


def test_every_method_works_from_inside_the_emulators_own_loop() -> None:
    """Methods that hop onto the emulator's loop run at once when already on it (no deadlock)."""

    async def main() -> None:
        async with Emulator() as emu, aiohttp.ClientSession() as session:
            async with session.ws_connect(emu.ws_url + STREAM) as ws:
                assert await next_message(ws) == {"iterable": []}
                new_id = emu.create_conversation({"name": "made on the loop"})
                assert await next_message(ws) == {"iterable": [{"conversation": {"id": new_id}}]}
                emu.delete_conversation(new_id)
                assert await next_message(ws) == {"iterable": [{"conversation": {"id": new_id}, "deleted": True}]}
                other = emu.create_conversation(from_asset=DEMO_ASSET)
                assert await next_message(ws) == {"iterable": [{"conversation": {"id": other}}]}
                emu.reset()
                assert await next_message(ws) == {"iterable": [{"conversation": {"id": other}, "deleted": True}]}
                assert emu.websocket_count == 1
                assert emu.drop_websockets() == 1
                message = await asyncio.wait_for(ws.receive(), 5)
                assert message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
            emu.fail_next(503, path="/.well-known/health")
            async with session.get(emu.url + "/.well-known/health") as reply:
                assert reply.status == 503
            assert emu.request_count("GET", "/.well-known/health") == 1
            with pytest.raises(RuntimeError, match=r"await emulator\.astop\(\)"):
                emu.stop()  # would block the loop it has to wait for
            assert emu.running

    run(main)


def test_methods_called_from_other_threads_hop_onto_the_loop() -> None:
    async def main() -> None:
        async with Emulator() as emu:
            new_id = await asyncio.to_thread(emu.create_conversation, {"name": "from a thread"})
            assert await asyncio.to_thread(emu.conversation_ids) == [new_id]
            # the SDK's own (blocking) client, in a thread, against the emulator in this loop
            with ApiClient(Configuration(host=emu.url)) as client:
                snapshot = await asyncio.to_thread(ConversationsApi(client).conversations_identifiers_snapshot)
            assert [item.id for item in snapshot.iterable] == [new_id]
            await asyncio.to_thread(emu.reset)
            assert emu.conversation_ids() == []

    run(main)


def test_astop_is_prompt_with_requests_held_and_sockets_open_and_leaves_no_task() -> None:
    async def main() -> None:
        already = asyncio.all_tasks()  # this one, and run()'s wait_for around it
        emu = await Emulator().astart()
        assert await emu.astart() is emu  # already running: nothing more
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(emu.ws_url + STREAM)
            assert await next_message(ws) == {"iterable": []}
            emu.break_next("hang", path="/conversations")
            emu.stall_body_next(60, after_bytes=3, path="/conversations/identifiers")
            hung = asyncio.ensure_future(session.get(emu.url + "/conversations"))
            stalled = await session.get(emu.url + "/conversations/identifiers")
            assert stalled.status == 200
            reading = asyncio.ensure_future(stalled.read())
            await asyncio.sleep(0.2)
            assert not hung.done() and not reading.done()
            loop = asyncio.get_running_loop()
            started = loop.time()
            await emu.astop()
            assert loop.time() - started < 3  # not the stall's 60 s
            await emu.astop()  # idempotent
            assert not emu.running
            closing = await asyncio.wait_for(ws.receive(), 5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closing
            assert ws.close_code in (1001, 1006, None)
            await ws.close()
            with pytest.raises(aiohttp.ClientError):
                await asyncio.wait_for(reading, 5)
            stalled.release()
            try:
                reply = await asyncio.wait_for(hung, 5)
            except aiohttp.ClientError:
                pass
            else:  # answered as the emulator stopped
                assert reply.status == 503
                reply.release()
        leftover = asyncio.all_tasks() - already
        assert leftover == set()

    run(main)


def test_the_callers_exception_handler_is_used_and_given_back() -> None:
    seen: List[str] = []

    def handler(loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        seen.append(context["message"])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(handler)
        async with Emulator():
            loop.call_exception_handler({"message": "not the emulator's business"})
        assert loop.get_exception_handler() is handler
        loop.set_exception_handler(None)

    run(main)
    assert seen == ["not the emulator's business"]


def test_astop_on_another_loop_and_on_a_threaded_emulator() -> None:
    threaded = Emulator().start()
    its_thread = f"pieces-os-emulator:{threaded.port}"
    assert its_thread in emulator_threads()
    try:
        run(threaded.astop)  # stops its thread without blocking this loop
        assert not threaded.running and its_thread not in emulator_threads()
    finally:
        threaded.stop()

    # an emulator serving on one loop (in a thread here), stopped from a coroutine on another
    ready = threading.Event()
    emu = Emulator()
    done: List[BaseException] = []

    async def serve() -> None:
        await emu.astart()
        ready.set()
        while emu.running:
            await asyncio.sleep(0.02)

    def serve_in_thread() -> None:
        try:
            asyncio.run(serve())
        except BaseException as exc:  # pragma: no cover - reported below
            done.append(exc)

    thread = threading.Thread(target=serve_in_thread)
    thread.start()
    try:
        assert ready.wait(10)

        async def stop_from_here() -> None:
            assert emu.conversation_ids() == []
            await emu.astop()

        run(stop_from_here)
    finally:
        emu.stop()
        thread.join(10)
    assert not thread.is_alive() and done == []


def test_a_busy_port_fails_astart_and_leaves_nothing_behind() -> None:
    async def main() -> None:
        async with Emulator() as busy:
            taken = Emulator(port=busy.port)
            with pytest.raises(OSError):
                await taken.astart()
            assert not taken.running
            await taken.astop()  # nothing to stop

    run(main)


@pytest.mark.parametrize("how", ["astart", "start"])
def test_one_code_path_serves_both_ways(how: str) -> None:
    """The threaded start runs the same coroutine: the same answers either way."""

    async def fetch(emu: Emulator) -> Dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            async with session.head(emu.url + "/.well-known/health") as reply:
                head = (reply.status, reply.headers["Content-Length"])
            async with session.get(emu.url + "/__emulator__/state") as reply:
                return {"head": head, "state": await reply.json()}

    async def main() -> Dict[str, Any]:
        if how == "astart":
            async with Emulator(seed_conversations=1) as emu:
                return await fetch(emu)
        with Emulator(seed_conversations=1) as emu:
            return await fetch(emu)

    seen = run(main)
    assert seen["head"] == (200, "2")
    assert len(seen["state"]["conversations"]) == 1 and seen["state"]["websockets"] == 0


def test_one_emulator_started_and_stopped_both_ways_in_turn() -> None:
    emu = Emulator()
    with emu:
        first = emu.create_conversation({"name": "kept across restarts"})

    async def on_a_loop() -> None:
        async with emu:
            assert emu.running and emu.conversation_ids() == [first]
            async with aiohttp.ClientSession() as session, session.get(emu.url + "/conversations/identifiers") as reply:
                assert [item["id"] for item in (await reply.json())["iterable"]] == [first]

    run(on_a_loop)
    assert not emu.running
    with emu:
        assert emu.running and emu.conversation_ids() == [first]
    assert not emu.running
