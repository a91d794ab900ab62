"""The :class:`Emulator`: its settings, its life (start, stop, the loop it runs on) and its public methods.

The work is split by job: ``_routes`` answers the API's HTTP requests, ``_control`` the
``/__emulator__/`` endpoints, ``_websockets`` holds the open WebSockets and fans identifier
changes out to them, ``_http`` has the HTTP plumbing they share, ``_store`` the data and
``_faults`` the pending fault rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Type,
    TypeVar,
    Union,
)
from urllib.parse import unquote

from aiohttp import web

from ._control import Control
from ._faults import FaultBook
from ._http import CONTROL_PREFIX, BodyError, HttpServer, text_response
from ._routes import Api, RecordedRequest, RequestLog
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
from ._websockets import WebSockets

__all__ = ["CONTROL_PREFIX", "DEFAULT_VERSION", "Emulator", "RecordedRequest"]

logger = logging.getLogger("pieces_os_client.emulator")

DEFAULT_VERSION = "11.0.0"
#: Default for ``Emulator(max_request_size=...)``: the largest request body accepted, in bytes.
DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024
#: Default for ``Emulator(max_ws_message_size=...)``: the largest WebSocket message accepted.
DEFAULT_MAX_WS_MESSAGE_SIZE = 1024 * 1024
#: Default for ``Emulator(idle_timeout=...)``: seconds before an idle connection is closed.
DEFAULT_IDLE_TIMEOUT = 75.0

_T = TypeVar("_T")


def _check_size(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number of bytes, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1 byte, got {value}")


class Emulator:
    """A local stand-in for Pieces OS's conversation endpoints (HTTP and WebSocket, one port).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with Emulator() as emu:
            client_host = emu.url        # "http://127.0.0.1:<port>"

    The server runs on its own event loop in a daemon thread; or, with :meth:`astart` and
    :meth:`astop` (``async with Emulator() as emu:``), on the caller's running loop. Every
    public method may be called from any thread while it runs, and from the loop it runs on.

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
        if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)):
            raise TypeError(f"idle_timeout must be a number of seconds, not {type(idle_timeout).__name__}")
        if not 0 < idle_timeout < math.inf:
            raise ValueError(f"idle_timeout must be a positive, finite number of seconds, got {idle_timeout!r}")
        self._idle_timeout = float(idle_timeout)
        self._accept_warned_at = -math.inf
        self.host = host
        self._requested_port = port
        self._ssl_context = ssl_context
        self._max_request_size = max_request_size
        self._seed_count = seed_conversations
        self.store = Store(initial)
        self._faults = FaultBook()
        self._log = RequestLog(max_recorded_requests)
        self._websockets = WebSockets(heartbeat, ws_queue_size, ws_send_buffer, max_ws_message_size)
        self._api = Api(
            self.store, self._websockets, self._faults, self._log, version.encode("utf-8"), max_request_size
        )
        self._control = Control(self, max_request_size)
        self._loop: Optional[asyncio.AbstractEventLoop] = None  # the loop serving, while it does
        self._loop_thread: Optional[int] = None  # the ident of the thread running that loop
        self._thread: Optional[threading.Thread] = None  # the thread start() made, if it made one
        self._previous_handler: Optional[Callable[[asyncio.AbstractEventLoop, Dict[str, Any]], object]] = None
        self._workers: Optional[ThreadPoolExecutor] = None
        self._http: Optional[HttpServer] = None
        self._stopping: Optional[asyncio.Event] = None
        self._port: Optional[int] = None
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
        """True while the emulator serves (on its own thread, or on the loop :meth:`astart` ran on)."""
        loop, thread = self._loop, self._thread
        if thread is not None:
            return thread.is_alive()
        return loop is not None and not loop.is_closed()

    def _still_running(self) -> bool:
        """True if running; otherwise forget a loop that ended without :meth:`astop` first."""
        if self.running:
            return True
        if self._loop is not None:
            self._forget()
        return False

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.create_server((self.host, self._requested_port), family=family, backlog=512)
        self._port = sock.getsockname()[1]
        return sock

    def start(self) -> Emulator:
        """Start serving in a background daemon thread; returns once the port is listening.

        The thread runs its own event loop, and on it the same coroutine :meth:`astart` runs
        on the caller's loop. Returns at once if the emulator is already running.
        """
        if self._still_running():
            return self
        sock = self._bind()
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: List[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open(sock))
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

        self._thread = threading.Thread(target=run, name=f"pieces-os-emulator:{self._port}", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._forget()
            raise RuntimeError("the emulator failed to start") from failure[0]
        return self

    async def astart(self) -> Emulator:
        """Start serving on the running event loop (the caller's); returns once the port is listening.

        For asyncio code that wants the emulator and its client in one loop. Stop it with
        :meth:`astop` (or use ``async with Emulator() as emu:``) before that loop ends. Every
        method may still be called from other threads; they hop onto this loop. Returns at once
        if the emulator is already running.
        """
        if self._still_running():
            return self
        sock = self._bind()
        try:
            await self._open(sock)
        except BaseException:
            sock.close()
            await self._close()
            self._forget()
            raise
        return self

    async def _open(self, sock: socket.socket) -> None:
        """Serve on ``sock`` from the running loop: what :meth:`start` and :meth:`astart` share."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._stopping = asyncio.Event()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_exception)
        self._workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"pieces-os-emulator-worker:{self._port}")
        self._api.stopping = self._stopping
        self._api.workers = self._workers
        self._http = HttpServer(self._handle, self._idle_timeout)
        await self._http.listen(sock, self._ssl_context)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        """The loop's exception handler: running out of file descriptors is not a bug.

        When a flood of connections exhausts the process's descriptors, asyncio pauses
        accepting for a second and reports every failed ``accept()`` of the batch (up to the
        backlog: hundreds) with a traceback each, scheduling a retry for each. Log one warning
        line a second instead, and let retries that come due after :meth:`stop` closed the
        socket pass quietly. Idle connections are closed after ``idle_timeout``, so the flood
        drains. Anything else goes to the handler the loop had before (on a caller's loop,
        the caller's own).
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
        previous = self._previous_handler
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port. Idempotent; safe to call from any thread.

        Not from the emulator's own loop, which this would block: there, ``await`` :meth:`astop`.
        """
        thread, loop = self._thread, self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread and loop.is_running():
            raise RuntimeError("stop() cannot be called from the emulator's own loop; await emulator.astop() there")
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._close(), loop)
            with contextlib.suppress(Exception):
                future.result(timeout)
            if thread is not None:
                loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)
        self._forget()

    async def astop(self) -> None:
        """Stop serving and release the port; the counterpart of :meth:`astart`. Idempotent.

        Awaited on another loop, or for an emulator started with :meth:`start`, it waits for
        the emulator's own loop without blocking the caller's.
        """
        loop = self._loop
        if loop is None:
            return
        if self._thread is not None or asyncio.get_running_loop() is not loop:
            await asyncio.get_running_loop().run_in_executor(None, self.stop)
            return
        await self._close()
        self._forget()

    def _forget(self) -> None:
        """Drop what a start made (the serving loop, its thread, the port and the worker threads)."""
        workers, self._workers = self._workers, None
        self._api.workers = None
        if workers is not None:
            workers.shutdown(wait=False, cancel_futures=True)
        self._thread = None
        self._loop = None
        self._loop_thread = None
        self._port = None

    async def _close(self) -> None:
        """Close every connection and the listening socket, on the serving loop."""
        if self._stopping is not None:
            self._stopping.set()
        await self._websockets.close_all()
        if self._http is not None:
            await self._http.close(timeout=0.5)
            self._http = None
        loop = asyncio.get_running_loop()
        if self._thread is None and loop.get_exception_handler() == self._loop_exception:
            # The caller's loop goes on: give it its own exception handler back.
            loop.set_exception_handler(self._previous_handler)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Emulator:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.astop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not running"
        return f"<Emulator {where}>"

    # ------------------------------------------------------------------ thread plumbing
    def _on_loop(self, func: Callable[[], _T]) -> _T:
        """Run ``func`` on the serving loop (waiting for it), or right here if not running.

        Called on that loop's own thread (from a coroutine or callback running on it), it
        runs ``func`` at once: waiting for the loop there would wait forever.
        """
        loop = self._loop
        if loop is None or not loop.is_running() or threading.get_ident() == self._loop_thread:
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
                self._websockets.broadcast(streamed_identifiers(dropped, deleted=True))

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
            self._websockets.broadcast(streamed_identifiers([new_id]))
            return new_id

        return self._on_loop(run)

    def delete_conversation(self, conversation_id: str) -> None:
        """Delete a conversation directly and notify the streams (KeyError if unknown)."""

        def run() -> None:
            try:
                self.store.delete(conversation_id)
            except StoreError as exc:
                raise KeyError(conversation_id) from exc
            self._websockets.broadcast(streamed_identifiers([conversation_id], deleted=True))

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
        return self._log.snapshot()

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
        self._log.clear()

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

    def stall_body_next(
        self,
        seconds: float,
        count: Optional[int] = 1,
        *,
        after_bytes: int = 0,
        method: Optional[str] = None,
        path: Optional[str] = None,
    ) -> None:
        """Send the next ``count`` matching responses part way, then stall for ``seconds``.

        The status line, the headers (with the full Content-Length) and the first
        ``after_bytes`` bytes of the body go out at once (at most all but the last byte, so
        the body is unfinished); after ``seconds`` the rest follows and the response completes.
        If the emulator stops or the client hangs up during the stall, the connection is closed
        with the body unfinished. A response with no body (an answer to HEAD, a 204) is held
        whole instead. Use it to test read timeouts, deadlines and cancellation in the middle
        of a body. ``seconds`` must be from 0 to 3600 and ``after_bytes`` a whole number from 0;
        a bad setting raises ``ValueError`` or ``TypeError`` naming it.
        """
        self._faults.add_stall(seconds, after_bytes, count, method, path)

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
        return self._websockets.count

    def drop_websockets(self) -> int:
        """Abort every open WebSocket's TCP connection, with no close frame; returns how many."""
        return self._on_loop(self._websockets.drop)

    # ------------------------------------------------------------------ HTTP
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw_path, _, query = request.raw_path.partition("?")
        raw_path = raw_path.partition("#")[0]
        try:
            if raw_path.startswith(CONTROL_PREFIX):
                return await self._control.handle(request, request.method, raw_path[len(CONTROL_PREFIX) :])
            return await self._api.handle(request, request.method, raw_path, query)
        except BodyError as exc:
            logger.debug("refused the body of %s %s: %s", request.method, request.raw_path[:200], exc)
            if request.raw_path.startswith(CONTROL_PREFIX):
                response = web.json_response({"error": str(exc)}, status=exc.status)
            else:
                response = text_response(exc.status, str(exc))
            # Part of the body may still be unread: never reuse this connection.
            response.force_close()
            return response
