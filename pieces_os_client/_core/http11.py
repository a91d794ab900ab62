"""One HTTP/1.1 exchange on a client connection, free of I/O: the request head to write, and the
answer read from the bytes a transport hands over.

The asyncio client sends what :func:`request_head` writes and feeds every chunk it receives to
a :class:`ResponseReader`, which finds the final response head (interim ``1xx`` answers skipped,
``_core.exchange``), decides where its body ends with :func:`~pieces_os_client._core.framing.body_framing`
(RFC 9112, section 6.3, the sync client's decision) and hands out the body, undoing chunked
transfer coding. It says whether the connection may carry another exchange afterwards.

What it raises means what http.client raises for the sync client: an answer that is not
HTTP/1 (``BadStatusLine``), a line past :data:`~pieces_os_client._core.exchange.MAX_LINE`
(``LineTooLong``), too many header lines, a ``101`` nobody asked for (``HTTPException``), a
connection closed before the head ended (``RemoteDisconnected``), and
:class:`~pieces_os_client._core.framing.FramingError` for framing that cannot be read. A chunked
body cut short, or one with a malformed chunk, is a urllib3 ``ProtocolError`` as urllib3 reports it.
"""

from __future__ import annotations

import http.client
from typing import Iterable, List, Mapping, NamedTuple, Optional, Tuple

from urllib3.exceptions import ProtocolError

from pieces_os_client._core.exchange import MAX_INTERIM_HEADER_LINES, MAX_LINE, is_interim
from pieces_os_client._core.framing import (
    MAX_HEAD,
    SWITCHED_PROTOCOLS,
    Framing,
    FramingError,
    body_framing,
    head_end,
)

__all__ = ["MAX_HEADERS", "Answer", "ResponseReader", "request_head"]

#: header lines of a final head before it is refused (as http.client)
MAX_HEADERS = 100
#: the longest chunk-size line or trailer line read
_MAX_CHUNK_LINE = MAX_LINE


def request_head(
    method: str, target: str, authority: str, headers: Mapping[str, object], body_length: Optional[int],
) -> bytes:
    """The request line and header fields, ``Host`` first (headers already checked: ``check_headers``).

    ``body_length``: the ``Content-Length`` to send (None: none).
    """
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {authority}\r\n"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}\r\n")
    if body_length is not None:
        lines.append(f"Content-Length: {body_length}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


class Answer(NamedTuple):
    """A final response head: its status, reason, fields as they came (Latin-1) and framing."""

    status: int
    reason: str
    fields: List[Tuple[str, str]]
    framing: Framing
    #: the connection may carry another exchange once this body was read to the end
    keep_alive: bool


def _connection_tokens(fields: Iterable[Tuple[str, str]]) -> List[str]:
    return [token.strip().lower() for name, value in fields if name.lower() == "connection"
            for token in value.split(",")]


class ResponseReader:
    """The answer to one request, from the bytes its connection receives.

    :meth:`feed` every chunk received (and :meth:`feed_eof` when the connection ended), then
    ask :meth:`head` until it gives the final head, then :meth:`body` until it gives ``b""``
    (the end of the body). ``None`` from either: more bytes are needed. ``received`` counts
    every byte fed, interim answers included.
    """

    __slots__ = ("_buffer", "_chunk_left", "_eof", "_head_request", "_left", "_scan_from", "_state", "answer",
                 "complete", "received")

    def __init__(self, *, head_request: bool) -> None:
        self._head_request = head_request
        self._buffer = bytearray()
        self._eof = False
        self._scan_from = 0
        #: "head", "length", "chunk-size", "chunk-data", "chunk-end", "trailer", "close", "done"
        self._state = "head"
        self._left = 0
        self._chunk_left = 0
        self.received = 0
        self.answer: Optional[Answer] = None
        #: the body was read to its end as framed (False for one that ended with the connection early)
        self.complete = False

    def feed(self, data: bytes) -> None:
        self.received += len(data)
        self._buffer += data

    def feed_eof(self) -> None:
        self._eof = True

    @property
    def reusable(self) -> bool:
        """The body was read to its end, the connection may be kept, and nothing followed the body."""
        answer = self.answer
        return (self._state == "done" and self.complete and answer is not None and answer.keep_alive
                and not self._buffer and not self._eof)

    # ---------------------------------------------------------------- the head
    def head(self) -> Optional[Answer]:
        """The final response head once it is whole (interim answers skipped); None: more bytes needed.

        :raises FramingError: the head's framing is invalid (``status``, ``reason``, ``fields`` set).
        :raises http.client.HTTPException: an answer that cannot be read as HTTP/1.
        """
        if self.answer is not None:
            return self.answer
        buffer = self._buffer
        while True:
            end = head_end(buffer, self._scan_from)
            if end < 0:
                self._check_partial(buffer)
                if self._eof:
                    if not buffer and self.received == 0:
                        raise http.client.RemoteDisconnected("Remote end closed connection without response")
                    raise http.client.RemoteDisconnected(
                        "Remote end closed connection in the middle of the response head")
                self._scan_from = max(0, len(buffer) - 2)
                return None
            raw = bytes(buffer[:end])
            del buffer[:end]
            self._scan_from = 0
            status, reason, version, fields = _parse(raw)
            if is_interim(status):
                if len(fields) > MAX_INTERIM_HEADER_LINES:
                    raise http.client.HTTPException(
                        f"an interim answer had more than {MAX_INTERIM_HEADER_LINES} header lines")
                continue
            if status == 101:
                raise http.client.HTTPException(
                    SWITCHED_PROTOCOLS)
            return self._final(status, reason, version, fields)

    def _check_partial(self, buffer: bytearray) -> None:
        """A head still incomplete: refuse it once it cannot be one (too long, not HTTP/1)."""
        if len(buffer) > MAX_HEAD:
            raise http.client.HTTPException(f"the response head is longer than {MAX_HEAD} bytes")
        if len(buffer) >= 5 and buffer[:5] != b"HTTP/":
            line = bytes(buffer[:80]).split(b"\n", 1)[0]
            raise http.client.BadStatusLine(repr(line.decode("latin-1")))
        newline = buffer.rfind(b"\n")
        if len(buffer) - newline - 1 > MAX_LINE:
            raise http.client.LineTooLong("header line")

    def _final(self, status: int, reason: str, version: int, fields: List[Tuple[str, str]]) -> Answer:
        if len(fields) > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        lengths: List[str] = []
        codings: List[str] = []
        connection: List[str] = []
        for name, value in fields:
            lowered = name.lower()
            if lowered == "content-length":
                lengths.append(value)
            elif lowered == "transfer-encoding":
                codings.append(value)
            elif lowered == "connection":
                connection.append(value)
        try:
            framing = body_framing(status, head_request=self._head_request, content_lengths=lengths,
                                   transfer_encodings=codings)
        except FramingError as exc:
            raise exc.answered(status, reason, fields) from None
        tokens = _connection_tokens(("connection", value) for value in connection) if connection else []
        keep_alive = ("close" not in tokens) and (version >= 11 or "keep-alive" in tokens)
        if framing.length is None and not framing.chunked:
            keep_alive = False  # the body ends with the connection
        if framing.chunked:
            self._state = "chunk-size"
        elif framing.length is not None:
            self._left = framing.length
            self._state = "length" if framing.length else "done"
            self.complete = not framing.length
        else:
            self._state = "close"
        self.answer = Answer(status, reason, fields, framing, keep_alive)
        return self.answer

    # ---------------------------------------------------------------- the body
    def body(self, size: int) -> Optional[bytes]:
        """At most ``size`` bytes of the body (as sent, content coding kept); ``b""``: it ended;
        None: more bytes are needed. A body with a length that the connection's end cut short
        ends (``b""``) with ``complete`` False: the caller reports how much was missing.

        :raises ProtocolError: a chunked body cut short or malformed.
        """
        state = self._state
        buffer = self._buffer
        if state == "length":
            if buffer:
                take = min(size, self._left, len(buffer))
                chunk = bytes(buffer[:take]) if take < len(buffer) else bytes(buffer)
                del buffer[:take]
                self._left -= take
                if not self._left:
                    self._state = "done"
                    self.complete = True
                return chunk
            if self._eof:
                self._state = "done"
                return b""
            return None
        if state == "close":
            if buffer:
                chunk = bytes(buffer[:size])
                del buffer[:size]
                return chunk
            if self._eof:
                self._state = "done"
                self.complete = True
                return b""
            return None
        if state == "done":
            return b""
        return self._chunked(size)

    def _chunked(self, size: int) -> Optional[bytes]:
        buffer = self._buffer
        while True:
            state = self._state
            if state == "chunk-data":
                if not buffer:
                    self._check_eof()
                    return None
                take = min(size, self._chunk_left, len(buffer))
                chunk = bytes(buffer[:take])
                del buffer[:take]
                self._chunk_left -= take
                if not self._chunk_left:
                    self._state = "chunk-end"
                return chunk
            line = self._line()
            if line is None:
                self._check_eof()
                return None
            if state == "chunk-size":
                digits = line.split(b";", 1)[0].strip()
                try:
                    if not digits or len(digits) > 16:
                        raise ValueError(digits)
                    length = int(digits, 16)
                    if length < 0:
                        raise ValueError(digits)
                except ValueError:
                    raise ProtocolError(f"Invalid chunk length: {bytes(line)[:40]!r}") from None
                if length:
                    self._chunk_left = length
                    self._state = "chunk-data"
                else:
                    self._state = "trailer"
            elif state == "chunk-end":
                if line:
                    raise ProtocolError("Invalid chunk: its data did not end with a line break")
                self._state = "chunk-size"
            else:  # trailer fields, up to an empty line
                if not line:
                    self._state = "done"
                    self.complete = True
                    return b""

    def _line(self) -> Optional[bytes]:
        buffer = self._buffer
        newline = buffer.find(b"\n")
        if newline < 0:
            if len(buffer) > _MAX_CHUNK_LINE:
                raise ProtocolError("a chunk-size or trailer line is too long")
            return None
        line = bytes(buffer[:newline]).rstrip(b"\r")
        del buffer[:newline + 1]
        return line

    def _check_eof(self) -> None:
        """More bytes of a chunked body are needed: :raises ProtocolError: none will come."""
        if self._eof:
            raise ProtocolError("Response ended prematurely")


def _parse(raw: bytes) -> Tuple[int, str, int, List[Tuple[str, str]]]:
    """Status, reason, version (10 or 11) and fields (Latin-1, obsolete folds joined) of one head."""
    lines = raw.split(b"\n")
    first = lines[0].rstrip(b"\r")
    if (first[:5] != b"HTTP/" or first[6:7] != b"." or first[8:9] != b" " or not first[5:6].isdigit()
            or not first[7:8].isdigit() or not first[9:12].isdigit() or first[12:13] not in (b"", b" ")):
        raise http.client.BadStatusLine(repr(first[:80].decode("latin-1")))
    if len(first) > MAX_LINE:
        raise http.client.LineTooLong("status line")
    status = int(first[9:12])
    reason = first[13:].decode("latin-1")
    version = int(first[5:6]) * 10 + int(first[7:8])
    fields: List[Tuple[str, str]] = []
    for raw_line in lines[1:]:
        line = raw_line.rstrip(b"\r")
        if not line:
            break
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line[:1] in (b" ", b"\t"):  # an obsolete folded line continues the field before it
            if not fields:
                raise http.client.HTTPException("the response head starts with a folded line")
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip().decode('latin-1')}")
            continue
        raw_name, colon, raw_value = line.partition(b":")
        if not colon:
            raise http.client.HTTPException(f"a header line without a colon: {line[:40].decode('latin-1')!r}")
        fields.append((raw_name.decode("latin-1"), raw_value.strip().decode("latin-1")))
    return status, reason, version, fields
