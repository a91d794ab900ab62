"""A stand-in for Pieces OS on a raw socket that keeps every request head it receives, so a
test can read exactly which headers reached the wire, on HTTP calls and on the stream's
handshake alike.

It answers ``GET /conversations/identifiers`` with an empty list, ``GET /conversations`` with
a ``307`` to another address (which a client must not follow), and the identifiers stream's
handshake with a ``101`` and one snapshot.
"""

from __future__ import annotations

import json
import socket
import threading

from testkit.ws import HeadScript, frame, upgrade

__all__ = ["SNAPSHOT", "origin_script"]

SNAPSHOT = json.dumps({"iterable": [{"conversation": {"id": "a"}}]}).encode()
_IDENTIFIERS = b'{"iterable":[]}'


def origin_script(redirect_to: str) -> HeadScript:
    """The script for :class:`testkit.ws.HeadServer`; ``redirect_to`` is where the ``307`` points."""

    def script(conn: socket.socket, number: int, head: bytes, stop: threading.Event) -> None:
        target = head.split(b" ", 2)[1]
        if b"\r\nupgrade: websocket" in head.lower():
            upgrade(conn, head)
            conn.sendall(frame(SNAPSHOT))
            stop.wait(10)  # the client closes when it has what it wanted
        elif target == b"/conversations/identifiers":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(_IDENTIFIERS), _IDENTIFIERS))
        else:
            conn.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + redirect_to.encode() + target +
                         b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    return script
