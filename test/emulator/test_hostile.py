"""The emulator under hostile input: every bad request gets a clear 4xx (or the documented 500
reason), nothing logs a traceback, and the server keeps answering everyone else."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import logging
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Dict, List, Optional, Tuple

import pytest
import websocket
from testkit import ROOT
from testkit.emulator import Reply, call, post_json

from pieces_os_client.emulator import Emulator

IDS = "/conversations/identifiers"
CREATE = "/conversations/create"
STREAM = "/conversations/stream/identifiers"


@pytest.fixture(autouse=True)
def _capture_everything(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


@pytest.fixture(scope="module")
def limited() -> Iterator[Emulator]:
    """An emulator with small, explicit limits."""
    with Emulator(max_request_size=1024, max_ws_message_size=1024, heartbeat=None) as emu:
        yield emu


def still_fine(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    """A normal request succeeds, and nothing so far logged a traceback or an error."""
    reply = call(emu, "GET", IDS)
    assert reply.status == 200, reply
    assert set(reply.json()) == {"iterable", "indices"}
    noisy = [
        f"{record.name} {record.levelname}: {record.getMessage()}"
        for record in caplog.records
        if record.exc_info or record.exc_text or record.levelno >= logging.ERROR or "Traceback" in record.message
    ]
    assert noisy == []


def wait_for_log(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in record.getMessage() for record in caplog.records):
        assert time.monotonic() < deadline, f"no log record containing {text!r}"
        time.sleep(0.01)


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def first_response(emu: Emulator, request: bytes) -> bytes:
    """Send raw bytes; return the first complete response (head and Content-Length body).

    The connection may stay open after it: a server that did not read a request's whole body
    goes on reading and discarding it for a while before closing, so the answer arrives
    rather than a reset.
    """
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while True:
            head, found, body = data.partition(b"\r\n\r\n")
            if found:
                length = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                if len(body) >= int(length[0].split(b":")[1]):
                    return data
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk


def post_raw(emu: Emulator, path: str, body: bytes, content_type: str = "application/json") -> Reply:
    return call(emu, "POST", path, body, {"Content-Type": content_type})


# ----------------------------------------------------------------------------- deep and odd JSON
NESTED_65 = b'{"type": "COPILOT", "application": {"x": ' + b"[" * 65 + b"]" * 65 + b"}}"


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, NESTED_65],
    ids=["100k-arrays", "100k-objects", "65-levels"],
)
def test_deeply_nested_create_body_gets_the_documented_500(
    emu: Emulator, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    reply = post_raw(emu, CREATE, body)
    assert reply.status == 500
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text == "invalid request body: JSON nested more than 64 levels deep"
    assert emu.conversation_ids() == []
    still_fine(emu, caplog)


def test_deeply_nested_control_body_is_400(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    reply = post_raw(emu, "/__emulator__/faults/fail", b"[" * 100_000 + b"]" * 100_000)
    assert reply.status == 400
    assert reply.json() == {"error": "invalid request body: JSON nested more than 64 levels deep"}
    assert emu.pending_faults() == []
    still_fine(emu, caplog)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_finite_numbers_never_reach_the_store(
    emu: Emulator, caplog: pytest.LogCaptureFixture, number: bytes
) -> None:
    body = b'{"messages": [{"role": "USER", "fragment": {"string": {"raw": "hi"}, "x": ' + number + b"}}]}"
    reply = post_raw(emu, CREATE, body)
    assert reply.status == 500
    assert reply.text.startswith("invalid request body: ")
    assert number.lstrip(b"-").decode() in reply.text
    assert emu.conversation_ids() == []

    def refuse(name: str) -> None:
        raise AssertionError(f"the snapshot holds {name}")

    json.loads(call(emu, "GET", "/conversations").body, parse_constant=refuse)  # strict JSON
    still_fine(emu, caplog)


def test_huge_numbers_are_refused_quickly(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    digits = b"9" * 100_000
    reply = post_raw(emu, CREATE, b'{"name": "x", "demo": ' + digits + b"}")
    assert (reply.status, reply.text) == (500, "invalid request body: a number of 100000 digits (the limit is 1000)")
    reply = post_raw(emu, "/__emulator__/faults/fail", b'{"status": ' + digits + b"}")
    assert reply.status == 400
    assert reply.json() == {"error": "invalid request body: a number of 100000 digits (the limit is 1000)"}
    assert emu.pending_faults() == []
    still_fine(emu, caplog)


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        ('{"name": "x"}'.encode("utf-16"), "application/json", "not valid UTF-8 (byte 0)"),
        (b'\xef\xbb\xbf{"name": "x"}', "application/json", "Unexpected UTF-8 BOM"),
        (b'{"name": "caf\xe9"}', "text/plain", "not valid UTF-8 (byte 13)"),
    ],
    ids=["utf-16", "bom", "latin-1"],
)
def test_create_body_must_be_utf8_json_whatever_the_content_type(
    emu: Emulator, caplog: pytest.LogCaptureFixture, body: bytes, content_type: str, reason: str
) -> None:
    reply = post_raw(emu, CREATE, body, content_type)
    assert reply.status == 500
    assert reply.text.startswith("invalid request body: ")
    assert reason in reply.text
    assert emu.conversation_ids() == []
    # The same seed in UTF-8 JSON is taken whatever Content-Type says.
    assert post_raw(emu, CREATE, b'{"name": "x"}', content_type).json()["name"] == "x"
    still_fine(emu, caplog)


# ----------------------------------------------------------------------------- fault settings
@pytest.mark.parametrize(
    ("endpoint", "body", "error"),
    [
        ("fail", b'{"retry_after": "1\\r\\nX-Injected: yes"}', "retry_after must not contain control characters"),
        ("fail", b'{"retry_after": "a\\u0000b"}', "retry_after must not contain control characters"),
        ("fail", '{"retry_after": "in 1 \u20ac"}'.encode(), "retry_after must be ASCII text"),
        ("fail", b'{"retry_after": "caf\\u00e9"}', "retry_after must be ASCII text"),
        ("fail", b'{"retry_after": -1}', "retry_after must be between 0 and 31622400 seconds"),
        ("fail", b'{"retry_after": NaN}', "retry_after must be a finite number"),
        ("fail", b'{"retry_after": [1]}', "retry_after must be a number of seconds or a string"),
        ("fail", b'{"status": "503"}', "status must be an integer, not str"),
        ("fail", b'{"status": 503.5}', "status must be an integer, not float"),
        ("fail", b'{"body": 5}', "body must be a string, not int"),
        ("fail", b'{"method": 5}', "method must be a string, not int"),
        ("fail", b'{"method": "GET\\r\\n"}', "method must be an HTTP method"),
        ("fail", b'{"path": ["/conversations"]}', "path must be a string, not list"),
        ("fail", b'{"sttaus": 503}', "unknown setting 'sttaus' for POST /__emulator__/faults/fail; expected status"),
        ("delay", b'{"seconds": NaN}', "seconds must be a finite number, got nan"),
        ("delay", b'{"seconds": Infinity}', "seconds must be a finite number, got inf"),
        ("delay", b'{"seconds": 1e999}', "seconds must be a finite number, got inf"),
        ("delay", b'{"seconds": 3601}', "seconds must be between 0 and 3600 seconds"),
        ("delay", b'{"seconds": "1"}', "seconds must be a number of seconds, not str"),
        ("delay", b'{"seconds": true}', "seconds must be a number of seconds, not bool"),
        ("delay", b"", "'seconds' is required"),
        ("delay", b'{"seconds": 1, "count": 2.5}', "count must be an integer, not float"),
        ("delay", b'{"seconds": 1, "count": "3"}', "count must be an integer, not str"),
        ("delay", b'{"seconds": 1, "count": 1000000000000}', "count must be between 1 and 1000000000"),
        ("break", b'{"mode": "hang", "count": true}', "count must be an integer, not bool"),
        ("break", b'{"mode": "hang", "times": 2}', "unknown setting 'times' for POST /__emulator__/faults/break"),
        ("stall-body", b"{}", "'seconds' is required"),
        ("stall-body", b'{"seconds": 1, "after_bytes": -1}', "after_bytes must be between 0 and"),
        ("stall-body", b'{"seconds": 1, "after_bytes": 1.5}', "after_bytes must be an integer, not float"),
        ("stall-body", b'{"seconds": 3601}', "seconds must be between 0 and 3600 seconds"),
        ("stall-body", b'{"seconds": 1, "bytes": 2}', "unknown setting 'bytes' for POST"),
    ],
)
def test_control_endpoints_validate_every_fault_setting(
    emu: Emulator, caplog: pytest.LogCaptureFixture, endpoint: str, body: bytes, error: str
) -> None:
    reply = post_raw(emu, f"/__emulator__/faults/{endpoint}", body)
    assert reply.status == 400
    assert error in reply.json()["error"]
    assert emu.pending_faults() == []
    still_fine(emu, caplog)


@pytest.mark.parametrize(
    ("path", "body", "error"),
    [
        ("reset", b'{"everything": true}', "unknown setting 'everything' for POST /__emulator__/reset; it takes none"),
        ("faults/fail", b"[]", "the body must be a JSON object, not an array"),
        ("faults/fail", b"5", "the body must be a JSON object, not a number"),
        ("faults/fail", b'"x"', "the body must be a JSON object, not a string"),
        ("faults/fail", b'"\\xff"'.replace(b"\\xff", b"\xff"), "invalid request body: not valid UTF-8 (byte 1)"),
        ("faults/fail", '{"status": 503}'.encode("utf-16"), "invalid request body: not valid UTF-8 (byte 0)"),
        ("assets", b'{"name": "n", "formats": {"iterable": 5}}', "an asset's formats.iterable must be a list, not int"),
    ],
)
def test_control_bodies_must_be_json_objects_of_known_settings(
    emu: Emulator, caplog: pytest.LogCaptureFixture, path: str, body: bytes, error: str
) -> None:
    reply = post_raw(emu, f"/__emulator__/{path}", body)
    assert (reply.status, reply.json()) == (400, {"error": error})
    assert emu.pending_faults() == []
    still_fine(emu, caplog)


NAN = float("nan")


@pytest.mark.parametrize(
    ("method", "args", "kwargs", "exception", "message"),
    [
        ("delay_next", (NAN,), {}, ValueError, "seconds must be a finite number, got nan"),
        ("delay_next", (math.inf,), {}, ValueError, "seconds must be a finite number, got inf"),
        ("delay_next", (10**400,), {}, ValueError, "seconds must be a finite number"),
        ("delay_next", (3600.5,), {}, ValueError, "seconds must be between 0 and 3600 seconds"),
        ("delay_next", ("1",), {}, TypeError, "seconds must be a number of seconds, not str"),
        ("delay_next", (1,), {"count": 1.5}, TypeError, "count must be an integer, not float"),
        ("delay_next", (1,), {"count": True}, TypeError, "count must be an integer, not bool"),
        ("fail_next", (503,), {"retry_after": "1\r\nX-Injected: yes"}, ValueError, "retry_after must not contain"),
        ("fail_next", (503,), {"retry_after": "\x00"}, ValueError, "retry_after must not contain"),
        ("fail_next", (503,), {"retry_after": "\xe9"}, ValueError, "retry_after must be ASCII text"),
        ("fail_next", (503,), {"retry_after": "9" * 2000}, ValueError, "retry_after is 2000 characters long"),
        ("fail_next", (503,), {"retry_after": NAN}, ValueError, "retry_after must be a finite number"),
        ("fail_next", (503,), {"retry_after": -0.5}, ValueError, "retry_after must be between 0 and"),
        ("fail_next", (503,), {"retry_after": b"1"}, TypeError, "retry_after must be a number of seconds or a string"),
        ("fail_next", (503.0,), {}, TypeError, "status must be an integer, not float"),
        ("fail_next", ("503",), {}, TypeError, "status must be an integer, not str"),
        ("fail_next", (503,), {"body": b"bytes"}, TypeError, "body must be a string, not bytes"),
        ("fail_next", (503,), {"method": 5}, TypeError, "method must be a string, not int"),
        ("fail_next", (503,), {"method": "GET /x"}, ValueError, "method must be an HTTP method"),
        ("fail_next", (503,), {"path": 5}, TypeError, "path must be a string, not int"),
        ("fail_next", (503,), {"path": "/a\nb"}, ValueError, "path must not contain control characters"),
        ("break_next", ("hang",), {"path": b"/x"}, TypeError, "path must be a string, not bytes"),
        ("break_next", ("hang",), {"count": 10**10}, ValueError, "count must be between 1 and 1000000000"),
        ("stall_body_next", (NAN,), {}, ValueError, "seconds must be a finite number, got nan"),
        ("stall_body_next", (1,), {"after_bytes": -1}, ValueError, "after_bytes must be between 0 and"),
        ("stall_body_next", (1,), {"after_bytes": "5"}, TypeError, "after_bytes must be an integer, not str"),
        ("stall_body_next", (1,), {"after_bytes": True}, TypeError, "after_bytes must be an integer, not bool"),
    ],
)
def test_python_api_validates_every_fault_setting(
    emu: Emulator,
    caplog: pytest.LogCaptureFixture,
    method: str,
    args: Any,
    kwargs: Dict[str, Any],
    exception: type,
    message: str,
) -> None:
    with pytest.raises(exception) as info:
        getattr(emu, method)(*args, **kwargs)
    assert message in str(info.value)
    assert emu.pending_faults() == []
    still_fine(emu, caplog)


def test_fault_settings_at_their_bounds_are_taken_and_the_list_is_capped(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.fail_next(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT\t~", count=None, path=IDS)
    emu.delay_next(0, count=1_000_000_000)
    reply = call(emu, "GET", IDS)
    assert (reply.status, reply.headers["retry-after"]) == (503, "Wed, 21 Oct 2015 07:28:00 GMT\t~")
    emu.clear_faults()
    emu.delay_next(3600, path="/never/matched")
    for _ in range(9_999):
        emu.fail_next(503, path="/never/matched")
    with pytest.raises(ValueError, match="too many pending faults"):
        emu.delay_next(1, path="/never/matched")
    reply = post_json(emu, "/__emulator__/faults/fail", {"path": "/never/matched"})
    assert reply.status == 400 and "too many pending faults" in reply.json()["error"]
    assert len(emu.pending_faults()) == 10_000
    emu.clear_faults()
    still_fine(emu, caplog)


# ----------------------------------------------------------------------------- sizes
def test_bodies_over_the_limit_get_413_without_being_read(limited: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    limited.reset()
    too_large = "request body larger than 1024 bytes (the emulator's max_request_size)"
    at_limit = b'{"name": "x"}'.ljust(1024)
    assert post_raw(limited, CREATE, at_limit).status == 200

    reply = post_raw(limited, CREATE, at_limit + b" ")
    assert (reply.status, reply.text) == (413, too_large)
    assert reply.headers["content-type"].startswith("text/plain")
    reply = post_raw(limited, "/__emulator__/faults/fail", b"{}".ljust(1025))
    assert (reply.status, reply.json()) == (413, {"error": too_large})

    # Chunked, with no Content-Length: refused once the limit is passed.
    chunks = b"".join(b"100\r\n" + b" " * 256 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    raw = first_response(
        limited, b"POST /conversations/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    )
    assert status_of(raw) == 413 and raw.endswith(too_large.encode())

    # A 10 GB Content-Length is answered at once, not after waiting for the body.
    started = time.monotonic()
    raw = first_response(
        limited, b"POST /conversations/create HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n{"
    )
    assert status_of(raw) == 413
    assert time.monotonic() - started < 5
    assert len(limited.conversation_ids()) == 1
    still_fine(limited, caplog)


def test_the_limit_counts_a_compressed_body_as_it_unpacks(limited: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    bomb = gzip.compress(b'{"name": "x"}'.ljust(256 << 10))
    assert len(bomb) < 1024  # its Content-Length is within the limit; what it unpacks to is not
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    reply = call(limited, "POST", CREATE, bomb, headers)
    assert (reply.status, reply.text) == (413, "request body larger than 1024 bytes (the emulator's max_request_size)")
    small = gzip.compress(b'{"name": "x"}'.ljust(1024))
    assert call(limited, "POST", CREATE, small, headers).json()["name"] == "x"
    still_fine(limited, caplog)


def test_default_request_limit_is_1_mib_and_none_lifts_it(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    assert post_raw(emu, CREATE, b'{"name": "x"}'.ljust(1 << 20)).status == 200
    reply = post_raw(emu, CREATE, b"{}".ljust((1 << 20) + 1))
    assert (reply.status, reply.text) == (
        413,
        "request body larger than 1048576 bytes (the emulator's max_request_size)",
    )
    with Emulator(max_request_size=None) as unlimited:
        assert post_raw(unlimited, CREATE, b'{"name": "big"}'.ljust(3 << 20)).json()["name"] == "big"
    still_fine(emu, caplog)


@pytest.mark.parametrize(
    ("kwargs", "exception", "message"),
    [
        ({"max_request_size": 0}, ValueError, "max_request_size must be at least 1 byte"),
        ({"max_request_size": "8"}, TypeError, "max_request_size must be a whole number of bytes"),
        ({"max_ws_message_size": 1.5}, TypeError, "max_ws_message_size must be a whole number of bytes"),
        ({"idle_timeout": NAN}, ValueError, "idle_timeout must be a positive, finite number"),
        ({"idle_timeout": 0}, ValueError, "idle_timeout must be a positive, finite number"),
        ({"idle_timeout": "5"}, TypeError, "idle_timeout must be a number of seconds"),
    ],
)
def test_limits_are_checked_when_the_emulator_is_made(kwargs: Dict[str, Any], exception: type, message: str) -> None:
    with pytest.raises(exception, match=message):
        Emulator(**kwargs)


def test_a_large_create_does_not_hold_up_other_clients(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    message = b'{"role": "USER", "fragment": {"string": {"raw": "hi"}}}'
    body = b'{"name": "big", "messages": [' + b",".join([message] * 8_000) + b"]}"
    assert len(body) < 1 << 20
    worker = threading.Thread(target=lambda: post_raw(emu, CREATE, body))
    worker.start()
    try:
        deadline = time.monotonic() + 5
        while emu.request_count("POST", CREATE) == 0:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(0.05)  # the body is in; checking and storing 8000 messages takes a while
        assert call(emu, "GET", "/.well-known/health").status == 200
        # Answered while the conversation was still being built: had the loop been busy
        # building it, the health check would have waited until it was stored.
        assert emu.conversation_ids() == []
    finally:
        worker.join(30)
    assert len(emu.conversation_ids()) == 1
    still_fine(emu, caplog)


# ----------------------------------------------------------------------------- malformed HTTP
MALFORMED = {
    "request-line-too-long": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header-too-long": b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "bad-content-length": b"POST /conversations/create HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "negative-content-length": b"POST /conversations/create HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "bad-chunk-size": b"POST /conversations/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "length-and-chunked": (
        b"POST /conversations/create HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}"
    ),
    "non-ascii-path": b"GET /conversations/\xff\xfe/delete HTTP/1.1\r\nHost: x\r\n\r\n",
    "tls-client-hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(32),
}


@pytest.mark.parametrize("request_bytes", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_requests_get_400_and_no_traceback(
    emu: Emulator, caplog: pytest.LogCaptureFixture, request_bytes: bytes
) -> None:
    raw = first_response(emu, request_bytes)
    assert status_of(raw) == 400
    assert b"Content-Type: text/plain" in raw
    still_fine(emu, caplog)


@pytest.mark.parametrize("path", [CREATE, "/__emulator__/faults/fail", IDS], ids=["create", "control", "delayed"])
def test_a_client_leaving_mid_body_is_not_an_error(emu: Emulator, caplog: pytest.LogCaptureFixture, path: str) -> None:
    if path == IDS:
        emu.delay_next(0.01, path=IDS)  # a delayed request takes its body in before waiting
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode())
        assert call(emu, "GET", "/__emulator__/state").status == 200  # the handler is reading by now
    wait_for_log(caplog, "the client went away before sending the whole body")
    assert emu.conversation_ids() == []
    still_fine(emu, caplog)


def test_a_delayed_create_keeps_the_body_it_read_while_waiting(emu: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    emu.delay_next(0.01, path=CREATE)  # the delay reads the body first; the create must still see it
    assert post_raw(emu, CREATE, b'{"name": "read once"}').json()["name"] == "read once"
    still_fine(emu, caplog)


def test_a_body_that_cannot_be_decoded_is_400_not_a_server_error(
    emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    reply = call(emu, "POST", CREATE, b"this is not gzip", headers)
    assert reply.status == 400
    assert reply.headers["content-type"].startswith("text/plain")
    assert reply.text.startswith("malformed request body: ") and "gzip" in reply.text
    assert emu.conversation_ids() == []
    still_fine(emu, caplog)


# ----------------------------------------------------------------------------- WebSockets
def ws_upgrade(emu: Emulator, path: str = STREAM) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", emu.port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


def server_frames(sock: socket.socket) -> List[Tuple[int, bytes]]:
    """Read the upgrade answer and every (opcode, payload) frame until the server closes."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    frames = []
    while rest:
        opcode, length = rest[0] & 0x0F, rest[1] & 0x7F
        start = 2
        if length == 126:
            (length,), start = struct.unpack("!H", rest[2:4]), 4
        frames.append((opcode, rest[start : start + length]))
        rest = rest[start + length :]
    return frames


def client_frame(payload: bytes, opcode: int = 1, declared: Optional[int] = None) -> bytes:
    length = len(payload) if declared is None else declared
    header = bytes([0x80 | opcode])
    if length < 126:
        header += bytes([0x80 | length])
    elif length < 65536:
        header += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        header += bytes([0x80 | 127]) + struct.pack("!Q", length)
    return header + b"\0\0\0\0" + payload  # a zero mask leaves the payload as it is


@pytest.mark.parametrize(
    ("sent", "close_code"),
    [
        (b"\xff" * 64, 1002),
        (client_frame(b"x" * 1025), 1009),
        (client_frame(b"", declared=2**63 - 1), 1009),
        (client_frame(b"\xff\xfe"), 1007),
    ],
    ids=["garbage", "over-the-limit", "declares-8-exabytes", "invalid-utf8-text"],
)
def test_identifiers_socket_refuses_garbage_and_huge_frames(
    limited: Emulator, caplog: pytest.LogCaptureFixture, sent: bytes, close_code: int
) -> None:
    limited.reset()
    listener = websocket.create_connection(limited.ws_url + STREAM, timeout=5)
    try:
        assert json.loads(listener.recv()) == {"iterable": []}
        with ws_upgrade(limited) as sock:
            sock.sendall(client_frame(b"x" * 1024))  # exactly the limit: taken, and ignored
            sock.sendall(sent)
            frames = server_frames(sock)
        # The first message (the empty list) may or may not have gone out before the error.
        assert frames[:-1] in ([], [(1, b'{"iterable":[]}')])
        assert frames[-1][0] == 8 and struct.unpack("!H", frames[-1][1][:2])[0] == close_code
        # The other subscriber still gets every change.
        new_id = limited.create_conversation()
        assert json.loads(listener.recv()) == {"iterable": [{"conversation": {"id": new_id}}]}
        deadline = time.monotonic() + 5
        while limited.websocket_count != 1:
            assert time.monotonic() < deadline, limited.websocket_count
            time.sleep(0.01)
    finally:
        listener.close()
    still_fine(limited, caplog)


# ----------------------------------------------------------------------------- connections
def test_idle_and_trickling_connections_are_closed_and_block_nobody(caplog: pytest.LogCaptureFixture) -> None:
    with Emulator(idle_timeout=0.5) as emu:
        idle = [socket.create_connection(("127.0.0.1", emu.port), timeout=5) for _ in range(200)]
        trickling = [socket.create_connection(("127.0.0.1", emu.port), timeout=5) for _ in range(20)]
        try:
            for sock in trickling:
                sock.sendall(b"GET /conversations HTTP/1.1\r\nHo")
            assert call(emu, "GET", IDS).status == 200  # served while all of them are open
            started = time.monotonic()
            for sock in idle + trickling:
                assert sock.recv(1) == b""  # closed by the server (a timeout would raise)
            assert time.monotonic() - started < 5
        finally:
            for sock in idle + trickling:
                sock.close()
        still_fine(emu, caplog)


_FLOODED_EMULATOR = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
from pieces_os_client.emulator import Emulator
with Emulator(idle_timeout=1.0) as emu:
    print(emu.port, flush=True)
    sys.stdin.readline()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="uses RLIMIT_NOFILE")
def test_a_connection_flood_beyond_the_descriptor_limit_drains_without_tracebacks() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _FLOODED_EMULATOR],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = int(proc.stdout.readline())
        flood = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(150)]
        time.sleep(0.3)  # let the emulator run out of descriptors
        for sock in flood:
            sock.close()
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("GET", IDS)
        assert conn.getresponse().status == 200
        conn.close()
        assert time.monotonic() - started < 20
        proc.stdin.write("\n")
        proc.stdin.flush()
        _, stderr = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    assert "cannot accept more connections for now" in stderr
    assert "Traceback" not in stderr, stderr


def test_the_command_line_sets_the_request_limits() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pieces_os_client.emulator", "--port", "0", "--max-request-size", "100",
         "--idle-timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("Pieces OS emulator listening on http://127.0.0.1:"), line
        port = int(line.split("http://127.0.0.1:", 1)[1].split()[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            body = json.dumps({"name": "x" * 200}).encode()
            conn.request("POST", "/conversations/create", body=body, headers={"Content-Type": "application/json"})
            assert conn.getresponse().status == 413
        finally:
            conn.close()
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("flag", "value", "text"),
    [
        ("--max-request-size", "lots", "'lots' is not a number of bytes"),
        ("--max-request-size", "0", "must be 1 or more"),
        ("--idle-timeout", "nan", "must be a positive, finite number of seconds"),
        ("--max-ws-message-size", "none", "--max-ws-message-size needs a number of bytes"),
    ],
)
def test_the_command_line_refuses_bad_limits_in_one_line(flag: str, value: str, text: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pieces_os_client.emulator", "--port", "0", flag, value],
        capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 2
    assert text in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- the emulator's own failures
def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_a_request_the_emulator_fails_on_gets_a_500_and_a_closed_connection(
    emu: Emulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> bytes:
        raise RuntimeError("a bug in the emulator")

    monkeypatch.setattr(emu.store, "identifiers_body", broken)
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        # Two requests on one connection: the first fails, so the second is never answered.
        sock.sendall(f"GET {IDS} HTTP/1.1\r\nHost: x\r\n\r\n".encode() + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        raw = read_until_closed(sock)  # a socket timeout here would be the silence this rules out
    head, _, body = raw.partition(b"\r\n\r\n")
    assert status_of(raw) == 500
    assert b"Connection: close" in head and b"Content-Type: text/plain" in head
    assert body == b"the emulator failed on this request (RuntimeError); its log has the traceback"
    assert raw.count(b"HTTP/1.1 ") == 1
    failures = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [record.getMessage() for record in failures] == [f"the emulator failed on GET {IDS}"]
    assert failures[0].exc_info is not None and "a bug in the emulator" in str(failures[0].exc_info[1])
    monkeypatch.undo()
    caplog.clear()
    still_fine(emu, caplog)


def test_a_failure_after_the_answer_began_cuts_the_connection_off(
    emu: Emulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> List[str]:
        raise RuntimeError("a bug in the emulator")

    # The identifiers socket takes its snapshot right after the 101 went out.
    monkeypatch.setattr(emu.store, "conversation_ids", broken)
    with ws_upgrade(emu) as sock:
        raw = read_until_closed(sock)
    assert raw.startswith(b"HTTP/1.1 101 ")
    assert raw.count(b"HTTP/1.1 ") == 1  # no 500 after the half-begun answer: that would be garbage
    assert b"500" not in raw
    failures = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert failures == [f"the emulator failed on GET {STREAM}"]
    monkeypatch.undo()
    caplog.clear()
    still_fine(emu, caplog)
