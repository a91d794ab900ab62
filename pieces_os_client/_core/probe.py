"""A probe's HTTP exchange: one GET on its own connection, and its answer read to a bounded size.

Discovery and ``doctor`` ask a few short questions (``GET /.well-known/health``, ``GET
/.well-known/version``) of servers that may not be Pieces OS at all. They need the status,
the reason and the first few bytes of the body, never more, and never more time than the probe
was given. :class:`ProbeAnswer` takes the bytes as they arrive and says when the answer is
complete; the caller moves the bytes and keeps the clock.

Framing follows RFC 9112 §6: a ``Transfer-Encoding`` whose last coding is ``chunked`` wins over
any ``Content-Length``; otherwise one ``Content-Length`` (equal duplicates count as one) gives
the body's length, and an invalid one makes the answer unusable; with neither, the body ends
when the connection closes. Interim ``1xx`` answers are skipped. Reading stops as soon as
``body_limit`` bytes of body have arrived, however much more the server would send.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional

from pieces_os_client._core.exchange import is_interim
from pieces_os_client._core.framing import SWITCHED_PROTOCOLS

__all__ = ["HEAD_LIMIT", "ProbeAnswer", "ProbeError", "probe_request"]

#: the longest response head (status line and headers) a probe reads before giving up
HEAD_LIMIT = 16 * 1024
_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([0-9]{3})(?: (.*))?")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class ProbeError(ValueError):
    """The bytes received are not an HTTP/1.x answer the probe can read (the message says why)."""


def probe_request(authority: str, path: str, accept: str = "text/plain") -> bytes:
    """The request a probe sends: a GET that asks the server to close the connection after it."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: {accept}\r\n"
        "Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


class ProbeAnswer:
    """One HTTP/1.x answer, fed as it arrives: :meth:`feed` the bytes, ``b""`` when the peer closed.

    After the head: :attr:`status`, :attr:`reason`, :attr:`headers` (names in lower case).
    :attr:`body` holds at most ``body_limit`` bytes; :attr:`done` turns true when the body is
    complete or that many bytes arrived (:attr:`cut` then says the body went on).
    :attr:`received` counts every byte fed.
    """

    def __init__(self, body_limit: int, head_limit: int = HEAD_LIMIT) -> None:
        self.body_limit = body_limit
        self.head_limit = head_limit
        self.status: Optional[int] = None
        self.reason = ""
        self.headers: Dict[str, str] = {}
        self.body = bytearray()
        self.done = False
        self.cut = False
        self.received = 0
        self._buffer = bytearray()
        self._head_bytes = 0
        self._framing = ""  # "length", "chunked" or "close", once the head is read
        self._remaining = 0  # body bytes still due ("length"), or bytes of the current chunk
        self._chunk_state = "size"  # "size", "data", "data-end", "trailer"

    @property
    def has_head(self) -> bool:
        """True once the final answer's status line and headers have arrived."""
        return self.status is not None

    def feed(self, data: bytes) -> None:
        """Take the next bytes read from the connection; ``b""`` means it was closed.

        :raises ProbeError: the bytes are not a readable HTTP/1.x answer, or the connection closed
            before the answer was complete.
        """
        if self.done:
            return
        self.received += len(data)
        self._buffer += data
        if not self.has_head:
            self._read_head(closed=not data)
        if self.has_head and not self.done:
            self._read_body(closed=not data)

    # ------------------------------------------------------------------ head
    def _read_head(self, closed: bool) -> None:
        while not self.has_head:
            end = self._head_end()
            if end < 0:
                if self._head_bytes + len(self._buffer) > self.head_limit:
                    raise ProbeError(f"the response head is longer than {self.head_limit} bytes")
                if closed:
                    raise ProbeError(
                        "the connection closed before the answer began" if not self.received else
                        f"the connection closed in the middle of the response head ({self.received} bytes in)"
                    )
                return
            head, self._buffer = bytes(self._buffer[:end]), self._buffer[end:]
            self._head_bytes += len(head)
            if self._head_bytes > self.head_limit:
                raise ProbeError(f"the response head is longer than {self.head_limit} bytes")
            self._parse_head(head)

    def _head_end(self) -> int:
        """Where the body starts (just past the blank line ending the head), or -1."""
        crlf, lf = self._buffer.find(b"\r\n\r\n"), self._buffer.find(b"\n\n")
        ends = [i + n for i, n in ((crlf, 4), (lf, 2)) if i >= 0]
        return min(ends) if ends else -1

    def _parse_head(self, head: bytes) -> None:
        lines = head.replace(b"\r\n", b"\n").split(b"\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise ProbeError(f"the answer does not begin with an HTTP/1.x status line: {lines[0][:40]!r}")
        status = int(match.group(1))
        if is_interim(status):
            return  # skipped whole; the final answer follows
        if status == 101:
            raise ProbeError(SWITCHED_PROTOCOLS)
        headers: Dict[str, str] = {}
        lengths: List[str] = []
        codings: List[str] = []
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep or not name.strip() or name != name.strip():
                raise ProbeError(f"a malformed header line: {line[:40]!r}")
            key = name.decode("latin-1").lower()
            text = value.strip().decode("latin-1")
            if key == "content-length":
                lengths.extend(part.strip() for part in text.split(","))
            elif key == "transfer-encoding":
                codings.extend(part.strip().lower() for part in text.split(",") if part.strip())
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        self.status = status
        self.reason = (match.group(2) or b"").decode("latin-1").strip()
        self.headers = headers
        if status in (204, 304):
            self.done = True
        elif codings:
            self._framing = "chunked" if codings[-1] == "chunked" else "close"
        elif lengths:
            if len(set(lengths)) != 1 or not lengths[0].isdigit():
                raise ProbeError(f"an invalid Content-Length: {', '.join(lengths)[:40]!r}")
            self._framing, self._remaining = "length", int(lengths[0])
            if self._remaining == 0:
                self.done = True
        else:
            self._framing = "close"

    # ------------------------------------------------------------------ body
    def _read_body(self, closed: bool) -> None:
        if self._framing == "chunked":
            self._read_chunks()
        else:
            data = bytes(self._buffer)
            self._buffer.clear()
            if self._framing == "length":
                data = data[: self._remaining]
                self._remaining -= len(data)
            self._take(data)
            if self._framing == "length" and self._remaining == 0:
                self.done = True
        if not self.done and closed:
            if self._framing == "close":
                self.done = True
            else:
                raise ProbeError(f"the connection closed before the body was complete ({len(self.body)} bytes in)")

    def _take(self, data: bytes) -> None:
        room = self.body_limit - len(self.body)
        self.body += data[:room]
        if len(data) > room or (len(self.body) >= self.body_limit and self._more_due()):
            self.done = self.cut = True

    def _more_due(self) -> bool:
        if self._framing == "length":
            return self._remaining > 0
        return self._framing == "close" or self._chunk_state != "trailer"

    def _read_chunks(self) -> None:
        buffer = self._buffer
        while not self.done:
            if self._chunk_state == "data":
                data = bytes(buffer[: self._remaining])
                if not data:
                    return
                del buffer[: len(data)]
                self._remaining -= len(data)
                if self._remaining == 0:
                    self._chunk_state = "data-end"
                self._take(data)
                continue
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > 4096:
                    raise ProbeError("a chunk-size or trailer line is longer than 4096 bytes")
                return
            line = bytes(buffer[:end]).rstrip(b"\r")
            del buffer[: end + 1]
            if self._chunk_state == "data-end":
                if line:
                    raise ProbeError("a chunk did not end where its size said")
                self._chunk_state = "size"
            elif self._chunk_state == "size":
                size = line.split(b";", 1)[0].strip()
                if not _CHUNK_SIZE.fullmatch(size):
                    raise ProbeError(f"an invalid chunk size: {line[:40]!r}")
                self._remaining = int(size, 16)
                self._chunk_state = "data" if self._remaining else "trailer"
            elif not line:  # the blank line after the trailers: the end of the body
                self.done = True
