"""Opening the identifiers WebSocket: URL, TLS, proxy, handshake headers, and what errors mean.

Every connection's socket is made here, and the WebSocket handshake done on it, before
websocket-client gets it (for writing frames only). Each socket is registered with the
stream's :class:`~pieces_os_client.stream._link.Link` *before* it connects, so that ``close()``
can shut it down and end an attempt at any step (TCP connect, proxy tunnel, TLS, handshake)
instead of waiting for ``connect_timeout``. For the same reason the ``CONNECT`` tunnel through
an HTTP proxy is written here rather than left to websocket-client's proxy support: that opens
its own socket and shows it only once the tunnel and TLS are done, so ``close()`` could not
reach an attempt stuck there (websocket-client also cannot send ``proxy_headers``, and writes an
IPv6 target without brackets). Proxy environment variables are ignored, as for HTTP calls.

The upgrade request is written and its answer read here as well, by the rules of
:mod:`pieces_os_client._core.handshake`: every header is checked before a byte is sent, a
redirect is refused rather than followed (the request carries credentials), and the whole
opening -- TCP connect, proxy tunnel, TLS and the upgrade exchange -- shares one deadline,
``connect_timeout``: each read waits only for the time that is left. websocket-client is then
handed the open socket for writing frames (pings, pongs, close frames).
"""

from __future__ import annotations

import base64
import os
import socket
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Protocol, Tuple, Union
from urllib.parse import unquote, urlsplit, urlunsplit

from pieces_os_client._core import handshake
from pieces_os_client._core.headers import check_headers
from pieces_os_client._core.urls import mask_userinfo
from pieces_os_client.exceptions import ApiConnectionError, ApiTimeoutError, ApiValueError, StreamError
from pieces_os_client.stream._text import one_line

if TYPE_CHECKING:
    import websocket

    from pieces_os_client.configuration import Configuration
    from pieces_os_client.stream._link import Link

__all__ = ["IDENTIFIERS_PATH", "ClientLike", "Closing", "Connector", "stream_url"]

#: Path of the identifiers WebSocket, relative to the configured host.
IDENTIFIERS_PATH = "/conversations/stream/identifiers"

_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
# Handshake headers the handshake writes itself; a caller's copy would be sent twice.
_HANDSHAKE_OWNED = frozenset(
    {"host", "origin", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "content-length"}
)


class ClientLike(Protocol):
    """What the stream needs from an :class:`~pieces_os_client.ApiClient`."""

    configuration: Configuration
    default_headers: Dict[str, str]


class Closing(Exception):
    """The stream was closed while a connection was being opened."""


class _Attempt:
    """One connection attempt: its deadline and the step it is at (for the timeout's message)."""

    def __init__(self, timeout: float) -> None:
        self.deadline = time.monotonic() + timeout
        self.phase = "the TCP connection"

    def left(self) -> float:
        """Seconds left before the deadline; ``socket.timeout`` when none are."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("connect_timeout passed")
        return left


def stream_url(host: str, path: str = IDENTIFIERS_PATH) -> str:
    """The WebSocket URL for ``path`` under ``host``: only the scheme changes.

    >>> stream_url("https://example.test:8443/base")
    'wss://example.test:8443/base/conversations/stream/identifiers'
    """
    parts = urlsplit(host)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ApiValueError(
            f"cannot open a WebSocket for host {mask_userinfo(host)!r}: it must be an http:// or https:// URL"
        )
    joined = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((scheme, parts.netloc, joined, parts.query, ""))


def merge_headers(*sources: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """Later sources win, names compared without case; ``None`` values remove a header."""
    merged: Dict[str, Tuple[str, Optional[str]]] = {}
    for source in sources:
        for name, value in (source or {}).items():
            merged[name.lower()] = (name, None if value is None else str(value))
    return {name: value for name, value in merged.values() if value is not None}


def _ssl_context(config: Configuration) -> ssl.SSLContext:
    """An SSL context with the configuration's verification, CA and client-certificate settings."""
    from pieces_os_client.configuration import load_tls_context

    context = load_tls_context(config)  # ApiValueError naming the setting that cannot be loaded
    if not config.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif config.assert_hostname is False:
        context.check_hostname = False
    return context


@dataclass(frozen=True)
class _Proxy:
    url: str
    host: str
    port: int
    auth: Optional[Tuple[str, str]]
    headers: Dict[str, str]


def _proxy(config: Configuration) -> Optional[_Proxy]:
    if not config.proxy:
        return None
    parts = urlsplit(config.proxy)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ApiValueError(
            f"the identifiers stream supports http:// proxies only, not {mask_userinfo(config.proxy)!r}"
        )
    auth = None if parts.username is None else (unquote(parts.username), unquote(parts.password or ""))
    headers = merge_headers(config.proxy_headers)
    check_headers(headers)
    return _Proxy(mask_userinfo(config.proxy), parts.hostname, parts.port or 80, auth, headers)


class Connector:
    """Opens connections for one stream and turns failures into the SDK's errors."""

    def __init__(
        self, client: ClientLike, path: str, headers: Optional[Mapping[str, Any]], connect_timeout: Optional[float]
    ) -> None:
        config = client.configuration
        self.host = mask_userinfo(config.host)
        """The configured host, as shown (any user:password@ masked)."""
        raw = stream_url(config.host, path)
        self.url = mask_userinfo(raw)
        """The WebSocket URL, as shown (any user:password@ masked; it is never sent)."""
        parts = urlsplit(raw)
        self._target_host = parts.hostname or ""
        self._target_port = parts.port or (443 if parts.scheme == "wss" else 80)
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        """The path and query the upgrade request asks for."""
        self._ssl = _ssl_context(config) if parts.scheme == "wss" else None
        sni = config.tls_server_name
        if sni is None and isinstance(config.assert_hostname, str):
            sni = config.assert_hostname
        self._server_name = sni or self._target_host
        self._proxy = _proxy(config)
        self.timeout: float = config.connect_timeout if connect_timeout is None else connect_timeout
        merged = merge_headers(client.default_headers, config.auth_headers(), headers)
        check_headers(merged)  # ApiValueError naming the header, before any connection
        authority = handshake.host_header(self._target_host, self._target_port, self._ssl is not None)
        fields = {"Host": authority, "Origin": f"{'https' if self._ssl is not None else 'http'}://{authority}"}
        for name, value in merged.items():
            lowered = name.lower()
            if lowered in ("host", "origin"):
                fields[lowered.capitalize()] = value
            elif lowered not in _HANDSHAKE_OWNED:
                fields[name] = value
        self._headers = fields
        handshake.request_head(self.target, handshake.new_key(bytes(16)), fields)  # checks every header now

    def open(self, link: Link) -> websocket.WebSocket:
        """One connection (TCP, proxy tunnel, TLS, handshake).

        :raises Closing: ``link`` started closing meanwhile.
        :raises ApiConnectionError: unreachable (``ApiTimeoutError``: too slow).
        :raises StreamError: the server refused the WebSocket handshake.
        """
        import websocket

        attempt = _Attempt(self.timeout)
        sock: Optional[socket.socket] = None
        try:
            sock = self._open_socket(link, attempt)
            attempt.phase = "the WebSocket handshake"
            self._handshake(sock, attempt)
            ws = websocket.WebSocket(enable_multithread=True)
            ws.sock = sock  # websocket-client writes frames on it; the stream reads them
            ws.connected = True
            return ws
        except BaseException as exc:
            if sock is not None:
                sock.close()
            if isinstance(exc, Exception) and not isinstance(
                exc, (Closing, ApiConnectionError, StreamError, ApiValueError)
            ):
                raise self.error(exc, attempt.phase) from exc
            raise
        finally:
            with link.lock:
                link.pending = None

    def _open_socket(self, link: Link, attempt: _Attempt) -> socket.socket:
        """A connected socket to the target (through the proxy's tunnel), TLS done, handed to ``link``."""
        proxy = self._proxy
        where = (proxy.host, proxy.port) if proxy else (self._target_host, self._target_port)
        sock = self._connect_tcp(link, attempt, *where)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if proxy is not None:
                attempt.phase = "the proxy tunnel (CONNECT)"
                self._tunnel(sock, proxy, attempt)
            if self._ssl is not None:
                attempt.phase = "the TLS handshake"
                sock.settimeout(attempt.left())  # the TLS handshake keeps to one deadline itself
                sock = self._ssl.wrap_socket(sock, server_hostname=self._server_name)
                self._hand_over(link, sock)
        except BaseException:
            sock.close()
            raise
        return sock

    def _handshake(self, sock: socket.socket, attempt: _Attempt) -> None:
        """Send the upgrade request and read its answer, all before the attempt's deadline.

        :raises StreamError: any answer but a valid ``101``, a redirect included.
        """
        key = handshake.new_key(os.urandom(16))
        sock.settimeout(attempt.left())
        sock.sendall(self.request(key))
        head = bytearray()
        while not handshake.head_complete(head):
            self.check_head_size(head)
            sock.settimeout(attempt.left())
            byte = sock.recv(1)  # one at a time: the first frame may follow the head at once
            if not byte:
                raise OSError("the server closed the connection during the WebSocket handshake")
            head += byte
        response, problem = self.answer(head, key)
        if problem is not None:
            raise self.refused(problem, response, self._refusal_body(sock, response, attempt))

    # The rules of the handshake's answer, for this stream and the asyncio one.
    # What the asyncio stream needs to open the same connection.
    @property
    def target_host(self) -> str:
        return self._target_host

    @property
    def target_port(self) -> int:
        return self._target_port

    @property
    def ssl_context(self) -> Optional[ssl.SSLContext]:
        return self._ssl

    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def proxy(self) -> Optional[_Proxy]:
        return self._proxy

    def check_head_size(self, head: Union[bytes, bytearray]) -> None:
        """:raises StreamError: the answer's head grew over ``HEAD_LIMIT`` without ending."""
        if len(head) >= handshake.HEAD_LIMIT:
            raise StreamError(f"The server at {self.host} sent a handshake answer over "
                              f"{handshake.HEAD_LIMIT} bytes for the identifiers stream at {self.url}.")

    def answer(self, head: Union[bytes, bytearray], key: str) -> Tuple[handshake.Response, Optional[str]]:
        """The parsed answer and what is wrong with it (``None``: accepted).

        :raises StreamError: the answer is not HTTP.
        """
        try:
            response = handshake.parse_head(bytes(head))
        except ValueError as exc:
            raise StreamError(
                f"The server at {self.host} did not answer the WebSocket handshake for {self.url} "
                f"with HTTP: {one_line(str(exc))}"
            ) from exc
        return response, handshake.refusal(response, key)

    def refused(self, problem: str, response: handshake.Response, body: str) -> StreamError:
        """The error for a refused handshake (a redirect included), with the start of its body."""
        detail = f": {one_line(body)}" if body.strip() and response.status != 101 else ""
        return StreamError(
            f"The server at {self.host} refused to open the identifiers stream at {self.url}: {problem}{detail}."
        )

    def request(self, key: str) -> bytes:
        """The upgrade request with ``key`` (every header was checked when the connector was made)."""
        return handshake.request_head(self.target, key, self._headers)

    @staticmethod
    def body_length(response: handshake.Response) -> int:
        """How much of a refusal's body to read for the error message."""
        try:
            return max(0, min(int(response.headers.get("content-length", "0")), 400))
        except ValueError:
            return 0

    @staticmethod
    def _refusal_body(sock: socket.socket, response: handshake.Response, attempt: _Attempt) -> str:
        """The start of a refusal's body, for the error message (best effort, within the deadline)."""
        length = Connector.body_length(response)
        body = b""
        try:
            while len(body) < length:
                sock.settimeout(min(attempt.left(), 0.5))
                chunk = sock.recv(length - len(body))
                if not chunk:
                    break
                body += chunk
        except OSError:
            pass
        return body.decode("utf-8", "replace")

    def _connect_tcp(self, link: Link, attempt: _Attempt, host: str, port: int) -> socket.socket:
        """``socket.create_connection``, but each socket is handed to ``link`` before it connects."""
        last: Optional[OSError] = None
        for family, kind, proto, _name, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                self._hand_over(link, sock)
                sock.settimeout(attempt.left())
                sock.connect(address)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
            except BaseException:
                sock.close()
                raise
        self._hand_over(link, None)  # closed meanwhile: Closing rather than the last failure
        raise last if last is not None else OSError(f"no address found for {host}")

    @staticmethod
    def _hand_over(link: Link, sock: Optional[socket.socket]) -> None:
        """Let ``close()`` interrupt the attempt: it shuts ``link.pending`` down."""
        with link.lock:
            if link.closing.is_set():
                raise Closing("closed while connecting")
            link.pending = sock

    def _tunnel(self, sock: socket.socket, proxy: _Proxy, attempt: _Attempt) -> None:
        """Ask an HTTP proxy for a CONNECT tunnel to the target, with ``proxy_headers``."""
        sock.settimeout(attempt.left())
        sock.sendall(self.tunnel_request(proxy))
        response = b""
        while b"\r\n\r\n" not in response:
            sock.settimeout(attempt.left())
            chunk = sock.recv(4096)
            self.check_tunnel_answer(response, chunk, proxy)
            response += chunk
        self.check_tunnel_status(response)

    def check_tunnel_answer(self, response: bytes, chunk: bytes, proxy: _Proxy) -> None:
        """:raises OSError: the proxy closed the connection, or its answer is too long."""
        if not chunk or len(response) > 65536:
            raise OSError(f"the proxy {proxy.url} closed the connection during CONNECT")

    def check_tunnel_status(self, response: bytes) -> None:
        """:raises ApiConnectionError: the proxy did not open the tunnel."""
        status_line = response.split(b"\r\n", 1)[0].decode("latin-1")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or fields[1] != "200":
            raise self._proxy_refused(status_line)

    def tunnel_request(self, proxy: _Proxy) -> bytes:
        """The ``CONNECT`` request for a tunnel to the target, with ``proxy_headers``."""
        host = self._target_host
        authority = f"[{host}]:{self._target_port}" if ":" in host else f"{host}:{self._target_port}"
        headers = dict(proxy.headers)
        if proxy.auth is not None and not any(k.lower() == "proxy-authorization" for k in headers):
            token = base64.b64encode(":".join(proxy.auth).encode()).decode()
            headers["Proxy-Authorization"] = f"Basic {token}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _proxy_refused(self, status: str) -> ApiConnectionError:
        return ApiConnectionError(
            f"The proxy {self._proxy.url if self._proxy else ''} refused to open a tunnel to "
            f"{self._target_host}:{self._target_port} for the identifiers stream: {one_line(status, 120)!r}.",
            host=self.host, url=self.url, method="GET",
        )

    def error(self, exc: Exception, phase: str) -> Exception:
        """The SDK error for a failed connection attempt that was at step ``phase``."""
        where = f"the identifiers stream at {self.url}"
        if isinstance(exc, TimeoutError):
            return ApiTimeoutError(
                f"Timed out after {self.timeout:g} s (connect_timeout) during {phase} opening {where}. "
                f"Pieces OS at {self.host} did not answer in time.",
                host=self.host, url=self.url, method="GET",
            )
        if isinstance(exc, (ssl.SSLError, ssl.CertificateError)):
            return ApiConnectionError(
                f"The TLS handshake for {where} failed: {one_line(str(exc))}. Check verify_ssl, "
                "ssl_ca_cert and the server's certificate.",
                host=self.host, url=self.url, method="GET",
            )
        if isinstance(exc, OSError):
            return ApiConnectionError(
                f"Could not open {where}: {one_line(str(exc) or type(exc).__name__)}. Is Pieces OS "
                f"running at {self.host}? Start it, or set Configuration(host=...) to where it listens.",
                host=self.host, url=self.url, method="GET",
            )
        return StreamError(f"Could not open {where}: {one_line(f'{type(exc).__name__}: {exc}')}")
