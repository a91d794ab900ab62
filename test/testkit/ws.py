"""Raw-socket servers for the stream tests, on 127.0.0.1: an accept loop that serves each
connection in its own thread; a relay (HTTP ``CONNECT`` proxy or plain TCP forwarder) that can
turn silent, so that a test can hold a connection attempt in progress; and a WebSocket server
that writes the frames a test scripts, byte for byte."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import threading
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["HeadServer", "RawServer", "Relay", "SocketServer", "frame", "frame_header", "pipe", "read_head", "upgrade"]


def read_head(conn: socket.socket) -> bytes:
    """An HTTP head, up to and with its blank line; ``b""`` if the peer closed before it ended.

    Reads a byte at a time so that nothing after the head is taken off the socket.
    """
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        byte = conn.recv(1)
        head += byte
        if not byte or len(head) > 65536:
            return b""
    return bytes(head)


def pipe(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until either side ends, then shut both down."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class SocketServer:
    """Accepts connections on 127.0.0.1 and runs :meth:`serve` for each in a daemon thread.

    On exit it stops accepting, closes every socket in :attr:`held` and joins the serving
    threads. With ``linger`` it first waits (up to 10 s) for the serving threads to end by
    themselves, e.g. until each client has closed its connection.
    """

    def __init__(self, *, linger: bool = False) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.held: List[socket.socket] = []
        self._linger = linger
        self._threads: List[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> SocketServer:
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        self.listener.close()
        self._accepting.join(10)
        if self._linger:
            for thread in self._threads:
                thread.join(10)
        for sock in self.held:
            sock.close()
        for thread in self._threads:
            thread.join(10)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # the listener was closed
                return
            self.connections += 1
            self.held.append(conn)
            thread = threading.Thread(target=self.serve, args=(conn, self.connections), daemon=True)
            self._threads.append(thread)
            thread.start()

    def serve(self, conn: socket.socket, number: int) -> None:
        raise NotImplementedError


class Relay(SocketServer):
    """An HTTP ``CONNECT`` proxy, or with ``upstream`` a plain TCP forwarder to that address.

    :ivar heads: the ``CONNECT`` request heads received, as text.
    :ivar refuse: answer ``CONNECT`` with 407 instead of opening the tunnel.
    :ivar silent: from now on, accept connections and never send a byte on them.
    """

    def __init__(self, upstream: Optional[Tuple[str, int]] = None, *, refuse: bool = False) -> None:
        super().__init__()
        self.upstream = upstream
        self.refuse = refuse
        self.silent = False
        self.heads: List[str] = []

    def __enter__(self) -> Relay:
        super().__enter__()
        return self

    def serve(self, conn: socket.socket, number: int) -> None:
        if self.silent:
            return  # the connection stays open (in ``held``), unanswered
        target = self.upstream
        if target is None:
            head = read_head(conn)
            if not head:
                return
            self.heads.append(head.decode("latin-1"))
            if self.refuse:
                conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
            host, port = head.split(b" ")[1].decode().rsplit(":", 1)
            target = (host.strip("[]"), int(port))
        upstream = socket.create_connection(target)
        self.held.append(upstream)
        if self.upstream is None:
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=pipe, args=(upstream, conn), daemon=True).start()
        pipe(conn, upstream)


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A server frame (unmasked) carrying ``payload``."""
    return frame_header(len(payload), opcode, fin) + payload


def frame_header(length: int, opcode: int = 0x1, fin: bool = True) -> bytes:
    first = bytes([(0x80 if fin else 0) | opcode])
    if length < 126:
        return first + bytes([length])
    if length < 1 << 16:
        return first + bytes([126]) + length.to_bytes(2, "big")
    return first + bytes([127]) + length.to_bytes(8, "big")


Script = Callable[[socket.socket, int], None]


def upgrade(conn: socket.socket, head: bytes) -> None:
    """Answer the WebSocket handshake in ``head`` with a valid ``101``."""
    key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
               if line.lower().startswith(b"sec-websocket-key:"))
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")


HeadScript = Callable[[socket.socket, int, bytes, threading.Event], None]


class HeadServer(SocketServer):
    """Reads each request head (kept in :attr:`heads`), then runs ``script(sock, n, head, stop)``.

    ``stop`` is set when the server exits: a script that waits or trickles must watch it. The
    connection is closed when the script returns.
    """

    def __init__(self, script: HeadScript) -> None:
        super().__init__()
        self.script = script
        self.heads: List[bytes] = []
        self.stop = threading.Event()

    def __enter__(self) -> HeadServer:
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        super().__exit__(*exc)

    def serve(self, conn: socket.socket, number: int) -> None:
        with conn, contextlib.suppress(OSError):  # also a connection closed by __exit__ before this ran
            conn.settimeout(10)
            head = read_head(conn)
            if head:
                self.heads.append(head)
                self.script(conn, number, head, self.stop)


class RawServer(SocketServer):
    """Answers WebSocket handshakes, then runs ``script(sock, connection_number)``.

    What each client sends after the handshake is collected in ``received[n]``; the
    connection stays open until the client closes it (or 10 s pass).
    """

    def __init__(self, script: Script) -> None:
        super().__init__(linger=True)
        self.script = script
        self.received: Dict[int, bytearray] = {}

    def __enter__(self) -> RawServer:
        super().__enter__()
        return self

    def serve(self, conn: socket.socket, number: int) -> None:
        conn.settimeout(10)
        with conn:
            head = read_head(conn)
            if not head:
                return
            upgrade(conn, head)
            received = self.received.setdefault(number, bytearray())
            gone = threading.Event()
            reader = threading.Thread(target=self._collect, args=(conn, received, gone), daemon=True)
            reader.start()
            with contextlib.suppress(OSError):  # the client went away mid-send: it refused a message
                self.script(conn, number)
            gone.wait(10)
            reader.join(10)

    @staticmethod
    def _collect(conn: socket.socket, into: bytearray, gone: threading.Event) -> None:
        try:
            while chunk := conn.recv(65536):
                into += chunk
        except OSError:
            pass
        finally:
            gone.set()
