"""Transport failures for the asyncio client: Pieces OS down, slow or silent, a connection that
never opens, bodies cut short; the timeouts that bound each, compared with the sync client.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from testkit.aio import IDENTIFIERS, config, run, unanswered_listener

from pieces_os_client import ApiClient, ApiConnectionError, ApiTimeoutError, ApiValueError, ConversationsApi
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.emulator import Emulator


def test_refused_connection_message_matches_the_sync_client() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    cfg = config(url, max_retries=0)
    with ApiClient(cfg) as sync_client, pytest.raises(ApiConnectionError) as sync_error:
        ConversationsApi(sync_client).conversations_identifiers_snapshot()

    async def main() -> None:
        async with AsyncApiClient(cfg) as client:
            with pytest.raises(ApiConnectionError) as async_error:
                await AsyncConversationsApi(client).conversations_identifiers_snapshot()
        assert type(async_error.value) is type(sync_error.value)
        head = str(sync_error.value).split(":")[0]
        assert str(async_error.value).startswith(head)
        assert "Start Pieces OS" in str(async_error.value)

    run(main())


def test_errors_name_the_origin_of_each_call_when_one_client_calls_two(emu: Emulator) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}"

    async def main() -> None:
        async with AsyncApiClient(config(emu.url, max_retries=0)) as client:
            assert (await client.request("GET", emu.url + IDENTIFIERS)).status == 200
            with pytest.raises(ApiConnectionError) as other:
                await client.request("GET", refused + IDENTIFIERS)
            assert refused.split("//")[1] in str(other.value) and emu.url.split("//")[1] not in str(other.value)
            assert (await client.request("GET", emu.url + IDENTIFIERS)).status == 200
            with pytest.raises(ApiValueError, match="is not an http:// or https:// URL"):
                await client.request("GET", "ftp://127.0.0.1/x")

    run(main())


def test_a_body_cut_short_is_retried_for_a_get_only(emu: Emulator) -> None:
    async def main() -> None:
        async with AsyncApiClient(config(emu.url)) as client:
            api = AsyncConversationsApi(client)
            emu.break_next("truncated", path=IDENTIFIERS)
            assert (await api.conversations_identifiers_snapshot()).iterable == []
            assert emu.request_count("GET", IDENTIFIERS) == 2
            emu.break_next("truncated", path="/conversations/create")
            with pytest.raises(ApiConnectionError, match="broke while reading the response body"):
                await api.conversations_create_specific_conversation()
            assert emu.request_count("POST", "/conversations/create") == 1

    run(main())


def test_read_timeout_and_request_timeout_match_the_sync_client(emu: Emulator) -> None:
    # the server never answers (or stalls its body for a minute, ended when the client hangs
    # up): only the client's own timeouts can end these calls, however slow the machine
    cfg = config(emu.url, read_timeout=0.3, max_retries=0)
    with ApiClient(cfg) as sync_client:
        sync_api = ConversationsApi(sync_client)
        emu.break_next("hang", path=IDENTIFIERS)
        with pytest.raises(ApiTimeoutError) as sync_read:
            sync_api.conversations_identifiers_snapshot()
        emu.stall_body_next(60, after_bytes=5, path=IDENTIFIERS)
        with pytest.raises(ApiTimeoutError) as sync_total:
            sync_api.conversations_identifiers_snapshot(_request_timeout=0.4)
        emu.break_next("hang", path=IDENTIFIERS)
        with pytest.raises(ApiTimeoutError) as sync_head_total:
            sync_api.conversations_identifiers_snapshot(_request_timeout=0.4)

    async def main() -> None:
        async with AsyncApiClient(cfg) as client:
            api = AsyncConversationsApi(client)
            emu.break_next("hang", path=IDENTIFIERS)
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError) as read:
                await api.conversations_identifiers_snapshot()
            # not before the read timeout; the upper bound only catches a call that hung
            assert 0.25 < time.monotonic() - started < 20
            emu.stall_body_next(60, after_bytes=5, path=IDENTIFIERS)
            with pytest.raises(ApiTimeoutError) as total:
                await api.conversations_identifiers_snapshot(_request_timeout=0.4)
            emu.break_next("hang", path=IDENTIFIERS)
            with pytest.raises(ApiTimeoutError) as head_total:
                await api.conversations_identifiers_snapshot(_request_timeout=0.4)
            with pytest.raises(ApiValueError, match="_request_timeout must be positive"):
                await api.conversations_identifiers_snapshot(_request_timeout=-1)
        assert str(read.value) == str(sync_read.value)
        assert str(total.value) == str(sync_total.value)
        assert str(head_total.value) == str(sync_head_total.value)

    run(main())


def test_a_body_that_stalls_times_out_at_the_read_timeout_counted_from_the_read(emu: Emulator) -> None:
    # The head is bounded by the head deadline; each read of the rest of the body by the read
    # timeout, counted (as the sync client's socket timeout) from when the body is read.
    # The stalls last a minute (each ends early when the client hangs up): only the read
    # timeout can end these reads, and the bounds below sit far from both.
    cfg = config(emu.url, read_timeout=0.3, max_retries=0)
    with ApiClient(cfg) as sync_client:
        emu.stall_body_next(60, after_bytes=5, path=IDENTIFIERS)
        with pytest.raises(ApiTimeoutError) as sync_body:
            ConversationsApi(sync_client).conversations_identifiers_snapshot()

    async def main() -> None:
        async with AsyncApiClient(cfg) as client:
            api = AsyncConversationsApi(client)
            emu.stall_body_next(60, after_bytes=5, path=IDENTIFIERS)
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError) as body:
                await api.conversations_identifiers_snapshot()
            assert 0.25 < time.monotonic() - started < 20  # the read timeout, not the stall's end
            emu.stall_body_next(60, after_bytes=5, path=IDENTIFIERS)
            unread = await api.conversations_identifiers_snapshot_without_preload_content()
            await asyncio.sleep(0.5)  # longer than the read timeout, before reading
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError) as late:
                await unread.read()
            # counted from the read (not from the answer's arrival 0.5 s before): not at once
            assert 0.25 < time.monotonic() - started < 20
            unread.release()
            # a body that had all come before it is read is not timed out for waiting unread
            whole = await api.conversations_identifiers_snapshot_without_preload_content()
            await asyncio.sleep(0.5)
            assert json.loads(await whole.read())["iterable"] == []
            whole.release()
        assert str(body.value) == str(sync_body.value)
        assert str(late.value) == str(sync_body.value)

    run(main())


def test_connect_timeout_matches_the_sync_client() -> None:
    with unanswered_listener() as url:
        cfg = config(url, connect_timeout=0.3, max_retries=0)
        with ApiClient(cfg) as sync_client, pytest.raises(ApiConnectionError) as sync_error:
            ConversationsApi(sync_client).conversations_identifiers_snapshot()
        if not isinstance(sync_error.value, ApiTimeoutError):
            pytest.skip("this system refuses instead of dropping connections to a full backlog")

        async def main() -> None:
            async with AsyncApiClient(cfg) as client:
                started = time.monotonic()
                with pytest.raises(ApiTimeoutError) as error:
                    await AsyncConversationsApi(client).conversations_identifiers_snapshot()
                assert time.monotonic() - started < 20  # the connect timeout ended it: it hangs otherwise
            assert str(error.value) == str(sync_error.value)

        run(main())


def test_a_timeout_above_five_seconds_is_not_rounded(emu: Emulator) -> None:
    async def main() -> None:
        async with AsyncApiClient(config(emu.url, max_retries=0)) as client:
            api = AsyncConversationsApi(client)
            emu.break_next("hang", path=IDENTIFIERS)  # only the 5.2 s read timeout can end the call
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError):
                await api.conversations_identifiers_snapshot(_request_timeout=(5.0, 5.2))
            took = time.monotonic() - started
            assert 5.1 <= took < 20, took  # not early; the upper bound only catches a hang
            # (the client's deadlines are loop timers at the exact time: nothing rounds them)

    run(main())
