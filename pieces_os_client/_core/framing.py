"""Where a response body ends (RFC 9112, section 6.3): one decision for both clients, free of I/O.

:func:`body_framing` reads the status, the request method and the ``Content-Length`` and
``Transfer-Encoding`` field values of a final response head and says how its body is
delimited, or raises :class:`FramingError`:

* A response to ``HEAD``, and every ``1xx``, ``204`` and ``304``, has no body, whatever its
  fields say.
* ``Transfer-Encoding`` wins over ``Content-Length``, which is then ignored. The only transfer
  coding the clients read is ``chunked``, once; any other is an error (the body could not be
  undone).
* ``Content-Length`` must be decimal digits. Repeated values, as separate fields or as a
  comma-separated list, are one value when they are all equal; values that differ, or one
  that is not a number (negative, empty, ``abc``, ``+2``), make the framing invalid, which
  RFC 9112 calls an unrecoverable error: the answer is reported as malformed
  (``ResponseFormatError``) and its connection closed, never read as a success and never
  reported as a broken connection.
* With neither, the body lasts until the server closes the connection.

:class:`HeadScan` serves a transport whose HTTP parser is stricter than the RFC (aiohttp
refuses equal repeated ``Content-Length`` values, ``Transfer-Encoding`` beside
``Content-Length``, and lengths past 2**64): it finds each response head in the bytes of one
exchange, decides its framing with :func:`body_framing`, and hands the parser the head with
its framing fields in one plain form.
"""

from __future__ import annotations

import re
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

from urllib3 import HTTPHeaderDict

from pieces_os_client._core.exchange import is_interim
from pieces_os_client.exceptions import ResponseFormatError

__all__ = [
    "MAX_HEAD",
    "Framing",
    "FramingError",
    "HeadScan",
    "body_framing",
    "framing_error",
    "has_body",
    "head_end",
]

#: the longest response head held back while it is scanned (then the parser decides alone)
MAX_HEAD = 256 * 1024
#: Content-Length digits read as a number at most; a longer value (past 10**1000 bytes) is refused
_MAX_DIGITS = 1000
#: the longest Content-Length value handed on to a strict parser as it is (below 2**63)
_PLAIN_DIGITS = 18
_STATUS_LINE = re.compile(rb"HTTP/\d\.\d ([0-9]{3})(?: ([^\r\n]*))?")
_DIGITS = re.compile(r"[0-9]+").fullmatch
_AFTER_STATUS = (b" ", b"\r", b"\n")
#: how a folded line (obsolete) starts: it continues the field before it
_FOLDS = (b" ", b"\t")


class Framing(NamedTuple):
    """How a response body is delimited.

    ``length``: its size in bytes (0 for a response that has no body); ``None`` with
    ``chunked``: chunked transfer coding; ``None`` without: it lasts until the connection closes.
    """

    length: Optional[int]
    chunked: bool


NO_BODY = Framing(0, False)
CHUNKED = Framing(None, True)
UNTIL_CLOSE = Framing(None, False)


class FramingError(Exception):
    """A final response head whose framing is invalid (see the module docstring).

    Not an ``OSError``, ``ValueError`` or ``http.client.HTTPException``: it passes through
    urllib3 unchanged (urllib3 then closes the connection) and is never retried.
    ``status``, ``reason`` and ``fields`` are the head's, once :meth:`answered` has set them.
    """

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = 0
        self.reason: Optional[str] = None
        self.fields: Sequence[Tuple[str, str]] = ()

    def answered(self, status: int, reason: Optional[str], fields: Iterable[Tuple[str, str]]) -> FramingError:
        self.status, self.reason, self.fields = status, reason, list(fields)
        return self


def body_framing(
    status: int, *, head_request: bool, content_lengths: Sequence[str], transfer_encodings: Sequence[str],
) -> Framing:
    """How the body of a final response is delimited (see the module docstring).

    ``content_lengths`` and ``transfer_encodings``: the values of every field of that name, in order.

    :raises FramingError: the framing is invalid.
    """
    if not has_body(status, head_request=head_request):
        return NO_BODY
    if transfer_encodings:
        codings = [c.strip().lower() for value in transfer_encodings for c in value.split(",")]
        if codings == ["chunked"]:
            return CHUNKED
        shown = ", ".join(v.strip() for v in transfer_encodings)
        raise FramingError(f"Transfer-Encoding {shown!r}, which the client cannot read (it reads chunked only)")
    if not content_lengths:
        return UNTIL_CLOSE
    if len(content_lengths) == 1 and _plain_length(content_lengths[0]):
        return Framing(int(content_lengths[0]), False)  # the usual case: one plain value
    values = [v.strip() for field in content_lengths for v in field.split(",")]
    for value in values:
        if not _DIGITS(value) or len(value.lstrip("0")) > _MAX_DIGITS:
            raise FramingError(f"Content-Length {value!r} is not a number of bytes")
    lengths = {int(v) for v in values}
    if len(lengths) > 1:
        shown = ", ".join(repr(v) for v in values)
        raise FramingError(f"its Content-Length values differ ({shown})")
    return Framing(lengths.pop(), False)


def has_body(status: int, *, head_request: bool) -> bool:
    """False for a response that never has a body: to HEAD, or 1xx, 204, 304."""
    return not (head_request or status < 200 or status == 204 or status == 304)


def _plain_length(value: str) -> bool:
    """One Content-Length value as every parser takes it: digits only, below 2**63."""
    return len(value) <= _PLAIN_DIGITS and value.isascii() and value.isdigit()


def framing_error(host: str, exc: FramingError) -> ResponseFormatError:
    """The SDK error for a response whose framing is invalid: the same from both clients."""
    headers = HTTPHeaderDict()
    for name, value in exc.fields:
        headers.add(name, value)
    return ResponseFormatError(
        f"Pieces OS at {host} answered {exc.status} with a malformed response: {exc.problem}, so where "
        "its body ends cannot be known (RFC 9112, section 6.3). The body was not read and the "
        "connection was closed.",
        status=exc.status, reason=exc.reason, body=None, headers=headers, content_type=headers.get("Content-Type"),
    )


def _head_end(data: Union[bytes, bytearray], start: int) -> int:
    """The index just past the empty line that ends the head in ``data`` (searched from ``start``), or -1."""
    crlf = data.find(b"\n\r\n", start)
    bare = data.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(data))  # lines ended by LF alone
    if bare >= 0:
        return bare + 2
    return crlf + 3 if crlf >= 0 else -1


#: the index just past the empty line that ends a head, searched from a start (-1: not there yet)
head_end = _head_end


class _Head(NamedTuple):
    status: int
    reason: Optional[str]
    fields: List[Tuple[str, str]]
    #: (index in fields) of each Content-Length and Transfer-Encoding field
    framing_fields: List[int]


def _parse_head(head: bytes) -> Optional[_Head]:
    """The status, reason and fields of one head; None for one that is not an HTTP/1 head."""
    lines = head.split(b"\n")
    match = _STATUS_LINE.fullmatch(lines[0].rstrip(b"\r"))
    if match is None:
        return None
    reason = match.group(2)
    fields: List[Tuple[str, str]] = []
    framing_fields: List[int] = []
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t"):  # an obsolete folded line continues the field before it
            if not fields:
                return None
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip().decode('latin-1')}")
            continue
        raw_name, colon, raw_value = line.partition(b":")
        if not colon:
            return None
        name = raw_name.decode("latin-1")
        if name.strip().lower() in ("content-length", "transfer-encoding"):
            framing_fields.append(len(fields))
        fields.append((name, raw_value.strip().decode("latin-1")))
    return _Head(int(match.group(1)), reason.decode("latin-1") if reason is not None else None, fields,
                 framing_fields)


class HeadScan:
    """The response heads of one exchange, picked out of its bytes as they arrive.

    Call :meth:`start` when the request is about to go, then hand every chunk received to
    :meth:`feed` and pass on what it returns. A head is held back until it is whole (at most
    :data:`MAX_HEAD` bytes; past that, and for bytes that are not an HTTP/1 head, scanning
    stops and the bytes go on as they came). Interim answers pass on one by one. When the
    final head is whole, ``framing`` holds the decision; if its framing fields were not in a
    plain form (one ``Content-Length`` of at most 18 digits, or ``Transfer-Encoding: chunked``
    alone), they are replaced by one that says the same (none at all for a length past 2**63:
    the body then ends at the connection's close, and the caller reads it against ``framing``),
    and ``fields`` keeps the head's fields as they came. When the framing is invalid,
    ``error`` is set and nothing more is returned: the caller closes the connection and
    raises :func:`framing_error`.
    """

    __slots__ = ("_head_request", "_held", "active", "error", "fields", "framing")

    def __init__(self) -> None:
        self.active = False
        self._head_request = False
        self._held = b""
        self.framing: Optional[Framing] = None
        self.fields: Optional[List[Tuple[str, str]]] = None
        self.error: Optional[FramingError] = None

    def start(self, *, head_request: bool) -> None:
        """A new exchange: the next bytes are the start of its answer."""
        self.active = True
        self._head_request = head_request
        self._held = b""
        self.framing = None
        self.fields = None
        self.error = None

    def feed(self, data: bytes) -> bytes:
        """The bytes to hand to the HTTP parser for ``data`` (received next)."""
        if not self.active:
            return data if self.error is None else b""
        held = self._held
        buffer = held + data if held else data
        start = max(0, len(held) - 2)
        out: List[bytes] = []
        while True:
            end = _head_end(buffer, start)
            if end < 0:
                if len(buffer) > MAX_HEAD:
                    return self._stop(out, buffer)
                self._held = buffer
                return b"".join(out)
            raw = buffer[:end]
            quick = self._quick(raw)
            if quick is not None:
                interim, passed = quick
            else:
                head = _parse_head(raw)
                if head is None:
                    return self._stop(out, buffer)
                interim = is_interim(head.status)
                passed = self._decide(head, raw, final=not interim)
            if self.error is not None:
                self.active = False
                self._held = b""
                return b""
            out.append(passed)
            buffer, start = buffer[end:], 0
            if not interim:
                self.active = False
                self._held = b""
                out.append(buffer)
                return b"".join(out)

    def _stop(self, out: List[bytes], buffer: bytes) -> bytes:
        self.active = False
        self._held = b""
        out.append(buffer)
        return b"".join(out)

    def _quick(self, raw: bytes) -> Optional[Tuple[bool, bytes]]:
        """(interim, ``raw``) for a head whose framing fields are already plain (the usual case),
        found without splitting it into fields; None for any other head."""
        if raw[:5] != b"HTTP/" or raw[8:9] != b" " or not raw[9:12].isdigit() or raw[12:13] not in _AFTER_STATUS:
            return None
        lower = raw.lower()
        length_at = lower.find(b"\ncontent-length:")
        coding_at = lower.find(b"\ntransfer-encoding:")
        value = ""
        if length_at >= 0:
            if coding_at >= 0 or lower.find(b"\ncontent-length:", length_at + 16) >= 0:
                return None
            end = raw.index(b"\n", length_at + 16)
            value = raw[length_at + 16:end].strip().decode("latin-1")
            if not _plain_length(value) or raw[end + 1:end + 2] in _FOLDS:
                return None
        elif coding_at >= 0:
            if lower.find(b"\ntransfer-encoding:", coding_at + 19) >= 0:
                return None
            end = raw.index(b"\n", coding_at + 19)
            value = raw[coding_at + 19:end].strip().decode("latin-1")
            if value.lower() != "chunked" or raw[end + 1:end + 2] in _FOLDS:
                return None
        status = int(raw[9:12])
        interim = is_interim(status)
        # the decision itself is body_framing's, as for any head
        framing = body_framing(status, head_request=self._head_request or interim,
                               content_lengths=(value,) if length_at >= 0 else (),
                               transfer_encodings=(value,) if coding_at >= 0 else ())
        if not interim:
            self.framing = framing
        return interim, raw

    def _decide(self, head: _Head, raw: bytes, *, final: bool) -> bytes:
        """``raw`` (one head) as the parser gets it; for a final head, ``framing`` or ``error`` set."""
        fields = head.fields
        lengths = [value for index in head.framing_fields
                   for name, value in (fields[index],) if name.strip().lower() == "content-length"]
        codings = [value for index in head.framing_fields
                   for name, value in (fields[index],) if name.strip().lower() == "transfer-encoding"]
        head_request = self._head_request or not final
        try:
            framing = body_framing(head.status, head_request=head_request,
                                   content_lengths=lengths, transfer_encodings=codings)
        except FramingError as exc:
            self.error = exc.answered(head.status, head.reason, fields)
            return b""
        if final:
            self.framing = framing
        plain = (
            not head.framing_fields
            or (len(lengths) == 1 and not codings and _plain_length(lengths[0]))
            or (len(codings) == 1 and not lengths and codings[0].lower() == "chunked")
        )
        if plain:
            return raw
        if final:
            self.fields = list(fields)
        lines = [raw.split(b"\n", 1)[0].rstrip(b"\r")]
        skip = set(head.framing_fields)
        lines.extend(f"{name}:{' ' if value else ''}{value}".encode("latin-1")
                     for index, (name, value) in enumerate(fields) if index not in skip)
        if framing.chunked:
            lines.append(b"Transfer-Encoding: chunked")
        elif (has_body(head.status, head_request=head_request) and framing.length is not None
              and framing.length < 10**_PLAIN_DIGITS):
            lines.append(b"Content-Length: %d" % framing.length)
        return b"\r\n".join(lines) + b"\r\n\r\n"

