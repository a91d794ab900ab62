"""The emulator's WebSockets: identifiers stream pushes, slow consumers, drops, health, heartbeats."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import websocket
from testkit.emulator import DEMO_ASSET, call, post_json

from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.emulator import Emulator
from pieces_os_client.stream import IdentifiersStream
from pieces_os_client.testing import running_emulator

STREAM = "/conversations/stream/identifiers"


@contextmanager
def stream(emu: Emulator, path: str = STREAM, timeout: float = 3.0) -> Iterator[websocket.WebSocket]:
    ws = websocket.create_connection(emu.ws_url + path, timeout=timeout)
    try:
        yield ws
    finally:
        ws.close()
        ws.shutdown()


def recv_json(ws: websocket.WebSocket) -> Any:
    return json.loads(ws.recv())


def ids_of(message: Any) -> list[str]:
    return [item["conversation"]["id"] for item in message["iterable"]]


def wait_for(predicate: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_initial_message_lists_every_conversation(pieces_emulator: Emulator) -> None:
    a = pieces_emulator.create_conversation()
    b = pieces_emulator.create_conversation(from_asset=DEMO_ASSET)
    with stream(pieces_emulator) as ws:
        first = recv_json(ws)
    assert first == {"iterable": [{"conversation": {"id": a}}, {"conversation": {"id": b}}]}


def test_empty_store_sends_an_empty_list(pieces_emulator: Emulator) -> None:
    with stream(pieces_emulator) as ws:
        assert recv_json(ws) == {"iterable": []}


def test_every_socket_sees_http_creates_and_deletes(pieces_emulator: Emulator) -> None:
    emu = pieces_emulator
    with stream(emu) as one, stream(emu) as two, stream(emu) as three:
        sockets = [one, two, three]
        for ws in sockets:
            assert recv_json(ws) == {"iterable": []}
        created = call(emu, "POST", f"/conversations/create/from_asset/{DEMO_ASSET}").json()["conversation"]["id"]
        seeded = post_json(emu, "/conversations/create", {"type": "COPILOT"}).json()["id"]
        assert call(emu, "POST", f"/conversations/{created}/delete").status == 204
        assert call(emu, "POST", "/conversations/unknown/delete").status == 500  # no push for a failure
        for ws in sockets:
            assert recv_json(ws) == {"iterable": [{"conversation": {"id": created}}]}
            assert recv_json(ws) == {"iterable": [{"conversation": {"id": seeded}}]}
            assert recv_json(ws) == {"iterable": [{"conversation": {"id": created}, "deleted": True}]}
        emu.reset()
        for ws in sockets:
            assert recv_json(ws) == {"iterable": [{"conversation": {"id": seeded}, "deleted": True}]}


def test_a_socket_joining_later_gets_the_current_list(pieces_emulator: Emulator) -> None:
    with stream(pieces_emulator) as early:
        recv_json(early)
        cid = pieces_emulator.create_conversation()
        with stream(pieces_emulator) as late:
            assert ids_of(recv_json(late)) == [cid]
        assert ids_of(recv_json(early)) == [cid]


def _raw_websocket(emu: Emulator) -> socket.socket:
    """Open the identifiers WebSocket by hand and then never read from it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", emu.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {STREAM} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return sock


def test_a_consumer_that_never_reads_is_cut_off_without_holding_up_others() -> None:
    with running_emulator(ws_queue_size=8, ws_send_buffer=4096) as emu:
        stuck = _raw_websocket(emu)
        try:
            with stream(emu) as healthy:
                recv_json(healthy)
                wait_for(lambda: emu.websocket_count == 2)
                started = time.monotonic()
                for _ in range(1500):
                    made = emu.create_conversation()
                    assert ids_of(recv_json(healthy)) == [made]
                assert time.monotonic() - started < 5
                # The stuck socket fell more than 8 messages behind and was closed.
                wait_for(lambda: emu.websocket_count == 1)
                # HTTP is unaffected.
                assert call(emu, "GET", "/.well-known/health").status == 200
        finally:
            stuck.close()


def test_drop_websockets_aborts_without_a_close_frame(pieces_emulator: Emulator) -> None:
    with stream(pieces_emulator) as one, stream(pieces_emulator, "/.well-known/stream/health") as two:
        recv_json(one)
        assert two.recv() == "ok"
        wait_for(lambda: pieces_emulator.websocket_count == 2)
        assert pieces_emulator.drop_websockets() == 2
        for ws in (one, two):
            with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
                ws.recv()
        wait_for(lambda: pieces_emulator.websocket_count == 0)
        # The server keeps working and new sockets are welcome.
        with stream(pieces_emulator) as again:
            assert recv_json(again) == {"iterable": []}


def test_stop_closes_sockets_with_going_away() -> None:
    emu = Emulator().start()
    try:
        ws = websocket.create_connection(emu.ws_url + STREAM, timeout=3)
        recv_json(ws)
        started = time.monotonic()
        emu.stop()
        assert time.monotonic() - started < 2
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(frame.data[:2], "big") == 1001
        ws.shutdown()
    finally:
        emu.stop()


def test_health_stream_answers_ok(pieces_emulator: Emulator) -> None:
    with stream(pieces_emulator, "/.well-known/stream/health") as ws:
        assert ws.recv() == "ok"
        ws.send("ping?")
        assert ws.recv() == "ok"


def test_server_sends_heartbeat_pings_and_answers_pings() -> None:
    with running_emulator(heartbeat=0.05) as emu, stream(emu) as ws:
        recv_json(ws)
        ws.ping(b"hello")
        seen: set[int] = set()
        deadline = time.monotonic() + 3
        while {websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG} - seen:
            assert time.monotonic() < deadline
            opcode, frame = ws.recv_data_frame(control_frame=True)
            seen.add(opcode)
            if opcode == websocket.ABNF.OPCODE_PONG:
                assert frame.data == b"hello"
            if opcode == websocket.ABNF.OPCODE_PING:
                ws.pong(frame.data)


def test_stream_upgrade_can_be_failed(pieces_emulator: Emulator) -> None:
    pieces_emulator.fail_next(503, path=STREAM)
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        websocket.create_connection(pieces_emulator.ws_url + STREAM, timeout=3)
    assert caught.value.status_code == 503
    with stream(pieces_emulator) as ws:
        assert recv_json(ws) == {"iterable": []}
    assert pieces_emulator.request_count("GET", STREAM) == 2


def test_websocket_client_and_our_stream_read_the_same_messages(pieces_emulator: Emulator) -> None:
    """Interoperability: websocket-client (an independent RFC 6455 client) and the SDK's own
    protocol read one emulator stream side by side and see the same messages, in order."""
    emu = pieces_emulator
    first = emu.create_conversation()
    with stream(emu) as peer, IdentifiersStream(ApiClient(Configuration(host=emu.url))) as ours:
        seen_by_peer = [recv_json(peer)]
        events = ours.events()
        seen_by_ours = [next(events)]
        wait_for(lambda: emu.websocket_count == 2)
        made = emu.create_conversation(from_asset=DEMO_ASSET)
        emu.delete_conversation(first)
        for _ in range(2):
            seen_by_peer.append(recv_json(peer))
            seen_by_ours.append(next(events))
    as_peer_saw = [
        [(item["conversation"]["id"], bool(item.get("deleted"))) for item in message["iterable"]]
        for message in seen_by_peer
    ]
    as_ours_saw = [
        [(item.conversation.id if item.conversation else None, bool(item.deleted)) for item in event.message.iterable]
        for event in seen_by_ours
    ]
    assert as_peer_saw == as_ours_saw == [[(first, False)], [(made, False)], [(first, True)]]
    assert seen_by_ours[0].snapshot and not seen_by_ours[1].snapshot
