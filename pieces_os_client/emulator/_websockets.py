"""The emulator's WebSockets: the identifiers stream's fan-out and the health stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Set

from aiohttp import WSMsgType, web

from ._http import start_response
from ._store import streamed_identifiers

__all__ = ["WebSockets"]

logger = logging.getLogger("pieces_os_client.emulator")


@dataclass(eq=False)
class _Socket:
    """One open WebSocket, with its outgoing queue and sender task (identifiers stream only)."""

    ws: web.WebSocketResponse
    transport: Optional[asyncio.Transport]
    queue: Optional[asyncio.Queue[str]] = None
    sender: Optional[asyncio.Task[None]] = None
    dropped: bool = field(default=False)

    def abort(self) -> None:
        """Close the TCP connection at once, with no close frame, as a crashed server would."""
        self.dropped = True
        if self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(OSError):
                self.transport.abort()


class WebSockets:
    """Every open WebSocket, and the queues that fan identifier changes out to subscribers.

    All methods but :attr:`count` run on the emulator's loop.

    Parameters:
        heartbeat: seconds between pings the server sends (None: no pings).
        queue_size: messages buffered per identifiers socket; one that falls this far behind
            is closed so it cannot hold anything else up.
        send_buffer: if set, cap each socket's kernel and transport send buffers at this many bytes.
        max_message_size: the largest message a client may send, in bytes.
    """

    def __init__(
        self, heartbeat: Optional[float], queue_size: int, send_buffer: Optional[int], max_message_size: int
    ) -> None:
        self._heartbeat = heartbeat
        self._queue_size = queue_size
        self._send_buffer = send_buffer
        self._max_message_size = max_message_size
        self._subscribers: Set[_Socket] = set()
        self._sockets: Set[_Socket] = set()

    @property
    def count(self) -> int:
        """How many WebSockets (identifiers and health streams) are open right now."""
        return len(self._sockets)

    def drop(self) -> int:
        """Abort every open WebSocket's TCP connection, with no close frame; returns how many."""
        entries = list(self._sockets)
        for entry in entries:
            entry.abort()
        return len(entries)

    async def close_all(self) -> None:
        """Send every open WebSocket a 1001 close frame (waiting briefly), then cut it off."""

        async def close(entry: _Socket) -> None:
            try:
                await asyncio.wait_for(entry.ws.close(code=1001, message=b"emulator shutting down"), 0.5)
            except (asyncio.TimeoutError, OSError, RuntimeError):
                pass
            finally:
                entry.abort()

        await asyncio.gather(*(close(entry) for entry in list(self._sockets)), return_exceptions=True)

    def broadcast(self, text: str) -> None:
        """Queue a message for every identifiers socket (loop thread only); never waits."""
        for entry in list(self._subscribers):
            queue = entry.queue
            if queue is None:
                continue
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                logger.warning("closing an identifiers WebSocket that fell %d messages behind", queue.maxsize)
                self._subscribers.discard(entry)
                entry.abort()

    async def _sender(self, entry: _Socket) -> None:
        assert entry.queue is not None
        try:
            while True:
                text = await entry.queue.get()
                await entry.ws.send_str(text)
        except asyncio.CancelledError:
            raise
        except Exception:  # the peer went away; the receive loop will notice and clean up
            self._subscribers.discard(entry)
            entry.abort()

    def _limit_send_buffer(self, transport: Optional[asyncio.Transport]) -> None:
        size = self._send_buffer
        if size is None or transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        if isinstance(transport, asyncio.WriteTransport):
            transport.set_write_buffer_limits(high=size)

    async def identifiers(self, request: web.BaseRequest, snapshot: Callable[[], List[str]]) -> web.StreamResponse:
        """Serve ``/conversations/stream/identifiers``: ``snapshot()`` first, then every change."""
        ws = web.WebSocketResponse(
            heartbeat=self._heartbeat,
            autoping=True,
            writer_limit=self._send_buffer or 2**16,
            max_msg_size=self._max_message_size + 1,  # aiohttp refuses a message of exactly its limit
        )
        await start_response(ws, request)
        transport = request.transport
        self._limit_send_buffer(transport)
        entry = _Socket(ws, transport, asyncio.Queue(self._queue_size))
        assert entry.queue is not None
        # Snapshot and subscribe in one step (no await between) so no change can slip past.
        entry.queue.put_nowait(streamed_identifiers(snapshot()))
        self._subscribers.add(entry)
        self._sockets.add(entry)
        entry.sender = asyncio.get_running_loop().create_task(self._sender(entry))
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self._subscribers.discard(entry)
            self._sockets.discard(entry)
            entry.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await entry.sender
        return ws

    async def health(self, request: web.BaseRequest) -> web.StreamResponse:
        """Serve ``/.well-known/stream/health``: "ok" at once and in answer to every text message."""
        ws = web.WebSocketResponse(heartbeat=self._heartbeat, autoping=True, max_msg_size=self._max_message_size + 1)
        await start_response(ws, request)
        entry = _Socket(ws, request.transport)
        self._sockets.add(entry)
        try:
            await ws.send_str("ok")
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await ws.send_str("ok")
                elif message.type == WSMsgType.ERROR:
                    break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            self._sockets.discard(entry)
        return ws
