"""``_core.session``: one identifiers stream's life as decisions (docs/streaming.md: keep-alive,
reconnects, malformed and oversized messages, errors). The stream is told what happened, with
made-up clock values, and its answers are checked; no socket, no sleep, no thread."""

from __future__ import annotations

import json
from typing import Optional, Union

import pytest

from pieces_os_client._core.frames import MessageTooLarge, PeerClosed, ProtocolError
from pieces_os_client._core.session import Dropped, StreamSession, StreamStatus
from pieces_os_client.exceptions import ApiConnectionError, StreamClosedError, StreamError

URL = "ws://localhost:39300/conversations/stream/identifiers"
HOST = "http://localhost:39300"
SNAPSHOT = json.dumps({"iterable": [{"conversation": {"id": "a"}}]}).encode()
CHANGE = json.dumps({"iterable": [{"conversation": {"id": "b"}}]}).encode()


def session(*, reconnect: bool = True, max_attempts: Optional[int] = None, ping_interval: Optional[float] = 20.0,
            ping_timeout: float = 10.0) -> StreamSession:
    """A session with the documented defaults (and no jitter, so delays are exact)."""
    return StreamSession.start(URL, HOST, reconnect=reconnect, max_reconnect_attempts=max_attempts,
                               initial_backoff=0.25, max_backoff=10.0, backoff_jitter=0.0,
                               ping_interval=ping_interval, ping_timeout=ping_timeout)


def parse_failure(stream: StreamSession, payload: bytes) -> Exception:
    try:
        stream.message(payload)
    except ValueError as exc:
        return exc
    raise AssertionError("parsed")


# --------------------------------------------------------------------------- keep-alive
def test_a_read_waits_until_the_connection_has_been_idle_for_ping_interval() -> None:
    stream = session()
    stream.connected(100.0)
    assert stream.read_timeout(100.0) == 20.0
    assert stream.read_timeout(112.5) == 7.5
    stream.received(110.0)
    assert stream.read_timeout(112.5) == 17.5


def test_an_idle_connection_is_pinged_after_ping_interval() -> None:
    stream = session()
    stream.connected(100.0)
    assert stream.keepalive(119.9) is False
    assert stream.keepalive(120.0) is True


def test_a_ping_unanswered_for_ping_timeout_drops_the_connection() -> None:
    stream = session()
    stream.connected(100.0)
    stream.pinged(120.0)
    assert stream.read_timeout(125.0) == 5.0  # now the ping's deadline counts
    assert stream.keepalive(129.9) is False
    with pytest.raises(Dropped, match=r"^no answer to a ping within 10 s$") as dropped:
        stream.keepalive(130.0)
    assert dropped.value.retry


def test_anything_received_answers_the_ping() -> None:
    stream = session()
    stream.connected(100.0)
    stream.pinged(120.0)
    stream.received(125.0)  # a pong, or any frame
    assert stream.keepalive(131.0) is False
    assert stream.read_timeout(131.0) == 14.0
    assert stream.keepalive(145.0) is True


def test_a_deadline_already_passed_still_waits_a_moment_not_a_negative_time() -> None:
    stream = session()
    stream.connected(100.0)
    assert stream.read_timeout(500.0) == 0.001


@pytest.mark.parametrize("interval", [None, 0, 0.0])
def test_no_ping_interval_means_no_keep_alive(interval: Optional[float]) -> None:
    stream = session(ping_interval=interval)
    stream.connected(0.0)
    assert stream.ping_interval is None
    assert stream.read_timeout(1e9) is None
    assert stream.keepalive(1e9) is False


def test_a_new_connection_forgets_the_last_ones_ping() -> None:
    stream = session()
    stream.connected(100.0)
    stream.pinged(120.0)
    stream.connected(200.0)
    assert stream.ping_sent is None and stream.keepalive(215.0) is False and stream.read_timeout(215.0) == 5.0


# --------------------------------------------------------------------------- messages
def test_the_first_message_of_each_connection_is_its_snapshot() -> None:
    stream = session()
    stream.connected(1.0)
    first = stream.message(SNAPSHOT)
    second = stream.message(CHANGE)
    assert (first.snapshot, first.resync, first.connection, first.received_at) == (True, False, 1, 1.0)
    assert (second.snapshot, second.connection) == (False, 1)
    stream.connected(5.0)
    stream.received(6.0)
    again = stream.message(SNAPSHOT)
    assert (again.snapshot, again.resync, again.connection, again.received_at) == (True, True, 2, 6.0)
    assert stream.messages == 3 and stream.last_event is again


def test_a_whole_valid_snapshot_starts_the_backoff_over() -> None:
    stream = session()
    for now in (0.0, 1.0, 2.0):
        stream.connected(now)
        stream.dropped(now, "dropped", None)
        stream.next_delay(0.0)
    assert stream.policy.attempts == 3
    stream.connected(10.0)
    stream.message(SNAPSHOT)
    assert stream.policy.attempts == 0 and stream.policy.is_healthy
    stream.dropped(11.0, "dropped", None)
    assert stream.next_delay(0.0) == 0.25


def test_a_malformed_change_is_skipped_and_reported() -> None:
    stream = session()
    stream.connected(0.0)
    stream.message(SNAPSHOT)
    payload = b'{"iterable": 5}'
    failure = parse_failure(stream, payload)
    error, restart = stream.malformed_message(failure, payload)
    assert type(error) is StreamError and error.__cause__ is failure
    assert str(error).startswith(f"Skipped a malformed message of 15 bytes on the identifiers stream at {URL}: ")
    assert str(error).endswith("(message: '{\"iterable\": 5}')")
    assert restart is False and stream.malformed == 1 and stream.messages == 1


def test_a_malformed_snapshot_starts_over_on_a_new_connection() -> None:
    stream = session()
    stream.connected(0.0)
    payload = b"<html>"
    error, restart = stream.malformed_message(parse_failure(stream, payload), payload)
    assert type(error) is StreamError
    assert restart is True and stream.awaiting_snapshot
    assert not stream.policy.is_healthy  # a malformed snapshot is no healthy connection


def test_without_reconnects_a_malformed_snapshot_is_skipped_like_any_message() -> None:
    stream = session(reconnect=False)
    stream.connected(0.0)
    payload = b"<html>"
    _, restart = stream.malformed_message(parse_failure(stream, payload), payload)
    assert restart is False
    assert stream.message(CHANGE).snapshot is False  # the snapshot is not waited for again


def test_an_oversized_change_drops_the_connection_to_resync() -> None:
    stream = session()
    stream.connected(0.0)
    stream.message(SNAPSHOT)
    exc = MessageTooLarge(40_000_000, 33_554_432)
    error, reason, retry = stream.too_large(exc)
    assert type(error) is StreamError and error.__cause__ is exc
    assert str(error).startswith(f"A message on the identifiers stream at {URL} is at least 40000000 bytes, over "
                                 "the limit of 33554432 bytes")
    assert reason == "a message was larger than max_message_size (33554432 bytes)"
    assert retry is True


def test_an_oversized_snapshot_ends_the_stream_instead_of_looping() -> None:
    stream = session()
    stream.connected(0.0)
    error, reason, retry = stream.too_large(MessageTooLarge(100, 10))
    assert retry is False
    final = stream.dropped(0.5, reason, error, retry=retry)
    assert type(final) is StreamClosedError and final.__cause__ is error
    assert str(final) == (f"The identifiers stream at {URL} ended: a message was larger than max_message_size "
                          "(10 bytes); a new connection would meet the same problem.")
    assert stream.ended and stream.error is final


# --------------------------------------------------------------------------- drops, reconnects, the end
def test_a_drop_with_reconnects_on_is_reported_and_the_stream_goes_on() -> None:
    stream = session()
    stream.connected(0.0)
    cause = ConnectionResetError(104, "Connection reset by peer")
    error = stream.dropped(3.0, "ConnectionResetError: [Errno 104] Connection reset by peer", cause)
    assert type(error) is ApiConnectionError
    assert str(error) == (f"The identifiers stream at {URL} was interrupted (ConnectionResetError: [Errno 104] "
                          "Connection reset by peer); reconnecting.")
    assert (error.host, error.url, error.method) == (HOST, URL, "GET")
    assert error.__cause__ is cause and stream.last_problem is error
    assert not stream.ended and stream.error is None


def test_a_drop_with_reconnects_off_ends_the_stream() -> None:
    stream = session(reconnect=False)
    stream.connected(0.0)
    final = stream.dropped(1.0, "the server closed the connection", None)
    assert type(final) is StreamClosedError
    assert str(final) == f"The identifiers stream at {URL} ended: the server closed the connection; reconnects are " \
                         "turned off."
    assert stream.ended and stream.error is final


def test_reconnect_delays_grow_and_reset_only_after_health() -> None:
    stream = session()
    delays = []
    for now in (0.0, 1.0, 2.0, 3.0):
        stream.connected(now)
        stream.dropped(now + 0.1, "dropped", None)
        delay = stream.next_delay(0.0)
        assert isinstance(delay, float)
        delays.append(delay)
    assert delays == [0.25, 0.5, 1.0, 2.0]


def test_the_documented_give_up_after_three_failed_attempts() -> None:
    # docs/streaming.md: a server that accepts the WebSocket and drops it at once, with
    # max_reconnect_attempts=3: the stream ends after the fourth connection
    stream = session(max_attempts=3)
    last: Union[float, StreamClosedError] = 0.0
    problem: Optional[BaseException] = None
    for now in range(10):
        stream.connected(float(now))
        problem = stream.dropped(now + 0.01, "the server closed the connection", None)
        last = stream.next_delay(0.0)
        if not isinstance(last, float):
            break
    assert stream.connections == 4
    assert type(last) is StreamClosedError and last.__cause__ is problem
    assert str(last) == (f"Gave up reconnecting to the identifiers stream at {URL} after 3 failed attempts; the "
                         "server accepted the WebSocket but dropped it before the first snapshot each time.")
    assert stream.ended and stream.error is last


def test_attempts_that_did_not_connect_are_counted_in_the_give_up() -> None:
    stream = session(max_attempts=2)
    stream.connected(0.0)
    stream.dropped(0.1, "dropped", None)
    for _ in range(2):
        assert isinstance(stream.next_delay(0.0), float)
        refused = ConnectionRefusedError(111, "Connection refused")
        assert stream.attempt_failed(refused).startswith("identifiers stream: reconnect attempt ")
        assert stream.last_problem is refused
    final = stream.next_delay(0.0)
    assert isinstance(final, StreamClosedError)
    assert str(final) == f"Gave up reconnecting to the identifiers stream at {URL} after 2 failed attempts."
    assert stream.policy.connect_failures == 2


def test_the_servers_close_frame_is_kept_and_described() -> None:
    stream = session()
    stream.connected(0.0)
    assert stream.server_closed(1001, "going away") == "the server closed the connection (code 1001, going away)"
    assert stream.close_frame == (1001, "going away")
    # an empty close frame (1005 stands for "no code" and never travels on the wire)
    assert stream.server_closed(1005, "") == "the server closed the connection"
    assert stream.server_closed(1000, "") == "the server closed the connection (code 1000)"
    stream.connected(1.0)
    assert stream.close_frame is None


def test_why_a_read_ended_the_connection() -> None:
    closed = Dropped.reading_failed(PeerClosed("the server closed the connection"))
    assert closed.reason == "the server closed the connection" and closed.retry
    broken = Dropped.reading_failed(ProtocolError("the server masked a frame"))
    # the reason names the close code the client failed the connection with (RFC 6455 section 7.1.7)
    assert broken.reason == "the server broke the WebSocket protocol: the server masked a frame (closed with 1002)"
    reset = ConnectionResetError(104, "Connection reset by peer")
    failed = Dropped.reading_failed(reset)
    assert failed.reason == "ConnectionResetError: [Errno 104] Connection reset by peer" and failed.cause is reset
    assert len(Dropped.reading_failed(OSError("x\n" * 500)).reason) == 200  # one bounded line


def test_a_stream_inherited_over_fork_is_closed_in_the_child() -> None:
    error = session().inherited()
    assert type(error) is StreamClosedError
    assert str(error) == (f"the identifiers stream for {URL} was inherited from the parent process (fork) and is "
                          "closed here; open a new stream in this process")


# --------------------------------------------------------------------------- what a stream shows
class Status(StreamStatus):
    def __init__(self, stream: StreamSession) -> None:
        self._session = stream


def test_the_counters_a_stream_shows() -> None:
    stream = session()
    status = Status(stream)
    assert (status.connections, status.reconnects, status.messages_received, status.malformed_messages) == (0, 0, 0, 0)
    stream.connected(0.0)
    event = stream.message(SNAPSHOT)
    assert (status.connections, status.reconnects, status.messages_received) == (1, 0, 1)
    stream.dropped(1.0, "dropped", None)
    stream.connected(2.0)
    payload = b"nope"
    stream.malformed_message(parse_failure(stream, payload), payload)
    assert (status.connections, status.reconnects, status.malformed_messages) == (2, 1, 1)
    assert status.last_event is event and status.error is None
