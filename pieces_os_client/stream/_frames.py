"""Reading WebSocket messages (RFC 6455 frames) off a connected socket, with a size bound.

websocket-client reads a whole frame into memory before anyone can look at its length, and
joins continuation frames by copying; a peer can make it hold gigabytes. This reader checks the
length in each frame header against the bound *before* reading the payload (and the running
total of a fragmented message), and collects a message in one growing buffer. Writing (pings,
pongs, close frames) stays with websocket-client.
"""

from __future__ import annotations

import socket
from typing import Optional, Tuple

__all__ = [
    "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG", "OP_TEXT",
    "FrameReader", "MessageTooLarge", "PeerClosed", "ProtocolError",
]

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_CONTROL = (OP_CLOSE, OP_PING, OP_PONG)
_CHUNK = 64 * 1024


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


class FrameReader:
    """Reads whole messages and control frames from one connection.

    A socket timeout can interrupt :meth:`read` anywhere; what was read stays here and the
    next call carries on, so timeouts can drive keep-alive pings.
    """

    def __init__(self, sock: socket.socket, max_message_size: Optional[int]) -> None:
        self._sock = sock
        self._limit = max_message_size
        self._scratch = memoryview(bytearray(_CHUNK))
        self._head = bytearray()  # the current frame's header, as far as it was read
        self._frame: Optional[Tuple[bool, int, int]] = None  # (fin, opcode, length) once complete
        self._got = 0  # payload bytes of the current frame read so far
        self._control = bytearray()
        self._message = bytearray()
        self._message_opcode: Optional[int] = None  # TEXT or BINARY while a message is open

    def read(self) -> Tuple[int, bytearray]:
        """The next complete message (``OP_TEXT`` / ``OP_BINARY``) or control frame, with its payload.

        :raises MessageTooLarge: before reading a payload that would go over the bound.
        :raises ProtocolError: the frames do not follow RFC 6455.
        :raises PeerClosed: the connection ended.
        :raises OSError: from the socket, including ``TimeoutError`` (resumable).
        """
        while True:
            if self._frame is None:
                self._frame = self._read_header()
            fin, opcode, length = self._frame
            if opcode in _CONTROL:
                self._read_payload(self._control, length)
                self._frame = None
                payload, self._control = self._control, bytearray()
                return opcode, payload
            self._read_payload(self._message, length)
            self._frame = None
            if fin:
                message, kind = self._message, self._message_opcode
                self._message, self._message_opcode = bytearray(), None
                assert kind is not None
                return kind, message

    def _read_header(self) -> Tuple[bool, int, int]:
        self._fill_head(2)
        first, second = self._head[0], self._head[1]
        fin, opcode, short = bool(first & 0x80), first & 0x0F, second & 0x7F
        if first & 0x70:
            raise ProtocolError("a frame has reserved bits set, but no extension was agreed")
        if second & 0x80:
            raise ProtocolError("the server masked a frame")
        if opcode in _CONTROL:
            if not fin or short > 125:
                raise ProtocolError("a control frame is fragmented or longer than 125 bytes")
        elif opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
            raise ProtocolError(f"a frame has the unknown opcode {opcode:#x}")
        extended = {126: 2, 127: 8}.get(short, 0)
        self._fill_head(2 + extended)
        length = int.from_bytes(self._head[2:], "big") if extended else short
        self._head = bytearray()
        if opcode not in _CONTROL:
            self._open_message(opcode, length)
        return fin, opcode, length

    def _open_message(self, opcode: int, length: int) -> None:
        if opcode == OP_CONT and self._message_opcode is None:
            raise ProtocolError("a continuation frame arrived outside a message")
        if opcode != OP_CONT and self._message_opcode is not None:
            raise ProtocolError("a new message began before the previous one ended")
        size = len(self._message) + length
        if self._limit is not None and size > self._limit:
            raise MessageTooLarge(size, self._limit)
        if opcode != OP_CONT:
            self._message_opcode = opcode

    def _fill_head(self, size: int) -> None:
        while len(self._head) < size:
            chunk = self._sock.recv(size - len(self._head))
            if not chunk:
                raise PeerClosed("the connection was closed")
            self._head += chunk

    def _read_payload(self, into: bytearray, length: int) -> None:
        while self._got < length:
            count = self._sock.recv_into(self._scratch, min(_CHUNK, length - self._got))
            if not count:
                raise PeerClosed("the connection was closed in the middle of a frame")
            into += self._scratch[:count]
            self._got += count
        self._got = 0
