"""HTTP plumbing shared by the emulator's routes: responses, bounded body reads, the server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import weakref
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Mapping, Optional

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

__all__ = [
    "CONTROL_PREFIX",
    "JSON",
    "TEXT",
    "BodyError",
    "TrackingServer",
    "abort_with_reset",
    "failure",
    "is_websocket",
    "json_body",
    "not_allowed",
    "read_body",
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
    """The whole request body, within ``limit`` bytes (None: no limit); :class:`BodyError` if refused."""
    too_large = f"request body larger than {limit} bytes (the emulator's max_request_size)"
    if limit is not None and (request.content_length or 0) > limit:
        raise BodyError(413, too_large)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BodyError(413, too_large) from None
    except ConnectionError:
        raise BodyError(400, "the client went away before sending the whole body") from None
    except HttpProcessingError as exc:
        raise BodyError(400, f"malformed request body: {exc.message}") from None
    if limit is not None and len(body) > limit:
        raise BodyError(413, too_large)
    return body


def abort_with_reset(transport: Optional[asyncio.Transport]) -> None:
    """Close a connection with a TCP RST (SO_LINGER 0) instead of an orderly FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _ClientRequestHandler(RequestHandler):
    """aiohttp's connection handler, quiet about requests that are the client's fault.

    aiohttp answers a request it cannot parse (a request line or header too long, a bad
    Content-Length or chunk size, ...) with 400 and logs the parser's exception with its
    traceback at ERROR level. A malformed request is the client's problem, not the server's:
    it is answered the same way and logged as one DEBUG line. Real server errors (500) still
    go through aiohttp's own logging.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: Optional[BaseException] = None,
        message: Optional[str] = None,
    ) -> web.StreamResponse:
        if status >= 500 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        logger.debug("refused a malformed request from %s: %s", request.remote, " ".join(str(exc).split()))
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already under way when the request turned out malformed")
        response = web.Response(status=status, text=message or HTTPStatus(status).phrase, content_type="text/plain")
        response.force_close()
        return response


class TrackingServer(web.Server):
    """aiohttp's low-level server, remembering every connection's transport until it is gone.

    Each request may carry a body of at most ``max_request_size`` bytes (``None``: no limit).
    """

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        max_request_size: Optional[int],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, request_factory=self._make_limited_request, **kwargs)
        # aiohttp reads 0 as "no limit". Whether it refuses a body of exactly its limit depends
        # on its version, so it gets one byte more and the handler checks the exact limit.
        self._client_max_size = 0 if max_request_size is None else max_request_size + 1
        self.transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()

    def _make_limited_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        return web.BaseRequest(
            message, payload, protocol, writer, task, self._loop, client_max_size=self._client_max_size
        )

    def __call__(self) -> RequestHandler:
        return _ClientRequestHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.transports.add(transport)
