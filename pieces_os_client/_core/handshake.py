"""The WebSocket opening handshake (RFC 6455 section 4), free of I/O.

A transport builds the request with :func:`request_head`, writes it, reads the answer up to
its blank line (at most :data:`HEAD_LIMIT` bytes, :func:`head_complete` says when it has all of
it), and hands it to :func:`parse_head` and :func:`refusal`. Nothing here touches a socket.

Rules:

* every header of the request, the ones the transport adds (``Host``, ``Origin``) included,
  passes :func:`~pieces_os_client._core.headers.check_headers` before anything is written;
* a redirect (any 3xx) is never followed: the credentials in the request belong to the
  configured origin, so a redirect is a refusal naming the status and the ``Location``;
* anything but ``101`` with the right ``Sec-WebSocket-Accept`` is a refusal, and so is a ``101``
  that picks an extension or subprotocol the request did not offer.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Sequence, Union

from pieces_os_client._core.headers import check_headers
from pieces_os_client._core.urls import mask_userinfo

__all__ = [
    "HEAD_LIMIT", "Response", "accept_value", "head_complete", "host_header", "is_redirect", "new_key",
    "parse_head", "refusal", "request_head",
]

#: the most bytes of a response head a transport reads before giving up on it
HEAD_LIMIT = 16 * 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TARGET_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True)
class Response:
    """The status line and headers (names in lower case) of a handshake answer."""

    status: int
    reason: str
    headers: Dict[str, str] = field(default_factory=dict)


def new_key(random16: bytes) -> str:
    """A ``Sec-WebSocket-Key`` made of 16 random bytes the caller drew."""
    if len(random16) != 16:
        raise ValueError("a Sec-WebSocket-Key is made of 16 random bytes")
    return base64.b64encode(random16).decode("ascii")


def accept_value(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer ``key`` with."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def host_header(host: str, port: int, secure: bool) -> str:
    """The ``Host`` value for ``host:port``: the port left out when it is the scheme's default."""
    name = f"[{host}]" if ":" in host else host
    return name if port == (443 if secure else 80) else f"{name}:{port}"


def request_head(target: str, key: str, headers: Mapping[str, Any]) -> bytes:
    """The upgrade request for ``target`` (path and query) with ``headers`` (``Host`` included).

    The WebSocket headers (``Upgrade``, ``Connection``, ``Sec-WebSocket-Key``,
    ``Sec-WebSocket-Version``) are added here and win over same-named entries in ``headers``.

    :raises ApiValueError: a header that :func:`check_headers` refuses (named), or a target
        with spaces or control characters.
    """
    from pieces_os_client.exceptions import ApiValueError

    if not target.startswith("/") or _TARGET_FORBIDDEN.search(target):
        raise ApiValueError(f"the WebSocket path {target!r} must start with / and hold no spaces or control characters")
    own = {"upgrade", "connection", "sec-websocket-key", "sec-websocket-version"}
    fields: Dict[str, str] = {name: str(value) for name, value in headers.items() if name.lower() not in own}
    check_headers(fields)  # the caller's headers: the same set each time, so checked once and remembered
    fields.update({"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
                   "Sec-WebSocket-Version": "13"})
    lines = [f"GET {target} HTTP/1.1", *(f"{name}: {value}" for name, value in fields.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def head_complete(data: Union[bytes, bytearray]) -> bool:
    """``data`` holds a whole response head (it ends with the blank line)."""
    return data.endswith(b"\r\n\r\n") or data.endswith(b"\n\n")


def parse_head(data: bytes) -> Response:
    """The status and headers of a response head.

    :raises ValueError: not an HTTP/1.x response head.
    """
    lines = data.decode("latin-1").replace("\r\n", "\n").split("\n")
    status_line = lines[0].strip()
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
        raise ValueError(f"not an HTTP status line: {status_line[:80]!r}")
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"not an HTTP header line: {line[:80]!r}")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return Response(int(parts[1]), parts[2].strip() if len(parts) > 2 else "", headers)


def is_redirect(status: int) -> bool:
    """A 3xx answer: never followed by the stream."""
    return 300 <= status < 400


def refusal(
    response: Response, key: str, extensions: Sequence[str] = (), protocols: Sequence[str] = ()
) -> Optional[str]:
    """What is wrong with ``response`` as an answer to the upgrade with ``key``; ``None``: accepted.

    ``extensions`` and ``protocols`` are the names the request offered (the stream offers none):
    a ``Sec-WebSocket-Extensions`` or ``Sec-WebSocket-Protocol`` naming anything else is a
    refusal (RFC 6455 section 4.1: the client must fail the connection), since frames the server
    would then send could not be read.

    The text starts with the status (``"HTTP 302 Found, a redirect to ..."``) and shows any
    ``Location`` with its credentials masked.
    """
    status = f"HTTP {response.status}{' ' + response.reason if response.reason else ''}"
    if is_redirect(response.status):
        location = response.headers.get("location")
        where = f"to {mask_userinfo(location)!r}" if location else "without a Location header"
        return (f"{status}, a redirect {where}; redirects of the WebSocket handshake are not followed, "
                "so that credentials stay with the configured host")
    if response.status != 101:
        return status
    if response.headers.get("upgrade", "").lower() != "websocket":
        return f"{status} without 'Upgrade: websocket'"
    if "upgrade" not in [token.strip().lower() for token in response.headers.get("connection", "").split(",")]:
        return f"{status} without 'Connection: Upgrade'"
    if response.headers.get("sec-websocket-accept") != accept_value(key):
        return f"{status} with a wrong Sec-WebSocket-Accept"
    chosen = [item.split(";", 1)[0].strip() for item in response.headers.get("sec-websocket-extensions", "").split(",")]
    unasked = [name for name in chosen if name and name.lower() not in {e.lower() for e in extensions}]
    if unasked:
        return f"{status} with the extension {unasked[0][:60]!r}, which the client did not offer"
    protocol = response.headers.get("sec-websocket-protocol", "").strip()
    if protocol and protocol not in protocols:
        return f"{status} with the subprotocol {protocol[:60]!r}, which the client did not offer"
    return None
