"""RFC 6455 through the asyncio stream over real sockets: the cases of ``testkit.ws_cases`` (the
same as test/stream/test_protocol.py), a raw server writing each frame byte for byte."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, List

import pytest
from testkit.ws import HeadServer, RawServer, frame
from testkit.ws_cases import CASES, Case, FloodAfterFailure, client_frames, close_codes, serve_case, snapshot

from pieces_os_client._core.handshake import accept_value
from pieces_os_client.aio._stream import AsyncIdentifiersStream
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import StreamError
from pieces_os_client.stream import StreamEvent


def open_stream(url: str, **options: Any) -> AsyncIdentifiersStream:
    options.setdefault("initial_backoff", 0.02)
    options.setdefault("max_backoff", 0.1)
    options.setdefault("close_timeout", 0.2)
    return AsyncIdentifiersStream(ApiClient(Configuration(host=url)), **options)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_rfc6455_case(case: Case) -> None:
    async def main() -> StreamEvent:
        async with open_stream(server.url) as stream:
            event: StreamEvent = await asyncio.wait_for(stream.events().__anext__(), 10)
            return event

    with RawServer(serve_case(case)) as server:
        event = asyncio.run(main())
        sent = bytes(server.received[1])
    if case.ids is not None:
        assert event.connection == 1 and event.ids == case.ids
    else:
        assert event.resync and event.ids == ["gen2"]
    assert close_codes(sent)[:len(case.codes)] == case.codes
    if case.pong is not None:
        assert (0xA, case.pong) in client_frames(sent)


def test_the_fragmented_snapshot_reaches_async_for_whole() -> None:
    fragmented = next(case for case in CASES if case.name == "fragmented-snapshot")

    async def main() -> List[str]:
        async with open_stream(server.url) as stream:
            async for message in stream:
                return [ident.conversation.id for ident in message.iterable if ident.conversation is not None]
        return []

    with RawServer(serve_case(fragmented)) as server:
        assert asyncio.run(asyncio.wait_for(main(), 10)) == ["a", "b"]


def test_a_close_the_client_starts_waits_for_the_servers_answer() -> None:
    answered = threading.Event()
    servers: List[RawServer] = []

    def script(sock: socket.socket, n: int) -> None:
        sock.sendall(frame(snapshot("a")))
        for _ in range(500):  # what the client sends is collected by the server's reader thread
            if close_codes(bytes(servers[0].received.get(n, b""))):
                answered.set()  # before the answer: the client may return as soon as it has it
                sock.sendall(frame(b"\x03\xe8", 0x8))
                return
            time.sleep(0.01)

    async def main() -> float:
        stream = await open_stream(servers[0].url, close_timeout=5)
        await stream.events().__anext__()
        started = time.monotonic()
        await stream.aclose()
        return time.monotonic() - started

    with RawServer(script) as server:
        servers.append(server)
        took = asyncio.run(main())
        assert answered.is_set() and took < 4  # aclose() waited for the answer, not the 5 s
        assert close_codes(bytes(server.received[1])) == [1000]


def test_an_extension_the_client_did_not_offer_is_refused() -> None:
    def deflate(sock: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
                     b"Sec-WebSocket-Accept: " + accept_value(key.decode()).encode() + b"\r\n\r\n")
        sock.sendall(bytes([0xC1, 2]) + b"\x00\x00")  # a compressed frame it would go on to send

    async def main() -> None:
        await open_stream(server.url)

    with HeadServer(deflate) as server, pytest.raises(StreamError) as caught:
        asyncio.run(main())
    assert "permessage-deflate" in str(caught.value) and "did not offer" in str(caught.value)


def test_after_a_failure_the_wait_for_the_servers_close_ends_at_close_read_limit() -> None:
    script = FloodAfterFailure(flood=4097)

    async def main() -> StreamEvent:
        async with open_stream(server.url, close_timeout=30, close_read_limit=4096) as stream:
            event: StreamEvent = await asyncio.wait_for(stream.events().__anext__(), 20)
            return event

    with HeadServer(script) as server:
        event = asyncio.run(main())
    assert event.resync and event.ids == ["gen2"]
    # the client ended connection 1 by itself at 4097 bytes, not after close_timeout (30 s)
    assert script.ended == [True] and close_codes(script.sent[0]) == [1002]
