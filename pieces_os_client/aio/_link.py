"""One asyncio WebSocket connection of the identifiers stream, on a socket of our own: :class:`Wire`.

The socket is never handed to an asyncio transport. It is read without blocking, and when
nothing is there the reading task waits on a plain future that a loop reader callback (or
whoever wants the wait to end: :meth:`AsyncIdentifiersStream.aclose`, the keep-alive timer)
resolves. The reader is registered for that one wait only and removed before the task goes on,
so nothing stays registered with the loop between two reads; a cancelled wait loses no bytes
(bytes are only read by the task itself); and the socket is never closed while registered
(:meth:`Wire.close` removes the registration first), which leaves a plain ``socket.close()``
for a finalizer. One read costs a future and the reader's two ``epoll_ctl`` calls: no task, no
``asyncio.wait``, no timer. TLS runs through an :class:`ssl.SSLObject` over memory buffers.

Every protocol rule is :class:`~pieces_os_client._core.websocket.ClientProtocol`'s, which the wire
carries once the handshake is done; only the I/O is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Any, Optional

from pieces_os_client._core.frames import PeerClosed
from pieces_os_client._core.websocket import ClientProtocol, State

__all__ = ["Wire"]

_CHUNK = 64 * 1024


def _running_loop() -> Optional[asyncio.AbstractEventLoop]:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _wake(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(True)


class Wire:
    """A connected socket (TLS optional) with a receive buffer."""

    def __init__(self, sock: socket.socket, tls: Optional[ssl.SSLObject] = None) -> None:
        self.sock = sock
        #: the connection's protocol, once the handshake was answered
        self.protocol: Optional[ClientProtocol] = None
        self.fd = sock.fileno()
        self.tls = tls
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.buffer = bytearray()
        self.closed = False
        self._loop = _running_loop()  # the loop the socket is read and written in

    # ------------------------------------------------------------------ raw I/O
    def _recv_nowait(self) -> Optional[bytes]:
        """What the socket has now (``b""``: the peer closed it); ``None``: nothing yet."""
        try:
            return self.sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return None

    async def readable(self, waiter: asyncio.Future[Any]) -> Any:
        """Wait until the socket has something to read, or until someone else resolves ``waiter``.

        Returns ``True`` when the socket became readable, else the result that was set. The loop
        reader exists during this wait only; cancelling the wait removes it before raising.
        """
        loop = asyncio.get_running_loop()
        loop.add_reader(self.fd, _wake, waiter)  # by number: a socket object costs its repr per lookup
        try:
            return await waiter
        finally:
            if not self.closed:
                loop.remove_reader(self.fd)

    async def _until_readable(self) -> None:
        await self.readable(asyncio.get_running_loop().create_future())

    async def _recv_raw(self) -> bytes:
        while True:
            data = self._recv_nowait()
            if data is not None:
                return data
            await self._until_readable()

    async def _flush_tls(self) -> None:
        pending = self._outgoing.read()
        if pending:
            await self.sendall(pending)

    async def start_tls(self, context: ssl.SSLContext, server_name: str) -> None:
        """The TLS handshake over this socket."""
        self.tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_name)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush_tls()
                data = await self._recv_raw()
                if not data:
                    raise ConnectionResetError("the server closed the connection during the TLS handshake") from None
                self._incoming.write(data)
        await self._flush_tls()

    def read_nowait(self) -> Optional[bytes]:
        """What can be read now (``b""``: the connection ended); ``None`` when nothing can."""
        if self.tls is None:
            return self._recv_nowait()
        while True:
            try:
                return self.tls.read(_CHUNK)
            except ssl.SSLWantReadError:
                raw = self._recv_nowait()
                if raw is None:
                    return None
                if not raw:
                    return b""
                self._incoming.write(raw)
            except ssl.SSLZeroReturnError:
                return b""

    def fill_nowait(self) -> bool:
        """Append what can be read now to :attr:`buffer`; ``False`` when nothing can.

        :raises PeerClosed: the connection ended.
        """
        data = self.read_nowait()
        if data is None:
            return False
        if not data:
            raise PeerClosed("the connection was closed")
        self.buffer += data
        return True

    async def fill(self) -> None:
        """Append what arrives next to :attr:`buffer`. :raises PeerClosed: the connection ended."""
        while not self.fill_nowait():
            await self._until_readable()

    async def sendall(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def send(self, data: bytes) -> None:
        if self.tls is None:
            await self.sendall(data)
            return
        self.tls.write(data)
        await self._flush_tls()

    def send_nowait(self, data: bytes) -> None:
        """Best effort, never waits: what the kernel takes now (for a close frame on the way out)."""
        with contextlib.suppress(OSError, ssl.SSLError):
            if self.tls is not None:
                self.tls.write(data)
                data = self._outgoing.read()
            self.sock.send(data)

    def take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def close(self) -> None:
        """Close the socket now; nothing is scheduled on any loop.

        Called in the loop the socket was read in, it first removes any reader or writer the
        socket has there, so that no closed descriptor (whose number the next socket may get)
        stays registered.
        """
        self.closed = True
        loop = self._loop
        if loop is not None and _running_loop() is loop:
            loop.remove_reader(self.fd)
            loop.remove_writer(self.fd)
        self.sock.close()

    def forget(self) -> None:
        """In a forked child: close this process's descriptor only, with no close frame or shutdown."""
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.close()

    def flush_nowait(self) -> None:
        """Write what the protocol has to send, best effort and without waiting (a close frame)."""
        if self.protocol is not None:
            out = self.protocol.data_to_send()
            if out:
                self.send_nowait(out)

    async def flush(self) -> None:
        """Write what the protocol has to send (a pong, a ping, a close frame)."""
        if self.protocol is not None:
            out = self.protocol.data_to_send()
            if out:
                await self.send(out)

    async def wait_closed(self) -> None:
        """While a close frame the client sent is unanswered (the protocol is ``CLOSING``): read
        until the server's close (or the end of the connection), for at most the protocol's
        ``close_timeout``. Best effort; what arrives is dropped."""
        protocol = self.protocol
        if protocol is None or self.closed:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + protocol.close_timeout
        with contextlib.suppress(OSError, ssl.SSLError):
            while protocol.state is State.CLOSING and not self.closed:
                data = self.read_nowait()
                if data is None:
                    left = deadline - loop.time()
                    if left <= 0:
                        return
                    waiter = loop.create_future()
                    timer = loop.call_later(left, _wake, waiter)
                    try:
                        await self.readable(waiter)
                    finally:
                        timer.cancel()
                    continue
                protocol.receive(data)  # dropped: the connection is closing
                self.flush_nowait()
