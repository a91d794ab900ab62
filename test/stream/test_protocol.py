"""RFC 6455 through the sync stream over real sockets: the cases of ``testkit.ws_cases`` (the same
as test/aio/test_protocol.py), a raw server writing each frame byte for byte."""

from __future__ import annotations

import socket
import threading
import time
from typing import List

import pytest
from testkit.ws import HeadServer, RawServer, frame
from testkit.ws_cases import CASES, Case, FloodAfterFailure, client_frames, close_codes, serve_case, snapshot

from pieces_os_client._core.handshake import accept_value
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import ApiConnectionError, StreamError
from pieces_os_client.stream import IdentifiersStream


def open_stream(url: str, **options: object) -> IdentifiersStream:
    options.setdefault("initial_backoff", 0.02)
    options.setdefault("max_backoff", 0.1)
    options.setdefault("close_timeout", 0.2)
    return IdentifiersStream(ApiClient(Configuration(host=url)), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_rfc6455_case(case: Case) -> None:
    errors: List[Exception] = []
    with RawServer(serve_case(case)) as server:
        with open_stream(server.url, on_error=errors.append) as stream:
            event = next(stream.events())
        sent = bytes(server.received[1])
    if case.ids is not None:
        assert event.connection == 1 and event.ids == case.ids
    else:
        assert event.resync and event.ids == ["gen2"]
        assert [type(e) for e in errors] == [ApiConnectionError]
    assert close_codes(sent)[:len(case.codes)] == case.codes
    if case.pong is not None:
        assert (0xA, case.pong) in client_frames(sent)


def test_a_close_the_client_starts_waits_for_the_servers_answer() -> None:
    answered = threading.Event()
    servers: List[RawServer] = []

    def script(sock: socket.socket, n: int) -> None:
        sock.sendall(frame(snapshot("a")))
        deadline = time.monotonic() + 30  # then no answer: close() would run into its 60 s
        while time.monotonic() < deadline:  # the server's reader thread collects what the client sends
            if close_codes(bytes(servers[0].received.get(n, b""))):
                answered.set()  # before the answer: the client may return as soon as it has it
                sock.sendall(frame(b"\x03\xe8", 0x8))
                return
            time.sleep(0.01)

    with RawServer(script) as server:
        servers.append(server)
        stream = open_stream(server.url, close_timeout=60)
        assert next(stream).iterable is not None
        started = time.monotonic()
        stream.close()
        # close() returned on the server's answer, not at its 60 s close_timeout
        assert answered.is_set() and time.monotonic() - started < 30
        assert close_codes(bytes(server.received[1])) == [1000]


def test_an_extension_the_client_did_not_offer_is_refused() -> None:
    def deflate(sock: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
        key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:"))
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
                     b"Sec-WebSocket-Accept: " + accept_value(key.decode()).encode() + b"\r\n\r\n")
        sock.sendall(bytes([0xC1, 2]) + b"\x00\x00")  # a compressed frame it would go on to send

    with HeadServer(deflate) as server, pytest.raises(StreamError) as caught:
        open_stream(server.url)
    assert "permessage-deflate" in str(caught.value) and "did not offer" in str(caught.value)


def test_after_a_failure_the_wait_for_the_servers_close_ends_at_close_read_limit() -> None:
    script = FloodAfterFailure(flood=4097)
    with HeadServer(script) as server, open_stream(server.url, close_timeout=30, close_read_limit=4096) as stream:
        event = next(stream.events())
    assert event.resync and event.ids == ["gen2"]
    # the client ended connection 1 by itself at 4097 bytes, not after close_timeout (30 s)
    assert script.ended == [True] and close_codes(script.sent[0]) == [1002]


def test_close_takes_one_close_timeout_in_all_when_the_server_never_answers() -> None:
    delivering = threading.Event()
    release = threading.Event()

    def on_message(message: object) -> None:
        delivering.set()
        release.wait(30)  # holds the background thread until close() has returned

    def script(sock: socket.socket, n: int) -> None:
        sock.sendall(frame(snapshot("a")))  # then nothing: the client's close is never answered

    timeout = 5.0  # long enough that a busy machine's delays cannot pass for a second wait
    with RawServer(script) as server:
        stream = open_stream(server.url, on_message=on_message, close_timeout=timeout)
        assert delivering.wait(10)
        started = time.monotonic()
        stream.close()  # the wait for the answer, then for the thread: both within one deadline
        took = time.monotonic() - started
        release.set()
        assert stream.join(10)
    # the answer never comes and the thread is held, so each wait alone would take all of it:
    # two waits of their own take 2 * close_timeout (10 s), one shared deadline takes one (5 s);
    # the bound sits 4 s from each
    assert timeout * 0.9 <= took < timeout * 1.8, took
    assert close_codes(bytes(server.received[1])) == [1000]
