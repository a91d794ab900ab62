"""The HTTP routes of the emulated API, and the broken responses faults put on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections import deque
from concurrent.futures import Executor
from http import HTTPStatus
from typing import Any, Deque, Dict, List, NamedTuple, Optional, Tuple, Union
from urllib.parse import parse_qsl, unquote

from aiohttp import web

from ._bodies import load_json
from ._faults import Break, Fail, FaultBook, Stall
from ._http import (
    TEXT,
    abort_with_reset,
    failure,
    is_websocket,
    json_body,
    not_allowed,
    read_body,
    start_response,
    text_response,
)
from ._store import Store, StoreError, streamed_identifiers
from ._websockets import WebSockets

__all__ = ["Api", "RecordedRequest", "RequestLog"]

_MALFORMED_JSON = b'{"iterable": ['
_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Pieces OS</title></head>"
    b"<body><h1>Welcome</h1><p>This is not the JSON you asked for.</p></body></html>\n"
)
# A route that answers GET answers HEAD alike (same status and headers, no body), as HTTP
# asks: the official SDK looks for Pieces OS with HEAD /.well-known/health.
_READ = ("GET", "HEAD")
_READ_ALLOW = "GET, HEAD"
# Create bodies larger than this are checked and stored on a worker thread, off the loop.
_INLINE_BODY = 64 * 1024


class RecordedRequest(NamedTuple):
    """One request the emulator received: method, raw (still percent-encoded) path, raw query."""

    method: str
    path: str
    query: str


class RequestLog:
    """The most recent API requests, oldest first, safe to read and clear from any thread."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._requests: Deque[RecordedRequest] = deque(maxlen=limit)

    def add(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def snapshot(self) -> List[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def __len__(self) -> int:
        return len(self._requests)


def _parse_bool(query: str, name: str, default: bool = True) -> bool:
    if not query:
        return default
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            lowered = value.lower()
            if lowered in ("true", "1", "yes", ""):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise StoreError(f"invalid value for query parameter {name!r}: {value!r} (expected true or false)")
    return default


def _decode_segment(raw: str) -> str:
    try:
        return unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise StoreError(f"path parameter {raw!r} is not valid percent-encoded UTF-8") from exc


def _validate_seed(body: bytes) -> Optional[str]:
    """Validate a SeededConversation body with the SDK's own model; returns an error text or None."""
    from pydantic import ValidationError

    from pieces_os_client.models.seeded_conversation import SeededConversation

    try:
        SeededConversation.model_validate_json(body)
    except ValidationError as exc:
        problems = []
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error.get("loc", ())) or "body"
            problems.append(f"{where}: {error.get('msg', 'invalid')}")
        return "; ".join(problems)
    return None


class Api:
    """Answers the API's requests (everything but the control endpoints) on the emulator's loop.

    ``workers`` (a thread pool for large bodies) and ``stopping`` (set when the emulator
    stops) are given by the emulator while it runs.
    """

    def __init__(
        self,
        store: Store,
        sockets: WebSockets,
        faults: FaultBook,
        log: RequestLog,
        version: bytes,
        max_request_size: Optional[int],
    ) -> None:
        self.store = store
        self.sockets = sockets
        self.faults = faults
        self.log = log
        self.version = version
        self.max_request_size = max_request_size
        self.workers: Optional[Executor] = None
        self.stopping: Optional[asyncio.Event] = None

    async def handle(self, request: web.BaseRequest, method: str, raw_path: str, query: str) -> web.StreamResponse:
        self.log.add(RecordedRequest(method, raw_path, query))
        stall: Optional[Stall] = None
        body: Optional[bytes] = None  # the request body, once read (it can be read only once)
        if self.faults:
            delay, rule = self.faults.take(method, raw_path)
            if delay is not None:
                # Take the whole request in first, as a server that is slow to answer (not slow
                # to read) would: the work still happens if the client gives up meanwhile.
                body = await read_body(request, self.max_request_size)
                await asyncio.sleep(delay.seconds)
            if isinstance(rule, Stall):
                stall = rule
            elif rule is not None:
                return await self._fault_response(request, rule)
        try:
            response = await self._route(request, method, raw_path, query, body)
        except StoreError as exc:
            response = failure(str(exc))
        if stall is not None:
            return await self._stalled(request, response, stall)
        return response

    async def _route(
        self, request: web.BaseRequest, method: str, raw_path: str, query: str, body: Optional[bytes]
    ) -> web.StreamResponse:
        store = self.store
        if raw_path == "/conversations":
            if method not in _READ:
                return not_allowed(_READ_ALLOW)
            return json_body(store.snapshot_body(_parse_bool(query, "transferables")))
        if raw_path == "/conversations/identifiers":
            if method not in _READ:
                return not_allowed(_READ_ALLOW)
            return json_body(store.identifiers_body())
        if raw_path == "/conversations/create":
            if method != "POST":
                return not_allowed("POST")
            return await self._create(request, query, body)
        if raw_path.startswith("/conversations/create/from_asset/"):
            segment = raw_path[len("/conversations/create/from_asset/") :]
            if segment and "/" not in segment:
                if method != "POST":
                    return not_allowed("POST")
                conversation_id, body = store.create_from_asset(_decode_segment(segment))
                self.sockets.broadcast(streamed_identifiers([conversation_id]))
                return json_body(body)
        if raw_path == "/conversations/stream/identifiers":
            if method not in _READ:
                return not_allowed(_READ_ALLOW)
            if method == "GET" and is_websocket(request):
                return await self.sockets.identifiers(request, store.conversation_ids)
            return text_response(
                200,
                "This endpoint is a WebSocket: connect with ws:// (or wss://) to receive StreamedIdentifiers messages.",
            )
        if raw_path.startswith("/conversations/") and raw_path.endswith("/delete"):
            segment = raw_path[len("/conversations/") : -len("/delete")]
            if segment and "/" not in segment:
                if method != "POST":
                    return not_allowed("POST")
                conversation_id = _decode_segment(segment)
                store.delete(conversation_id)
                self.sockets.broadcast(streamed_identifiers([conversation_id], deleted=True))
                return web.Response(status=204)
        if raw_path == "/.well-known/health":
            return text_response(200, "ok") if method in _READ else not_allowed(_READ_ALLOW)
        if raw_path == "/.well-known/version":
            if method not in _READ:
                return not_allowed(_READ_ALLOW)
            return web.Response(body=self.version, headers={"Content-Type": TEXT})
        if raw_path == "/.well-known/stream/health":
            if method not in _READ:
                return not_allowed(_READ_ALLOW)
            if method == "GET" and is_websocket(request):
                return await self.sockets.health(request)
            return text_response(200, "ok")
        return text_response(404, f"no such endpoint: {method} {raw_path}")

    async def _create(self, request: web.BaseRequest, query: str, body: Optional[bytes]) -> web.StreamResponse:
        transferables = _parse_bool(query, "transferables")
        if body is None:
            body = await read_body(request, self.max_request_size)
        workers = self.workers
        if len(body) > _INLINE_BODY and workers is not None:
            # Checking and storing a large body takes a while (a second or more for a few MiB
            # of small messages): a worker thread does it, under the store's own lock, while
            # the loop goes on serving everyone else.
            loop = asyncio.get_running_loop()
            conversation_id, out = await loop.run_in_executor(workers, self._create_from_body, body, transferables)
        else:
            conversation_id, out = self._create_from_body(body, transferables)
        self.sockets.broadcast(streamed_identifiers([conversation_id]))
        return json_body(out)

    def _create_from_body(self, body: bytes, transferables: bool) -> Tuple[str, bytes]:
        """Validate a create body and store the conversation; StoreError (500) if invalid."""
        seed: Optional[Dict[str, Any]] = None
        if body.strip():
            try:
                parsed = load_json(body)
            except ValueError as exc:
                raise StoreError(f"invalid request body: {exc}") from None
            if parsed is not None:
                if not isinstance(parsed, dict):
                    raise StoreError("invalid SeededConversation: the body must be a JSON object")
                problem = _validate_seed(body)
                if problem is not None:
                    raise StoreError(f"invalid SeededConversation: {problem}")
                seed = parsed
        return self.store.create(seed, transferables)

    # ------------------------------------------------------------------ faults on the wire
    async def _fault_response(self, request: web.BaseRequest, rule: Union[Fail, Break]) -> web.StreamResponse:
        if isinstance(rule, Fail):
            headers: Dict[str, str] = {}
            if rule.retry_after is not None:
                value = rule.retry_after
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                headers["Retry-After"] = str(value)
            if rule.status < 200 or rule.status in (204, 304):
                return web.Response(status=rule.status, headers=headers)
            try:
                phrase = HTTPStatus(rule.status).phrase
            except ValueError:
                phrase = "Error"
            text = rule.body if rule.body is not None else f"{rule.status} {phrase} (injected by the emulator)"
            return text_response(rule.status, text, headers)
        mode = rule.mode
        if mode == "malformed_json":
            return json_body(_MALFORMED_JSON)
        if mode == "html":
            return web.Response(body=_HTML, headers={"Content-Type": "text/html; charset=utf-8"})
        transport = request.transport
        if mode == "reset_before_response":
            abort_with_reset(transport)
        elif mode in ("truncated", "disconnect") and transport is not None:
            partial = b'{"iterable":[{"id":"' if mode == "truncated" else b""
            transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n"
                b"Connection: close\r\n\r\n" + partial
            )
            transport.close()
        elif mode == "hang":
            await self._hold(transport, math.inf)
            return text_response(503, "emulator stopped while holding this request")
        # The connection is gone; aiohttp notices when it tries to write this and drops it quietly.
        return web.Response(status=500)

    async def _hold(self, transport: Optional[asyncio.Transport], seconds: float) -> bool:
        """Wait ``seconds``, or less if the emulator stops or the client goes; True if cut short."""
        stopping = self.stopping
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while stopping is not None and not stopping.is_set():
            if transport is None or transport.is_closing():
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stopping.wait(), min(left, 0.1))
        return True

    async def _stalled(self, request: web.BaseRequest, response: web.StreamResponse, rule: Stall) -> web.StreamResponse:
        """Send ``response``'s status, headers and first ``rule.after_bytes`` body bytes, stall, then the rest.

        At least the last byte is held back, so the body is incomplete while stalled. A response
        with no body (HEAD, 204, ...) is held whole. If the emulator stops, or the client goes,
        during the stall, the connection is closed with the body unfinished. A WebSocket
        session (already over when this runs) is left alone.
        """
        body = response.body if isinstance(response, web.Response) and not response.prepared else None
        if not isinstance(body, bytes):
            return response
        transport = request.transport
        if not body or request.method == "HEAD":
            if await self._hold(transport, rule.seconds) and transport is not None:
                transport.abort()
            return response
        stream = web.StreamResponse(status=response.status, reason=response.reason, headers=response.headers)
        stream.content_length = len(body)
        sent = min(rule.after_bytes, len(body) - 1)
        try:
            await start_response(stream, request)  # aiohttp sends the status line and headers at once
            if sent:
                await stream.write(body[:sent])
            if await self._hold(transport, rule.seconds):
                if transport is not None:
                    transport.abort()
                return stream
            await stream.write(body[sent:])
            await stream.write_eof()
        except ConnectionError:  # the client went away while the body was on its way
            pass
        return stream
