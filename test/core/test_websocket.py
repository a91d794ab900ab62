"""The client WebSocket protocol object (``_core.websocket.ClientProtocol``), byte by byte: one
test per RFC 6455 rule it owns. No sockets: bytes go in, events and bytes to send come out."""

from __future__ import annotations

import base64
from typing import List, Optional

import pytest
from testkit.ws import frame, frame_header

from pieces_os_client._core.frames import MessageTooLarge, ProtocolError
from pieces_os_client._core.handshake import accept_value
from pieces_os_client._core.websocket import (
    CLOSE_READ_LIMIT,
    ClientProtocol,
    Close,
    Event,
    Failed,
    Message,
    Ping,
    Pong,
    State,
    close_code_allowed,
)

ZERO_MASK = b"\x00\x00\x00\x00"


def protocol(max_message_size: Optional[int] = None) -> ClientProtocol:
    return ClientProtocol(max_message_size=max_message_size, mask=lambda n: ZERO_MASK[:n])


def client_frame(opcode: int, payload: bytes) -> bytes:
    """What the client sends, with the all-zero mask the tests use (so the payload shows as is)."""
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + ZERO_MASK + payload


def feed(proto: ClientProtocol, *chunks: bytes) -> List[Event]:
    for chunk in chunks:
        proto.receive_data(chunk)
    return proto.events_received()


def failure(events: List[Event]) -> ProtocolError:
    assert isinstance(events[-1], Failed), events
    return events[-1].error


def assert_failed_with(proto: ClientProtocol, events: List[Event], code: int) -> ProtocolError:
    error = failure(events)
    assert error.code == code
    assert proto.data_to_send() == client_frame(0x8, code.to_bytes(2, "big"))  # the code is sent
    assert proto.state is State.CLOSING  # now waiting for the server's close
    assert feed(proto, frame(b"more")) == []  # nothing more is read
    return error


# ---------------------------------------------------------------------- messages
def test_a_text_message_in_one_frame() -> None:
    proto = protocol()
    assert feed(proto, frame(b'{"a": 1}')) == [Message(b'{"a": 1}', False)]
    assert proto.data_to_send() == b""


def test_bytes_arriving_one_at_a_time_make_the_same_message() -> None:
    proto = protocol()
    data = frame(b"x" * 300)
    events: List[Event] = []
    for i in range(len(data)):
        events += feed(proto, data[i:i + 1])
    assert events == [Message(b"x" * 300)]


def test_fragments_are_joined_with_control_frames_between_them() -> None:
    proto = protocol()
    events = feed(proto, frame(b'{"it', 0x1, fin=False), frame(b"hi", 0x9), frame(b'erable"', 0x0, fin=False),
                  frame(b"", 0xA), frame(b": []}", 0x0))
    assert events == [Ping(b"hi"), Pong(b""), Message(b'{"iterable": []}')]
    assert proto.data_to_send() == client_frame(0xA, b"hi")


def test_a_ping_is_answered_with_a_pong_carrying_the_same_payload() -> None:
    proto = protocol()
    assert feed(proto, frame(b"\x00\xffpayload", 0x9)) == [Ping(b"\x00\xffpayload")]
    assert proto.data_to_send() == client_frame(0xA, b"\x00\xffpayload")


def test_a_70_kb_message_with_a_64_bit_length() -> None:
    proto = protocol()
    payload = b"y" * 70_000
    data = frame(payload)
    assert data[1] == 127  # the 8-byte length form
    assert feed(proto, data[:30_000]) == []
    assert feed(proto, data[30_000:]) == [Message(payload)]


def test_a_binary_message_is_handed_on_unchecked_and_marked_binary() -> None:
    proto = protocol()
    assert feed(proto, frame(b"\xff{}", 0x2)) == [Message(b"\xff{}", True)]


# ---------------------------------------------------------------------- frame checks: 1002
@pytest.mark.parametrize(
    ("data", "words"),
    [
        (bytes([0xC1, 0x02]) + b"{}", "reserved bits"),  # RSV1
        (bytes([0x81, 0x82]) + b"\x01\x02\x03\x04" + b"{}", "masked"),
        (bytes([0x83, 0x00]), "unknown opcode 0x3"),
        (bytes([0x8B, 0x00]), "unknown opcode 0xb"),
        (frame_header(126, 0x9) + b"p" * 126, "126 bytes"),  # a 126-byte ping
        (frame(b"", 0x9, fin=False), "fragmented"),
        (bytes([0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]), "most significant bit"),  # a length of 2**63
        (frame(b"x", 0x0), "continuation frame arrived outside"),
        (frame(b"a", 0x1, fin=False) + frame(b"b", 0x1), "new message began"),
    ],
    ids=["rsv1", "masked", "opcode-3", "opcode-b", "control-126", "control-fragmented", "length-2^63",
         "stray-continuation", "message-in-message"],
)
def test_a_broken_frame_fails_the_connection_with_1002(data: bytes, words: str) -> None:
    proto = protocol()
    error = assert_failed_with(proto, feed(proto, data), 1002)
    assert words in str(error)


def test_a_64_bit_length_with_the_top_bit_fails_even_without_a_size_bound() -> None:
    proto = protocol(max_message_size=None)
    events = feed(proto, bytes([0x82, 127]) + (1 << 63).to_bytes(8, "big"))
    assert_failed_with(proto, events, 1002)


# ---------------------------------------------------------------------- size bound: 1009
def test_the_size_bound_is_checked_from_the_header_before_the_payload() -> None:
    proto = protocol(max_message_size=1000)
    events = feed(proto, frame_header(256 * 1024 * 1024))  # the header only: no payload yet
    error = assert_failed_with(proto, events, 1009)
    assert isinstance(error, MessageTooLarge) and error.size == 256 * 1024 * 1024 and error.limit == 1000


def test_fragments_count_towards_the_size_bound() -> None:
    proto = protocol(max_message_size=10)
    assert feed(proto, frame(b"123456", 0x1, fin=False)) == []
    events = feed(proto, frame_header(5, 0x0))  # 6 + 5 > 10, refused before the 5 bytes
    error = assert_failed_with(proto, events, 1009)
    assert isinstance(error, MessageTooLarge) and error.size == 11


def test_a_message_at_the_bound_passes() -> None:
    proto = protocol(max_message_size=4)
    assert feed(proto, frame(b"12", 0x1, fin=False), frame(b"34", 0x0)) == [Message(b"1234")]


# ---------------------------------------------------------------------- UTF-8: 1007
def test_invalid_utf8_in_a_text_message_fails_with_1007() -> None:
    proto = protocol()
    assert_failed_with(proto, feed(proto, frame(b"\xff\xfe{}")), 1007)


def test_invalid_utf8_is_caught_in_the_first_fragment_before_the_message_ends() -> None:
    proto = protocol()
    events = feed(proto, frame(b'{"a": "\xc3\x28', 0x1, fin=False))  # 0xC3 then a non-continuation byte
    assert_failed_with(proto, events, 1007)


def test_a_character_split_across_fragments_is_valid() -> None:
    proto = protocol()
    euro = "€".encode()
    events = feed(proto, frame(b'"' + euro[:1], 0x1, fin=False), frame(euro[1:] + b'"', 0x0))
    assert events == [Message(b'"' + euro + b'"')]


def test_a_text_message_ending_inside_a_character_fails_with_1007() -> None:
    proto = protocol()
    events = feed(proto, frame(b"ok", 0x1, fin=False), frame("€".encode()[:2], 0x0))
    assert_failed_with(proto, events, 1007)


# ---------------------------------------------------------------------- the close handshake
@pytest.mark.parametrize("code", [1000, 1001, 1011, 3000, 4999])
def test_a_valid_close_is_answered_with_the_same_code(code: int) -> None:
    proto = protocol()
    events = feed(proto, frame(code.to_bytes(2, "big") + b"bye", 0x8))
    assert events == [Close(code, "bye")]
    assert proto.data_to_send() == client_frame(0x8, code.to_bytes(2, "big"))
    assert proto.state is State.CLOSED and proto.close_sent


def test_an_empty_close_is_answered_with_an_empty_close_never_1005() -> None:
    proto = protocol()
    assert feed(proto, frame(b"", 0x8)) == [Close(1005, "")]
    assert proto.data_to_send() == client_frame(0x8, b"")


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 1016, 2999, 5000])
def test_a_close_with_a_code_that_may_not_be_sent_fails_with_1002(code: int) -> None:
    proto = protocol()
    error = assert_failed_with(proto, feed(proto, frame(code.to_bytes(2, "big"), 0x8)), 1002)
    assert str(code) in str(error)


def test_a_close_with_a_one_byte_payload_fails_with_1002() -> None:
    proto = protocol()
    error = assert_failed_with(proto, feed(proto, frame(b"\x03", 0x8)), 1002)
    assert "1-byte" in str(error)


def test_a_close_reason_that_is_not_utf8_fails_with_1007() -> None:
    proto = protocol()
    assert_failed_with(proto, feed(proto, frame(b"\x03\xe8\xff", 0x8)), 1007)


def test_the_clients_close_then_the_servers_answer() -> None:
    proto = protocol()
    proto.send_close()
    assert proto.data_to_send() == client_frame(0x8, b"\x03\xe8")
    assert proto.state is State.CLOSING and proto.close_timeout > 0
    proto.send_close()  # once only
    proto.send_ping(b"late")  # nothing is sent after a close
    assert proto.data_to_send() == b""
    assert feed(proto, frame(b"\x03\xe8", 0x8)) == [Close(1000, "")]
    assert proto.state is State.CLOSED and proto.data_to_send() == b""  # no second close


def test_the_client_never_sends_a_reserved_code() -> None:
    proto = protocol()
    for code in (1005, 1006, 1015, 999):
        with pytest.raises(ValueError):
            proto.send_close(code)
        assert not close_code_allowed(code)
    assert proto.data_to_send() == b""


def test_fail_sends_its_code_once_and_eof_ends_the_wait() -> None:
    proto = protocol()
    proto.fail(1011, "gave up")
    assert proto.data_to_send() == client_frame(0x8, b"\x03\xf3")
    assert isinstance(failure(proto.events_received()), ProtocolError)
    proto.fail(1002, "again")
    assert proto.data_to_send() == b"" and proto.events_received() == []
    proto.receive_eof()
    assert proto.state is State.CLOSED


def test_after_a_failure_at_most_close_read_limit_bytes_are_read() -> None:
    proto = ClientProtocol(close_read_limit=10, mask=lambda n: ZERO_MASK[:n])
    # a reserved bit fails the connection; the 4 bytes that came after its header count
    events = feed(proto, bytes([0xC1, 0]) + b"x" * 4)
    assert failure(events).code == 1002 and proto.state is State.CLOSING
    proto.receive_data(b"x" * 6)
    assert proto.state is State.CLOSING  # 10 bytes: still waiting for the server's close
    proto.receive_data(b"x")
    assert proto.state is State.CLOSED  # the 11th: the wait is over
    assert proto.events_received() == [] and proto.data_to_send() == client_frame(0x8, b"\x03\xea")


def test_the_default_close_read_limit_is_64_kib() -> None:
    proto = protocol()
    assert proto.close_read_limit == CLOSE_READ_LIMIT == 64 * 1024
    proto.fail(1011, "gave up")
    proto.receive_data(b"x" * CLOSE_READ_LIMIT)
    assert proto.state is State.CLOSING
    proto.receive_data(b"x")
    assert proto.state is State.CLOSED


# ---------------------------------------------------------------------- the handshake's answer
def handshake_answer(key: str, *extra: str) -> bytes:
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Accept: {accept_value(key)}", *extra, "", ""]
    return "\r\n".join(lines).encode()


KEY = base64.b64encode(b"0123456789abcdef").decode()


def test_the_101_then_a_frame_in_the_same_bytes() -> None:
    proto = ClientProtocol(KEY)
    assert proto.state is State.CONNECTING
    events = feed(proto, handshake_answer(KEY)[:20], handshake_answer(KEY)[20:] + frame(b"{}"))
    assert proto.state is State.OPEN and proto.refusal is None
    assert events == [Message(b"{}")]


@pytest.mark.parametrize(
    ("extra", "words"),
    [("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits", "extension 'permessage-deflate'"),
     ("Sec-WebSocket-Protocol: chat", "subprotocol 'chat'")],
    ids=["extension", "subprotocol"],
)
def test_an_extension_or_subprotocol_that_was_not_offered_is_refused(extra: str, words: str) -> None:
    proto = ClientProtocol(KEY)
    assert feed(proto, handshake_answer(KEY, extra) + frame(b"{}")) == []
    assert proto.state is State.CLOSED and proto.refusal is not None
    assert words in proto.refusal and "did not offer" in proto.refusal


def test_a_wrong_accept_and_a_redirect_are_refused() -> None:
    proto = ClientProtocol(KEY)
    feed(proto, handshake_answer(base64.b64encode(b"fedcba9876543210").decode()))
    assert proto.refusal is not None and "Sec-WebSocket-Accept" in proto.refusal
    proto = ClientProtocol(KEY)
    feed(proto, b"HTTP/1.1 302 Found\r\nLocation: ws://u:p@elsewhere/\r\nContent-Length: 4\r\n\r\nbody")
    assert proto.refusal is not None and "302" in proto.refusal and "***@" in proto.refusal
    assert proto.refusal_body() == b"body"


def test_an_endless_head_is_refused_at_the_limit() -> None:
    proto = ClientProtocol(KEY)
    feed(proto, b"HTTP/1.1 101 OK\r\n" + b"X: y\r\n" * 4000)
    assert proto.refusal is not None and "without the end of its head" in proto.refusal
