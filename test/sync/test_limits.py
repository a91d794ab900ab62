"""Hostile servers cannot make the client use unbounded memory or time.

Each test starts a small raw-socket server on 127.0.0.1 that answers with what a broken or
hostile server might send: a body that never ends (no Content-Length, or chunked), a gzip bomb,
a body trickled slowly, a huge error body. The client must stop at its limits with a clear SDK
error. The memory checks run the client in a subprocess and measure its peak RSS there.
Every server stops by itself: when the client disconnects, or after a fixed amount of data
and time.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Optional

import pytest
from testkit.memory import OWN_PEAK_MIB, needs_vmhwm

from pieces_os_client import ApiClient, ApiTypeError, Configuration, ConversationsApi
from pieces_os_client.configuration import DEFAULT_MAX_RESPONSE_SIZE
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import (
    ERROR_BODY_LIMIT,
    ApiTimeoutError,
    ApiValueError,
    ResponseFormatError,
    ResponseTooLargeError,
    ServiceException,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
#: no server sends more than this, or for longer than this
MAX_SENT = GiB
MAX_SECONDS = 20.0
#: how long a trickling server keeps at it: far beyond the timeouts here (2 s), so a client
#: that waited for the trickle rather than its own deadline is caught by HANG; the server stops
#: early when the client goes or the test ends
STALL = 60.0
#: an upper bound only a hang, or waiting out a STALL, can break
HANG = 20.0

Handler = Callable[[socket.socket], None]


class RawServer(socketserver.ThreadingTCPServer):
    """Answers each connection, in a thread of its own, by running ``handler(conn)`` after
    reading the request head."""

    daemon_threads = True
    block_on_close = True  # close() waits for the connection threads (each stops by itself)

    def __init__(self, handler: Handler) -> None:
        super().__init__(("127.0.0.1", 0), _Connection)
        self.handler = handler
        self.request_heads: list[bytes] = []
        self.connections: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="raw-server", daemon=True)
        self.thread.start()

    def close(self) -> None:
        for conn in list(self.connections):  # a sender still at it stops at its next send
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.shutdown()
        self.server_close()
        self.thread.join(MAX_SECONDS)


class _Connection(socketserver.BaseRequestHandler):
    server: RawServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        self.server.connections.append(conn)
        with contextlib.suppress(OSError):  # the client went away: this connection is done
            conn.settimeout(MAX_SECONDS)  # for the request head, slow only on a loaded machine
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            self.server.request_heads.append(head)
            self.server.handler(conn)


@contextlib.contextmanager
def serving(handler: Handler) -> Iterator[RawServer]:
    server = RawServer(handler)
    try:
        yield server
    finally:
        server.close()


def answering(status: str, body: bytes, *headers: str) -> Handler:
    """A handler sending one response with a Content-Length."""

    def answer(conn: socket.socket) -> None:
        send_head(conn, status, [*headers, f"Content-Length: {len(body)}"])
        conn.sendall(body)

    return answer


# ---------------------------------------------------------------- what the servers send
def send_head(conn: socket.socket, status: str, headers: list[str]) -> None:
    conn.sendall((f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode())


def send_endless(
    conn: socket.socket, framing: str, piece: bytes = b"7" * MiB, tally: Optional[list[int]] = None
) -> None:
    """A 200 JSON body that does not end (up to MAX_SENT), without a length or chunked; the
    body bytes the kernel took are added up in ``tally``."""
    framing_header = "Transfer-Encoding: chunked" if framing == "chunked" else "Connection: close"
    send_head(conn, "200 OK", ["Content-Type: application/json", framing_header])
    frame = b"%x\r\n%s\r\n" % (len(piece), piece) if framing == "chunked" else piece
    started, sent = time.monotonic(), 0
    while sent < MAX_SENT and time.monotonic() - started < MAX_SECONDS:
        conn.sendall(frame)  # raises once the client has gone
        sent += len(piece)
        if tally is not None:
            tally.append(len(piece))


def gzip_member(size: int) -> bytes:
    """One gzip member holding ``size`` zero bytes, compressed in a streaming way."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MiB)
    out = [packer.compress(block) for _ in range(size // MiB)]
    return b"".join(out) + packer.flush()


#: 16 MiB of zeros in ~16 KB; 64 members one after another make a 1 MB body that inflates to 1 GiB
BOMB_MEMBER = gzip_member(16 * MiB)
BOMB = BOMB_MEMBER * 64


send_gzip_bomb = answering("200 OK", BOMB, "Content-Type: application/json", "Content-Encoding: gzip")


def send_endless_gzip(conn: socket.socket) -> None:
    """Chunked gzip members, one after another, without end (up to MAX_SENT once inflated)."""
    send_head(conn, "200 OK", ["Content-Type: application/json", "Content-Encoding: gzip",
                               "Transfer-Encoding: chunked"])
    frame = b"%x\r\n%s\r\n" % (len(BOMB_MEMBER), BOMB_MEMBER)
    started = time.monotonic()
    for _ in range(MAX_SENT // (16 * MiB)):
        if time.monotonic() - started > MAX_SECONDS:
            break
        conn.sendall(frame)


def trickle(conn: socket.socket, byte: bytes) -> None:
    """1 KiB every 50 ms for a minute (STALL): each read is quick, the whole never ends. Stops
    when the client goes (the send fails) or the test ends (RawServer.close)."""
    started = time.monotonic()
    while time.monotonic() - started < STALL:
        conn.sendall(byte * 1024)
        time.sleep(0.05)


def send_trickle(conn: socket.socket) -> None:
    """Announces 1 GiB and trickles it."""
    send_head(conn, "200 OK", ["Content-Type: application/json", f"Content-Length: {GiB}"])
    trickle(conn, b" ")


def api_for(url: str, **settings: object) -> ConversationsApi:
    config = Configuration(host=url, **{"max_retries": 0, "connect_timeout": 5, "read_timeout": 5, **settings})  # type: ignore[arg-type]
    return ConversationsApi(ApiClient(config))


# ---------------------------------------------------------------- max_response_size
@pytest.mark.parametrize("framing", ["close", "chunked"])
def test_endless_body_stops_at_max_response_size(framing: str) -> None:
    sent: list[int] = []
    with serving(lambda conn: send_endless(conn, framing, tally=sent)) as server:
        api = api_for(server.url, max_response_size=8 * MiB)
        started = time.monotonic()
        with pytest.raises(ResponseTooLargeError) as info:
            api.conversations_snapshot()
        api.api_client.close()
    assert time.monotonic() - started < HANG  # the server would go on for 20 s (or 1 GiB)
    # what the server got rid of: the 8 MiB read, what the two kernels buffer, and no more
    assert 8 * MiB < sum(sent) < 64 * MiB, sum(sent)
    message = str(info.value)
    assert "max_response_size" in message and "8388608 bytes, 8 MiB" in message and server.url in message
    assert "more than that arrived, and the client stopped reading" in message
    assert info.value.limit == 8 * MiB and info.value.status == 200 and info.value.body is None
    assert isinstance(info.value, ResponseFormatError)


def test_a_content_length_over_the_limit_fails_before_reading() -> None:
    with serving(send_trickle) as server:
        api = api_for(server.url, max_response_size=MiB)
        started = time.monotonic()
        with pytest.raises(ResponseTooLargeError, match=r"its Content-Length is 1073741824 bytes"):
            api.conversations_identifiers_snapshot()
        assert time.monotonic() - started < HANG  # nothing waited for: the trickle goes on for a minute
        api.api_client.close()


def body_of(size: int) -> bytes:
    """A valid identifiers document of exactly ``size`` bytes."""
    shell = b'{"iterable": [], "padding": ""}'
    return shell[:-2] + b"x" * (size - len(shell)) + shell[-2:]


def test_a_body_at_the_limit_is_read_and_none_lifts_the_limit() -> None:
    body = body_of(256 * 1024)

    def answer(conn: socket.socket) -> None:
        send_head(conn, "200 OK", ["Content-Type: application/json", "Transfer-Encoding: chunked"])
        conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))

    with serving(answer) as server:
        exact = api_for(server.url, max_response_size=len(body)).conversations_identifiers_snapshot_with_http_info()
        assert exact.raw_data == body
        with pytest.raises(ResponseTooLargeError):
            api_for(server.url, max_response_size=len(body) - 1).conversations_identifiers_snapshot()
        assert api_for(server.url, max_response_size=None).conversations_identifiers_snapshot().iterable == []


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (0, ApiValueError, "max_response_size must be 1 or more, not 0"),
        (-1, ApiValueError, "max_response_size must be 1 or more, not -1"),
        (1.5, ApiTypeError, "max_response_size must be an int, not float (1.5)"),
        ("10", ApiTypeError, "max_response_size must be an int, not str ('10')"),
        (True, ApiTypeError, "max_response_size must be an int, not bool (True)"),
    ],
)
def test_max_response_size_must_be_a_positive_int_or_none(value: object, error: type, text: str) -> None:
    with pytest.raises(error) as caught:
        Configuration(host="http://127.0.0.1:9", max_response_size=value)  # type: ignore[arg-type]
    assert text in str(caught.value)


def test_the_default_limit_fits_a_large_snapshot(emu: Emulator) -> None:
    # the default must not get in the way of a real Pieces OS with many conversations
    assert 100 * MiB <= DEFAULT_MAX_RESPONSE_SIZE
    assert Configuration().max_response_size == DEFAULT_MAX_RESPONSE_SIZE
    for index in range(300):
        emu.create_conversation({"name": f"conversation {index}"})
    api = api_for(emu.url)
    snapshot = api.conversations_snapshot_with_http_info(transferables=True)
    assert len(snapshot.data.iterable) == 300 and len(snapshot.raw_data) < DEFAULT_MAX_RESPONSE_SIZE


# ---------------------------------------------------------------- content encodings
def test_a_gzip_body_the_client_did_not_ask_for_is_refused_unread() -> None:
    with serving(send_gzip_bomb) as server:
        api = api_for(server.url)
        with pytest.raises(ResponseFormatError) as info:
            api.conversations_snapshot()
        api.api_client.close()
    assert b"\r\naccept-encoding: identity\r\n" in server.request_heads[0].lower()  # http.client's default
    message = str(info.value)
    assert "Content-Encoding 'gzip', which the client did not ask for" in message
    assert "Accept-Encoding: identity" in message and not isinstance(info.value, ResponseTooLargeError)


@pytest.mark.parametrize("send", [send_gzip_bomb, send_endless_gzip], ids=["bomb", "endless"])
def test_a_gzip_bomb_asked_for_stops_at_the_limit(send: Handler) -> None:
    with serving(send) as server:
        api = api_for(server.url, max_response_size=16 * MiB - 1)
        with pytest.raises(ResponseTooLargeError, match=r"it decompresses \(gzip\) to more than that"):
            api.conversations_snapshot(_headers={"Accept-Encoding": "gzip"})
        api.api_client.close()


@pytest.mark.parametrize("coding", ["deflate", "deflate-raw", "gzip-members"])
def test_asked_for_encodings_are_decoded(coding: str) -> None:
    document = b'{"iterable": [{"id": "packed"}]}'
    if coding == "deflate":
        body = zlib.compress(document)
    elif coding == "deflate-raw":
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = packer.compress(document) + packer.flush()
    else:
        body = gzip.compress(document[:10]) + gzip.compress(document[10:])
    name = coding.split("-")[0]
    with serving(answering("200 OK", body, "Content-Type: application/json", f"Content-Encoding: {name}")) as server:
        api = api_for(server.url)
        result = api.conversations_identifiers_snapshot(_headers={"Accept-Encoding": f"{name}, br;q=0"})
        assert [item.id for item in result.iterable] == ["packed"]
        with pytest.raises(ResponseFormatError, match=f"Content-Encoding '{name}', which the client did not ask"):
            api.conversations_identifiers_snapshot(_headers={"Accept-Encoding": f"{name};q=0"})


# ---------------------------------------------------------------- the whole attempt's deadline
def test_a_trickled_body_fails_at_the_request_timeout() -> None:
    with serving(send_trickle) as server:
        api = api_for(server.url, max_response_size=None)
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as info:
            api.conversations_snapshot(_request_timeout=2)
        elapsed = time.monotonic() - started
        api.api_client.close()
    assert 1.5 < elapsed < HANG, elapsed  # the 2 s request timeout, not the minute-long trickle
    message = str(info.value)
    assert "did not send the whole response body (status 200) within _request_timeout=2 s" in message
    assert server.url in message
    assert isinstance(info.value.__cause__, TimeoutError)


def test_a_retried_error_response_is_not_read_to_its_end() -> None:
    answers = iter(["trickle", "ok"])
    ok = answering("200 OK", b'{"iterable": []}', "Content-Type: application/json")

    def answer(conn: socket.socket) -> None:
        if next(answers, "ok") == "ok":
            ok(conn)
            return
        # a 503 the GET is retried on, whose body would take hours to arrive
        send_head(conn, "503 Service Unavailable", ["Content-Type: text/plain", f"Content-Length: {GiB}"])
        trickle(conn, b"b")

    with serving(answer) as server:
        api = api_for(server.url, max_retries=1, backoff_factor=0)
        started = time.monotonic()
        assert api.conversations_identifiers_snapshot().iterable == []
        assert time.monotonic() - started < HANG  # the 503's body was dropped, not drained for a minute
        api.api_client.close()
    assert len(server.request_heads) == 2


def test_a_deadline_leaves_the_pooled_connection_usable(emu: Emulator) -> None:
    api = api_for(emu.url)
    for index in range(20):
        created = api.conversations_create_specific_conversation(
            seeded_conversation={"name": f"n{index}"}, _request_timeout=5)
        assert created.name == f"n{index}"
    assert len(api.conversations_identifiers_snapshot(_request_timeout=5).iterable) == 20
    assert len(api.conversations_identifiers_snapshot(_request_timeout=(5, 5)).iterable) == 20


# ---------------------------------------------------------------- bounded error bodies
def test_a_huge_error_body_is_kept_as_a_bounded_prefix() -> None:
    reason = b"model not loaded. " + b"e" * (20 * MiB)
    with serving(answering("500 Internal Server Error", reason, "Content-Type: text/plain; charset=utf-8")) as server:
        api = api_for(server.url)
        with pytest.raises(ServiceException) as info:
            api.conversations_create_specific_conversation()
        api.api_client.close()
    body = info.value.body
    assert body is not None and body.startswith("model not loaded. eee")
    assert len(body) < ERROR_BODY_LIMIT + 100
    assert body.endswith(f"... [cut: {len(reason) - ERROR_BODY_LIMIT} of {len(reason)} bytes not kept]")
    assert len(str(info.value)) < 1000


def test_a_huge_unreadable_success_body_is_kept_as_a_bounded_prefix() -> None:
    junk = b"<html>" + b"h" * (5 * MiB)
    with serving(answering("200 OK", junk, "Content-Type: text/html")) as server:
        api = api_for(server.url)
        with pytest.raises(ResponseFormatError) as info:
            api.conversations_identifiers_snapshot()
        api.api_client.close()
    assert info.value.body is not None and len(info.value.body) < ERROR_BODY_LIMIT + 100
    assert f"{len(junk)} bytes" in str(info.value) and len(str(info.value)) < 1000


# ---------------------------------------------------------------- memory, in a subprocess
CLIENT = OWN_PEAK_MIB + """
import json, resource, sys
from pieces_os_client import ApiClient, Configuration, ConversationsApi
url, accept = sys.argv[1], sys.argv[2]
resource.setrlimit(resource.RLIMIT_AS, (3 * 1024 ** 3, 3 * 1024 ** 3))  # a safety net, not the measure
api = ConversationsApi(ApiClient(Configuration(host=url, max_retries=0)))
try:
    api.conversations_snapshot(**({"_headers": {"Accept-Encoding": accept}} if accept else {}))
    outcome = "no error"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
peak = own_peak_mib()
print(json.dumps({"outcome": outcome, "peak_mib": peak}))
"""

# (chunked framing and the 1 MB bomb asked for are covered above, with a smaller limit)
MEMORY_CASES = {
    "endless": (lambda conn: send_endless(conn, "close"), "", "ResponseTooLargeError"),
    "gzip-unasked": (send_gzip_bomb, "", "ResponseFormatError"),
    "gzip-endless-chunked": (send_endless_gzip, "gzip", "ResponseTooLargeError"),
}


@needs_vmhwm
@pytest.mark.parametrize("case", list(MEMORY_CASES))
def test_peak_memory_stays_bounded_against_a_gigabyte(case: str) -> None:
    send, accept, expected = MEMORY_CASES[case]
    with serving(send) as server:
        result = subprocess.run([sys.executable, "-c", CLIENT, server.url, accept],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    print(f"{case}: peak RSS {report['peak_mib']:.0f} MiB; {report['outcome'][:100]}")
    assert report["outcome"].startswith(expected + ":"), report["outcome"]
    # the default max_response_size is 256 MiB: the client holds at most that much body
    assert report["peak_mib"] < 600, report
