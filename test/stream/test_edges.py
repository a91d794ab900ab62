"""The identifiers stream at its edges: handshake redirects, header injection, credentials in
the host URL, a handshake that trickles, reconnect storms, and callbacks in the official style.

Every server here is a raw socket server on 127.0.0.1 (testkit.ws) that stops by itself.
Time bounds only tell a deadline that fired from a server that keeps at it for a minute; a
growing backoff is read from the gaps the server saw between attempts, which a loaded machine
can only lengthen; "nothing connected" is checked behind a probe connection of the test's own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from testkit.wait import until
from testkit.ws import HeadServer, RawServer, SocketServer, frame, upgrade

from pieces_os_client.api.conversations_api import ConversationsApi
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiTimeoutError,
    ApiTypeError,
    ApiValueError,
    StreamClosedError,
    StreamError,
)
from pieces_os_client.stream import IdentifiersStream

SNAPSHOT = json.dumps({"iterable": [{"conversation": {"id": "a"}}]}).encode()


def client_for(host: str, **config: Any) -> ApiClient:
    configuration = Configuration(host=host)
    for name, value in config.items():
        setattr(configuration, name, value)
    return ApiClient(configuration)


def accepted_before_a_probe(server: SocketServer) -> int:
    """How many connections ``server`` accepted before one the test opens now.

    The listener accepts in arrival order, so a connection the client opened (or began) before
    this call is counted, however long the server's accepting thread takes to get to it.
    """
    with socket.create_connection(("127.0.0.1", server.port)) as probe:
        name = probe.getsockname()

        def position() -> Optional[int]:
            for number, conn in enumerate(list(server.held)):
                with contextlib.suppress(OSError):  # a connection the server has closed already
                    if conn.getpeername() == name:
                        return number
            return None

        until(lambda: position() is not None, what="the probe connection accepted")
        found = position()
        assert found is not None
        return found


class Counter(SocketServer):
    """Counts connections and reads whatever arrives, answering nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def __enter__(self) -> Counter:
        super().__enter__()
        return self

    def serve(self, conn: socket.socket, number: int) -> None:
        with conn, contextlib.suppress(OSError):  # also a connection closed by __exit__ before this ran
            conn.settimeout(5)
            while chunk := conn.recv(4096):
                self.data += chunk


# --------------------------------------------------------------------------- redirects
@pytest.mark.parametrize("status", [b"301 Moved Permanently", b"302 Found", b"307 Temporary Redirect",
                                    b"308 Permanent Redirect", b"300 Multiple Choices"])
def test_a_redirect_of_the_handshake_is_refused_and_not_followed(status: bytes) -> None:
    with Counter() as other:
        location = f"ws://who:secret@127.0.0.1:{other.port}/conversations/stream/identifiers"

        def redirect(conn: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
            conn.sendall(b"HTTP/1.1 " + status + b"\r\nLocation: " + location.encode() + b"\r\n"
                         b"Content-Length: 0\r\n\r\n")

        with HeadServer(redirect) as server:
            config = {"api_key": {"application": "app-1"}, "access_token": "tok-1"}
            with pytest.raises(StreamError) as caught:
                IdentifiersStream(client_for(server.url, **config))
            # the constructor raised, so a followed redirect would have connected before the probe
            assert accepted_before_a_probe(other) == 0
    text = str(caught.value)
    assert f"HTTP {status.decode()}" in text
    assert f"ws://***@127.0.0.1:{other.port}/conversations/stream/identifiers" in text
    assert "secret" not in text and "not followed" in text
    assert other.data == b""
    assert len(server.heads) == 1 and b"X-Application-ID: app-1" in server.heads[0]  # only the origin saw it
    assert b"tok-1" not in server.heads[0]  # access_token is no credential of this API: never sent


def test_a_redirect_on_a_reconnect_ends_the_attempt_not_the_credentials() -> None:
    with Counter() as other:
        def script(conn: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
            if n == 1:
                upgrade(conn, head)
                conn.sendall(frame(SNAPSHOT) + frame(b"\x03\xe8", opcode=0x8))
                stop.wait(0.5)
            else:
                conn.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: ws://127.0.0.1:{other.port}/\r\n"
                             "Content-Length: 0\r\n\r\n".encode())

        with HeadServer(script) as server:
            stream = IdentifiersStream(client_for(server.url, access_token="tok"), max_reconnect_attempts=2,
                                       initial_backoff=0.01, max_backoff=0.05)
            next(stream)
            with pytest.raises(StreamClosedError) as caught:
                next(stream)
            stream.close()
        assert accepted_before_a_probe(other) == 0  # the stream ended without following the redirect
    assert isinstance(caught.value.__cause__, StreamError)
    assert "HTTP 307" in str(caught.value.__cause__) and f"127.0.0.1:{other.port}" in str(caught.value.__cause__)


# --------------------------------------------------------------------------- header injection
def _never_called(conn: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
    raise AssertionError("nothing should have connected")


@pytest.mark.parametrize("source", ["per-call", "host", "origin", "api_key", "default", "name"])
def test_a_header_that_would_inject_lines_is_refused_before_connecting(source: str) -> None:
    bad = "a\r\nX-Injected: 1"
    with HeadServer(_never_called) as server:
        config: dict[str, Any] = {}
        per_call: dict[str, Any] = {}
        if source == "per-call":
            per_call = {"X-Trace": bad}
        elif source == "host":
            per_call = {"Host": bad}
        elif source == "origin":
            per_call = {"origin": bad}
        elif source == "name":
            per_call = {"X-Bad\r\nName": "1"}
        elif source == "api_key":
            config = {"api_key": {"application": bad}}
        client = client_for(server.url, **config)
        if source == "default":
            client.set_default_header("X-Default", bad)
        with pytest.raises(ApiValueError) as caught:
            ConversationsApi(client).conversations_stream_identifiers(_headers=per_call or None)
        assert accepted_before_a_probe(server) == 0  # the call raised without having connected
    expected = {"per-call": "X-Trace", "host": "Host", "origin": "origin", "api_key": "X-Application-ID",
                "default": "X-Default", "name": "X-Bad"}[source]
    assert expected in str(caught.value)
    assert server.heads == []
    assert "tok" not in str(caught.value)


def test_a_non_latin1_header_value_is_refused() -> None:
    with HeadServer(_never_called) as server, pytest.raises(ApiValueError, match="X-Name"):
        IdentifiersStream(client_for(server.url), headers={"X-Name": "caf\u00e9 \u2603"})
    assert server.connections == 0


def test_a_custom_host_and_origin_are_sent_once() -> None:
    def accept(conn: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
        upgrade(conn, head)
        conn.sendall(frame(SNAPSHOT))
        stop.wait(0.5)

    headers = {"host": "pieces.local", "Origin": "app://x"}
    with HeadServer(accept) as server, IdentifiersStream(client_for(server.url), headers=headers) as stream:
        next(stream)
    lines = server.heads[0].decode("latin-1").split("\r\n")
    assert [line for line in lines if line.lower().startswith("host:")] == ["Host: pieces.local"]
    assert [line for line in lines if line.lower().startswith("origin:")] == ["Origin: app://x"]


# --------------------------------------------------------------------------- credentials in the URL
def test_userinfo_in_the_host_is_masked_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    def script(conn: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
        if n == 1:
            upgrade(conn, head)
            conn.sendall(frame(SNAPSHOT) + frame(b"\x03\xe8", opcode=0x8))
            stop.wait(0.5)
        else:
            conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    caplog.set_level(logging.DEBUG, logger="pieces_os_client")
    errors: List[Exception] = []
    with HeadServer(script) as server:
        host = f"http://user:hunter2@127.0.0.1:{server.port}"
        stream = IdentifiersStream(client_for(host), on_error=errors.append, max_reconnect_attempts=1,
                                   initial_backoff=0.01, max_backoff=0.01)
        assert stream.url == f"ws://***@127.0.0.1:{server.port}/conversations/stream/identifiers"
        assert "hunter2" not in repr(stream) and "***@" in repr(stream)
        next(stream)
        with pytest.raises(StreamClosedError) as caught:
            next(stream)
        stream.close()
    not_found = HeadServer(lambda conn, n, head, stop: conn.sendall(b"HTTP/1.1 404 Not Found\r\n\r\n"))
    with not_found as other, pytest.raises(StreamError) as refused:
        IdentifiersStream(client_for(f"http://user:hunter2@127.0.0.1:{other.port}"))
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with pytest.raises(ApiConnectionError) as unreachable:
            IdentifiersStream(client_for(f"http://user:hunter2@127.0.0.1:{port}"))
    texts = [str(caught.value), str(caught.value.__cause__), str(refused.value), str(unreachable.value),
             str(unreachable.value.host), str(unreachable.value.url), *map(str, errors),
             *(record.getMessage() for record in caplog.records)]
    assert errors and len(caplog.records) >= 2
    assert not [text for text in texts if "hunter2" in text]
    assert "***@" in str(refused.value) and "***@" in str(unreachable.value)
    assert b"hunter2" not in server.heads[0] and b"user" not in server.heads[0]


# --------------------------------------------------------------------------- one deadline for the handshake
def _trickle(conn: socket.socket, stop: threading.Event) -> None:
    """A 101 whose header lines come one every 0.2 s (300 of them): a minute in all, each line
    well within any per-read timeout, so only a deadline for the whole handshake ends it."""
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\n")
    for number in range(300):
        if stop.wait(0.2):
            return
        conn.sendall(f"X-Slow-{number}: still coming\r\n".encode())


def test_a_trickled_handshake_answer_is_bounded_by_connect_timeout() -> None:
    with HeadServer(lambda conn, n, head, stop: _trickle(conn, stop)) as server:
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as caught:
            IdentifiersStream(client_for(server.url), connect_timeout=2)
        took = time.monotonic() - started
    # not before the 2 s deadline; far from the minute the trickle lasts (the bound catches a hang)
    assert 1.5 < took < 20, took
    assert "connect_timeout" in str(caught.value) and "the WebSocket handshake" in str(caught.value)
    assert "Timed out after 2 s" in str(caught.value)


def test_a_trickled_handshake_on_a_reconnect_is_bounded_by_connect_timeout() -> None:
    def script(conn: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
        if n == 1:
            upgrade(conn, head)
            conn.sendall(frame(SNAPSHOT) + frame(b"\x03\xe8", opcode=0x8))
            stop.wait(0.5)
        else:
            _trickle(conn, stop)

    with HeadServer(script) as server:
        stream = IdentifiersStream(client_for(server.url), connect_timeout=2, max_reconnect_attempts=1,
                                   initial_backoff=0.01, max_backoff=0.01)
        next(stream)
        started = time.monotonic()
        with pytest.raises(StreamClosedError) as caught:
            next(stream)
        took = time.monotonic() - started
        stream.close()
    # not before the 2 s deadline; far from the minute the trickle lasts (the bound catches a hang)
    assert 1.5 < took < 20, took
    cause = caught.value.__cause__
    assert isinstance(cause, ApiTimeoutError) and "the WebSocket handshake" in str(cause)
    assert server.connections == 2


def test_a_silent_proxy_is_bounded_by_the_same_deadline() -> None:
    def silent(conn: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n")  # and the blank line never comes
        stop.wait(60)  # until the test ends

    with HeadServer(silent) as proxy:
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as caught:
            IdentifiersStream(client_for("http://127.0.0.1:9", proxy=proxy.url), connect_timeout=1)
        took = time.monotonic() - started
    assert took < 20, took  # the 1 s deadline, not the proxy, which stays silent until the test ends
    assert "the proxy tunnel" in str(caught.value)


# --------------------------------------------------------------------------- reconnect storms
def _drop_at_once(conn: socket.socket, n: int) -> None:
    conn.shutdown(socket.SHUT_RDWR)


def _malformed_then_drop(conn: socket.socket, n: int) -> None:
    if n == 1:
        conn.sendall(frame(SNAPSHOT))
        time.sleep(0.05)
    else:
        conn.sendall(frame(b"{not json"))
    conn.shutdown(socket.SHUT_RDWR)


def storm_gaps(script: Callable[[socket.socket, int], None], connections: int = 6) -> List[float]:
    """The gaps between the first ``connections`` WebSockets a stream opens to ``script``'s
    server (backoff 0.05 s .. 1 s, no jitter), as the server saw them."""
    started: Dict[int, float] = {}

    def timed(conn: socket.socket, n: int) -> None:
        started[n] = time.monotonic()  # before the script sends a byte: the client cannot have given up yet
        script(conn, n)

    with RawServer(timed) as server:
        stream = IdentifiersStream(client_for(server.url), on_message=lambda _m: None,
                                   initial_backoff=0.05, max_backoff=1.0, backoff_jitter=0.0)
        until(lambda: len(started) >= connections, what=f"{connections} connections")
        stream.close()
        assert stream.join(30)
    return [started[n + 1] - started[n] for n in range(1, connections)]


@pytest.mark.parametrize("script", [_drop_at_once, _malformed_then_drop], ids=["dropped", "malformed-snapshot"])
def test_a_server_that_drops_every_websocket_gets_a_growing_backoff(
    script: Callable[[socket.socket, int], None]
) -> None:
    gaps = storm_gaps(script)
    # each attempt begins at least its delay after the last one began: 0.05, 0.1, 0.2, 0.4, 0.8 s
    # (a fixed 0.05 s delay would give gaps of about 0.05 s); a slow machine only lengthens them
    least = (0.05, 0.1, 0.2, 0.4, 0.8)
    shown = [round(gap, 3) for gap in gaps]
    assert [gap >= low for gap, low in zip(gaps, least, strict=True)] == [True] * len(least), shown


def test_max_reconnect_attempts_ends_a_stream_that_never_gets_healthy() -> None:
    closes: List[Tuple[Any, ...]] = []
    with RawServer(_drop_at_once) as server:
        stream = IdentifiersStream(client_for(server.url), max_reconnect_attempts=3, on_message=lambda _m: None,
                                   on_close=lambda *a: closes.append(a), initial_backoff=0.01, max_backoff=0.05)
        assert stream.join(30), "the stream kept reconnecting"
        connections = server.connections
    assert connections == 4  # the first connection and 3 attempts
    error = stream.error
    assert isinstance(error, StreamClosedError)
    assert "after 3 failed attempts" in str(error)
    assert "accepted the WebSocket but dropped it before the first snapshot each time" in str(error)
    assert closes == [()]


def test_a_healthy_connection_resets_the_backoff_and_the_attempt_count() -> None:
    def snapshot_then_drop(conn: socket.socket, n: int) -> None:
        conn.sendall(frame(SNAPSHOT))
        time.sleep(0.05)
        conn.shutdown(socket.SHUT_RDWR)

    with RawServer(snapshot_then_drop) as server:
        received: List[object] = []
        stream = IdentifiersStream(client_for(server.url), max_reconnect_attempts=1, on_message=received.append,
                                   initial_backoff=0.02, max_backoff=5.0, backoff_jitter=0.0)
        # each connection is healthy, so each drop starts over at 0.02 s and never exhausts 1 attempt
        until(lambda: len(received) >= 6, what="six snapshots")
        assert stream.error is None and not stream.closed
        stream.close()
        assert stream.join(30)


# --------------------------------------------------------------------------- callbacks
def test_official_style_callbacks_are_called_with_the_stream_first() -> None:
    def script(conn: socket.socket, n: int) -> None:
        conn.sendall(frame(SNAPSHOT) + frame(b"{bad") + frame(b"\x03\xe9bye", opcode=0x8))

    seen: List[Tuple[Any, ...]] = []

    def on_message(ws: Any, message: Any) -> None:
        seen.append(("message", ws, message))

    def on_error(ws: Any, error: Exception) -> None:
        seen.append(("error", ws, type(error)))

    def on_close(ws: Any, code: Optional[int], message: Optional[str]) -> None:
        seen.append(("close", ws, code, message))

    with RawServer(script) as server:
        api = ConversationsApi(client_for(server.url))
        stream = api.conversations_stream_identifiers(on_message=on_message, on_error=on_error, on_close=on_close,
                                                      reconnect=False)
        assert stream.join(30)
    assert seen[0][:2] == ("message", stream) and seen[0][2].iterable[0].conversation.id == "a"
    assert ("error", stream, StreamError) in seen and ("error", stream, StreamClosedError) in seen
    assert seen[-1] == ("close", stream, 1001, "bye")
    assert isinstance(stream.error, StreamClosedError) and stream.callback_errors == 0


def test_official_on_close_after_close_gets_1000() -> None:
    def script(conn: socket.socket, n: int) -> None:
        conn.sendall(frame(SNAPSHOT))

    closes: List[Tuple[Any, ...]] = []
    with RawServer(script) as server:
        stream = IdentifiersStream(client_for(server.url), on_close=lambda ws, code, msg: closes.append((code, msg)))
        next(stream)
        stream.close()
    assert closes == [(1000, "")]


@pytest.mark.parametrize(
    ("name", "callback", "expected"),
    [
        ("on_close", lambda ws, code: None, "on_close() or, in the official style, on_close(stream, code, reason)"),
        ("on_error", lambda: None, "on_error(error) or, in the official style, on_error(stream, error)"),
        ("on_message", lambda a, b, c: None, "on_message(message)"),
        ("on_event", lambda ws, event: None, "on_event(event)"),
    ],
)
def test_a_callback_with_an_impossible_signature_is_refused_at_creation(
    name: str, callback: Callable[..., Any], expected: str
) -> None:
    with HeadServer(_never_called) as server, pytest.raises(ApiTypeError) as caught:
        IdentifiersStream(client_for(server.url), **{name: callback})
    assert expected in str(caught.value)
    assert server.connections == 0


def test_a_raising_callback_is_counted_and_remembered(caplog: pytest.LogCaptureFixture) -> None:
    def script(conn: socket.socket, n: int) -> None:
        conn.sendall(frame(SNAPSHOT) + frame(SNAPSHOT))

    def boom(message: object) -> None:
        raise RuntimeError("callback bug")

    with RawServer(script) as server:
        stream = IdentifiersStream(client_for(server.url), on_message=boom)
        until(lambda: stream.callback_errors == 2, what="two callback errors")
        stream.close()
    assert isinstance(stream.last_callback_error, RuntimeError)
    assert any("on_message callback raised" in r.getMessage() for r in caplog.records)
