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

The sync client asks it from its reader of http.client's heads (``_wire``), the asyncio
client from its own HTTP/1.1 reader (``_core.http11``).
"""

from __future__ import annotations

import re
from typing import Iterable, NamedTuple, Optional, Sequence, Tuple, Union

from urllib3 import HTTPHeaderDict

from pieces_os_client.exceptions import ResponseFormatError

__all__ = [
    "MAX_HEAD",
    "SWITCHED_PROTOCOLS",
    "Framing",
    "FramingError",
    "body_framing",
    "framing_error",
    "has_body",
    "head_end",
]

#: the longest response head the asyncio client's reader takes (a longer one is refused)
MAX_HEAD = 256 * 1024
#: Content-Length digits read as a number at most; a longer value (past 10**1000 bytes) is refused
_MAX_DIGITS = 1000
#: the longest Content-Length value handed on to a strict parser as it is (below 2**63)
_PLAIN_DIGITS = 18
_DIGITS = re.compile(r"[0-9]+").fullmatch


#: why an exchange answered ``101`` is broken: the request asked for no switch of protocols, so
#: what follows on the connection is not HTTP (both clients raise ``http.client.HTTPException``
#: with this text, which reaches the user as a broken connection, never as an error status)
SWITCHED_PROTOCOLS = "the server switched protocols (101) on a request that asked for no switch"


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


