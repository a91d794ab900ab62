"""One asyncio WebSocket connection for the identifiers stream, on a socket of our own.

The socket is never handed to an asyncio transport. It is read without blocking, and when
nothing is there the reading task waits on a plain future that a loop reader callback (or
whoever wants the wait to end: :meth:`AsyncIdentifiersStream.aclose`, the keep-alive timer)
resolves. The reader is registered for that one wait only and removed before the task goes on,
so nothing stays registered with the loop between two reads; a cancelled wait loses no bytes
(bytes are only read by the task itself, into :attr:`Wire.buffer`); and the socket is never
closed while registered (:meth:`Wire.close` removes the registration first), which leaves a
plain ``socket.close()`` for a finalizer. One read costs a future and the reader's two
``epoll_ctl`` calls: no task, no ``asyncio.wait``, no timer. TLS runs through an
:class:`ssl.SSLObject` over memory buffers.

The rules (handshake request and answer, proxy tunnel, frame header checks and size bound,
error texts) are the sync stream's: :class:`~pieces_os_client.stream._connect.Connector`,
:mod:`pieces_os_client._core.handshake` and :mod:`pieces_os_client._core.frames`. Only the I/O
is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from typing import Any, Callable, Optional, Tuple

from pieces_os_client._core import handshake
from pieces_os_client._core.frames import (
    CONTROL,
    OP_CLOSE,
    MessageRules,
    PeerClosed,
    encode_frame,
    next_frame,
)
from pieces_os_client.exceptions import ApiConnectionError, ApiValueError, StreamError
from pieces_os_client.stream._connect import Connector

__all__ = ["Wire", "open_wire"]

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

    def fill_nowait(self) -> bool:
        """Append what can be read now to :attr:`buffer`; ``False`` when nothing can.

        :raises PeerClosed: the connection ended.
        """
        if self.tls is None:
            data = self._recv_nowait()
            if data is None:
                return False
            if not data:
                raise PeerClosed("the connection was closed")
            self.buffer += data
            return True
        while True:
            try:
                data = self.tls.read(_CHUNK)
            except ssl.SSLWantReadError:
                raw = self._recv_nowait()
                if raw is None:
                    return False
                if not raw:
                    raise PeerClosed("the connection was closed") from None
                self._incoming.write(raw)
                continue
            except ssl.SSLZeroReturnError:
                raise PeerClosed("the connection was closed (TLS close_notify)") from None
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

    # ------------------------------------------------------------------ frames
    def buffered_frame(self, rules: MessageRules) -> Optional[Tuple[bool, int, bytes]]:
        """The next frame if all of it is in :attr:`buffer` already (taken out of it), else ``None``."""
        found = next_frame(self.buffer, rules)
        if found is not None:
            (fin, opcode, length), size = found
            if len(self.buffer) >= size + length:
                del self.buffer[:size]
                payload = self.take(length)
                if opcode not in CONTROL:
                    rules.accept(fin, opcode, length)
                return fin, opcode, payload
        return None

    async def send_frame(self, opcode: int, payload: bytes = b"") -> None:
        await self.send(encode_frame(opcode, payload, os.urandom(4)))

    def close_frame_nowait(self, status: int = 1000, reason: bytes = b"") -> None:
        self.send_nowait(encode_frame(OP_CLOSE, status.to_bytes(2, "big") + reason, os.urandom(4)))


async def open_wire(connector: Connector, adopt: Callable[[Optional[Wire]], None]) -> Wire:
    """One connection: TCP (through the proxy's tunnel), TLS, the upgrade; all within ``connect_timeout``.

    ``adopt`` is handed the wire as soon as its socket exists (and ``None`` once it is returned
    or closed), so that the stream can close it should the stream be collected meanwhile.

    :raises ApiConnectionError: unreachable (``ApiTimeoutError``: too slow).
    :raises StreamError: the server refused the WebSocket handshake, a redirect included.
    :raises asyncio.CancelledError: unwrapped; the socket is closed.
    """
    phase = ["the TCP connection"]
    wire: Optional[Wire] = None

    async def opening() -> Wire:
        nonlocal wire
        loop = asyncio.get_running_loop()
        proxy = connector.proxy
        host, port = (proxy.host, proxy.port) if proxy else (connector.target_host, connector.target_port)
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        last: Optional[OSError] = None
        for family, kind, proto, _name, address in infos:
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            wire = Wire(sock)
            adopt(wire)
            try:
                await loop.sock_connect(sock, address)
                break
            except OSError as exc:
                wire.close()
                wire, last = None, exc
        if wire is None:
            raise last if last is not None else OSError(f"no address found for {host}")
        wire.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if proxy is not None:
            phase[0] = "the proxy tunnel (CONNECT)"
            await wire.send(connector.tunnel_request(proxy))
            answer = b""
            while b"\r\n\r\n" not in answer:
                await wire.fill()
                chunk = wire.take(len(wire.buffer))
                answer += chunk
                connector.check_tunnel_answer(answer, chunk, proxy)
            connector.check_tunnel_status(answer)
        if connector.ssl_context is not None:
            phase[0] = "the TLS handshake"
            await wire.start_tls(connector.ssl_context, connector.server_name)
        phase[0] = "the WebSocket handshake"
        await _upgrade(connector, wire)
        return wire

    try:
        try:
            result = await asyncio.wait_for(opening(), connector.timeout)
        except asyncio.TimeoutError as exc:  # not the builtin TimeoutError before Python 3.11
            raise TimeoutError("connect_timeout passed") from exc
    except BaseException as exc:
        if wire is not None:
            wire.close()
        adopt(None)
        if isinstance(exc, PeerClosed):
            raise connector.error(OSError(str(exc)), phase[0]) from exc
        if isinstance(exc, Exception) and not isinstance(exc, (ApiConnectionError, StreamError, ApiValueError)):
            raise connector.error(exc, phase[0]) from exc
        raise
    adopt(None)
    return result


async def _upgrade(connector: Connector, wire: Wire) -> None:
    key = handshake.new_key(os.urandom(16))
    await wire.send(connector.request(key))
    while True:
        end = wire.buffer.find(b"\r\n\r\n")
        if end < 0:
            lone = wire.buffer.find(b"\n\n")
            end = lone + 2 if lone >= 0 else -1
        else:
            end += 4
        if end >= 0:
            break
        connector.check_head_size(wire.buffer)
        await wire.fill()
    head = wire.take(end)  # whatever follows is the first frame, kept in the buffer
    connector.check_head_size(head[:-1])
    response, problem = connector.answer(head, key)
    if problem is None:
        return
    body = b""
    length = connector.body_length(response)
    deadline = time.monotonic() + 0.5
    with contextlib.suppress(Exception):
        while len(wire.buffer) < length and time.monotonic() < deadline:
            await asyncio.wait_for(wire.fill(), max(0.0, deadline - time.monotonic()))
    body = bytes(wire.buffer[:length])
    raise connector.refused(problem, response, body.decode("utf-8", "replace"))
