"""The I/O-free rules the stream keeps to: ``_core.reconnect`` (backoff and health) and
``_core.handshake`` (the upgrade request and the reading of its answer). No sockets, no sleeps:
clock values are made up."""

from __future__ import annotations

from typing import List, Optional

import pytest

from pieces_os_client._core import handshake
from pieces_os_client._core.reconnect import HEALTHY_AFTER, ReconnectPolicy, backoff_delay
from pieces_os_client.exceptions import ApiValueError


def policy(max_attempts: Optional[int] = None) -> ReconnectPolicy:
    return ReconnectPolicy(initial_backoff=0.25, max_backoff=10.0, jitter=0.0, max_attempts=max_attempts)


# --------------------------------------------------------------------------- reconnect
def test_backoff_doubles_up_to_the_cap_and_jitter_only_shortens() -> None:
    assert [backoff_delay(n, 0.25, 10.0, 0.0, 0.9) for n in range(1, 9)] == [0.25, 0.5, 1, 2, 4, 8, 10, 10]
    assert backoff_delay(1, 1.0, 10.0, 0.5, 0.0) == 1.0
    assert backoff_delay(1, 1.0, 10.0, 0.5, 0.999) == pytest.approx(0.5005)
    assert backoff_delay(10_000, 1.0, 10.0, 0.0, 0.0) == 10.0  # no overflow


def test_connections_that_drop_before_their_snapshot_keep_the_delay_growing() -> None:
    rules, now, delays = policy(), 0.0, []
    rules.connected(now)
    for _ in range(6):  # accepted, dropped at once, again and again
        now += 0.01
        rules.dropped(now)
        delay = rules.next_delay(0.0)
        assert delay is not None
        delays.append(delay)
        now += delay
        rules.connected(now)
    assert delays == [0.25, 0.5, 1, 2, 4, 8]
    assert rules.unhealthy_drops == 5  # the first connection was not an attempt


def test_a_healthy_connection_starts_the_backoff_over() -> None:
    rules = policy(max_attempts=2)
    rules.connected(0.0)
    rules.dropped(0.1)
    assert rules.next_delay(0.0) == 0.25
    rules.connected(1.0)
    rules.dropped(1.1)
    assert rules.next_delay(0.0) == 0.5
    rules.connected(2.0)
    rules.healthy()  # the snapshot arrived
    rules.dropped(60.0)
    assert rules.attempts == 0 and rules.next_delay(0.0) == 0.25


def test_a_connection_that_stays_up_long_enough_counts_as_healthy() -> None:
    rules = policy()
    for _ in range(3):
        rules.next_delay(0.0)
    rules.connected(100.0)
    rules.dropped(100.0 + HEALTHY_AFTER)  # never sent a message, but lived HEALTHY_AFTER seconds
    assert rules.is_healthy and rules.attempts == 0
    assert rules.next_delay(0.0) == 0.25


def test_giving_up_says_why() -> None:
    flapping = policy(max_attempts=3)
    flapping.connected(0.0)
    flapping.dropped(0.0)
    results: List[Optional[float]] = []
    for step in range(4):
        results.append(flapping.next_delay(0.0))
        if results[-1] is not None:
            flapping.connected(float(step))
            flapping.dropped(float(step))
    assert results[-1] is None and flapping.attempts == 3
    assert flapping.give_up_reason() == (
        "the server accepted the WebSocket but dropped it before the first snapshot each time")

    mixed = policy(max_attempts=2)
    mixed.next_delay(0.0)
    mixed.failed()
    mixed.next_delay(0.0)
    mixed.connected(5.0)
    mixed.dropped(5.1)
    assert mixed.next_delay(0.0) is None
    assert mixed.give_up_reason() == (
        "1 of them opened the WebSocket, which was dropped before the first snapshot; 1 could not connect")
    assert mixed.connect_failures == 1 and mixed.unhealthy_drops == 1

    unreachable = policy(max_attempts=1)
    unreachable.next_delay(0.0)
    unreachable.failed()
    assert unreachable.next_delay(0.0) is None and unreachable.give_up_reason() == ""


def test_no_limit_never_gives_up_and_zero_gives_up_at_once() -> None:
    endless = policy()
    assert all(endless.next_delay(0.5) is not None for _ in range(1000))
    assert policy(max_attempts=0).next_delay(0.0) is None


# --------------------------------------------------------------------------- handshake
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
