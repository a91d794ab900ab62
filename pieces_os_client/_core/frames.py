"""WebSocket frames (RFC 6455 section 5), free of I/O: the client side's rules.

Both streams use these: the sync one reads a frame header off its socket and hands the bytes to
:func:`parse_header` and :class:`MessageRules`; the asyncio one keeps what it received in a
buffer and asks :func:`next_frame` whether a whole frame is there. Either way the length in each
frame header (and the running total of a fragmented message) is checked against the size bound
*before* any of the payload is read, and the framing rules are the same.

:func:`encode_frame` writes the (masked) frames a client sends: pings, pongs, close frames.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

__all__ = [
    "OP_BINARY", "OP_CLOSE", "OP_CONT", "OP_PING", "OP_PONG", "OP_TEXT", "STATUS_TOO_BIG",
    "Frame", "MessageRules", "MessageTooLarge", "PeerClosed", "ProtocolError",
    "close_status", "describe_close", "encode_frame", "header_size", "next_frame", "parse_header",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CONTROL = (OP_CLOSE, OP_PING, OP_PONG)
#: RFC 6455: "message too big"
STATUS_TOO_BIG = 1009

Buffer = Union[bytes, bytearray, memoryview]
#: (fin, opcode, payload length)
Frame = Tuple[bool, int, int]


class ProtocolError(Exception):
    """The server broke the WebSocket framing rules."""


class PeerClosed(Exception):
    """The server closed the TCP connection."""


class MessageTooLarge(Exception):
    """A message is larger than the bound; nothing of its payload was read."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a message of at least {size} bytes is over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def header_size(second: int) -> int:
    """The length of a frame header whose second byte is ``second`` (2, 4 or 10)."""
    return 2 + {126: 2, 127: 8}.get(second & 0x7F, 0)


def parse_header(head: Buffer) -> Frame:
    """``(fin, opcode, length)`` of a whole frame header (:func:`header_size` bytes).

    :raises ProtocolError: reserved bits, a masked server frame, an unknown opcode, a
        fragmented or long control frame.
    """
    first, second = head[0], head[1]
    fin, opcode, short = bool(first & 0x80), first & 0x0F, second & 0x7F
    if first & 0x70:
        raise ProtocolError("a frame has reserved bits set, but no extension was agreed")
    if second & 0x80:
        raise ProtocolError("the server masked a frame")
    if opcode in CONTROL:
        if not fin or short > 125:
            raise ProtocolError("a control frame is fragmented or longer than 125 bytes")
    elif opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
        raise ProtocolError(f"a frame has the unknown opcode {opcode:#x}")
    size = header_size(second)
    length = int.from_bytes(bytes(head[2:size]), "big") if size > 2 else short
    return fin, opcode, length


class MessageRules:
    """Which data frames may come next, and the size bound of the message they build."""

    def __init__(self, max_message_size: Optional[int]) -> None:
        self.limit = max_message_size
        self.opcode: Optional[int] = None  # TEXT or BINARY while a fragmented message is open
        self.size = 0  # payload bytes of the open message accepted so far

    def check(self, opcode: int, length: int) -> None:
        """A data frame of ``length`` bytes may be read: raises before its payload is.

        :raises ProtocolError: a continuation outside a message, or a new message inside one.
        :raises MessageTooLarge: the message would go over the bound.
        """
        if opcode == OP_CONT and self.opcode is None:
            raise ProtocolError("a continuation frame arrived outside a message")
        if opcode != OP_CONT and self.opcode is not None:
            raise ProtocolError("a new message began before the previous one ended")
        size = (self.size if opcode == OP_CONT else 0) + length
        if self.limit is not None and size > self.limit:
            raise MessageTooLarge(size, self.limit)

    def accept(self, fin: bool, opcode: int, length: int) -> Optional[int]:
        """Record a data frame that was :meth:`check`-ed and read; the message's opcode once ``fin``."""
        if opcode != OP_CONT:
            self.opcode, self.size = opcode, 0
        self.size += length
        kind = self.opcode
        if fin:
            self.opcode, self.size = None, 0
            return kind
        return None


def next_frame(buffer: Buffer, rules: MessageRules) -> Optional[Tuple[Frame, int]]:
    """The first frame in ``buffer`` once its header is there: ``((fin, opcode, length), header length)``.

    ``None`` while the header is incomplete. The payload may not have arrived yet: the caller
    waits until ``header length + length`` bytes are buffered, then calls
    :meth:`MessageRules.accept` for a data frame. Calling it again for the same bytes is harmless.

    :raises ProtocolError, MessageTooLarge: as :func:`parse_header` and :meth:`MessageRules.check`.
    """
    if len(buffer) < 2:
        return None
    size = header_size(buffer[1])
    if len(buffer) < size:
        return None
    fin, opcode, length = parse_header(buffer[:size])
    if opcode not in CONTROL:
        rules.check(opcode, length)
    return (fin, opcode, length), size


def encode_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """A final client frame: masked with the 4 bytes ``mask`` as RFC 6455 demands."""
    if len(mask) != 4:
        raise ValueError("a frame mask is 4 bytes")
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, 0x80 | length])
    elif length < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    key = int.from_bytes((mask * (length // 4 + 1))[:length], "big")
    masked = (int.from_bytes(payload, "big") ^ key).to_bytes(length, "big")
    return head + mask + masked


def close_status(data: Buffer) -> Tuple[int, str]:
    """``(status, reason)`` of a close frame's payload (1000 when it has none)."""
    if len(data) >= 2:
        return int.from_bytes(bytes(data[:2]), "big"), bytes(data[2:]).decode("utf-8", "replace")
    return 1000, ""


def describe_close(data: Buffer) -> str:
    """Why a connection ended, from the server's close frame."""
    if len(data) >= 2:
        code, reason = close_status(data)
        return f"the server closed the connection (code {code}{', ' + reason if reason else ''})"
    return "the server closed the connection"
