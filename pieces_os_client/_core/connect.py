"""Opening the identifiers WebSocket, the part free of I/O: the URL, TLS settings, the proxy and its
``CONNECT`` request, the handshake headers (all checked before a byte is sent), and what each
failure means in the SDK's error tree. The sync stream (``stream/_connect.py``) and the asyncio
one (``aio/_connect.py``) open the socket, write what this says and read the answer with
:class:`~pieces_os_client._core.websocket.ClientProtocol`.

Proxy environment variables are ignored, as for HTTP calls.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Protocol, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

from pieces_os_client._core import handshake
from pieces_os_client._core.headers import check_headers
from pieces_os_client._core.text import one_line
from pieces_os_client._core.urls import mask_userinfo
from pieces_os_client._core.websocket import CLOSE_READ_LIMIT, CLOSE_TIMEOUT, ClientProtocol
from pieces_os_client.exceptions import ApiConnectionError, ApiTimeoutError, ApiValueError, StreamError

if TYPE_CHECKING:
    from pieces_os_client.configuration import Configuration

__all__ = ["IDENTIFIERS_PATH", "ClientLike", "Endpoint", "Proxy", "merge_headers", "stream_url", "tls_context"]

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


#: the TLS context for a configuration (shared with the asyncio HTTP transport)
tls_context = _ssl_context


@dataclass(frozen=True)
class Proxy:
    url: str
    host: str
    port: int
    auth: Optional[Tuple[str, str]]
    headers: Dict[str, str]


def _proxy(config: Configuration) -> Optional[Proxy]:
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
    return Proxy(mask_userinfo(config.proxy), parts.hostname, parts.port or 80, auth, headers)


class Endpoint:
    """Where and how one stream connects, and the SDK errors for what can go wrong on the way."""

    def __init__(
        self,
        client: ClientLike,
        path: str,
        headers: Optional[Mapping[str, Any]],
        connect_timeout: Optional[float],
        *,
        max_message_size: Optional[int] = None,
        close_timeout: float = CLOSE_TIMEOUT,
        close_read_limit: int = CLOSE_READ_LIMIT,
    ) -> None:
        #: the settings of each connection's :class:`ClientProtocol` (see :meth:`protocol`)
        self.max_message_size = max_message_size
        self.close_timeout = close_timeout
        self.close_read_limit = close_read_limit
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

    def protocol(self, key: str) -> ClientProtocol:
        """The protocol object for a connection whose upgrade request carried ``key``."""
        return ClientProtocol(key, max_message_size=self.max_message_size, close_timeout=self.close_timeout,
                              close_read_limit=self.close_read_limit)

    def handshake_error(self, protocol: ClientProtocol) -> StreamError:
        """The error for an answer ``protocol`` refused (a redirect included), with the start of its body."""
        response, problem = protocol.response, protocol.refusal or "no answer"
        if response is None:
            return StreamError(
                f"The server at {self.host} did not answer the WebSocket handshake for {self.url} properly: "
                f"{one_line(problem)}"
            )
        body = protocol.refusal_body(self.body_length(response)).decode("utf-8", "replace")
        return self.refused(problem, response, body)

    # What a transport needs to open the connection.
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
    def proxy(self) -> Optional[Proxy]:
        return self._proxy

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

    def check_tunnel_answer(self, response: bytes, chunk: bytes, proxy: Proxy) -> None:
        """:raises OSError: the proxy closed the connection, or its answer is too long."""
        if not chunk or len(response) > 65536:
            raise OSError(f"the proxy {proxy.url} closed the connection during CONNECT")

    def check_tunnel_status(self, response: bytes) -> None:
        """:raises ApiConnectionError: the proxy did not open the tunnel."""
        status_line = response.split(b"\r\n", 1)[0].decode("latin-1")
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or fields[1] != "200":
            raise self._proxy_refused(status_line)

    def tunnel_request(self, proxy: Proxy) -> bytes:
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
