"""RFC 6455 cases that both streams must handle alike, for test/stream/test_protocol.py and
test/aio/test_protocol.py: what a raw server sends on the first connection, and what must follow.

Each case's first connection either delivers its snapshot (``ids``) or ends; the second
connection always sends the snapshot ``["gen2"]``, so a case whose first connection fails shows
as a resync. ``codes`` are the close codes the client must have sent on the first connection.
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from typing import Callable, List, Optional

from testkit.ws import frame, frame_header, upgrade

__all__ = ["CASES", "Case", "FloodAfterFailure", "close_codes", "serve_case", "snapshot"]


def snapshot(*ids: str) -> bytes:
    return json.dumps({"iterable": [{"conversation": {"id": i}} for i in ids]}).encode()


def client_frames(data: bytes) -> List[tuple[int, bytes]]:
    """(opcode, unmasked payload) of each frame a client sent (client frames are masked)."""
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length, at = int.from_bytes(data[at:at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at:at + 8], "big"), at + 8
        mask, at = data[at:at + 4], at + 4
        frames.append((opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data[at:at + length]))))
        at += length
    return frames


def close_codes(data: bytes) -> List[Optional[int]]:
    """The close codes a client sent (``None`` for a close frame without one)."""
    return [int.from_bytes(p[:2], "big") if p else None for op, p in client_frames(data) if op == 0x8]


BIG = snapshot(*[f"c{i:05}" for i in range(2300)])  # about 70 KB: the 64-bit length form
SNAP = snapshot("a", "b")


@dataclass(frozen=True)
class Case:
    name: str
    first: bytes  # what the server sends on connection 1, after the 101
    ids: Optional[List[str]] = None  # connection 1's snapshot; None: it fails, connection 2 resyncs
    codes: List[Optional[int]] = field(default_factory=list)  # the client's close codes on connection 1
    pong: Optional[bytes] = None  # a pong the client must have sent on connection 1


def _close(code: int, reason: bytes = b"") -> bytes:
    return frame(code.to_bytes(2, "big") + reason, 0x8)


CASES = [
    Case("fragmented-snapshot", frame(SNAP[:5], 0x1, fin=False) + frame(SNAP[5:12], 0x0, fin=False)
         + frame(SNAP[12:], 0x0), ids=["a", "b"]),
    Case("ping-between-fragments", frame(SNAP[:5], 0x1, fin=False) + frame(b"hello", 0x9) + frame(SNAP[5:], 0x0),
         ids=["a", "b"], pong=b"hello"),
    Case("70kb-64-bit-length", frame(BIG), ids=[f"c{i:05}" for i in range(2300)]),
    Case("masked-server-frame", bytes([0x81, 0x80 | len(SNAP)]) + b"\0\0\0\0" + SNAP, codes=[1002]),
    Case("rsv1", bytes([0xC1, len(SNAP)]) + SNAP, codes=[1002]),
    Case("invalid-utf8", frame(b'{"iterable": [], "x": "\xff"}'), codes=[1007]),
    Case("close-1000", _close(1000, b"bye"), codes=[1000]),
    Case("close-1005", _close(1005), codes=[1002]),
    Case("close-999", _close(999), codes=[1002]),
    Case("close-4999", _close(4999), codes=[4999]),
    Case("close-1-byte", frame(b"\x03", 0x8), codes=[1002]),
    Case("control-126-bytes", frame_header(126, 0x9) + b"p" * 126, codes=[1002]),
    Case("binary-frame", frame(SNAP, 0x2), ids=["a", "b"]),
]


def serve_case(case: Case) -> Callable[[socket.socket, int], None]:
    """The RawServer script: ``case.first`` on connection 1, the ``gen2`` snapshot on the others."""

    def script(sock: socket.socket, n: int) -> None:
        sock.sendall(case.first if n == 1 else frame(snapshot("gen2")))

    return script


class FloodAfterFailure:
    """A :class:`~testkit.ws.HeadServer` script for ``close_read_limit``.

    Connection 1 sends a frame with a reserved bit set (the client fails the connection with
    1002) and then ``flood`` bytes that are no frames, and never a close: the client's wait for
    the server's close can end only at its ``close_read_limit`` or its ``close_timeout``. The
    server then waits up to ``patience`` seconds for the client to end the connection, and
    records in :attr:`ended` whether it did. Later connections send the snapshot ``["gen2"]`` and
    answer the client's close.
    """

    def __init__(self, flood: int, patience: float = 10.0) -> None:
        self.flood = flood
        self.patience = patience
        self.ended: List[bool] = []
        self.sent: List[bytes] = []  # what the client sent on connection 1

    def __call__(self, sock: socket.socket, n: int, head: bytes, stop: threading.Event) -> None:
        upgrade(sock, head)
        if n > 1:
            sock.sendall(frame(snapshot("gen2")))
            if sock.recv(65536):  # the client's close (or the end): answer it
                sock.sendall(frame(b"\x03\xe8", 0x8))
            return
        sock.sendall(bytes([0xC1, 0]) + b"\0" * self.flood)
        sock.settimeout(self.patience)
        received = bytearray()
        try:
            while chunk := sock.recv(65536):  # the client's close frame, then the end
                received += chunk
            self.ended.append(True)
        except TimeoutError:
            self.ended.append(False)
        except OSError:  # reset: the client closed with bytes unread, which also ends it
            self.ended.append(True)
        self.sent.append(bytes(received))
