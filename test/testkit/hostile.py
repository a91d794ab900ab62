"""HTTP servers that answer badly on purpose, for the tests that every wait has an end.

Each is a script for :class:`testkit.ws.HeadServer` (it runs after the request head was read):

* ``trickling`` — a ``200`` head at once, then a 4,096-byte body starting with ``ok``, one
  byte every 0.2 s (a genuine answer, were it not 13 minutes long);
* ``trickling_head`` — the status line and headers themselves, one byte every 0.2 s;
* ``silent`` — accepts the connection and the request, and never says a word;
* ``flooding`` — a ``200`` head, then a body with no end, as fast as the client reads it.

Every script ends by itself: when the client goes away (a send fails), when the server
stops (``stop`` is set), or after a fixed number of steps.
"""

from __future__ import annotations

import socket
import threading
from typing import Dict

from testkit.ws import HeadScript

__all__ = ["HOSTILE", "flooding", "silent", "trickling", "trickling_head"]

#: the pause between two bytes of a trickle
TRICKLE_PAUSE = 0.2
TRICKLED_BODY = (b"ok" + b"." * 4094)
FLOOD_CHUNK = b"x" * 65536
#: the most a flood sends before it gives up by itself (1 GiB)
FLOOD_CHUNKS = 16384


def _trickle(conn: socket.socket, data: bytes, stop: threading.Event) -> None:
    for index in range(len(data)):
        if stop.wait(TRICKLE_PAUSE):
            return
        conn.sendall(data[index:index + 1])


def trickling(conn: socket.socket, number: int, head: bytes, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(TRICKLED_BODY))
    _trickle(conn, TRICKLED_BODY, stop)


def trickling_head(conn: socket.socket, number: int, head: bytes, stop: threading.Event) -> None:
    _trickle(conn, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Padding: " + b"p" * 4000 + b"\r\n"
             b"Content-Length: 2\r\n\r\nok", stop)


def silent(conn: socket.socket, number: int, head: bytes, stop: threading.Event) -> None:
    stop.wait(120)


def flooding(conn: socket.socket, number: int, head: bytes, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    for _ in range(FLOOD_CHUNKS):
        if stop.is_set():
            return
        conn.sendall(FLOOD_CHUNK)


HOSTILE: Dict[str, HeadScript] = {
    "trickling": trickling, "trickling_head": trickling_head, "silent": silent, "flooding": flooding,
}
