"""Opening the asyncio stream's connection: TCP (through a proxy's tunnel), TLS and the upgrade, all
within ``connect_timeout``.

What to open and what each answer means is :class:`~pieces_os_client._core.connect.Endpoint`, the
handshake's answer is read by :class:`~pieces_os_client._core.websocket.ClientProtocol`, the same as
the sync stream's (``stream/_connect.py``). Only the I/O is here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import Callable, Optional

from pieces_os_client._core import handshake
from pieces_os_client._core.connect import Endpoint
from pieces_os_client._core.frames import PeerClosed
from pieces_os_client._core.websocket import State
from pieces_os_client.aio._link import Wire
from pieces_os_client.exceptions import ApiConnectionError, ApiValueError, StreamError

__all__ = ["open_wire"]


async def open_wire(
    connector: Endpoint,
    adopt: Callable[[Optional[Wire]], None],
) -> Wire:
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


async def _upgrade(connector: Endpoint, wire: Wire) -> None:
    key = handshake.new_key(os.urandom(16))
    protocol = connector.protocol(key)
    await wire.send(connector.request(key))
    while protocol.state is State.CONNECTING:
        if not wire.buffer:
            await wire.fill()
        protocol.receive_data(wire.take(len(wire.buffer)))  # what follows the head stays with the protocol
    if protocol.refusal is None:
        wire.protocol = protocol
        await wire.flush()  # frames that came with the answer may need one (a pong, a close)
        return
    response = protocol.response
    if response is not None:
        length = connector.body_length(response)
        deadline = time.monotonic() + 0.5
        with contextlib.suppress(Exception):
            while len(protocol.refusal_body(length)) < length and time.monotonic() < deadline:
                await asyncio.wait_for(wire.fill(), max(0.0, deadline - time.monotonic()))
                protocol.receive_data(wire.take(len(wire.buffer)))
    raise connector.handshake_error(protocol)
