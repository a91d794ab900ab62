"""The identifiers WebSocket (``/conversations/stream/identifiers``) as a typed stream.

Pieces OS answers a WebSocket connection on this path with one ``StreamedIdentifiers``
message listing every conversation, then pushes one message per change: an identifier
without ``deleted`` for a conversation that appeared or changed, with ``deleted: true`` for
one that is gone.

Two ways to consume it (see docs/streaming.md):

* **Iterator** — ``with api.conversations_stream_identifiers() as stream: for msg in stream:``
  reads in the calling thread; iteration ends cleanly when ``close()`` is called.
  ``stream.events()`` yields :class:`StreamEvent` wrappers that also say whether the message
  is a full snapshot.
* **Background** — pass ``on_message`` / ``on_event`` (or call :meth:`IdentifiersStream.start`)
  and a daemon thread reads and calls you back; a process that never calls ``close()`` still
  exits.

The socket is opened **eagerly**, in the constructor: a Pieces OS that is not running is
reported right at the call as :class:`~pieces_os_client.exceptions.ApiConnectionError`
naming the URL. A stream that is created and dropped without being used is closed when it is
garbage collected, without warnings.

After the connection drops the stream reconnects by itself (exponential backoff with
jitter, configurable, can be turned off). The server re-sends the full list on every
connection; that first message is marked ``snapshot=True`` (and ``resync=True`` after a
reconnect) on its :class:`StreamEvent`. :class:`ConversationIdsMirror` turns all of this
into a thread-safe, always-current set of conversation ids.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import random
import socket
import ssl
import threading
import time
import weakref
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Tuple,
    Union,
    cast,
)
from urllib.parse import unquote, urlsplit, urlunsplit

from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiTimeoutError,
    ApiValueError,
    StreamClosedError,
    StreamError,
)

if TYPE_CHECKING:
    from types import TracebackType

    import websocket

    from pieces_os_client.api.conversations_api import ConversationsApi
    from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers

__all__ = [
    "IDENTIFIERS_PATH",
    "ConversationIdsMirror",
    "IdentifiersStream",
    "MirrorUpdate",
    "StreamEvent",
    "stream_url",
]

#: Path of the identifiers WebSocket, relative to the configured host.
IDENTIFIERS_PATH = "/conversations/stream/identifiers"

logger = logging.getLogger("pieces_os_client.stream")

_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
# Handshake headers websocket-client writes itself; a caller's copy would be sent twice.
_HANDSHAKE_OWNED = frozenset(
    {"host", "origin", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "content-length"}
)
_OPCODE_TEXT, _OPCODE_BINARY, _OPCODE_CLOSE = 0x1, 0x2, 0x8


class _ClientLike(Protocol):
    """What the stream needs from an :class:`~pieces_os_client.ApiClient`."""

    configuration: Configuration
    default_headers: Dict[str, str]


# Callbacks may return anything; the value is ignored.
MessageCallback = Callable[["StreamedIdentifiers"], object]
EventCallback = Callable[["StreamEvent"], object]
ErrorCallback = Callable[[Exception], object]
CloseCallback = Callable[[], object]


# --------------------------------------------------------------------------- events
@dataclass(frozen=True)
class StreamEvent:
    """One message from the stream, with where it sits in the connection's life.

    :ivar message: the parsed message.
    :ivar snapshot: ``True`` for the first message of a connection: the server's complete
        list of conversations at that moment, which replaces whatever the consumer knew.
    :ivar connection: 1 for the first connection, 2 after the first reconnect, and so on.
    :ivar received_at: ``time.monotonic()`` when the message was read off the socket.
    """

    message: StreamedIdentifiers
    snapshot: bool
    connection: int
    received_at: float

    @property
    def resync(self) -> bool:
        """``True`` for the snapshot that follows a reconnect (changes may have been missed)."""
        return self.snapshot and self.connection > 1

    @property
    def ids(self) -> List[str]:
        """Ids of the conversations this message lists as existing (new, changed or, in a
        snapshot, simply present), in message order."""
        return [ident.conversation.id for ident in self.message.iterable or () if
                ident.conversation is not None and not ident.deleted]

    @property
    def deleted_ids(self) -> List[str]:
        """Ids of the conversations this message reports as deleted, in message order."""
        return [ident.conversation.id for ident in self.message.iterable or () if
                ident.conversation is not None and ident.deleted]


# --------------------------------------------------------------------------- URL & TLS
def stream_url(host: str, path: str = IDENTIFIERS_PATH) -> str:
    """The WebSocket URL for ``path`` under ``host``: only the scheme changes.

    >>> stream_url("https://example.test:8443/base")
    'wss://example.test:8443/base/conversations/stream/identifiers'
    """
    parts = urlsplit(host)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ApiValueError(f"cannot open a WebSocket for host {host!r}: it must be an http:// or https:// URL")
    joined = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((scheme, parts.netloc, joined, parts.query, ""))


def _ssl_context(config: Configuration) -> ssl.SSLContext:
    """An SSL context with the configuration's verification, CA and client-certificate settings."""
    cadata: Union[str, bytes, None] = config.ca_cert_data
    if isinstance(cadata, bytes) and cadata.lstrip().startswith(b"-----BEGIN"):
        cadata = cadata.decode("ascii")
    try:
        context = ssl.create_default_context(cafile=config.ssl_ca_cert, cadata=cadata)
        if config.cert_file:
            context.load_cert_chain(config.cert_file, config.key_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ApiValueError(f"cannot load the TLS settings for the identifiers stream: {exc}") from exc
    if not config.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif config.assert_hostname is False:
        context.check_hostname = False
    return context


def _merge_headers(*sources: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """Later sources win, names compared without case; ``None`` values remove a header."""
    merged: Dict[str, Tuple[str, Optional[str]]] = {}
    for source in sources:
        for name, value in (source or {}).items():
            merged[name.lower()] = (name, None if value is None else str(value))
    return {name: value for name, value in merged.values() if value is not None}


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- socket holder
class _Link:
    """The current socket and the closing flag.

    Kept apart from :class:`IdentifiersStream` so that the garbage-collection finalizer can
    close the socket without keeping the stream alive.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.ws: Optional[websocket.WebSocket] = None
        self.pending: Optional[socket.socket] = None  # connected, handshake not finished
        self.reading = False  # a thread is inside recv on ``ws``

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
            _close_ws(ws)

    def detach(self, ws: websocket.WebSocket) -> bool:
        """Forget ``ws`` if it is the current socket; ``True`` when it was."""
        with self.lock:
            if self.ws is ws:
                self.ws = None
                return True
            return False


def _shutdown_socket(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _close_ws(ws: websocket.WebSocket) -> None:
    with contextlib.suppress(Exception):  # websocket-client already swallows most of these
        ws.shutdown()  # type: ignore[no-untyped-call]


class _Dropped(Exception):
    """Internal: the current connection is gone (``reason`` says why)."""

    def __init__(self, reason: str, cause: Optional[BaseException] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


# --------------------------------------------------------------------------- the stream
class IdentifiersStream:
    """A live connection to ``/conversations/stream/identifiers``.

    Usually obtained from ``ConversationsApi.conversations_stream_identifiers()``.

    :param api_client: the :class:`~pieces_os_client.ApiClient` whose configuration (host,
        credentials, TLS, proxy, connect timeout) and default headers are used.
    :param path: the WebSocket path, appended to the configured host's base path.
    :param headers: extra handshake headers for this stream (they win over the defaults).
    :param on_message: called with each :class:`StreamedIdentifiers`; giving it (or
        ``on_event``) runs the stream in a background daemon thread.
    :param on_event: called with each :class:`StreamEvent` (message + snapshot flag).
    :param on_error: called with every problem the stream lives through (a malformed message:
        :class:`StreamError`; a dropped connection: :class:`ApiConnectionError`) and with the
        :class:`StreamClosedError` that ends it when it cannot go on. Never raises into the
        stream: exceptions from callbacks are logged.
    :param on_close: called once, when the stream has ended for any reason.
    :param reconnect: reconnect after the connection drops (default). When ``False`` a drop
        ends the stream with :class:`StreamClosedError`.
    :param max_reconnect_attempts: consecutive failed attempts before giving up; ``None``
        (default) tries for as long as the stream is open.
    :param initial_backoff: delay before the first reconnect attempt, in seconds; each further
        attempt doubles it, up to ``max_backoff``.
    :param backoff_jitter: the fraction (0..1) of each delay that is random, so that many
        clients do not reconnect in lockstep.
    :param ping_interval: send a ping after this many idle seconds (``None`` or 0: never);
    :param ping_timeout: and consider the peer dead when nothing at all arrives within this
        many seconds after the ping.
    :param connect_timeout: seconds for each connection attempt (TCP, TLS and handshake);
        defaults to the configuration's ``connect_timeout``.
    :param close_timeout: how long :meth:`close` waits for the background thread to finish.
    :raises ApiConnectionError: Pieces OS could not be reached (``ApiTimeoutError`` when it did
        not answer in time).
    :raises StreamError: the server answered but refused the WebSocket handshake.
    """

    def __init__(
        self,
        api_client: _ClientLike,
        path: str = IDENTIFIERS_PATH,
        *,
        headers: Optional[Mapping[str, Any]] = None,
        on_message: Optional[MessageCallback] = None,
        on_event: Optional[EventCallback] = None,
        on_error: Optional[ErrorCallback] = None,
        on_close: Optional[CloseCallback] = None,
        reconnect: bool = True,
        max_reconnect_attempts: Optional[int] = None,
        initial_backoff: float = 0.25,
        max_backoff: float = 10.0,
        backoff_jitter: float = 0.5,
        ping_interval: Optional[float] = 20.0,
        ping_timeout: float = 10.0,
        connect_timeout: Optional[float] = None,
        close_timeout: float = 0.5,
    ) -> None:
        if max_reconnect_attempts is not None and max_reconnect_attempts < 0:
            raise ApiValueError("max_reconnect_attempts must be >= 0 or None")
        if initial_backoff < 0 or max_backoff < 0 or not 0 <= backoff_jitter <= 1:
            raise ApiValueError("backoffs must be >= 0 and backoff_jitter within 0..1")
        if (ping_interval is not None and ping_interval < 0) or ping_timeout <= 0:
            raise ApiValueError("ping_interval must be >= 0 (or None) and ping_timeout > 0")

        config = api_client.configuration
        self._config = config
        self._host = config.host
        self.url: str = stream_url(self._host, path)
        """The WebSocket URL (``ws://`` or ``wss://``)."""
        parts = urlsplit(self.url)
        self._secure = parts.scheme == "wss"
        self._target_host = parts.hostname or ""
        self._target_port = parts.port or (443 if self._secure else 80)
        self._ssl: Optional[ssl.SSLContext] = _ssl_context(config) if self._secure else None
        self._headers = _merge_headers(api_client.default_headers, config.auth_headers(), headers)
        self._connect_timeout = config.connect_timeout if connect_timeout is None else connect_timeout

        self._on_message = on_message
        self._on_event = on_event
        self._on_error = on_error
        self._on_close = on_close
        self._reconnect_enabled = reconnect
        self._max_attempts = max_reconnect_attempts
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._jitter = backoff_jitter
        self._ping_interval = ping_interval or None
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout

        self._link = _Link()
        self._state_lock = threading.Lock()
        self._mode: Optional[str] = None  # "iterator" | "background"
        self._thread: Optional[threading.Thread] = None
        self._finished = threading.Event()
        self._close_fired = False
        self._ended = False
        self._error: Optional[StreamClosedError] = None
        self._awaiting_snapshot = True
        self._last_rx = 0.0
        self._ping_sent: Optional[float] = None
        self._connections = 0
        self._messages = 0
        self._malformed_count = 0
        self._last_event: Optional[StreamEvent] = None

        ws = self._connect()  # eager: raises ApiConnectionError / StreamError right here
        self._install(ws)
        # Close the socket quietly if the stream is dropped without close() (no ResourceWarning).
        self._finalizer = weakref.finalize(self, self._link.shutdown)
        self._finalizer.atexit = False
        if on_message is not None or on_event is not None:
            self.start()

    # ------------------------------------------------------------------ public surface
    def __enter__(self) -> IdentifiersStream:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __iter__(self) -> IdentifiersStream:
        return self

    def __next__(self) -> StreamedIdentifiers:
        event = self._next_for_iterator()
        if event is None:
            raise StopIteration
        return event.message

    def events(self) -> Iterator[StreamEvent]:
        """Iterate :class:`StreamEvent` wrappers (the message plus its snapshot flag).

        Ends cleanly when the stream is closed; raises :class:`StreamClosedError` when the
        stream ends on its own (server gone and reconnects off or exhausted).
        """
        while True:
            event = self._next_for_iterator()
            if event is None:
                return
            yield event

    def start(self) -> IdentifiersStream:
        """Read in a background daemon thread and deliver to the callbacks. Idempotent."""
        with self._state_lock:
            if self._link.closing.is_set():
                raise StreamClosedError(f"the identifiers stream for {self.url} is closed")
            if self._mode == "iterator":
                raise StreamError("this stream is being iterated; it cannot also run in the background")
            if self._thread is not None:
                return self
            self._mode = "background"
            self._thread = threading.Thread(target=self._run, name="pieces-identifiers-stream", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Close the stream. Prompt (bounded by ``close_timeout``) and idempotent.

        Sends a close frame, wakes the reader, and waits a moment for the background thread
        (if any) to finish, so that ``on_close`` has normally run when this returns.
        """
        self._link.shutdown()
        self._finalizer.detach()
        thread = self._thread
        if thread is None:
            self._finished.set()
            self._fire_close()
        elif thread is not threading.current_thread():
            thread.join(self._close_timeout)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the stream has ended (closed, or given up). ``True`` if it has."""
        return self._finished.wait(timeout)

    @property
    def closed(self) -> bool:
        """``True`` once ``close()`` was called or the stream ended on its own."""
        return self._link.closing.is_set() or self._ended

    @property
    def connected(self) -> bool:
        """``True`` while a connection is open (``False`` while reconnecting)."""
        ws = self._link.ws
        return ws is not None and bool(ws.connected) and not self.closed

    @property
    def connections(self) -> int:
        """How many connections were made: 1 at first, +1 per successful reconnect."""
        return self._connections

    @property
    def reconnects(self) -> int:
        """How many times the stream reconnected (each one followed by a resync snapshot)."""
        return max(0, self._connections - 1)

    @property
    def messages_received(self) -> int:
        """Valid messages received so far."""
        return self._messages

    @property
    def malformed_messages(self) -> int:
        """Messages skipped because they could not be parsed."""
        return self._malformed_count

    @property
    def last_event(self) -> Optional[StreamEvent]:
        """The most recent event delivered, if any."""
        return self._last_event

    @property
    def error(self) -> Optional[StreamClosedError]:
        """Why the stream ended on its own, or ``None``."""
        return self._error

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("connected" if self.connected else "reconnecting")
        return f"<IdentifiersStream {self.url} {state} connections={self._connections}>"

    # ------------------------------------------------------------------ reading
    def _next_for_iterator(self) -> Optional[StreamEvent]:
        with self._state_lock:
            if self._mode == "background":
                raise StreamError("this stream delivers to callbacks in a background thread; it cannot be iterated")
            self._mode = "iterator"
        if self._ended:
            return None  # the terminal error was raised once already
        return self._next_event()

    def _next_event(self) -> Optional[StreamEvent]:
        """The next event; ``None`` once closed. Raises StreamClosedError when it ends on its own."""
        while True:
            if self._link.closing.is_set() or self._ended:
                self._release()
                return None
            ws = self._link.ws
            if ws is None:
                self._reconnect()
                continue
            try:
                payload = self._recv(ws)
            except _Dropped as dropped:
                if not self._link.closing.is_set():
                    self._drop(ws, dropped.reason, dropped.cause)
                continue
            if payload is None:
                continue
            event = self._parse(ws, payload)
            if event is not None:
                self._last_event = event
                return event

    def _recv(self, ws: websocket.WebSocket) -> Union[str, bytes, None]:
        """Read one frame: the data of a message, or ``None`` for anything else."""
        import websocket

        with self._link.lock:
            if self._link.closing.is_set():
                return None
            self._link.reading = True
        try:
            ws.settimeout(self._read_timeout())
            opcode, frame = ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            self._keepalive(ws)
            return None
        except websocket.WebSocketPayloadException as exc:  # e.g. a text frame that is not UTF-8
            self._malformed(ws, exc, b"")
            return None
        except websocket.WebSocketConnectionClosedException as exc:
            raise _Dropped("the connection was closed", exc) from exc
        except (websocket.WebSocketException, OSError, ValueError, AttributeError) as exc:
            raise _Dropped(_one_line(f"{type(exc).__name__}: {exc}"), exc) from exc
        finally:
            with self._link.lock:
                self._link.reading = False
        self._last_rx = time.monotonic()
        self._ping_sent = None
        if opcode == _OPCODE_CLOSE:
            raise _Dropped(_describe_close(bytes(frame.data or b"")))
        if opcode in (_OPCODE_TEXT, _OPCODE_BINARY):
            data: Union[str, bytes] = frame.data
            return data
        return None  # ping / pong

    def _read_timeout(self) -> Optional[float]:
        if self._ping_interval is None:
            return None
        if self._ping_sent is not None:
            deadline = self._ping_sent + self._ping_timeout
        else:
            deadline = self._last_rx + self._ping_interval
        return max(0.001, deadline - time.monotonic())

    def _keepalive(self, ws: websocket.WebSocket) -> None:
        now = time.monotonic()
        if self._ping_sent is not None:
            if now - self._ping_sent >= self._ping_timeout:
                raise _Dropped(f"no answer to a ping within {self._ping_timeout:g} s")
            return
        if self._ping_interval is not None and now - self._last_rx >= self._ping_interval:
            try:
                ws.ping(b"")
            except Exception as exc:
                raise _Dropped(_one_line(f"sending a ping failed: {exc}"), exc) from exc
            self._ping_sent = now

    def _parse(self, ws: websocket.WebSocket, payload: Union[str, bytes]) -> Optional[StreamEvent]:
        from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers  # the model graph is big

        try:
            message = StreamedIdentifiers.from_json(payload)
            if message is None:
                raise ValueError("the message is JSON null")
        except Exception as exc:  # pydantic.ValidationError (bad JSON or shape), ValueError
            self._malformed(ws, exc, payload)
            return None
        snapshot = self._awaiting_snapshot
        self._awaiting_snapshot = False
        self._messages += 1
        return StreamEvent(message, snapshot, self._connections, self._last_rx)

    def _malformed(self, ws: websocket.WebSocket, exc: BaseException, payload: Union[str, bytes]) -> None:
        """Report a message that could not be parsed; the stream goes on."""
        self._report_malformed(exc, payload)
        if self._awaiting_snapshot and self._reconnect_enabled:
            # Without the opening snapshot the consumer's picture would be incomplete:
            # start over on a fresh connection, which begins with a fresh snapshot.
            self._drop(ws, "its opening snapshot was malformed", exc)
        else:
            self._awaiting_snapshot = False

    # ------------------------------------------------------------------ connections
    def _connect(self) -> websocket.WebSocket:
        """Open one connection (TCP, optional proxy tunnel, TLS, handshake)."""
        import websocket

        sock: Optional[socket.socket] = None
        try:
            sock = self._open_socket()
            with self._link.lock:
                if self._link.closing.is_set():
                    raise _Dropped("closed while connecting")
                self._link.pending = sock
            if self._ssl is not None:
                sni = self._config.tls_server_name
                if sni is None and isinstance(self._config.assert_hostname, str):
                    sni = self._config.assert_hostname
                sock = self._ssl.wrap_socket(sock, server_hostname=sni or self._target_host)
                with self._link.lock:
                    self._link.pending = sock
            # websocket-client checks the UTF-8 of text frames in pure Python, byte by byte: that
            # was half of the reader's time per message. The JSON parser checks it anyway (a bad
            # frame is reported as malformed, the stream goes on).
            ws = websocket.WebSocket(enable_multithread=True, skip_utf8_validation=True)
            options: Dict[str, Any] = {"socket": sock, "timeout": self._connect_timeout}
            header: Dict[str, str] = {}
            for name, value in self._headers.items():
                lowered = name.lower()
                if lowered in ("host", "origin"):
                    options[lowered] = value
                elif lowered not in _HANDSHAKE_OWNED:
                    header[name] = value
            options["header"] = header
            ws.connect(self.url, **options)  # type: ignore[no-untyped-call]
        except _Dropped:
            if sock is not None:
                sock.close()
            raise
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, (ApiConnectionError, StreamError, ApiValueError)):
                raise
            if isinstance(exc, Exception):
                raise self._connect_error(exc) from exc
            raise
        finally:
            with self._link.lock:
                self._link.pending = None
        return ws

    def _open_socket(self) -> socket.socket:
        """A connected TCP socket to the target, through the configured proxy if any."""
        proxy = self._config.proxy
        if not proxy:
            sock = socket.create_connection((self._target_host, self._target_port), self._connect_timeout)
        else:
            proxy_parts = urlsplit(proxy)
            if proxy_parts.scheme.lower() != "http" or not proxy_parts.hostname:
                raise ApiValueError(f"the identifiers stream supports http:// proxies only, not {proxy!r}")
            sock = socket.create_connection(
                (proxy_parts.hostname, proxy_parts.port or 80), self._connect_timeout
            )
            try:
                self._tunnel(sock, proxy_parts.username, proxy_parts.password)
            except BaseException:
                sock.close()
                raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _tunnel(self, sock: socket.socket, username: Optional[str], password: Optional[str]) -> None:
        """Ask an HTTP proxy for a CONNECT tunnel to the target."""
        host = self._target_host
        authority = f"[{host}]:{self._target_port}" if ":" in host else f"{host}:{self._target_port}"
        headers = _merge_headers(self._config.proxy_headers)
        if username is not None and not any(k.lower() == "proxy-authorization" for k in headers):
            token = base64.b64encode(f"{unquote(username)}:{unquote(password or '')}".encode()).decode()
            headers["Proxy-Authorization"] = f"Basic {token}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(4096)
            if not chunk or len(response) > 65536:
                raise OSError(f"the proxy {self._config.proxy} closed the connection during CONNECT")
            response += chunk
        status_line = response.split(b"\r\n", 1)[0].decode("latin-1")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or fields[1] != "200":
            raise ApiConnectionError(
                f"The proxy {self._config.proxy} refused to open a tunnel to {authority} "
                f"for the identifiers stream: {status_line!r}.",
                host=self._host, url=self.url, method="GET",
            )

    def _connect_error(self, exc: Exception) -> Exception:
        import websocket

        where = f"the identifiers stream at {self.url}"
        if isinstance(exc, websocket.WebSocketBadStatusException):
            body = exc.resp_body.decode("utf-8", "replace") if isinstance(exc.resp_body, bytes) else ""
            detail = f": {_one_line(body)}" if body.strip() else ""
            # status_message exists from websocket-client 1.8 on
            reason = getattr(exc, "status_message", None)
            return StreamError(
                f"The server at {self._host} refused to open {where}: HTTP {exc.status_code}"
                f"{' ' + reason if reason else ''}{detail}."
            )
        if isinstance(exc, (socket.timeout, TimeoutError, websocket.WebSocketTimeoutException)):
            return ApiTimeoutError(
                f"Timed out after {self._connect_timeout:g} s opening {where}. Pieces OS at "
                f"{self._host} did not answer in time.",
                host=self._host, url=self.url, method="GET",
            )
        if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
            return ApiConnectionError(
                f"The TLS handshake for {where} failed: {_one_line(str(exc))}. Check verify_ssl, "
                "ssl_ca_cert and the server's certificate.",
                host=self._host, url=self.url, method="GET",
            )
        if isinstance(exc, (OSError, websocket.WebSocketAddressException)):
            return ApiConnectionError(
                f"Could not open {where}: {_one_line(str(exc) or type(exc).__name__)}. Is Pieces OS "
                f"running at {self._host}? Start it, or set Configuration(host=...) to where it listens.",
                host=self._host, url=self.url, method="GET",
            )
        return StreamError(f"Could not open {where}: {_one_line(f'{type(exc).__name__}: {exc}')}")

    def _install(self, ws: websocket.WebSocket) -> None:
        with self._link.lock:
            if self._link.closing.is_set():
                _close_ws(ws)
                return
            self._link.ws = ws
        self._connections += 1
        self._awaiting_snapshot = True
        self._last_rx = time.monotonic()
        self._ping_sent = None
        logger.debug("identifiers stream connected to %s (connection %d)", self.url, self._connections)

    def _drop(self, ws: websocket.WebSocket, reason: str, cause: Optional[BaseException]) -> None:
        """The current connection is gone: close it and report, or end the stream."""
        self._link.detach(ws)
        _close_ws(ws)
        if self._link.closing.is_set():
            return
        if not self._reconnect_enabled:
            final = StreamClosedError(
                f"The identifiers stream at {self.url} ended: {reason}; reconnects are turned off."
            )
            final.__cause__ = cause
            self._end(final)
            raise final
        error = ApiConnectionError(
            f"The identifiers stream at {self.url} was interrupted ({reason}); reconnecting.",
            host=self._host, url=self.url, method="GET",
        )
        error.__cause__ = cause
        self._report(error, logging.INFO)  # routine: the stream recovers by itself

    def _reconnect(self) -> None:
        """Connect again with backoff; raises StreamClosedError when giving up."""
        attempt = 0
        last: Optional[Exception] = None
        while not self._link.closing.is_set():
            if self._max_attempts is not None and attempt >= self._max_attempts:
                final = StreamClosedError(
                    f"Gave up reconnecting to the identifiers stream at {self.url} after "
                    f"{attempt} failed attempt{'s' if attempt != 1 else ''}."
                )
                final.__cause__ = last
                self._end(final)
                raise final
            attempt += 1
            if self._link.closing.wait(self._backoff(attempt)):
                return
            try:
                ws = self._connect()
            except _Dropped:
                return
            except (ApiConnectionError, StreamError) as exc:
                last = exc
                logger.info("identifiers stream: reconnect attempt %d failed: %s", attempt, exc)
                continue
            self._install(ws)
            return

    def _backoff(self, attempt: int) -> float:
        """Delay before reconnect attempt ``attempt`` (1-based): doubling, capped, jittered."""
        delay: float = min(self._max_backoff, self._initial_backoff * (2 ** min(attempt - 1, 30)))
        return delay * (1 - self._jitter * random.random())

    def _release(self) -> None:
        """Close the socket once the stream is over (the reader's side of close())."""
        with self._link.lock:
            ws, self._link.ws = self._link.ws, None
        if ws is not None:
            _close_ws(ws)

    # ------------------------------------------------------------------ ending & callbacks
    def _end(self, error: StreamClosedError) -> None:
        self._error = error
        self._ended = True
        self._report(error, logging.ERROR)
        self._link.shutdown()
        self._finalizer.detach()
        if self._thread is None:
            self._finished.set()
            self._fire_close()

    def _run(self) -> None:
        try:
            while True:
                try:
                    event = self._next_event()
                except StreamClosedError:
                    return  # reported by _end
                except Exception as exc:  # a bug: end the stream visibly instead of silently
                    logger.exception("identifiers stream: unexpected failure in the reader thread")
                    final = StreamClosedError(f"the identifiers stream at {self.url} failed: {exc}")
                    final.__cause__ = exc
                    self._end(final)
                    return
                if event is None:
                    return
                self._deliver(event)
        finally:
            self._release()
            self._fire_close()
            self._finished.set()

    def _deliver(self, event: StreamEvent) -> None:
        if self._on_event is not None:
            self._call("on_event", self._on_event, event)
        if self._on_message is not None:
            self._call("on_message", self._on_message, event.message)

    def _call(self, name: str, callback: Callable[..., object], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            logger.exception("identifiers stream: the %s callback raised", name)

    def _report(self, error: Exception, level: int) -> None:
        logger.log(level, "%s", error)
        if self._on_error is not None:
            self._call("on_error", self._on_error, error)

    def _report_malformed(self, exc: BaseException, payload: Union[str, bytes]) -> None:
        self._malformed_count += 1
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        error = StreamError(
            f"Skipped a malformed message on the identifiers stream at {self.url}: "
            f"{_one_line(str(exc), 160)} (message: {_one_line(text, 80)!r})"
        )
        error.__cause__ = exc
        self._report(error, logging.WARNING)

    def _fire_close(self) -> None:
        with self._state_lock:
            if self._close_fired:
                return
            self._close_fired = True
        if self._on_close is not None:
            self._call("on_close", self._on_close)


def _describe_close(data: bytes) -> str:
    if len(data) >= 2:
        code = int.from_bytes(data[:2], "big")
        reason = data[2:].decode("utf-8", "replace")
        return f"the server closed the connection (code {code}{', ' + reason if reason else ''})"
    return "the server closed the connection"


# --------------------------------------------------------------------------- the mirror
@dataclass(frozen=True)
class MirrorUpdate:
    """What one stream message changed in a :class:`ConversationIdsMirror`.

    :ivar ids: every conversation id after the change.
    :ivar added: ids that were not there before.
    :ivar removed: ids that are gone.
    :ivar snapshot: the message was a full snapshot that replaced the set.
    :ivar resync: the snapshot followed a reconnect.
    :ivar version: the mirror's version after the change.
    """

    ids: FrozenSet[str]
    added: FrozenSet[str]
    removed: FrozenSet[str]
    snapshot: bool
    resync: bool
    version: int


class ConversationIdsMirror:
    """The set of conversation ids, kept current from the identifiers stream. Thread-safe.

    Either feed it yourself — ``stream = api.conversations_stream_identifiers(on_event=mirror.apply)``
    — or let it own a stream: ``with ConversationIdsMirror.open(api_client) as mirror: ...``.

    A snapshot (the first message of every connection) replaces the set, so after a reconnect
    the mirror equals the server's list again even if changes were missed while disconnected.

    :param on_change: called (in the thread that applied the message) with a
        :class:`MirrorUpdate` after every message that changed the set, and after every
        snapshot; exceptions from it are logged.
    """

    def __init__(self, *, on_change: Optional[Callable[[MirrorUpdate], object]] = None) -> None:
        self._cond = threading.Condition()
        self._ids: FrozenSet[str] = frozenset()
        self._version = 0
        self._snapshots = 0
        self._ended = False
        self._on_change = on_change
        self.stream: Optional[IdentifiersStream] = None
        """The stream this mirror owns (set by :meth:`open`), else ``None``."""

    @classmethod
    def open(
        cls,
        api: Union[_ClientLike, ConversationsApi],
        *,
        on_change: Optional[Callable[[MirrorUpdate], object]] = None,
        on_error: Optional[ErrorCallback] = None,
        path: str = IDENTIFIERS_PATH,
        headers: Optional[Mapping[str, Any]] = None,
        **stream_options: Any,
    ) -> ConversationIdsMirror:
        """Open a background stream that feeds a new mirror.

        ``api`` is an :class:`~pieces_os_client.ApiClient` or a ``ConversationsApi``;
        ``stream_options`` go to :class:`IdentifiersStream` (``reconnect``, backoffs, pings).
        Raises like the stream does when Pieces OS cannot be reached.
        """
        client = cast(_ClientLike, getattr(api, "api_client", api))
        mirror = cls(on_change=on_change)
        mirror.stream = IdentifiersStream(
            client, path, headers=headers, on_event=mirror.apply, on_error=on_error,
            on_close=mirror.mark_ended, **stream_options,
        )
        return mirror

    def __enter__(self) -> ConversationIdsMirror:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the owned stream (if any) and wake every waiter."""
        if self.stream is not None:
            self.stream.close()
        self.mark_ended()

    # ------------------------------------------------------------------ feeding
    def apply(self, event: StreamEvent) -> Optional[MirrorUpdate]:
        """Apply one stream event; returns what changed (``None`` if nothing did)."""
        with self._cond:
            before = self._ids
            if event.snapshot:
                after = frozenset(event.ids)
                self._snapshots += 1
            else:
                current = set(before)
                for ident in event.message.iterable or ():
                    if ident.conversation is None:
                        continue
                    if ident.deleted:
                        current.discard(ident.conversation.id)
                    else:
                        current.add(ident.conversation.id)
                after = frozenset(current)
            if after == before and not event.snapshot:
                return None
            self._ids = after
            self._version += 1
            update = MirrorUpdate(
                ids=after, added=after - before, removed=before - after,
                snapshot=event.snapshot, resync=event.resync, version=self._version,
            )
        # Listeners first, then waiters (output of a listener comes before what a woken waiter does).
        if self._on_change is not None:
            try:
                self._on_change(update)
            except Exception:
                logger.exception("ConversationIdsMirror: the on_change callback raised")
        with self._cond:
            self._cond.notify_all()
        return update

    def mark_ended(self) -> None:
        """Record that no more updates will come, and wake every waiter."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> FrozenSet[str]:
        """The current set of conversation ids (an immutable copy)."""
        with self._cond:
            return self._ids

    @property
    def ids(self) -> FrozenSet[str]:
        """Same as :meth:`snapshot`."""
        return self.snapshot()

    @property
    def version(self) -> int:
        """Increases by one with every applied change or snapshot."""
        with self._cond:
            return self._version

    @property
    def ready(self) -> bool:
        """``True`` once the first snapshot arrived (before that the set is just empty)."""
        with self._cond:
            return self._snapshots > 0

    @property
    def resyncs(self) -> int:
        """Snapshots applied after the first one, i.e. how often the set was rebuilt after a reconnect."""
        with self._cond:
            return max(0, self._snapshots - 1)

    @property
    def ended(self) -> bool:
        """``True`` once the feeding stream has ended."""
        with self._cond:
            return self._ended

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self.snapshot()

    def __len__(self) -> int:
        return len(self.snapshot())

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.snapshot()))

    def wait_for(self, predicate: Callable[[FrozenSet[str]], bool], timeout: Optional[float] = None) -> bool:
        """Block until ``predicate(ids)`` is true; ``False`` on timeout or when the stream ended first.

        The predicate sees the ids after each change, starting with the current set.
        """
        return self._wait_until(lambda: bool(self._snapshots) and predicate(self._ids), timeout)

    def wait_ready(self, timeout: Optional[float] = None) -> bool:
        """Block until the first snapshot arrived."""
        return self.wait_for(lambda _ids: True, timeout)

    def wait_for_change(self, since: Optional[int] = None, timeout: Optional[float] = None) -> bool:
        """Block until :attr:`version` exceeds ``since`` (default: the version now)."""
        start = self._version if since is None else since
        return self._wait_until(lambda: self._version > start, timeout)

    def _wait_until(self, done: Callable[[], bool], timeout: Optional[float]) -> bool:
        """Wait on the mirror's condition until ``done()``; False on timeout or end of stream."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not done():
                if self._ended:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def __repr__(self) -> str:
        return f"<ConversationIdsMirror {len(self)} ids version={self.version}>"
