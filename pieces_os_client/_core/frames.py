"""WebSocket frames (RFC 6455 section 5): opcodes, close codes, the errors of a broken protocol,
and :func:`encode_frame`, which writes the masked frames a client sends. Reading frames is
:class:`pieces_os_client._core.websocket.ClientProtocol`'s job."""

from __future__ import annotations

__all__ = [
    "CONTROL", "OP_BINARY", "OP_CLOSE", "OP_CONT", "OP_PING", "OP_PONG", "OP_TEXT", "STATUS_PROTOCOL_ERROR",
    "STATUS_TOO_BIG", "MessageTooLarge", "PeerClosed", "ProtocolError", "encode_frame",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CONTROL = (OP_CLOSE, OP_PING, OP_PONG)
#: RFC 6455 close codes: "protocol error", "message too big"
STATUS_PROTOCOL_ERROR = 1002
STATUS_TOO_BIG = 1009



class ProtocolError(Exception):
    """The server broke RFC 6455; ``code`` is the close code the client fails the connection with."""

    def __init__(self, message: str, code: int = STATUS_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


class PeerClosed(Exception):
    """The server closed the TCP connection."""


class MessageTooLarge(ProtocolError):
    """A message is larger than the bound; nothing of its payload was kept."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a message of at least {size} bytes is over the limit of {limit} bytes", STATUS_TOO_BIG)
        self.size = size
        self.limit = limit


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
