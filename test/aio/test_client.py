"""The asyncio client against real sockets: parity with the sync client, limits, retries,
timeouts, the pool bound, cancellation in every phase, loops, leaks and forks.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import os
import random
import subprocess
import sys
import textwrap
import time
import warnings
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional

import pytest
from testkit.aio import run
from testkit.emulator import DEMO_ASSET

from pieces_os_client import (
    ApiClient,
    ApiConnectionError,
    ApiTimeoutError,
    ApiTypeError,
    ApiValueError,
    Configuration,
    ConversationsApi,
    NotFoundException,
    ResponseFormatError,
    ResponseTooLargeError,
    SeededConversation,
    ServiceException,
)
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi, AsyncResponse
from pieces_os_client.emulator import Emulator

IDENTIFIERS = "/conversations/identifiers"


def config(url: str, **settings: Any) -> Configuration:
    return Configuration(host=url, **settings)


# ------------------------------------------------------------------ a raw HTTP server
class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 that records request heads and counts connections.

    ``answer(head) -> bytes`` makes each whole response; ``close_after`` closes the connection
    right after answering (without saying so), as a server whose keep-alive timer ran out;
    ``drop_reused`` closes a connection, unanswered, when a second request arrives on it (after
    writing ``reused_reply`` to it, say part of a response head).
    """

    def __init__(
        self, answer: Callable[[bytes], bytes], *, close_after: bool = False, delay: float = 0.0,
        drop_reused: bool = False, reused_reply: bytes = b"",
    ) -> None:
        self.answer = answer
        self.close_after = close_after
        self.drop_reused = drop_reused
        self.reused_reply = reused_reply
        self.dropped = 0
        self.delay = delay
        self.heads: List[bytes] = []
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self._server: Optional[asyncio.base_events.Server] = None
        self._writers: List[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self._writers.append(writer)
        served = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                if self.drop_reused and served:
                    self.dropped += 1
                    if self.reused_reply:
                        writer.write(self.reused_reply)
                        await writer.drain()
                    return
                served += 1
                self.heads.append(head)
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(self.answer(head))
                await writer.drain()
                if self.close_after:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self.open -= 1
            writer.close()


def json_answer(body: bytes = b'{"iterable":[]}', *, extra: bytes = b"", status: bytes = b"200 OK") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def header_lines(head: bytes) -> List[str]:
    """A request head's header lines, Host's port left out, as sent (order and case kept)."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [line for line in lines if line and not line.lower().startswith("host:")]


# ------------------------------------------------------------------ the public surface
def test_exports_are_lazy_and_the_plain_import_needs_no_aiohttp() -> None:
    # the emulator itself runs on aiohttp: the sync call goes to a raw socket server instead
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
        assert "aiohttp" in sys.modules
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_api_takes_only_an_async_client() -> None:
    with ApiClient(Configuration(host="http://127.0.0.1:9")) as sync_client, pytest.raises(
        ApiTypeError, match="AsyncApiClient, not ApiClient"
    ):
        AsyncConversationsApi(sync_client)  # type: ignore[arg-type]
    with pytest.raises(ApiTypeError, match="not Configuration"):
        AsyncConversationsApi(Configuration(host="http://127.0.0.1:9"))  # type: ignore[arg-type]


def test_defaults_match_the_sync_client() -> None:
    cfg = Configuration(host="http://127.0.0.1:9")
    client = AsyncApiClient(cfg)
    with ApiClient(cfg) as sync_client:
        assert client.default_headers == sync_client.default_headers
        assert client.configuration is cfg


# ------------------------------------------------------------------ parity with the sync client
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


def test_errors_match_the_sync_client(emu: Emulator) -> None:
    cfg = config(emu.url)
    with ApiClient(cfg) as sync_client:
        sync_api = ConversationsApi(sync_client)
        emu.fail_next(404, body="no such thing")
        with pytest.raises(NotFoundException) as sync_404:
            sync_api.conversations_snapshot()
        emu.fail_next(500, body="broken")
        with pytest.raises(ServiceException) as sync_500:
            sync_api.conversations_create_specific_conversation()

    async def main() -> None:
        async with AsyncApiClient(cfg) as client:
            api = AsyncConversationsApi(client)
            emu.fail_next(404, body="no such thing")
            with pytest.raises(NotFoundException) as async_404:
                await api.conversations_snapshot()
            assert (async_404.value.status, async_404.value.body) == (sync_404.value.status, sync_404.value.body)
            emu.fail_next(500, body="broken")
            with pytest.raises(ServiceException) as async_500:
                await api.conversations_create_specific_conversation()
            assert (async_500.value.status, async_500.value.body) == (sync_500.value.status, sync_500.value.body)
            with pytest.raises(ApiTypeError, match="transferables must be a bool"):
                await api.conversations_snapshot(transferables="yes")  # type: ignore[arg-type]
            with pytest.raises(ApiTypeError, match="unexpected keyword"):
                await api.conversations_snapshot(_bogus=1)  # type: ignore[call-arg]

    run(main())
    assert emu.request_count("POST", "/conversations/create") == 2


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


def test_headers_are_checked_on_every_call_whatever_the_call_before_sent() -> None:
    class Odd:
        """A header value that cannot be compared with anything."""

        def __eq__(self, other: object) -> bool:
            raise TypeError("no comparing")

        __hash__ = None  # type: ignore[assignment]

        def __str__(self) -> str:
            return "odd"

    async def main() -> None:
        async with RawServer(lambda head: json_answer()) as server:
            async with AsyncApiClient(config(server.url)) as client:
                api = AsyncConversationsApi(client)
                for _ in range(2):
                    await api.conversations_identifiers_snapshot()
                    with pytest.raises(ApiValueError, match="line break"):
                        await api.conversations_identifiers_snapshot(_headers={"X-Bad": "a\r\nb"})
                    await api.conversations_identifiers_snapshot(_headers={"accept-encoding": "gzip"})
                    await api.conversations_identifiers_snapshot(_headers={"X-Odd": Odd()})
                    with pytest.raises(ApiValueError, match="line break"):
                        await client.request("GET", server.url + IDENTIFIERS, headers={"X-Bad": "a\nb"})
            heads = [header_lines(head) for head in server.heads]
        assert len(heads) == 6
        for lines in heads:
            assert sum(line.lower().startswith("accept-encoding:") for line in lines) == 1
        assert "Accept-Encoding: identity" in heads[0] and "accept-encoding: gzip" in heads[1]
        assert "X-Odd: odd" in heads[2] and "Accept-Encoding: identity" in heads[3]

    run(main())


# ------------------------------------------------------------------ retries
def test_a_get_is_retried_on_503_with_retry_after_and_a_create_never_resent(emu: Emulator) -> None:
    async def main() -> None:
        async with AsyncApiClient(config(emu.url)) as client:
            api = AsyncConversationsApi(client)
            emu.fail_next(503, retry_after=0)
            started = time.monotonic()
            assert (await api.conversations_identifiers_snapshot()).iterable == []
            assert time.monotonic() - started < 10
            assert emu.request_count("GET", IDENTIFIERS) == 2
            emu.fail_next(503, retry_after=0)
            with pytest.raises(ServiceException):
                await api.conversations_create_specific_conversation()
            assert emu.request_count("POST", "/conversations/create") == 1

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


# ------------------------------------------------------------------ limits
def test_max_response_size_and_refused_encodings_match_the_sync_client() -> None:
    big = json.dumps({"iterable": [{"id": "x" * 40}] * 200}).encode()
    zipped = gzip.compress(big)

    def answer(head: bytes) -> bytes:
        if b"zipped" in head.split(b"\r\n")[0]:
            return json_answer(zipped, extra=b"Content-Encoding: gzip\r\n")
        return json_answer(big)

    async def main() -> None:
        async with RawServer(answer) as server:
            cfg = config(server.url, max_response_size=1000)
            url = server.url
            with ApiClient(cfg) as sync_client:
                def sync_call(path: str, **headers: str) -> BaseException:
                    try:
                        sync_client.rest_client.request("GET", url + path, headers=headers)
                    except BaseException as exc:
                        return exc
                    raise AssertionError("no error")

                sync_large = await asyncio.to_thread(sync_call, "/plain")
                sync_refused = await asyncio.to_thread(sync_call, "/zipped")
                sync_bomb = await asyncio.to_thread(sync_call, "/zipped", **{"Accept-Encoding": "gzip"})
            async with AsyncApiClient(cfg) as client:
                with pytest.raises(ResponseTooLargeError) as large:
                    await client.request("GET", url + "/plain")
                with pytest.raises(ResponseFormatError) as refused:
                    await client.request("GET", url + "/zipped")
                with pytest.raises(ResponseTooLargeError) as bomb:
                    await client.request("GET", url + "/zipped", headers={"Accept-Encoding": "gzip"})
                cfg.max_response_size = None
                async with AsyncApiClient(cfg) as unlimited:
                    decoded = await unlimited.request("GET", url + "/zipped", headers={"Accept-Encoding": "gzip"})
                    assert decoded.data == big
            for mine, theirs in ((large, sync_large), (refused, sync_refused), (bomb, sync_bomb)):
                assert type(mine.value) is type(theirs)
                assert mine.value.args == theirs.args

    run(main())


# ------------------------------------------------------------------ timeouts
def test_read_timeout_and_request_timeout_match_the_sync_client(emu: Emulator) -> None:
    cfg = config(emu.url, read_timeout=0.3, max_retries=0)
    with ApiClient(cfg) as sync_client:
        sync_api = ConversationsApi(sync_client)
        emu.delay_next(1.5, path=IDENTIFIERS)
        with pytest.raises(ApiTimeoutError) as sync_read:
            sync_api.conversations_identifiers_snapshot()
        emu.stall_body_next(1.5, after_bytes=5, path=IDENTIFIERS)
        with pytest.raises(ApiTimeoutError) as sync_total:
            sync_api.conversations_identifiers_snapshot(_request_timeout=0.4)
        emu.delay_next(1.5, path=IDENTIFIERS)
        with pytest.raises(ApiTimeoutError) as sync_head_total:
            sync_api.conversations_identifiers_snapshot(_request_timeout=0.4)
        time.sleep(1.6)

    async def main() -> None:
        async with AsyncApiClient(cfg) as client:
            api = AsyncConversationsApi(client)
            emu.delay_next(1.5, path=IDENTIFIERS)
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError) as read:
                await api.conversations_identifiers_snapshot()
            assert time.monotonic() - started < 1.3
            emu.stall_body_next(1.5, after_bytes=5, path=IDENTIFIERS)
            with pytest.raises(ApiTimeoutError) as total:
                await api.conversations_identifiers_snapshot(_request_timeout=0.4)
            emu.delay_next(1.5, path=IDENTIFIERS)
            with pytest.raises(ApiTimeoutError) as head_total:
                await api.conversations_identifiers_snapshot(_request_timeout=0.4)
            with pytest.raises(ApiValueError, match="_request_timeout must be positive"):
                await api.conversations_identifiers_snapshot(_request_timeout=-1)
            await asyncio.sleep(1.6)  # let the held answers go before the emulator is reset
        assert str(read.value) == str(sync_read.value)
        assert str(total.value) == str(sync_total.value)
        assert str(head_total.value) == str(sync_head_total.value)

    run(main())


def test_a_body_that_stalls_times_out_at_the_read_timeout_counted_from_the_read(emu: Emulator) -> None:
    # The head is bounded by the head deadline; each read of the rest of the body by the read
    # timeout, counted (as the sync client's socket timeout) from when the body is read.
    cfg = config(emu.url, read_timeout=0.3, max_retries=0)
    with ApiClient(cfg) as sync_client:
        emu.stall_body_next(1.5, after_bytes=5, path=IDENTIFIERS)
        with pytest.raises(ApiTimeoutError) as sync_body:
            ConversationsApi(sync_client).conversations_identifiers_snapshot()
        time.sleep(1.6)

    async def main() -> None:
        async with AsyncApiClient(cfg) as client:
            api = AsyncConversationsApi(client)
            emu.stall_body_next(1.5, after_bytes=5, path=IDENTIFIERS)
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError) as body:
                await api.conversations_identifiers_snapshot()
            assert 0.25 < time.monotonic() - started < 1.3
            emu.stall_body_next(1.5, after_bytes=5, path=IDENTIFIERS)
            unread = await api.conversations_identifiers_snapshot_without_preload_content()
            await asyncio.sleep(0.5)  # longer than the read timeout, before reading
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError) as late:
                await unread.read()
            assert 0.25 < time.monotonic() - started < 1.3
            unread.release()
            # a body that had all come before it is read is not timed out for waiting unread
            whole = await api.conversations_identifiers_snapshot_without_preload_content()
            await asyncio.sleep(0.5)
            assert json.loads(await whole.read())["iterable"] == []
            whole.release()
            await asyncio.sleep(1.6)  # let the held answers go before the emulator is reset
        assert str(body.value) == str(sync_body.value)
        assert str(late.value) == str(sync_body.value)

    run(main())


def test_head_deadlines_share_one_timer_and_a_shorter_one_keeps_its_own(emu: Emulator) -> None:
    async def timed_out(call: Awaitable[Any]) -> float:
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError):
            await call
        return time.monotonic() - started

    async def main() -> None:
        async with AsyncApiClient(config(emu.url, read_timeout=0.6, max_retries=0,
                                         connection_pool_maxsize=4)) as client:
            api = AsyncConversationsApi(client)
            emu.delay_next(2.0, count=3, path=IDENTIFIERS)
            first = asyncio.ensure_future(timed_out(api.conversations_identifiers_snapshot()))
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(timed_out(api.conversations_identifiers_snapshot()))
            await asyncio.sleep(0.05)
            # ends before the two queued deadlines: it is not held up behind them
            short = await timed_out(api.conversations_identifiers_snapshot(_request_timeout=(5, 0.2)))
            assert 0.15 < short < 0.5, short
            waits = await asyncio.gather(first, second)
            assert all(0.55 < wait < 1.3 for wait in waits), waits
            # while one head is held, calls that finish behind it do not pile up in the queue
            emu.delay_next(1.0, path=IDENTIFIERS)
            client.configuration.read_timeout = 1.5
            held = asyncio.ensure_future(api.conversations_identifiers_snapshot())
            await asyncio.sleep(0.05)
            for _ in range(200):
                await api.conversations_identifiers_snapshot()
            assert not held.done()
            assert client._heads is not None and len(client._heads._queue) <= 2 * 4 + 64
            await held
            assert client._slots.free == 4
            await asyncio.sleep(2.1)  # let the held answers go before the emulator is reset

    run(main())


def test_response_headers_are_the_sync_clients_repeats_case_and_latin1_included() -> None:
    extra = (b"X-Twice: one\r\nx-twice: two\r\nX-Latin: caf\xe9\r\nSet-Cookie: a=1\r\n"
             b"Set-Cookie: b=2\r\nRetry-After: 0\r\n")

    async def main() -> None:
        async with RawServer(lambda head: json_answer(extra=extra)) as server:
            cfg = config(server.url)
            with ApiClient(cfg) as sync_client:
                sync_api = ConversationsApi(sync_client)
                sync_headers = (await asyncio.to_thread(
                    sync_api.conversations_identifiers_snapshot_with_http_info)).headers
            async with AsyncApiClient(cfg) as client:
                async_headers = (await AsyncConversationsApi(client)
                                 .conversations_identifiers_snapshot_with_http_info()).headers
        assert sync_headers is not None and async_headers is not None
        assert type(async_headers) is type(sync_headers)
        assert list(async_headers.items()) == list(sync_headers.items())
        assert async_headers.getlist("x-twice") == ["one", "two"] == sync_headers.getlist("X-Twice")
        assert async_headers["x-latin"] == "caf\xe9"
        assert async_headers == sync_headers

    run(main())


def test_may_retry_status_never_says_no_where_the_retry_policy_would_retry() -> None:
    from urllib3.util.retry import Retry

    from pieces_os_client._core.retry import may_retry_status

    class Always(Retry):
        def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
            return True

    policies = [Configuration().retry_policy(), Retry(total=3, status_forcelist=[500, 418]), Retry(total=0),
                Retry(total=3, status_forcelist=None), Retry(total=3, respect_retry_after_header=False)]
    for policy in policies:
        for status in range(100, 600):
            for method in ("GET", "POST", "HEAD"):
                for has_retry_after in (False, True):
                    if policy.is_retry(method, status, has_retry_after):
                        assert may_retry_status(policy, status), (policy, status, method)
        assert not may_retry_status(policy, 200) or 200 in (policy.status_forcelist or ())
    assert may_retry_status(Always(total=3), 200)


def test_a_waiting_call_gets_the_slot_of_an_unread_response_dropped_meanwhile(emu: Emulator) -> None:
    async def main() -> None:
        async with AsyncApiClient(config(emu.url, connection_pool_maxsize=1, pool_timeout=5)) as client:
            api = AsyncConversationsApi(client)
            unread = await api.conversations_identifiers_snapshot_without_preload_content()
            waiting = asyncio.ensure_future(api.conversations_identifiers_snapshot())
            await asyncio.sleep(0.1)
            assert not waiting.done()
            started = time.monotonic()
            del unread
            gc.collect()
            assert (await waiting).iterable == []
            assert time.monotonic() - started < 1.0  # taken back by the waiters' timer, within its slice
            assert client._slots.free == 1 and not client._slots._waiters

    run(main())


@contextlib.contextmanager
def unanswered_listener() -> Iterator[str]:
    """A URL whose listener never accepts and whose backlog is full: connecting hangs."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(listener.getsockname())
            fillers.append(filler)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


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
                assert time.monotonic() - started < 3
            assert str(error.value) == str(sync_error.value)

        run(main())


def test_a_timeout_above_five_seconds_is_not_rounded(emu: Emulator) -> None:
    async def main() -> None:
        async with AsyncApiClient(config(emu.url, max_retries=0)) as client:
            api = AsyncConversationsApi(client)
            emu.delay_next(7.0, path=IDENTIFIERS)
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError):
                await api.conversations_identifiers_snapshot(_request_timeout=(5.0, 5.2))
            took = time.monotonic() - started
            assert 5.1 <= took < 6.9, took
            # aiohttp alone rounds timeouts above 5 s up to a whole second of its clock; no
            # single run can show that reliably, so check that rounding is off everywhere
            session = client._session
            assert session is not None and session.timeout.ceil_threshold >= 1e9
            assert session.connector is not None and session.connector._timeout_ceil_threshold >= 1e9

    run(main())


# ------------------------------------------------------------------ the pool
def test_the_pool_is_a_bound_and_a_long_wait_fails_with_pool_timeout() -> None:
    async def main() -> None:
        async with RawServer(lambda head: json_answer(), delay=0.02) as server:
            async with AsyncApiClient(config(server.url, connection_pool_maxsize=4)) as client:
                api = AsyncConversationsApi(client)
                results = await asyncio.gather(*(api.conversations_identifiers_snapshot() for _ in range(100)))
                assert len(results) == 100
            assert server.most_open <= 4 and server.connections <= 4, (server.most_open, server.connections)
        async with RawServer(lambda head: json_answer(), delay=1.0) as slow:
            cfg = config(slow.url, connection_pool_maxsize=1, pool_timeout=0.2)
            with ApiClient(cfg) as sync_client:
                first = asyncio.ensure_future(asyncio.to_thread(
                    ConversationsApi(sync_client).conversations_identifiers_snapshot))
                await asyncio.sleep(0.2)
                with pytest.raises(ApiTimeoutError) as sync_wait:
                    await asyncio.to_thread(ConversationsApi(sync_client).conversations_identifiers_snapshot)
                await first
            async with AsyncApiClient(cfg) as client:
                api = AsyncConversationsApi(client)
                held = asyncio.ensure_future(api.conversations_identifiers_snapshot())
                await asyncio.sleep(0.2)
                with pytest.raises(ApiTimeoutError) as wait:
                    await api.conversations_identifiers_snapshot()
                await held
            assert str(wait.value) == str(sync_wait.value)
            assert "pool_timeout=0.2" in str(wait.value) and "connection_pool_maxsize=1" in str(wait.value)

    run(main())


# ------------------------------------------------------------------ cancellation
async def all_slots_usable(client: AsyncApiClient, emu: Emulator, size: int) -> None:
    """``size`` calls held by the server at once all get through: no slot was lost."""
    emu.delay_next(0.5, count=size, path=IDENTIFIERS)
    api = AsyncConversationsApi(client)
    started = time.monotonic()
    await asyncio.gather(*(api.conversations_identifiers_snapshot(_request_timeout=20) for _ in range(size)))
    assert time.monotonic() - started < 0.5 * size - 0.1 or size == 1


async def cancelled_after(delay: float, call: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(call)
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


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


def test_an_unread_response_dropped_gives_its_slot_back(emu: Emulator) -> None:
    async def main() -> None:
        async with AsyncApiClient(config(emu.url, connection_pool_maxsize=1, pool_timeout=5)) as client:
            api = AsyncConversationsApi(client)
            unread = await api.conversations_identifiers_snapshot_without_preload_content()
            del unread
            gc.collect()
            assert (await api.conversations_identifiers_snapshot()).iterable == []

    run(main())


# ------------------------------------------------------------------ loops, leaks, forks
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


def test_a_socks_proxy_is_refused_clearly() -> None:
    async def main() -> None:
        cfg = config("http://127.0.0.1:9", proxy="socks5://user:secret@127.0.0.1:1080")
        async with AsyncApiClient(cfg) as client:
            with pytest.raises(ApiValueError, match=r"http:// and https:// proxies only.*\*\*\*@") as caught:
                await AsyncConversationsApi(client).conversations_identifiers_snapshot()
            assert "secret" not in str(caught.value)

    run(main())


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


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_child_starts_fresh(emu: Emulator) -> None:
    script = textwrap.dedent(f"""
        import asyncio, os, sys
        from pieces_os_client import Configuration
        from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
        client = AsyncApiClient(Configuration(host={emu.url!r}))
        api = AsyncConversationsApi(client)
        async def call():
            return len((await api.conversations_identifiers_snapshot()).iterable)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(call())
        pid = os.fork()
        if pid == 0:
            asyncio.set_event_loop(None)
            asyncio.run(call())
            asyncio.run(client.aclose())
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        loop.run_until_complete(call())
        loop.run_until_complete(client.aclose())
        loop.close()
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"



def test_uvloop_works_when_installed() -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with Emulator(port=0) as emu, AsyncApiClient(config(emu.url, connection_pool_maxsize=2)) as client:
            api = AsyncConversationsApi(client)
            created = await api.conversations_create_specific_conversation()
            assert [c.id for c in (await api.conversations_snapshot()).iterable] == [created.id]
            emu.delay_next(2.0, path=IDENTIFIERS)
            await cancelled_after(0.2, api.conversations_identifiers_snapshot())
            assert client._slots.free == 2
            # the stream waits on uvloop's reader callbacks and timers: messages, a cancelled
            # read that loses nothing and leaves nothing registered, a keep-alive ping
            async with api.conversations_stream_identifiers(ping_interval=0.2, ping_timeout=5) as stream:
                events = stream.events()
                assert (await events.__anext__()).ids == [created.id]
                waited_from = time.monotonic()
                await cancelled_after(0.35, events.__anext__())  # past the keep-alive deadline
                assert stream._session.last_rx > waited_from + 0.15  # nothing was created: a pong came
                assert stream._wire is not None and not asyncio.get_running_loop().remove_reader(stream._wire.fd)
                second = await api.conversations_create_specific_conversation()
                assert (await asyncio.wait_for(events.__anext__(), 5)).ids == [second.id]
                assert stream.connected and stream.reconnects == 0

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        loop.close()


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
