"""Fault injection, the black-hole helper and TLS, checked over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http.client
import json
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Iterator

import pytest
import trustme
import urllib3
import websocket
from testkit.emulator import call

from pieces_os_client.emulator import BREAK_MODES, Emulator
from pieces_os_client.testing import blackhole_server, running_emulator

IDS = "/conversations/identifiers"


def healthy(emu: Emulator) -> None:
    reply = call(emu, "GET", IDS)
    assert reply.status == 200
    assert json.loads(reply.body) == {"iterable": [], "indices": {}}


# ----------------------------------------------------------------------------- status faults
def test_fail_next_applies_count_times_then_clears(pieces_emulator: Emulator) -> None:
    pieces_emulator.fail_next(503, count=2, retry_after=1)
    for _ in range(2):
        reply = call(pieces_emulator, "GET", IDS)
        assert reply.status == 503
        assert reply.headers["retry-after"] == "1"
        assert reply.headers["content-type"].startswith("text/plain")
        assert "503 Service Unavailable" in reply.text
    healthy(pieces_emulator)
    assert pieces_emulator.pending_faults() == []


def test_fail_next_with_body_and_http_date_retry_after(pieces_emulator: Emulator) -> None:
    when = "Wed, 21 Oct 2015 07:28:00 GMT"
    pieces_emulator.fail_next(429, body="slow down", retry_after=when)
    reply = call(pieces_emulator, "GET", IDS)
    assert (reply.status, reply.text, reply.headers["retry-after"]) == (429, "slow down", when)
    healthy(pieces_emulator)


def test_fail_next_only_hits_matching_requests(pieces_emulator: Emulator) -> None:
    pieces_emulator.fail_next(500, method="POST", path="/conversations/create")
    healthy(pieces_emulator)  # GET on another path: untouched
    assert call(pieces_emulator, "GET", "/conversations").status == 200
    assert call(pieces_emulator, "POST", "/conversations/create").status == 500
    assert pieces_emulator.conversation_ids() == []  # the failed request never reached the store
    assert call(pieces_emulator, "POST", "/conversations/create").status == 200


def test_path_patterns_match_prefixes_and_decoded_paths(pieces_emulator: Emulator) -> None:
    pieces_emulator.fail_next(502, path="/conversations/a b/delete")
    pieces_emulator.fail_next(504, path="/.well-known/*")
    assert call(pieces_emulator, "POST", "/conversations/a%20b/delete").status == 502
    assert call(pieces_emulator, "GET", "/.well-known/version").status == 504
    assert call(pieces_emulator, "GET", "/.well-known/version").status == 200


def test_fail_with_count_none_lasts_until_cleared(pieces_emulator: Emulator) -> None:
    pieces_emulator.fail_next(500, count=None, body="down")
    for _ in range(5):
        assert call(pieces_emulator, "GET", IDS).text == "down"
    pieces_emulator.clear_faults()
    healthy(pieces_emulator)


def test_faults_queue_up_in_order(pieces_emulator: Emulator) -> None:
    pieces_emulator.fail_next(502)
    pieces_emulator.break_next("html")
    pieces_emulator.fail_next(503)
    assert call(pieces_emulator, "GET", IDS).status == 502
    assert call(pieces_emulator, "GET", IDS).headers["content-type"].startswith("text/html")
    assert call(pieces_emulator, "GET", IDS).status == 503
    healthy(pieces_emulator)


def test_204_fault_has_no_body(pieces_emulator: Emulator) -> None:
    pieces_emulator.fail_next(204)
    reply = call(pieces_emulator, "GET", IDS)
    assert (reply.status, reply.body) == (204, b"")


def test_invalid_fault_arguments_raise(pieces_emulator: Emulator) -> None:
    with pytest.raises(ValueError, match="unknown break mode"):
        pieces_emulator.break_next("explode")
    with pytest.raises(ValueError):
        pieces_emulator.fail_next(700)
    with pytest.raises(ValueError):
        pieces_emulator.fail_next(500, count=0)
    with pytest.raises(ValueError):
        pieces_emulator.delay_next(-1)
    assert pieces_emulator.pending_faults() == []


# ----------------------------------------------------------------------------- latency
def test_delay_next_holds_matching_requests(pieces_emulator: Emulator) -> None:
    pieces_emulator.delay_next(0.2, count=1, path=IDS)
    started = time.monotonic()
    assert call(pieces_emulator, "GET", "/.well-known/health").status == 200
    assert time.monotonic() - started < 0.15
    started = time.monotonic()
    healthy(pieces_emulator)
    assert time.monotonic() - started >= 0.2
    started = time.monotonic()
    healthy(pieces_emulator)
    assert time.monotonic() - started < 0.15


def test_delay_does_not_block_other_requests(pieces_emulator: Emulator) -> None:
    pieces_emulator.delay_next(0.5, path="/conversations")
    slow = threading.Thread(target=call, args=(pieces_emulator, "GET", "/conversations"))
    slow.start()
    try:
        time.sleep(0.05)
        started = time.monotonic()
        healthy(pieces_emulator)
        assert time.monotonic() - started < 0.2
    finally:
        slow.join()


def test_delay_and_failure_combine(pieces_emulator: Emulator) -> None:
    pieces_emulator.delay_next(0.1)
    pieces_emulator.fail_next(500)
    started = time.monotonic()
    assert call(pieces_emulator, "GET", IDS).status == 500
    assert time.monotonic() - started >= 0.1
    healthy(pieces_emulator)


# ----------------------------------------------------------------------------- broken responses
def test_malformed_json(pieces_emulator: Emulator) -> None:
    pieces_emulator.break_next("malformed_json")
    reply = call(pieces_emulator, "GET", IDS)
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(reply.body)
    healthy(pieces_emulator)


def test_html_instead_of_json(pieces_emulator: Emulator) -> None:
    pieces_emulator.break_next("html", count=2)
    for _ in range(2):
        reply = call(pieces_emulator, "GET", IDS)
        assert reply.status == 200
        assert reply.headers["content-type"].startswith("text/html")
        assert reply.body.startswith(b"<!DOCTYPE html>")
    healthy(pieces_emulator)


@pytest.mark.parametrize(("mode", "received"), [("truncated", 20), ("disconnect", 0)])
def test_short_bodies_end_in_incomplete_read(pieces_emulator: Emulator, mode: str, received: int) -> None:
    pieces_emulator.break_next(mode)
    conn = http.client.HTTPConnection("127.0.0.1", pieces_emulator.port, timeout=3)
    try:
        conn.request("GET", IDS)
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == "4096"
        with pytest.raises(http.client.IncompleteRead) as caught:
            response.read()
        assert len(caught.value.partial) == received
    finally:
        conn.close()
    healthy(pieces_emulator)


def test_reset_before_response(pieces_emulator: Emulator) -> None:
    pieces_emulator.break_next("reset_before_response")
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
        call(pieces_emulator, "GET", IDS)
    healthy(pieces_emulator)


def test_urllib3_sees_protocol_errors(pieces_emulator: Emulator) -> None:
    pieces_emulator.break_next("truncated")
    pieces_emulator.break_next("reset_before_response")
    with urllib3.PoolManager(retries=False) as pool:
        for _ in range(2):
            with pytest.raises(urllib3.exceptions.ProtocolError):
                pool.request("GET", pieces_emulator.url + IDS)
        assert pool.request("GET", pieces_emulator.url + IDS).status == 200


def test_hang_holds_until_the_client_gives_up(pieces_emulator: Emulator) -> None:
    pieces_emulator.break_next("hang")
    with pytest.raises(TimeoutError):
        call(pieces_emulator, "GET", IDS, timeout=0.2)
    healthy(pieces_emulator)


def test_hang_does_not_delay_stop() -> None:
    emu = Emulator().start()
    emu.break_next("hang")
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        conn.request("GET", IDS)
        time.sleep(0.05)
        started = time.monotonic()
        emu.stop()
        assert time.monotonic() - started < 2
    finally:
        conn.close()


# ----------------------------------------------------------------------------- a body that stalls part way
def read_head_and(sock: socket.socket, body_bytes: int) -> tuple[bytes, bytes]:
    """Read a response's head and then exactly ``body_bytes`` bytes of its body."""
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < body_bytes:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert len(body) == body_bytes, (len(body), body_bytes)
    return head, body


def content_length(head: bytes) -> int:
    [line] = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return int(line.split(b":")[1])


def test_stall_body_sends_head_and_part_of_the_body_then_the_rest(pieces_emulator: Emulator) -> None:
    pieces_emulator.create_conversation({"name": "a body long enough to stall in"})
    whole = call(pieces_emulator, "GET", "/conversations").body
    pieces_emulator.stall_body_next(1.0, after_bytes=10, path="/conversations")
    with socket.create_connection(("127.0.0.1", pieces_emulator.port), timeout=5) as sock:
        sock.sendall(b"GET /conversations HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_head_and(sock, 10)
        assert head.startswith(b"HTTP/1.1 200 ") and content_length(head) == len(whole)
        assert b"application/json" in head
        sock.settimeout(0.1)
        with pytest.raises(TimeoutError):  # stalled: nothing more for now
            sock.recv(65536)
        sock.settimeout(10)
        while len(body) < len(whole):
            chunk = sock.recv(65536)
            assert chunk, body
            body += chunk
    assert body == whole
    assert pieces_emulator.pending_faults() == []
    assert call(pieces_emulator, "GET", "/conversations").body == whole  # used up: the next one is whole at once


def test_a_stalled_body_times_out_a_client_read_and_stop_ends_it_promptly() -> None:
    emu = Emulator().start()
    try:
        emu.stall_body_next(60, after_bytes=5, count=None)
        timeout = urllib3.Timeout(connect=5, read=0.2)
        with urllib3.PoolManager(retries=False) as pool:
            reply = pool.request("GET", emu.url + IDS, timeout=timeout, preload_content=False)
            assert reply.status == 200 and int(reply.headers["Content-Length"]) > 5  # the head arrived
            with pytest.raises(urllib3.exceptions.ReadTimeoutError):
                reply.read()
            reply.release_conn()
        with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
            sock.sendall(f"GET {IDS} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, partial = read_head_and(sock, 5)
            assert content_length(head) > len(partial)
            started = time.monotonic()
            emu.stop()
            assert time.monotonic() - started < 3  # not the 60 s of the stall
            with contextlib.suppress(ConnectionResetError):  # closed with the body unfinished
                assert sock.recv(65536) == b""
    finally:
        emu.stop()


def test_stall_body_holds_a_response_with_no_body_whole(pieces_emulator: Emulator) -> None:
    pieces_emulator.stall_body_next(0.5, method="HEAD")
    with socket.create_connection(("127.0.0.1", pieces_emulator.port), timeout=5) as sock:
        sock.sendall(b"HEAD /.well-known/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sock.settimeout(0.1)
        with pytest.raises(TimeoutError):
            sock.recv(65536)
        sock.settimeout(10)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\n")


def test_stall_body_over_the_control_endpoint(pieces_emulator: Emulator) -> None:
    reply = call(
        pieces_emulator,
        "POST",
        "/__emulator__/faults/stall-body",
        json.dumps({"seconds": 0.2, "after_bytes": 3, "path": IDS, "count": 2}).encode(),
    )
    assert reply.status == 204, reply.body
    assert pieces_emulator.pending_faults() == [
        {"kind": "stall", "path": IDS, "remaining": 2, "seconds": 0.2, "after_bytes": 3}
    ]
    started = time.monotonic()
    healthy(pieces_emulator)
    assert time.monotonic() - started >= 0.2
    with urllib3.PoolManager(retries=False) as pool:  # a stalled response that completes leaves the connection usable
        for _ in range(2):
            assert pool.request("GET", pieces_emulator.url + IDS).json() == {"iterable": [], "indices": {}}
    assert pieces_emulator.pending_faults() == []


def test_every_break_mode_is_covered() -> None:
    assert set(BREAK_MODES) == {"malformed_json", "truncated", "disconnect", "reset_before_response", "html", "hang"}


def test_faults_from_many_threads_are_each_used_once(pieces_emulator: Emulator) -> None:
    pieces_emulator.fail_next(503, count=20)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with urllib3.PoolManager(retries=False) as pool:
            for _ in range(10):
                status = pool.request("GET", pieces_emulator.url + IDS).status
                with lock:
                    statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 20 + [503] * 20


# ----------------------------------------------------------------------------- black hole
def test_blackhole_server_accepts_and_never_answers() -> None:
    with blackhole_server() as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib3.PoolManager(retries=False) as pool, pytest.raises(urllib3.exceptions.ReadTimeoutError):
            pool.request("GET", url + IDS, timeout=urllib3.Timeout(connect=1, read=0.2))
        host, port = url[len("http://") :].split(":")
        with socket.create_connection((host, int(port)), timeout=1) as sock:
            sock.settimeout(0.1)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            with pytest.raises(TimeoutError):
                sock.recv(1)


# ----------------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[ssl.SSLContext, ssl.SSLContext, trustme.CA]]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    yield server, client, ca


def test_https_and_wss(tls: tuple[ssl.SSLContext, ssl.SSLContext, trustme.CA]) -> None:
    server, client, ca = tls
    with running_emulator(ssl_context=server) as emu:
        assert emu.url.startswith("https://127.0.0.1:")
        assert emu.ws_url.startswith("wss://127.0.0.1:")
        with urllib3.PoolManager(ssl_context=client) as pool:
            created = pool.request("POST", emu.url + "/conversations/create")
            assert created.status == 200
            cid = json.loads(created.data)["id"]
            ids = json.loads(pool.request("GET", emu.url + IDS).data)
            assert ids["iterable"] == [{"id": cid}]
        with ca.cert_pem.tempfile() as ca_file:
            ws = websocket.create_connection(
                emu.ws_url + "/conversations/stream/identifiers", sslopt={"ca_certs": ca_file}
            )
            try:
                assert json.loads(ws.recv()) == {"iterable": [{"conversation": {"id": cid}}]}
                emu.delete_conversation(cid)
                assert json.loads(ws.recv()) == {"iterable": [{"conversation": {"id": cid}, "deleted": True}]}
            finally:
                ws.close()
                ws.shutdown()


def test_https_rejects_an_untrusting_client(tls: tuple[ssl.SSLContext, ssl.SSLContext, trustme.CA]) -> None:
    server, _, _ = tls
    with running_emulator(ssl_context=server) as emu, urllib3.PoolManager(retries=False) as pool:
        with pytest.raises(urllib3.exceptions.SSLError):
            pool.request("GET", emu.url + IDS)
        # A plain-HTTP request to the TLS port does not get an answer that looks like the API.
        with pytest.raises(urllib3.exceptions.ProtocolError):
            pool.request("GET", emu.url.replace("https", "http") + IDS)


def tls_connections(emu: Emulator, client: ssl.SSLContext) -> list[ssl.SSLSocket]:
    """Two TLS connections left open: one that never sent a request, one idle after an answer."""
    connections = []
    for request in (None, b"GET /.well-known/health HTTP/1.1\r\nHost: x\r\n\r\n"):
        plain = socket.create_connection(("127.0.0.1", emu.port), timeout=5)
        conn = client.wrap_socket(plain, server_hostname="127.0.0.1")
        if request is not None:
            conn.sendall(request)
            assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")
        connections.append(conn)
    return connections


@pytest.mark.parametrize("on_callers_loop", [False, True], ids=["own-thread", "callers-loop"])
def test_stopping_cuts_off_tls_connections_whose_peer_never_closes(
    tls: tuple[ssl.SSLContext, ssl.SSLContext, trustme.CA], on_callers_loop: bool
) -> None:
    """A TLS peer that never answers the closing handshake does not leave a transport behind the loop."""
    server, client, _ = tls
    connections: list[ssl.SSLSocket] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if on_callers_loop:

            async def main() -> None:
                async with Emulator(ssl_context=server) as emu:
                    connections.extend(await asyncio.to_thread(tls_connections, emu, client))

            asyncio.run(main())
        else:
            with Emulator(ssl_context=server) as emu:
                connections.extend(tls_connections(emu, client))
        gc.collect()
    for conn in connections:
        conn.close()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
