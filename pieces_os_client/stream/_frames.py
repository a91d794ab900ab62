"""Reading WebSocket messages (RFC 6455 frames) off a connected socket, with a size bound.

websocket-client reads a whole frame into memory before anyone can look at its length, and
joins continuation frames by copying; a peer can make it hold gigabytes. This reader checks the
length in each frame header against the bound *before* reading the payload (and the running
total of a fragmented message), and collects a message in one growing buffer. The rules
themselves (header fields, fragmentation, the bound) are :mod:`pieces_os_client._core.frames`,
shared with the asyncio stream. Writing (pings, pongs, close frames) stays with websocket-client.
"""

from __future__ import annotations

import socket
from typing import Optional, Tuple

from pieces_os_client._core.frames import (
    CONTROL,
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    MessageRules,
    MessageTooLarge,
    PeerClosed,
    ProtocolError,
    header_size,
    parse_header,
)

__all__ = [
    "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG", "OP_TEXT",
    "FrameReader", "MessageTooLarge", "PeerClosed", "ProtocolError",
]

_CHUNK = 64 * 1024


class FrameReader:
    """Reads whole messages and control frames from one connection.

    A socket timeout can interrupt :meth:`read` anywhere; what was read stays here and the
    next call carries on, so timeouts can drive keep-alive pings.
    """

    def __init__(self, sock: socket.socket, max_message_size: Optional[int]) -> None:
        self._sock = sock
        self._rules = MessageRules(max_message_size)
        self._scratch = memoryview(bytearray(_CHUNK))
        self._head = bytearray()  # the current frame's header, as far as it was read
        self._frame: Optional[Tuple[bool, int, int]] = None  # (fin, opcode, length) once complete
        self._got = 0  # payload bytes of the current frame read so far
        self._control = bytearray()
        self._message = bytearray()

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
            if opcode in CONTROL:
                self._read_payload(self._control, length)
                self._frame = None
                payload, self._control = self._control, bytearray()
                return opcode, payload
            self._read_payload(self._message, length)
            self._frame = None
            kind = self._rules.accept(fin, opcode, length)
            if kind is not None:
                message, self._message = self._message, bytearray()
                return kind, message

    def _read_header(self) -> Tuple[bool, int, int]:
        self._fill_head(2)
        self._fill_head(header_size(self._head[1]))
        frame = parse_header(self._head)
        self._head = bytearray()
        _fin, opcode, length = frame
        if opcode not in CONTROL:
            self._rules.check(opcode, length)
        return frame

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
