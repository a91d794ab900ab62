"""The I/O-free rules of ``_core.handshake``: the upgrade request and the reading of its answer.
No sockets: the bytes are made up."""

from __future__ import annotations

import pytest

from pieces_os_client._core import handshake
from pieces_os_client.exceptions import ApiValueError

KEY = handshake.new_key(bytes(range(16)))


def test_the_accept_value_of_rfc_6455() -> None:
    assert handshake.accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    with pytest.raises(ValueError):
        handshake.new_key(b"short")


def test_request_head_puts_the_websocket_headers_last_and_wins_over_copies() -> None:
    head = handshake.request_head("/p?q=1", KEY, {"Host": "h:1", "Upgrade": "x", "X-A": 1}).decode()
    lines = head.split("\r\n")
    assert lines[0] == "GET /p?q=1 HTTP/1.1"
    assert lines[1:3] == ["Host: h:1", "X-A: 1"]
    assert f"Sec-WebSocket-Key: {KEY}" in lines and "Upgrade: websocket" in lines and "Upgrade: x" not in lines
    assert head.endswith("\r\n\r\n")


@pytest.mark.parametrize(
    ("target", "headers", "named"),
    [
        ("/p", {"X-T": "a\r\nX-I: 1"}, "X-T"),
        ("/p", {"Host": "h\nX-I: 1"}, "Host"),
        ("/p", {"Bad Name": "1"}, "Bad Name"),
        ("/p", {"X-Nul": "a\x00"}, "X-Nul"),
        ("/p x", {}, "/p x"),
        ("/p\r\nX: 1", {}, "/p"),
        ("p", {}, "'p'"),
    ],
)
def test_request_head_refuses_what_could_break_the_request(target: str, headers: dict, named: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        handshake.request_head(target, KEY, headers)
    assert named in str(caught.value)


def test_host_header_leaves_out_default_ports_and_brackets_ipv6() -> None:
    assert handshake.host_header("example.test", 80, False) == "example.test"
    assert handshake.host_header("example.test", 443, True) == "example.test"
    assert handshake.host_header("example.test", 443, False) == "example.test:443"
    assert handshake.host_header("::1", 39300, False) == "[::1]:39300"


def test_parse_head_and_refusal() -> None:
    good = (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
            f"Sec-WebSocket-Accept: {handshake.accept_value(KEY)}\r\n\r\n").encode()
    assert handshake.head_complete(good) and not handshake.head_complete(good[:-2])
    response = handshake.parse_head(good)
    assert response.status == 101 and response.reason == "Switching Protocols"
    assert handshake.refusal(response, KEY) is None
    assert handshake.refusal(response, handshake.new_key(bytes(16))) == (
        "HTTP 101 Switching Protocols with a wrong Sec-WebSocket-Accept")

    redirect = handshake.parse_head(b"HTTP/1.1 302 Found\r\nLocation: wss://u:p@other.test/x\r\n\r\n")
    text = handshake.refusal(redirect, KEY)
    assert text is not None and text.startswith("HTTP 302 Found, a redirect to 'wss://***@other.test/x'")
    assert handshake.is_redirect(302) and handshake.is_redirect(399) and not handshake.is_redirect(404)
    bare = handshake.refusal(handshake.parse_head(b"HTTP/1.1 308 \r\n\r\n"), KEY)
    assert bare is not None and "without a Location header" in bare
    assert handshake.refusal(handshake.parse_head(b"HTTP/1.1 404 Not Found\r\n\r\n"), KEY) == "HTTP 404 Not Found"

    for bad in (b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n", b"HTTP/1.1 101 OK\r\nno colon\r\n\r\n"):
        with pytest.raises(ValueError):
            handshake.parse_head(bad)
