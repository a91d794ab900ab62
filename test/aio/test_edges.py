"""The asyncio transport's edges: stale keep-alive connections, the response head's deadline,
dropped unread responses, and the smaller refusals (a sync client or configuration where an async
client belongs, a SOCKS proxy).

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, Awaitable

import pytest
from testkit.aio import IDENTIFIERS, RawServer, config, json_answer, run, until

from pieces_os_client import ApiClient, ApiConnectionError, ApiTimeoutError, ApiTypeError, ApiValueError, Configuration
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.emulator import Emulator


def test_the_api_takes_only_an_async_client() -> None:
    with ApiClient(Configuration(host="http://127.0.0.1:9")) as sync_client, pytest.raises(
        ApiTypeError, match="AsyncApiClient, not ApiClient"
    ):
        AsyncConversationsApi(sync_client)  # type: ignore[arg-type]
    with pytest.raises(ApiTypeError, match="not Configuration"):
        AsyncConversationsApi(Configuration(host="http://127.0.0.1:9"))  # type: ignore[arg-type]


def test_a_stale_keep_alive_connection_is_resent_even_for_a_create() -> None:
    async def main() -> None:
        async with RawServer(lambda head: json_answer(b"{}"), drop_reused=True) as server:
            async with AsyncApiClient(config(server.url, max_retries=0)) as client:
                for _ in range(3):
                    response = await client.request("POST", server.url + "/conversations/create", body=b"{}")
                    assert response.data == b"{}"
            # every create was answered once; each reuse was dropped unanswered and sent again
            assert (len(server.heads), server.dropped, server.connections) == (3, 2, 3)
        async with RawServer(lambda head: json_answer(b"{}"), close_after=True) as fresh_only, AsyncApiClient(
            config(fresh_only.url, max_retries=0)
        ) as client:
            await client.request("POST", fresh_only.url + "/conversations/create", body=b"{}")
        async with RawServer(lambda head: b"", close_after=True) as silent:
            async with AsyncApiClient(config(silent.url, max_retries=0)) as client:
                # a fresh connection closed without an answer: never sent again
                with pytest.raises(ApiConnectionError, match="broke during POST"):
                    await client.request("POST", silent.url + "/conversations/create", body=b"{}")
            assert len(silent.heads) == 1

    run(main())


def test_a_reused_connection_closed_in_the_middle_of_a_head_is_not_resent() -> None:
    """Part of an answer arrived: the server read the request, so a create is not sent again."""

    async def main() -> None:
        partial = b"HTTP/1.1 200 OK\r\nContent-Type: appl"
        async with RawServer(lambda head: json_answer(b"{}"), drop_reused=True, reused_reply=partial) as server:
            async with AsyncApiClient(config(server.url, max_retries=0)) as client:
                assert (await client.request("POST", server.url + "/conversations/create", body=b"{}")).data == b"{}"
                with pytest.raises(ApiConnectionError):
                    await client.request("POST", server.url + "/conversations/create", body=b"{}")
            assert (len(server.heads), server.dropped, server.connections) == (1, 1, 1)  # no second send

    run(main())


def test_head_deadlines_share_one_timer_and_a_shorter_one_keeps_its_own(emu: Emulator) -> None:
    async def timed_out(call: Awaitable[Any]) -> float:
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError):
            await call
        return time.monotonic() - started

    async def main() -> None:
        async with AsyncApiClient(config(emu.url, read_timeout=1.5, max_retries=0,
                                         connection_pool_maxsize=4)) as client:
            api = AsyncConversationsApi(client)
            # the server answers after 4 s: every deadline here fires well before that, and the
            # checks are on order and on lower bounds, which a slow machine cannot break
            emu.delay_next(4.0, count=3, path=IDENTIFIERS)
            began = time.monotonic()
            first = asyncio.ensure_future(timed_out(api.conversations_identifiers_snapshot()))
            await until(lambda: emu.request_count("GET", IDENTIFIERS) >= 1)
            second = asyncio.ensure_future(timed_out(api.conversations_identifiers_snapshot()))
            await until(lambda: emu.request_count("GET", IDENTIFIERS) >= 2)
            # ends before the two queued deadlines: it is not held up behind them
            short = await timed_out(api.conversations_identifiers_snapshot(_request_timeout=(5, 0.2)))
            assert short > 0.15, short
            assert not first.done() and not second.done()
            waits = await asyncio.gather(first, second)
            assert all(wait > 1.45 for wait in waits), waits
            # while one head is held, calls that finish behind it do not pile up in the queue
            emu.delay_next(30.0, path=IDENTIFIERS)
            client.configuration.read_timeout = 60
            held = asyncio.ensure_future(api.conversations_identifiers_snapshot())
            await until(lambda: emu.request_count("GET", IDENTIFIERS) >= 4)
            for _ in range(200):
                await api.conversations_identifiers_snapshot()
            assert not held.done()
            assert client._heads is not None and len(client._heads._queue) <= 2 * 4 + 64
            held.cancel()
            await asyncio.gather(held, return_exceptions=True)
            assert client._slots.free == 4
            emu.clear_faults()
            # let the first three answers go before the emulator is reset
            await asyncio.sleep(max(0.0, began + 4.1 - time.monotonic()))

    run(main())


def test_a_waiting_call_gets_the_slot_of_an_unread_response_dropped_meanwhile(emu: Emulator) -> None:
    async def main() -> None:
        # pool_timeout is a minute: the waiting call is answered only if the waiters' timer takes
        # the dropped response's slot back (every quarter second); were it not, it would fail at
        # its pool_timeout, long after the 20 s bound below
        async with AsyncApiClient(config(emu.url, connection_pool_maxsize=1, pool_timeout=60)) as client:
            api = AsyncConversationsApi(client)
            unread = await api.conversations_identifiers_snapshot_without_preload_content()
            waiting = asyncio.ensure_future(api.conversations_identifiers_snapshot())
            await until(lambda: len(client._slots._waiters) == 1)  # it waits for the only slot
            assert not waiting.done() and emu.request_count("GET", IDENTIFIERS) == 1
            del unread
            gc.collect()
            # within 20 s: the timer took the slot back, not the pool_timeout's failure
            assert (await asyncio.wait_for(waiting, 20)).iterable == []
            assert client._slots.free == 1 and not client._slots._waiters

    run(main())


def test_an_unread_response_dropped_gives_its_slot_back(emu: Emulator) -> None:
    async def main() -> None:
        async with AsyncApiClient(config(emu.url, connection_pool_maxsize=1, pool_timeout=5)) as client:
            api = AsyncConversationsApi(client)
            unread = await api.conversations_identifiers_snapshot_without_preload_content()
            del unread
            gc.collect()
            assert (await api.conversations_identifiers_snapshot()).iterable == []

    run(main())


def test_a_socks_proxy_is_refused_clearly() -> None:
    async def main() -> None:
        cfg = config("http://127.0.0.1:9", proxy="socks5://user:secret@127.0.0.1:1080")
        async with AsyncApiClient(cfg) as client:
            with pytest.raises(ApiValueError, match=r"http:// and https:// proxies only.*\*\*\*@") as caught:
                await AsyncConversationsApi(client).conversations_identifiers_snapshot()
            assert "secret" not in str(caught.value)

    run(main())
