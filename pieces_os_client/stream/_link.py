"""The connection a stream currently holds (a socket and its protocol object), how it is shut down,
and what a forked child does with it."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import List, Optional

from pieces_os_client._core.forks import reset_in_forked_child
from pieces_os_client._core.websocket import ClientProtocol, Event, State

__all__ = ["Connection", "Link", "close_ws", "reset_in_forked_child"]

_CHUNK = 64 * 1024


class Connection:
    """A connected socket and the :class:`ClientProtocol` that reads and writes on it.

    Bytes go through the protocol under :attr:`lock`, and what it answers (a pong, a close) is
    written at once under the same lock, so that a thread closing the stream and the thread
    reading it never interleave their frames.
    """

    def __init__(self, sock: socket.socket, protocol: ClientProtocol) -> None:
        self.sock = sock
        self.protocol = protocol
        self.lock = threading.Lock()
        self.finished = threading.Event()  # the close handshake is over (or the connection is gone)
        self.connected = True

    def receive(self, data: bytes) -> List[Event]:
        """Feed bytes read off the socket; what they produced. :raises OSError: writing the answer."""
        with self.lock:
            protocol = self.protocol
            events = protocol.receive(data)
            out = protocol.data_to_send()
            if protocol.state is State.CLOSED:
                self.finished.set()
            if out:
                self.sock.sendall(out)
        return events

    def send_ping(self) -> None:
        with self.lock:
            self.protocol.send_ping()
            self.sock.sendall(self.protocol.data_to_send())

    def send_close(self, code: int = 1000) -> None:
        with self.lock:
            self.protocol.send_close(code)
            out = self.protocol.data_to_send()
            if out:
                self.sock.sendall(out)

    def wait_closed(self, deadline: Optional[float] = None) -> None:
        """While a close frame the client sent is unanswered (the protocol is ``CLOSING``): read
        until the server's close (or the end of the connection), until ``deadline``
        (``time.monotonic()``; by default the protocol's ``close_timeout`` from now). Best effort;
        what arrives is dropped."""
        if deadline is None:
            deadline = time.monotonic() + self.protocol.close_timeout
        with contextlib.suppress(OSError):
            while self.protocol.state is State.CLOSING:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.sock.settimeout(left)
                self.receive(self.sock.recv(_CHUNK))

    def shutdown(self) -> None:
        """Close the socket without a close frame."""
        self.connected = False
        self.finished.set()
        _shutdown_socket(self.sock)
        with contextlib.suppress(OSError):
            self.sock.close()


class Link:
    """The current socket and the closing flag of one stream.

    Kept apart from the stream so that the garbage-collection finalizer can close the socket
    without keeping the stream alive.

    A link inherited by a child process (``os.fork()``) is *detached* in the child right after
    the fork: it counts as closed, and the child's copies of the socket descriptors are closed
    without a close frame or ``shutdown()``, which would end the parent's connection too.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.ws: Optional[Connection] = None
        self.pending: Optional[socket.socket] = None  # connected, handshake not finished
        self.reading = False  # a thread is inside recv on ``ws``
        self.inherited = False  # this process got the link from its parent by fork
        reset_in_forked_child(self)

    def shutdown(self, send_timeout: float = 0.25, *, deadline: Optional[float] = None) -> None:
        """Ask for the end: send a close frame, wake any reader, close what no one reads.

        ``deadline`` (``time.monotonic()``): first give the server until then to answer the close
        (RFC 6455 section 7.1.1), as ``close()`` does; sending the close frame counts against it
        too. A garbage-collected stream does not wait.
        """
        with self.lock:
            first = not self.closing.is_set()
            self.closing.set()
            ws, pending, reading = self.ws, self.pending, self.reading
            if not reading:
                self.ws = None
        if pending is not None:
            _shutdown_socket(pending)
        if ws is None:
            return
        if first:
            try:  # best effort: the peer may already be gone
                if deadline is not None:
                    send_timeout = max(0.0, min(send_timeout, deadline - time.monotonic()))
                ws.sock.settimeout(send_timeout)
                ws.send_close()
                if deadline is None:
                    pass
                elif reading:  # the reader takes the server's answer; give it until the deadline
                    ws.finished.wait(max(0.0, deadline - time.monotonic()))
                else:
                    ws.wait_closed(deadline)
            except Exception:
                pass
            _shutdown_socket(ws.sock)
        if not reading:
            close_ws(ws)

    def detach(self, ws: Connection) -> bool:
        """Forget ``ws`` if it is the current socket; ``True`` when it was."""
        with self.lock:
            if self.ws is ws:
                self.ws = None
                return True
            return False

    def _after_fork_in_child(self) -> None:
        """In a forked child: mark closed and drop this process's descriptors, quietly.

        Runs in the child before any other code, while it still has one thread; locks are made
        afresh because a thread of the parent may have held them at the moment of the fork.
        """
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.closing.set()
        self.inherited = True
        ws, pending = self.ws, self.pending
        self.ws = self.pending = None
        self.reading = False
        if ws is not None:
            ws.connected = False
        for sock in (pending, ws.sock if ws is not None else None):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()  # this process's descriptor only: no FIN while the parent holds it


def _shutdown_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def close_ws(ws: Connection) -> None:
    """Close a connection's socket without a close frame."""
    ws.shutdown()
