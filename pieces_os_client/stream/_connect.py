"""Opening the identifiers WebSocket on a blocking socket (the sync stream's transport).

What to open and what the answers mean is :class:`pieces_os_client._core.connect.Endpoint`; the
protocol, the handshake's answer included, is :class:`pieces_os_client._core.websocket.ClientProtocol`.
Here the socket is made, and each one is registered with the stream's
:class:`~pieces_os_client.stream._link.Link` *before* it connects, so that ``close()`` can shut
it down and end an attempt at any step (TCP connect, proxy tunnel, TLS, handshake) instead of
waiting for ``connect_timeout``. The whole opening shares that one deadline: each read waits only
for the time that is left.
"""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Optional

from pieces_os_client._core import handshake
from pieces_os_client._core.connect import IDENTIFIERS_PATH, ClientLike, Endpoint, Proxy, stream_url
from pieces_os_client._core.websocket import ClientProtocol, State
from pieces_os_client.exceptions import ApiConnectionError, ApiValueError, StreamError
from pieces_os_client.stream._link import Connection

if TYPE_CHECKING:
    from pieces_os_client.stream._link import Link

__all__ = ["IDENTIFIERS_PATH", "ClientLike", "Closing", "Connector", "stream_url"]


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


class Connector(Endpoint):
    """Opens connections for one stream on blocking sockets."""

    def open(self, link: Link) -> Connection:
        """One connection (TCP, proxy tunnel, TLS, handshake).

        :raises Closing: ``link`` started closing meanwhile.
        :raises ApiConnectionError: unreachable (``ApiTimeoutError``: too slow).
        :raises StreamError: the server refused the WebSocket handshake.
        """
        attempt = _Attempt(self.timeout)
        sock: Optional[socket.socket] = None
        try:
            sock = self._open_socket(link, attempt)
            attempt.phase = "the WebSocket handshake"
            return self._handshake(sock, attempt)
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

    def _handshake(self, sock: socket.socket, attempt: _Attempt) -> Connection:
        """Send the upgrade request and read its answer, all before the attempt's deadline.

        :raises StreamError: any answer but a valid ``101``, a redirect included.
        """
        key = handshake.new_key(os.urandom(16))
        protocol = self.protocol(key)
        sock.settimeout(attempt.left())
        sock.sendall(self.request(key))
        while protocol.state is State.CONNECTING:
            sock.settimeout(attempt.left())
            data = sock.recv(4096)  # what follows the head stays with the protocol: the first frames
            if not data:
                raise OSError("the server closed the connection during the WebSocket handshake")
            protocol.receive_data(data)
        if protocol.refusal is not None:
            self._read_refusal_body(sock, protocol, attempt)
            raise self.handshake_error(protocol)
        out = protocol.data_to_send()  # frames that came with the answer may need one (a pong, a close)
        if out:
            sock.sendall(out)
        return Connection(sock, protocol)

    def _read_refusal_body(self, sock: socket.socket, protocol: ClientProtocol, attempt: _Attempt) -> None:
        """The start of a refusal's body, for the error message (best effort, within the deadline)."""
        if protocol.response is None:
            return
        length = self.body_length(protocol.response)
        try:
            while len(protocol.refusal_body(length)) < length:
                sock.settimeout(min(attempt.left(), 0.5))
                chunk = sock.recv(length)
                if not chunk:
                    break
                protocol.receive_data(chunk)
        except OSError:
            pass

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

    def _tunnel(self, sock: socket.socket, proxy: Proxy, attempt: _Attempt) -> None:
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

