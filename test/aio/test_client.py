"""AsyncConversationsApi against real sockets: the public surface, every operation in all three
forms (compared with the sync client's answers), the request headers sent, and the stream the API opens.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap

from testkit.aio import RawServer, config, header_lines, json_answer, run
from testkit.emulator import DEMO_ASSET

from pieces_os_client import ApiClient, Configuration, ConversationsApi, SeededConversation
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi, AsyncResponse
from pieces_os_client.emulator import Emulator


def test_exports_are_lazy_and_the_plain_import_needs_no_aiohttp() -> None:
    # the emulator itself runs on aiohttp: the sync call goes to a raw socket server instead (and
    # neither client needs aiohttp: test/aio/test_upstream.py makes an async call without it)
    script = textwrap.dedent("""
        import socket, sys, threading
        import pieces_os_client, pieces_os_client.rest, pieces_os_client.aio
        from pieces_os_client import ApiClient, Configuration, ConversationsApi
        body = b'{"iterable":[]}'
        listener = socket.create_server(("127.0.0.1", 0))
        def serve():
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\nContent-Length: "
                         + str(len(body)).encode() + b"\\r\\nConnection: close\\r\\n\\r\\n" + body)
            conn.close()
        threading.Thread(target=serve, daemon=True).start()
        host = "http://127.0.0.1:%d" % listener.getsockname()[1]
        with ApiClient(Configuration(host=host)) as client:
            assert ConversationsApi(client).conversations_identifiers_snapshot().iterable == []
        assert "aiohttp" not in sys.modules, "the sync path imported aiohttp"
        pieces_os_client.AsyncApiClient
        assert "aiohttp" not in sys.modules, "the async client imported aiohttp"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_defaults_match_the_sync_client() -> None:
    cfg = Configuration(host="http://127.0.0.1:9")
    client = AsyncApiClient(cfg)
    with ApiClient(cfg) as sync_client:
        assert client.default_headers == sync_client.default_headers
        assert client.configuration is cfg


def test_every_operation_and_form_matches_the_sync_client(emu: Emulator) -> None:
    cfg = config(emu.url)
    with ApiClient(cfg) as sync_client:
        sync_api = ConversationsApi(sync_client)
        expected_created = sync_api.conversations_create_specific_conversation(
            seeded_conversation={"type": "COPILOT", "name": "one"})

    async def main() -> None:
        async with AsyncApiClient(cfg) as client:
            api = AsyncConversationsApi(client)
            created = await api.conversations_create_specific_conversation(
                transferables=False, seeded_conversation={"type": "COPILOT", "name": "two"})
            assert type(created) is type(expected_created) and created.name == "two"
            info = await api.conversations_create_from_asset_with_http_info(DEMO_ASSET)
            assert info.status_code == 200 and info.data.conversation.id
            raw = await api.conversations_create_from_asset_without_preload_content(DEMO_ASSET)
            assert isinstance(raw, AsyncResponse) and raw.status == 200
            assert json.loads(await raw.read())["conversation"]["id"]
            raw.release()

            with ApiClient(cfg) as sync_client:
                sync_api = ConversationsApi(sync_client)
                ids = await api.conversations_identifiers_snapshot()
                assert ids == await asyncio.to_thread(sync_api.conversations_identifiers_snapshot)
                snap = await api.conversations_snapshot_with_http_info(transferables=False)
                sync_snap = await asyncio.to_thread(sync_api.conversations_snapshot_with_http_info,
                                                    transferables=False)
                assert (snap.status_code, snap.data, snap.raw_data) == (
                    sync_snap.status_code, sync_snap.data, sync_snap.raw_data)
                assert snap.headers["Content-Type"] == sync_snap.headers["Content-Type"]
                unread = await api.conversations_snapshot_without_preload_content()
                async with unread:
                    assert await unread.read() == await asyncio.to_thread(
                        lambda: sync_api.conversations_snapshot_without_preload_content().read())

                assert await api.conversations_delete_specific_conversation(created.id) is None
                deleted = await api.conversations_delete_specific_conversation_with_http_info(info.data.conversation.id)
                assert deleted.status_code == 204 and deleted.data is None
                last = await api.conversations_identifiers_snapshot()
                plain = await api.conversations_delete_specific_conversation_without_preload_content(
                    last.iterable[0].id)
                assert plain.status == 204 and await plain.read() == b""
                plain.release()

    run(main())


def test_both_clients_send_the_same_request_headers() -> None:
    async def main() -> None:
        async with RawServer(lambda head: json_answer()) as server:
            cfg = config(server.url)
            with ApiClient(cfg) as sync_client:
                sync_api = ConversationsApi(sync_client)
                await asyncio.to_thread(sync_api.conversations_identifiers_snapshot)
                await asyncio.to_thread(sync_api.conversations_snapshot, transferables=True,
                                        _headers={"Accept-Encoding": "gzip", "X-Extra": "1"})
                create = sync_api.conversations_create_specific_conversation_without_preload_content
                await asyncio.to_thread(lambda: create(seeded_conversation={"type": "COPILOT"}).read())
            sync_heads = list(server.heads)
            server.heads.clear()
            async with AsyncApiClient(cfg) as client:
                api = AsyncConversationsApi(client)
                await api.conversations_identifiers_snapshot()
                await api.conversations_snapshot(transferables=True,
                                                 _headers={"Accept-Encoding": "gzip", "X-Extra": "1"})
                created = await api.conversations_create_specific_conversation_without_preload_content(
                    seeded_conversation={"type": "COPILOT"})
                await created.read()
                created.release()
            async_heads = list(server.heads)
        assert len(sync_heads) == len(async_heads) == 3
        for sync_head, async_head in zip(sync_heads, async_heads, strict=True):
            assert sync_head.split(b"\r\n")[0] == async_head.split(b"\r\n")[0]
            assert sorted(h.lower() for h in header_lines(sync_head)) == sorted(
                h.lower() for h in header_lines(async_head))

    run(main())


def test_the_async_api_streams_and_mirrors_what_it_creates() -> None:
    from pieces_os_client.aio import AsyncConversationIdsMirror, AsyncIdentifiersStream

    async def main() -> None:
        async with Emulator(port=0) as emu, AsyncApiClient(Configuration(host=emu.url)) as client:
            api = AsyncConversationsApi(client)
            stream = api.conversations_stream_identifiers(max_reconnect_attempts=2)
            assert isinstance(stream, AsyncIdentifiersStream)
            async with stream:
                events = stream.events()
                first = await events.__anext__()  # the opening snapshot
                assert first.snapshot and first.ids == []
                created = await api.conversations_create_specific_conversation(
                    seeded_conversation=SeededConversation(name="streamed"))
                change = await events.__anext__()
                assert change.ids == [created.id]
            async with await AsyncConversationIdsMirror.open(api) as mirror:
                assert await mirror.wait_ready(timeout=10)
                assert mirror.snapshot() == frozenset({created.id})

    run(main())
