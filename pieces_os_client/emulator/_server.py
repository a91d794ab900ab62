"""The emulator's aiohttp server and the thread-safe :class:`Emulator` controller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import struct
import threading
import weakref
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from types import TracebackType
from typing import (
    Any,
    Awaitable,
    Callable,
    Deque,
    Dict,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Set,
    Tuple,
    Type,
    TypeVar,
    Union,
)
from urllib.parse import parse_qsl, unquote

from aiohttp import WSMsgType, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from ._bodies import load_json
from ._faults import BREAK_MODES, Break, Fail, FaultBook, short_repr
from ._store import (
    DEMO_ASSETS_FILE,
    AssetRecord,
    AssetSource,
    Store,
    StoreError,
    asset_from_json,
    load_assets,
    streamed_identifiers,
)

__all__ = ["CONTROL_PREFIX", "DEFAULT_VERSION", "Emulator", "RecordedRequest"]

logger = logging.getLogger("pieces_os_client.emulator")

CONTROL_PREFIX = "/__emulator__/"
DEFAULT_VERSION = "11.0.0"
#: Default for ``Emulator(max_request_size=...)``: the largest request body accepted, in bytes.
DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024
#: Default for ``Emulator(max_ws_message_size=...)``: the largest WebSocket message accepted.
DEFAULT_MAX_WS_MESSAGE_SIZE = 1024 * 1024
#: Default for ``Emulator(idle_timeout=...)``: seconds before an idle connection is closed.
DEFAULT_IDLE_TIMEOUT = 75.0

_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"
_MALFORMED_JSON = b'{"iterable": ['
_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Pieces OS</title></head>"
    b"<body><h1>Welcome</h1><p>This is not the JSON you asked for.</p></body></html>\n"
)
_T = TypeVar("_T")
# Create bodies larger than this are checked and stored on a worker thread, off the loop.
_INLINE_BODY = 64 * 1024

# The settings each control endpoint takes in its JSON body; any other name is refused.
# Endpoints not listed take none, except POST assets, whose body is an asset in any form.
_CONTROL_SETTINGS: Dict[str, Tuple[str, ...]] = {
    "faults/fail": ("status", "count", "body", "retry_after", "method", "path"),
    "faults/delay": ("seconds", "count", "method", "path"),
    "faults/break": ("mode", "count", "method", "path"),
}
_FREE_FORM_CONTROL = ("assets",)


class RecordedRequest(NamedTuple):
    """One request the emulator received: method, raw (still percent-encoded) path, raw query."""

    method: str
    path: str
    query: str


def _text(status: int, reason: str, headers: Optional[Mapping[str, str]] = None) -> web.Response:
    response = web.Response(status=status, body=reason.encode("utf-8"), headers=headers)
    response.headers["Content-Type"] = _TEXT
    return response


def _json_body(body: bytes, status: int = 200) -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": _JSON})


def _failure(reason: str) -> web.Response:
    """How Pieces OS reports a failed operation: 500 with a text/plain reason."""
    return _text(500, reason)


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


class _BodyError(Exception):
    """A request body the emulator refuses to take in: ``status`` and the reason to send back."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


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


class _TrackingServer(web.Server):
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


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _check_settings(method: str, endpoint: str, payload: Mapping[str, Any]) -> None:
    """Refuse any setting a control endpoint does not know, naming it and the valid ones."""
    allowed = _CONTROL_SETTINGS.get(endpoint, ())
    unknown = [key for key in payload if key not in allowed]
    if unknown:
        names = ", ".join(short_repr(key) for key in unknown[:5])
        expected = f"expected {', '.join(allowed)}" if allowed else "it takes none"
        raise ValueError(f"unknown setting {names} for {method} {CONTROL_PREFIX}{endpoint}; {expected}")


def _check_size(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number of bytes, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1 byte, got {value}")


def _abort_with_reset(transport: Optional[asyncio.Transport]) -> None:
    """Close a connection with a TCP RST (SO_LINGER 0) instead of an orderly FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class Emulator:
    """A local stand-in for Pieces OS's conversation endpoints (HTTP and WebSocket, one port).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with Emulator() as emu:
            client_host = emu.url        # "http://127.0.0.1:<port>"

    The server runs on its own event loop in a daemon thread. Every public method may be
    called from any thread while it runs.

    Parameters:
        host, port: where to listen; port 0 picks a free port (read it back from :attr:`port`).
        assets: extra assets, as a path to a JSON file or a list of objects (see docs/emulator.md).
        ssl_context: a server-side :class:`ssl.SSLContext` to serve HTTPS and WSS instead.
        demo_assets: start with the built-in demo assets (default True).
        seed_conversations: create this many conversations (from the assets) at start.
        heartbeat: seconds between WebSocket pings the server sends (None: no pings).
        ws_queue_size: messages buffered per identifiers socket; a socket that falls this far
            behind is closed so it cannot hold anything else up.
        ws_send_buffer: if set, cap each WebSocket's kernel and transport send buffers at this
            many bytes, so a test can make a consumer that never reads fall behind quickly.
        version: the text served by ``/.well-known/version``.
        max_recorded_requests: how many requests :attr:`requests` remembers (oldest dropped).
        max_request_size: the largest request body accepted, in bytes (default 1 MiB); a larger
            one is answered 413 without being read whole. ``None`` lifts the limit.
        max_ws_message_size: the largest WebSocket message a client may send, in bytes
            (default 1 MiB); a larger one closes that socket with code 1009.
        idle_timeout: seconds after which a connection that is not in the middle of a
            request (idle keep-alive, opened and never used, or still trickling a request's
            headers) is closed (default 75).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        assets: Optional[AssetSource] = None,
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        demo_assets: bool = True,
        seed_conversations: int = 0,
        heartbeat: Optional[float] = 15.0,
        ws_queue_size: int = 256,
        ws_send_buffer: Optional[int] = None,
        version: str = DEFAULT_VERSION,
        max_recorded_requests: int = 100_000,
        max_request_size: Optional[int] = DEFAULT_MAX_REQUEST_SIZE,
        max_ws_message_size: int = DEFAULT_MAX_WS_MESSAGE_SIZE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        initial: List[AssetRecord] = load_assets(DEMO_ASSETS_FILE) if demo_assets else []
        if assets is not None:
            initial.extend(load_assets(assets))
        if ws_queue_size < 1:
            raise ValueError("ws_queue_size must be at least 1")
        if max_request_size is not None:
            _check_size("max_request_size", max_request_size)
        _check_size("max_ws_message_size", max_ws_message_size)
        self._max_request_size = max_request_size
        self._max_ws_message_size = max_ws_message_size
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)):
            raise TypeError(f"idle_timeout must be a number of seconds, not {type(idle_timeout).__name__}")
        if not 0 < idle_timeout < math.inf:
            raise ValueError(f"idle_timeout must be a positive, finite number of seconds, got {idle_timeout!r}")
        self._idle_timeout = float(idle_timeout)
        self._accept_warned_at = -math.inf
        self.host = host
        self._requested_port = port
        self._ssl_context = ssl_context
        self._seed_count = seed_conversations
        self._heartbeat = heartbeat
        self._ws_queue_size = ws_queue_size
        self._ws_send_buffer = ws_send_buffer
        self._version = version.encode("utf-8")
        self.store = Store(initial)
        self._faults = FaultBook()
        self._requests: Deque[RecordedRequest] = deque(maxlen=max_recorded_requests)
        self._subscribers: Set[_Socket] = set()
        self._sockets: Set[_Socket] = set()
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._workers: Optional[ThreadPoolExecutor] = None
        self._runner: Optional[web.ServerRunner] = None
        self._stopping: Optional[asyncio.Event] = None
        self._port: Optional[int] = None
        self._transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()
        if seed_conversations:
            self._seed()

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The port the emulator listens on (only known once started)."""
        if self._port is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        """Base URL for API clients, e.g. ``http://127.0.0.1:39300`` (``https`` with TLS)."""
        scheme = "https" if self._ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """Base URL for WebSocket clients (``ws://`` or ``wss://``)."""
        return "ws" + self.url[4:]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Emulator:
        """Start serving in a background daemon thread; returns once the port is listening."""
        if self._thread is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self._requested_port), family=family, backlog=512)
        self._port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: List[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart(sock))
            except BaseException as exc:
                failure.append(exc)
                sock.close()
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"pieces-os-emulator-worker:{self._port}")
        self._thread = threading.Thread(target=run, name=f"pieces-os-emulator:{self._port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._shut_workers()
            self._thread = None
            self._loop = None
            self._port = None
            raise RuntimeError("the emulator failed to start") from failure[0]
        return self

    async def _astart(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        asyncio.get_running_loop().set_exception_handler(self._loop_exception)
        server = _TrackingServer(
            self._handle, self._max_request_size, access_log=None, keepalive_timeout=self._idle_timeout
        )
        self._transports = server.transports
        self._runner = web.ServerRunner(server, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.SockSite(self._runner, sock, ssl_context=self._ssl_context, backlog=512)
        await site.start()

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        """The loop's exception handler: running out of file descriptors is not a bug.

        When a flood of connections exhausts the process's descriptors, asyncio pauses
        accepting for a second and reports every failed ``accept()`` of the batch (up to the
        backlog: hundreds) with a traceback each, scheduling a retry for each. Log one warning
        line a second instead, and let retries that come due after :meth:`stop` closed the
        socket pass quietly. Idle connections are closed after ``idle_timeout``, so the flood
        drains.
        """
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            now = loop.time()
            if now - self._accept_warned_at >= 1.0:
                self._accept_warned_at = now
                logger.warning("cannot accept more connections for now: %s", context.get("exception"))
            return
        stopping = self._stopping is not None and self._stopping.is_set()
        if stopping and "_start_serving" in repr(context.get("handle")):
            # One of those retries, come due after the listening socket was closed by stop().
            return
        loop.default_exception_handler(context)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port. Idempotent; safe to call from any thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if thread is threading.current_thread():
            raise RuntimeError("stop() cannot be called from the emulator's own thread")
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._ashutdown(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._shut_workers()
        self._thread = None
        self._loop = None
        self._port = None

    def _shut_workers(self) -> None:
        workers, self._workers = self._workers, None
        if workers is not None:
            workers.shutdown(wait=False, cancel_futures=True)

    async def _ashutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        sockets = list(self._sockets)

        async def close(entry: _Socket) -> None:
            try:
                await asyncio.wait_for(entry.ws.close(code=1001, message=b"emulator shutting down"), 0.5)
            except (asyncio.TimeoutError, OSError, RuntimeError):
                pass
            finally:
                entry.abort()

        await asyncio.gather(*(close(entry) for entry in sockets), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # A TLS connection that is still in its closing handshake would otherwise outlive the
        # loop and be reported as an unclosed transport; cut every remaining one off now.
        for transport in list(self._transports):
            with contextlib.suppress(Exception):
                transport.abort()
        await asyncio.sleep(0)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not running"
        return f"<Emulator {where}>"

    # ------------------------------------------------------------------ thread plumbing
    def _on_loop(self, func: Callable[[], _T]) -> _T:
        """Run ``func`` on the server loop (waiting for it), or right here if not running."""
        loop = self._loop
        if loop is None or not loop.is_running() or self._thread is threading.current_thread():
            return func()

        async def call() -> _T:
            return func()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(10)

    # ------------------------------------------------------------------ data control
    def reset(self) -> None:
        """Forget every conversation, restore the initial assets, clear faults and recorded requests.

        Open identifier streams are told about each dropped conversation (``deleted: true``).
        """

        def run() -> None:
            dropped = self.store.reset()
            if dropped:
                self._broadcast(streamed_identifiers(dropped, deleted=True))

        self._on_loop(run)
        self._faults.clear()
        self.clear_requests()

    def add_asset(
        self,
        name: str = "Untitled asset",
        text: str = "",
        language: str = "txt",
        *,
        asset_id: Optional[str] = None,
    ) -> str:
        """Add an asset that ``create/from_asset`` can use; returns its id (a new uuid if not given)."""
        record = asset_from_json({"id": asset_id, "name": name, "text": text, "language": language})
        self.store.add_asset(record)
        return record.id

    def load_assets(self, source: AssetSource) -> List[str]:
        """Add every asset from a JSON file or a list of objects; returns their ids."""
        records = load_assets(source)
        for record in records:
            self.store.add_asset(record)
        return [record.id for record in records]

    def asset_ids(self) -> List[str]:
        return self.store.asset_ids()

    def conversation_ids(self) -> List[str]:
        """Ids of the stored conversations, oldest first."""
        return self.store.conversation_ids()

    def conversation(self, conversation_id: str) -> Optional[Dict[str, Any]]:
        """A copy of one stored conversation as JSON-ready data (the full, transferable form)."""
        return self.store.conversation(conversation_id)

    def create_conversation(
        self,
        seed: Optional[Mapping[str, Any]] = None,
        *,
        from_asset: Optional[str] = None,
        conversation_id: Optional[str] = None,
    ) -> str:
        """Create a conversation directly (as a client would) and notify the streams; returns its id.

        ``seed`` is a SeededConversation-shaped dict (not validated); ``from_asset`` grounds the
        conversation on that asset instead. ``conversation_id`` picks the id (any string, e.g.
        one with characters that need percent-encoding); by default a new uuid is used.
        Raises ``ValueError`` for an unknown asset or an id already in use.
        """

        def run() -> str:
            try:
                if from_asset is not None:
                    new_id, _ = self.store.create_from_asset(from_asset, conversation_id)
                else:
                    new_id, _ = self.store.create(seed, conversation_id=conversation_id)
            except StoreError as exc:
                raise ValueError(str(exc)) from None
            self._broadcast(streamed_identifiers([new_id]))
            return new_id

        return self._on_loop(run)

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation directly and notify the streams (KeyError if unknown)."""

        def run() -> None:
            try:
                self.store.delete(conversation_id)
            except StoreError as exc:
                raise KeyError(conversation_id) from exc
            self._broadcast(streamed_identifiers([conversation_id], deleted=True))

        self._on_loop(run)

    def _seed(self) -> None:
        assets = self.store.asset_ids()
        for index in range(self._seed_count):
            if assets:
                self.store.create_from_asset(assets[index % len(assets)])
            else:
                self.store.create({"type": "COPILOT", "name": f"Conversation {index + 1}"})

    # ------------------------------------------------------------------ request accounting
    @property
    def requests(self) -> List[RecordedRequest]:
        """Every API request received so far (control endpoints excluded), oldest first."""
        with self._lock:
            return list(self._requests)

    def request_count(self, method: Optional[str] = None, path: Optional[str] = None) -> int:
        """How many recorded requests match ``method`` and ``path`` (raw or percent-decoded path;
        a trailing ``*`` matches a prefix)."""
        wanted_method = method.upper() if method else None
        count = 0
        for request in self.requests:
            if wanted_method is not None and request.method != wanted_method:
                continue
            if path is not None:
                if path.endswith("*"):
                    prefix = path[:-1]
                    if not (request.path.startswith(prefix) or unquote(request.path).startswith(prefix)):
                        continue
                elif path not in (request.path, unquote(request.path)):
                    continue
            count += 1
        return count

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ------------------------------------------------------------------ faults
    def fail_next(
        self,
        status: int = 500,
        count: Optional[int] = 1,
        *,
        body: Optional[str] = None,
        retry_after: Optional[Union[int, float, str]] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` and a text/plain ``body``.

        ``retry_after`` adds a ``Retry-After`` header. ``method``/``path`` narrow which requests
        match (path: raw or decoded, ``*`` suffix for a prefix). ``count=None``: until cleared.
        Every setting is checked first (see docs/emulator.md, "Hostile input and limits"): a bad
        one raises ``ValueError`` or ``TypeError`` naming it, and nothing is queued.
        """
        self._faults.add_fail(status, count, body, retry_after, method, path)

    def delay_next(
        self,
        seconds: float,
        count: Optional[int] = 1,
        *,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """Hold the next ``count`` matching requests for ``seconds`` before answering them.

        ``seconds`` must be a finite number from 0 to 3600; a bad setting raises ``ValueError``
        or ``TypeError`` naming it.
        """
        self._faults.add_delay(seconds, count, method, path)

    def break_next(
        self,
        mode: str,
        count: Optional[int] = 1,
        *,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """Answer the next ``count`` matching requests with a broken response.

        Modes: ``malformed_json`` (200, JSON cut short), ``truncated`` (Content-Length larger than
        the body sent, then the connection closes), ``disconnect`` (status line and headers, then
        the connection closes), ``reset_before_response`` (TCP reset, nothing sent), ``html``
        (200 text/html page), ``hang`` (never answer; the connection stays open until the client
        gives up or the emulator stops).
        """
        self._faults.add_break(mode, count, method, path)

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()

    def pending_faults(self) -> List[Dict[str, object]]:
        """The faults still waiting to be used, oldest first."""
        return self._faults.pending()

    # ------------------------------------------------------------------ websockets
    @property
    def websocket_count(self) -> int:
        """How many WebSockets (identifiers and health streams) are open right now."""
        return len(self._sockets)

    def drop_websockets(self) -> int:
        """Abort every open WebSocket's TCP connection, with no close frame; returns how many."""

        def run() -> int:
            entries = list(self._sockets)
            for entry in entries:
                entry.abort()
            return len(entries)

        return self._on_loop(run)

    def _broadcast(self, text: str) -> None:
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
        size = self._ws_send_buffer
        if size is None or transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        if isinstance(transport, asyncio.WriteTransport):
            transport.set_write_buffer_limits(high=size)

    async def _ws_identifiers(self, request: web.BaseRequest) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            heartbeat=self._heartbeat,
            autoping=True,
            writer_limit=self._ws_send_buffer or 2**16,
            max_msg_size=self._max_ws_message_size + 1,  # aiohttp refuses a message of exactly its limit
        )
        await ws.prepare(request)
        transport = request.transport
        self._limit_send_buffer(transport)
        entry = _Socket(ws, transport, asyncio.Queue(self._ws_queue_size))
        assert entry.queue is not None
        # Snapshot and subscribe in one step (no await between) so no change can slip past.
        entry.queue.put_nowait(streamed_identifiers(self.store.conversation_ids()))
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

    async def _ws_health(self, request: web.BaseRequest) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self._heartbeat, autoping=True, max_msg_size=self._max_ws_message_size + 1)
        await ws.prepare(request)
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

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._dispatch(request)
        except _BodyError as exc:
            logger.debug("refused the body of %s %s: %s", request.method, request.raw_path[:200], exc)
            if request.raw_path.startswith(CONTROL_PREFIX):
                response = web.json_response({"error": str(exc)}, status=exc.status)
            else:
                response = _text(exc.status, str(exc))
            # Part of the body may still be unread: never reuse this connection.
            response.force_close()
            return response

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        """The whole request body, within ``max_request_size``; :class:`_BodyError` if refused."""
        limit = self._max_request_size
        too_large = f"request body larger than {limit} bytes (the emulator's max_request_size)"
        if limit is not None and (request.content_length or 0) > limit:
            raise _BodyError(413, too_large)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _BodyError(413, too_large) from None
        except ConnectionError:
            raise _BodyError(400, "the client went away before sending the whole body") from None
        except HttpProcessingError as exc:
            raise _BodyError(400, f"malformed request body: {exc.message}") from None
        if limit is not None and len(body) > limit:
            raise _BodyError(413, too_large)
        return body

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        raw_path, _, query = request.raw_path.partition("?")
        raw_path = raw_path.partition("#")[0]
        method = request.method
        if raw_path.startswith(CONTROL_PREFIX):
            return await self._control(request, method, raw_path[len(CONTROL_PREFIX) :], query)
        with self._lock:
            self._requests.append(RecordedRequest(method, raw_path, query))
        if self._faults:
            delay, response = self._faults.take(method, raw_path)
            if delay is not None:
                # Take the whole request in first, as a server that is slow to answer (not slow
                # to read) would: the work still happens if the client gives up meanwhile.
                await self._read_body(request)
                await asyncio.sleep(delay.seconds)
            if response is not None:
                return await self._fault_response(request, response)
        try:
            return await self._route(request, method, raw_path, query)
        except StoreError as exc:
            return _failure(str(exc))

    async def _route(self, request: web.BaseRequest, method: str, raw_path: str, query: str) -> web.StreamResponse:
        store = self.store
        if raw_path == "/conversations":
            if method != "GET":
                return self._not_allowed("GET")
            return _json_body(store.snapshot_body(_parse_bool(query, "transferables")))
        if raw_path == "/conversations/identifiers":
            if method != "GET":
                return self._not_allowed("GET")
            return _json_body(store.identifiers_body())
        if raw_path == "/conversations/create":
            if method != "POST":
                return self._not_allowed("POST")
            return await self._create(request, query)
        if raw_path.startswith("/conversations/create/from_asset/"):
            segment = raw_path[len("/conversations/create/from_asset/") :]
            if segment and "/" not in segment:
                if method != "POST":
                    return self._not_allowed("POST")
                conversation_id, body = store.create_from_asset(_decode_segment(segment))
                self._broadcast(streamed_identifiers([conversation_id]))
                return _json_body(body)
        if raw_path == "/conversations/stream/identifiers":
            if method != "GET":
                return self._not_allowed("GET")
            if self._is_websocket(request):
                return await self._ws_identifiers(request)
            return _text(
                200,
                "This endpoint is a WebSocket: connect with ws:// (or wss://) to receive StreamedIdentifiers messages.",
            )
        if raw_path.startswith("/conversations/") and raw_path.endswith("/delete"):
            segment = raw_path[len("/conversations/") : -len("/delete")]
            if segment and "/" not in segment:
                if method != "POST":
                    return self._not_allowed("POST")
                conversation_id = _decode_segment(segment)
                store.delete(conversation_id)
                self._broadcast(streamed_identifiers([conversation_id], deleted=True))
                return web.Response(status=204)
        if raw_path == "/.well-known/health":
            return _text(200, "ok") if method == "GET" else self._not_allowed("GET")
        if raw_path == "/.well-known/version":
            if method != "GET":
                return self._not_allowed("GET")
            return web.Response(body=self._version, headers={"Content-Type": _TEXT})
        if raw_path == "/.well-known/stream/health":
            if method != "GET":
                return self._not_allowed("GET")
            if self._is_websocket(request):
                return await self._ws_health(request)
            return _text(200, "ok")
        return _text(404, f"no such endpoint: {method} {raw_path}")

    @staticmethod
    def _is_websocket(request: web.BaseRequest) -> bool:
        return request.headers.get("Upgrade", "").lower() == "websocket"

    @staticmethod
    def _not_allowed(allowed: str) -> web.Response:
        return _text(405, "method not allowed", headers={"Allow": allowed})

    async def _create(self, request: web.BaseRequest, query: str) -> web.StreamResponse:
        transferables = _parse_bool(query, "transferables")
        body = await self._read_body(request)
        workers = self._workers
        if len(body) > _INLINE_BODY and workers is not None:
            # Checking and storing a large body takes a while (a second or more for a few MiB
            # of small messages): a worker thread does it, under the store's own lock, while
            # the loop goes on serving everyone else.
            loop = asyncio.get_running_loop()
            conversation_id, out = await loop.run_in_executor(workers, self._create_from_body, body, transferables)
        else:
            conversation_id, out = self._create_from_body(body, transferables)
        self._broadcast(streamed_identifiers([conversation_id]))
        return _json_body(out)

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
            return _text(rule.status, text, headers)
        mode = rule.mode
        if mode == "malformed_json":
            return _json_body(_MALFORMED_JSON)
        if mode == "html":
            return web.Response(body=_HTML, headers={"Content-Type": "text/html; charset=utf-8"})
        transport = request.transport
        if mode == "reset_before_response":
            _abort_with_reset(transport)
        elif mode in ("truncated", "disconnect") and transport is not None:
            partial = b'{"iterable":[{"id":"' if mode == "truncated" else b""
            transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n"
                b"Connection: close\r\n\r\n" + partial
            )
            transport.close()
        elif mode == "hang":
            stopping = self._stopping
            while stopping is not None and not stopping.is_set():
                if transport is None or transport.is_closing():
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stopping.wait(), 0.1)
            return _text(503, "emulator stopped while holding this request")
        # The connection is gone; aiohttp notices when it tries to write this and drops it quietly.
        return web.Response(status=500)

    # ------------------------------------------------------------------ control endpoints
    async def _control(self, request: web.BaseRequest, method: str, name: str, query: str) -> web.StreamResponse:
        try:
            endpoint = name.rstrip("/")
            handler = self._control_routes().get((method, endpoint))
            if handler is None:
                return web.json_response({"error": f"unknown control endpoint {method} {short_repr(name)}"}, status=404)
            payload: Dict[str, Any] = {}
            if method in ("POST", "PUT"):
                body = await self._read_body(request)
                if body.strip():
                    try:
                        # Non-finite numbers come through so the setting they were given for
                        # is named when it is refused.
                        loaded = load_json(body, finite=False)
                    except ValueError as exc:
                        raise ValueError(f"invalid request body: {exc}") from None
                    if not isinstance(loaded, dict):
                        raise ValueError(f"the body must be a JSON object, not {_json_type(loaded)}")
                    payload = loaded
            if endpoint not in _FREE_FORM_CONTROL:
                _check_settings(method, endpoint, payload)
            result = await handler(payload)
        except (ValueError, TypeError, KeyError, StoreError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if result is None:
            return web.Response(status=204)
        return web.json_response(result)

    def _control_routes(self) -> Dict[Tuple[str, str], Callable[[Dict[str, Any]], Awaitable[Any]]]:
        def count_of(payload: Mapping[str, Any]) -> Any:
            return payload.get("count", 1)  # validated, with the other settings, by the fault book

        async def reset(payload: Dict[str, Any]) -> None:
            dropped = self.store.reset()
            if dropped:
                self._broadcast(streamed_identifiers(dropped, deleted=True))
            self._faults.clear()
            self.clear_requests()

        async def fail(payload: Dict[str, Any]) -> None:
            self.fail_next(
                payload.get("status", 500),
                count_of(payload),
                body=payload.get("body"),
                retry_after=payload.get("retry_after"),
                method=payload.get("method"),
                path=payload.get("path"),
            )

        async def delay(payload: Dict[str, Any]) -> None:
            if "seconds" not in payload:
                raise ValueError("'seconds' is required: how long to hold each matching request")
            self.delay_next(
                payload["seconds"], count_of(payload), method=payload.get("method"), path=payload.get("path")
            )

        async def break_(payload: Dict[str, Any]) -> None:
            mode = payload.get("mode")
            if not isinstance(mode, str):
                raise ValueError(f"'mode' is required: one of {', '.join(BREAK_MODES)}")
            self.break_next(mode, count_of(payload), method=payload.get("method"), path=payload.get("path"))

        async def clear_faults(payload: Dict[str, Any]) -> None:
            self.clear_faults()

        async def faults(payload: Dict[str, Any]) -> Any:
            return {"faults": self.pending_faults()}

        async def requests(payload: Dict[str, Any]) -> Any:
            return {"requests": [r._asdict() for r in self.requests]}

        async def clear_requests(payload: Dict[str, Any]) -> None:
            self.clear_requests()

        async def drop(payload: Dict[str, Any]) -> Any:
            entries = list(self._sockets)
            for entry in entries:
                entry.abort()
            return {"dropped": len(entries)}

        async def add_asset(payload: Dict[str, Any]) -> Any:
            record = asset_from_json(payload)
            self.store.add_asset(record)
            return {"id": record.id}

        async def state(payload: Dict[str, Any]) -> Any:
            return {
                "conversations": self.store.conversation_ids(),
                "assets": self.store.asset_ids(),
                "websockets": len(self._sockets),
                "faults": self.pending_faults(),
                "requests": len(self._requests),
            }

        return {
            ("POST", "reset"): reset,
            ("POST", "faults/fail"): fail,
            ("POST", "faults/delay"): delay,
            ("POST", "faults/break"): break_,
            ("POST", "faults/clear"): clear_faults,
            ("DELETE", "faults"): clear_faults,
            ("GET", "faults"): faults,
            ("GET", "requests"): requests,
            ("DELETE", "requests"): clear_requests,
            ("POST", "drop-websockets"): drop,
            ("POST", "assets"): add_asset,
            ("GET", "state"): state,
        }
