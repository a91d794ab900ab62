"""HTTP plumbing shared by the emulator's routes: responses, bounded body reads, the server.

Only aiohttp's public server API is used: ``web.Server`` with its documented keyword
arguments, the request's public attributes (``content``, ``transport``, ``content_length``,
...) and responses. No aiohttp class is subclassed and no underscore name is read, so an
aiohttp upgrade cannot break the emulator through its internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import weakref
from contextvars import ContextVar
from typing import Awaitable, Callable, List, Mapping, Optional

from aiohttp import web
from typing_extensions import Buffer

__all__ = [
    "CONTROL_PREFIX",
    "JSON",
    "TEXT",
    "BodyError",
    "HttpServer",
    "abort_with_reset",
    "failure",
    "is_websocket",
    "json_body",
    "not_allowed",
    "read_body",
    "start_response",
    "text_response",
]

logger = logging.getLogger("pieces_os_client.emulator")

CONTROL_PREFIX = "/__emulator__/"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"


def text_response(status: int, reason: str, headers: Optional[Mapping[str, str]] = None) -> web.Response:
    response = web.Response(status=status, body=reason.encode("utf-8"), headers=headers)
    response.headers["Content-Type"] = TEXT
    return response


def json_body(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": JSON})


def failure(reason: str) -> web.Response:
    """How Pieces OS reports a failed operation: 500 with a text/plain reason."""
    return text_response(500, reason)


def not_allowed(allowed: str) -> web.Response:
    return text_response(405, "method not allowed", headers={"Allow": allowed})


def is_websocket(request: web.BaseRequest) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


class BodyError(Exception):
    """A request body the emulator refuses to take in: ``status`` and the reason to send back."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def read_body(request: web.BaseRequest, limit: Optional[int]) -> bytes:
    """The whole request body, within ``limit`` bytes (None: no limit); :class:`BodyError` if refused.

    Read from ``request.content`` a piece at a time, so a body is refused as soon as it passes
    the limit (a Content-Length over it at once, before any of it is read) and the limit is
    exactly ``limit`` whatever aiohttp's own ``client_max_size`` rules are. The body can be
    read once per request.
    """
    too_large = f"request body larger than {limit} bytes (the emulator's max_request_size)"
    if limit is not None and (request.content_length or 0) > limit:
        raise BodyError(413, too_large)
    parts: List[bytes] = []
    size = 0
    try:
        while True:
            part = await request.content.readany()
            if not part:
                break
            size += len(part)
            if limit is not None and size > limit:
                raise BodyError(413, too_large)
            parts.append(part)
    except ConnectionError:
        raise BodyError(400, "the client went away before sending the whole body") from None
    except web.RequestPayloadError as exc:
        raise BodyError(400, f"malformed request body: {_one_line(exc)}") from None
    return b"".join(parts)


def abort_with_reset(transport: Optional[asyncio.Transport]) -> None:
    """Close a connection with a TCP RST (SO_LINGER 0) instead of an orderly FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _PeerFaults(logging.Filter):
    """Turns what aiohttp's connection layer logs with a traceback into one DEBUG line.

    aiohttp answers a request it cannot parse (a request line or header too long, a bad
    Content-Length or chunk size, TLS bytes on the plain port, ...) with 400 before any handler
    runs, and logs the parser's exception with its traceback at ERROR level. That is the
    client's doing, not a fault of the emulator. The emulator's own handler never lets an
    exception through to aiohttp (see :class:`HttpServer`), so every record with an exception
    on this logger comes from the connection layer and is about what a peer sent or did. It
    goes out again as one DEBUG line on the emulator's logger, with the record's own message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        logger.debug("%s: %s", record.getMessage(), _one_line(exc))
        return False


#: The logger handed to aiohttp's connection handler (its documented ``logger`` argument).
connection_logger = logging.getLogger("pieces_os_client.emulator.connections")
connection_logger.addFilter(_PeerFaults())


class _Exchange:
    """One request being handled: whether its answer has begun going out on the wire."""

    __slots__ = ("started",)

    def __init__(self) -> None:
        self.started = False


_exchange: ContextVar[Optional[_Exchange]] = ContextVar("pieces_os_emulator_exchange", default=None)


async def start_response(response: web.StreamResponse, request: web.BaseRequest) -> None:
    """``response.prepare(request)`` (the status line and headers go out), noting that the answer has begun.

    Every handler that prepares a response itself (a stream, a WebSocket) goes through here, so
    that if it then fails, :class:`HttpServer` closes the connection instead of sending a 500
    after a half-sent answer.
    """
    exchange = _exchange.get()
    if exchange is not None:
        exchange.started = True
    await response.prepare(request)


class _Registry:
    """The transports of one server's connections, and whether the server is closing."""

    __slots__ = ("closing", "transports")

    def __init__(self) -> None:
        self.transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()
        self.closing = False


class _Noting:
    """What asyncio sees of one connection: notes its transport, then hands every event on to ``inner``.

    ``inner`` is the protocol aiohttp's ``web.Server`` made for the connection (the server is
    documented as a protocol factory for ``loop.create_server()``); only the asyncio protocol
    interface is used on it. :class:`_Connection` and :class:`_BufferedConnection` add the
    events of the two kinds of asyncio protocol.
    """

    def __init__(self, inner: asyncio.BaseProtocol, registry: _Registry) -> None:
        self._inner = inner
        self._registry = registry

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        registry = self._registry
        if isinstance(transport, asyncio.Transport):
            registry.transports.add(transport)
        self._inner.connection_made(transport)
        if registry.closing and isinstance(transport, asyncio.Transport):
            # accepted just as the server stopped (the accept was already under way): nothing
            # will serve it, and nothing else would close it
            transport.abort()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _Connection(_Noting, asyncio.Protocol):
    """:class:`_Noting` for a protocol that is handed each chunk received (``asyncio.Protocol``)."""

    _inner: asyncio.Protocol

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> Optional[bool]:
        return self._inner.eof_received()


class _BufferedConnection(_Noting, asyncio.BufferedProtocol):
    """:class:`_Noting` for a protocol that reads into its own buffers (``asyncio.BufferedProtocol``)."""

    _inner: asyncio.BufferedProtocol

    def get_buffer(self, sizehint: int) -> Buffer:
        return self._inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._inner.buffer_updated(nbytes)

    def eof_received(self) -> Optional[bool]:
        return self._inner.eof_received()


class HttpServer:
    """The emulator's HTTP server: aiohttp's low-level ``web.Server``, through its public API only.

    It adds three things to the handler it serves:

    - a request the handler fails on (an exception other than aiohttp's ``HTTPException``)
      is answered 500 with a text/plain reason naming the failure, and the connection is
      closed; the traceback goes to the ``pieces_os_client.emulator`` logger at ERROR. If the
      answer had already begun, the connection is cut off instead: nothing can follow a
      half-sent answer. A client never waits on silence.
    - it listens itself (``loop.create_server()`` with the server as the protocol factory, as
      aiohttp documents it), noting every connection's transport as asyncio hands it over,
      so that :meth:`close` can cut off what aiohttp's own shutdown only starts to close: a
      TLS connection in its closing handshake with a peer that never answers, which would
      otherwise outlive the loop.
    - aiohttp's connection layer logs through :data:`connection_logger`, which turns what it
      logs about a peer's malformed request into one DEBUG line.

    ``idle_timeout`` is aiohttp's ``keepalive_timeout``: how long a connection may sit idle
    (or trickle a request's head) before it is closed. Make it on the loop that serves.
    """

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        idle_timeout: float,
    ) -> None:
        self._handler = handler
        self._registry = _Registry()
        self._busy: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()  # those with a request in hand
        self._server = web.Server(
            self._handle, access_log=None, keepalive_timeout=idle_timeout, logger=connection_logger
        )
        self._listener: Optional[asyncio.AbstractServer] = None

    def _protocol(self) -> asyncio.BaseProtocol:
        inner = self._server()
        if isinstance(inner, asyncio.BufferedProtocol):
            return _BufferedConnection(inner, self._registry)
        return _Connection(inner, self._registry)

    async def listen(self, sock: socket.socket, ssl_context: Optional[ssl.SSLContext]) -> None:
        """Serve on the listening socket ``sock`` (HTTPS and WSS with ``ssl_context``)."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._protocol, sock=sock, ssl=ssl_context, backlog=512)

    async def close(self, timeout: float) -> None:
        """Stop listening, give requests in progress up to ``timeout`` seconds, then cut off every connection left."""
        listener, self._listener = self._listener, None
        self._registry.closing = True
        if listener is not None:
            listener.close()
            await asyncio.sleep(0)  # requests already read get to their handlers first
        # An idle connection has nothing to wait for: cut it off now. (Not close(): aiohttp's
        # shutdown closes each connection too, and a TLS transport closed twice can no longer
        # be aborted.)
        idle = [transport for transport in self._registry.transports if transport not in self._busy]
        for transport in idle:
            transport.abort()
        if idle:
            await asyncio.sleep(0)  # their connection_lost runs now
        await self._server.shutdown(timeout)
        # A few more turns of the loop: an accept that was under way when the listener closed
        # makes its transport now (and ``_Noting`` cuts it off as it is made); then every
        # transport left is cut off, and its connection_lost, which closes the socket, runs.
        for _ in range(4):
            await asyncio.sleep(0)
        for transport in list(self._registry.transports):
            with contextlib.suppress(Exception):
                transport.abort()
        await asyncio.sleep(0)  # each aborted transport's connection_lost runs now

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        transport = request.transport
        if transport is not None:
            self._busy.add(transport)
        exchange = _Exchange()
        token = _exchange.set(exchange)
        try:
            return await self._handler(request)
        except web.HTTPException:
            raise  # aiohttp turns these into their responses, as documented
        except Exception as exc:
            logger.exception("the emulator failed on %s %s", request.method, request.raw_path[:200])
            return _failed(request, exc, exchange.started)
        finally:
            _exchange.reset(token)
            if transport is not None:
                self._busy.discard(transport)


def _failed(request: web.BaseRequest, exc: Exception, started: bool) -> web.StreamResponse:
    """The answer to a request the handler failed on: a 500 that closes the connection."""
    transport = request.transport
    if started and transport is not None:
        transport.abort()  # part of an answer is out; aiohttp quietly drops what follows
    response = text_response(
        500, f"the emulator failed on this request ({type(exc).__name__}); its log has the traceback"
    )
    response.force_close()
    return response
