"""The socket a stream currently holds, how it is shut down, and what a forked child does with it."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import weakref
from typing import TYPE_CHECKING, Optional, Protocol

if TYPE_CHECKING:
    import websocket

__all__ = ["Link", "close_ws", "reset_in_forked_child"]


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
        self.ws: Optional[websocket.WebSocket] = None
        self.pending: Optional[socket.socket] = None  # connected, handshake not finished
        self.reading = False  # a thread is inside recv on ``ws``
        self.inherited = False  # this process got the link from its parent by fork
        reset_in_forked_child(self)

    def shutdown(self, send_timeout: float = 0.25) -> None:
        """Ask for the end: send a close frame, wake any reader, close what no one reads."""
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
        sock = ws.sock
        if sock is not None and first:
            try:
                sock.settimeout(send_timeout)
                ws.send_close()
            except Exception:  # best effort: the peer may already be gone
                pass
            _shutdown_socket(sock)
        if not reading:
            close_ws(ws)

    def detach(self, ws: websocket.WebSocket) -> bool:
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
        for sock in (pending, ws.sock if ws is not None else None):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()  # this process's descriptor only: no FIN while the parent holds it


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_LIVE: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def reset_in_forked_child(obj: _ForkAware) -> None:
    """Have ``obj._after_fork_in_child()`` run in every child forked while ``obj`` lives.

    It runs right after the fork, before any other code of the child, in its only thread.
    """
    _LIVE.add(obj)


def _run_fork_hooks() -> None:
    for obj in list(_LIVE):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_run_fork_hooks)


def _shutdown_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def close_ws(ws: websocket.WebSocket) -> None:
    """Close a WebSocket's socket without a close frame (websocket-client's ``shutdown``)."""
    with contextlib.suppress(Exception):  # websocket-client already swallows most of these
        ws.shutdown()  # type: ignore[no-untyped-call]
