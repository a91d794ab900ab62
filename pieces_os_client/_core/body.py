"""Reading a response body within the client's limits, free of I/O (both transports feed it).

A transport makes a :class:`BodyReader` once the head has arrived, hands it each chunk as
read from the wire (:meth:`BodyReader.feed`) and asks for the body at the end
(:meth:`BodyReader.finish`). The reader decides the content coding (only codings the request
asked for, gzip or deflate, one at a time), decodes step by step, counts the decoded bytes
against ``max_response_size`` and raises the SDK's ``ResponseTooLargeError`` /
``ResponseFormatError`` with the same messages whichever transport read the bytes.
"""

from __future__ import annotations

import zlib
from typing import Any, Iterator, List, Mapping, NamedTuple, Optional, Tuple, Type

from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from pieces_os_client._core.failures import body_broken_error, body_timeout_error, reason_text
from pieces_os_client._core.headers import accepted_codings
from pieces_os_client.exceptions import OpenApiException, ResponseFormatError, ResponseTooLargeError

__all__ = ["CHUNK", "ENCODED_CHUNK", "BodyReader", "BodyTerms", "Inflater", "decode_error", "size_text"]

#: read size while a body is counted against a limit or a deadline
CHUNK = 1024 * 1024
#: compressed bytes handed to the decompressor at a time
ENCODED_CHUNK = 64 * 1024
#: zlib window settings per content coding (47: a gzip header, detected automatically)
INFLATE_WBITS = {"gzip": 47, "x-gzip": 47, "deflate": zlib.MAX_WBITS}


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size} bytes, {size / scale:g} {unit}"
    return f"{size} bytes"


def _has_zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


class Inflater:
    """Undoes gzip or deflate in steps of at most CHUNK bytes, so the caller can stop at a limit."""

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._wbits = INFLATE_WBITS[coding]
        self._zlib: Optional[Any] = None
        self._pending = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data or self._pending:
            if self._zlib is None or self._zlib.eof:
                if self._zlib is not None and self.coding == "deflate":
                    return  # bytes after the end of a deflate stream are not part of it
                # (gzip allows several members, one after another)
                wbits = self._wbits
                if wbits == zlib.MAX_WBITS and not _has_zlib_header(data):
                    wbits = -zlib.MAX_WBITS  # "deflate" sent as a raw stream, as some servers do
                self._zlib = zlib.decompressobj(wbits)
            try:
                out = self._zlib.decompress(data, CHUNK)
            except zlib.error as exc:
                raise self._error(exc) from exc
            if out:
                yield out
            # a full output step may leave output inside zlib with no input left: ask again
            self._pending = len(out) == CHUNK and not self._zlib.eof
            data = self._zlib.unused_data if self._zlib.eof else self._zlib.unconsumed_tail

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof:
            raise self._error(zlib.error("the compressed stream ended early"))

    def _error(self, exc: BaseException) -> DecodeError:
        return DecodeError(f"the {self.coding} body could not be decompressed: {exc}")


def decode_error(status: int, reason: Optional[str], headers: Mapping[str, str], text: str) -> ResponseFormatError:
    """The error for a body whose content coding could not be undone."""
    return ResponseFormatError(
        f"Pieces OS answered {status} with a body that could not be decoded "
        f"(Content-Encoding: {headers.get('Content-Encoding', '(none)')}): {text}",
        status=status, reason=reason, body=None, headers=headers, content_type=headers.get("Content-Type"),
    )


class BodyReader:
    """One response body, fed chunk by chunk.

    :param headers: the response headers (case-insensitive mapping), kept on any error raised.
    :param accept_encoding: what the request's ``Accept-Encoding`` allowed (``None``: identity only).
    :param content_length: the declared length of the body as it arrives on the wire, if any.
    :raises ResponseFormatError: from the constructor, for a content coding not asked for or not supported.
    :raises ResponseTooLargeError: from the constructor, for a declared length above ``max_size``.
    """

    __slots__ = ("_held", "_host", "_limit", "_parts", "content_length", "headers", "inflater", "reason",
                 "received", "status")

    def __init__(
        self, status: int, reason: Optional[str], headers: Mapping[str, str], host: str, *,
        max_size: Optional[int], accept_encoding: Optional[str], content_length: Optional[int],
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._host = host
        self._limit = max_size
        self.content_length = content_length
        self.received = 0
        self._held = 0
        self._parts: List[bytes] = []
        self.inflater = self._choose_inflater(accept_encoding)
        if max_size is not None and content_length is not None and content_length > max_size:
            raise self._too_large(f"its Content-Length is {content_length} bytes")

    def read_size(self, *, bounded_time: bool) -> int:
        """How many bytes to ask the wire for next."""
        if self.inflater is not None:
            size = ENCODED_CHUNK
        elif self.content_length is not None and not bounded_time:
            size = max(self.content_length, 1)  # the common case: the whole body in one read
        else:
            size = CHUNK
        if self.inflater is None and self._limit is not None:
            size = min(size, self._limit - self._held + 1)
        return size

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes from the wire (still in their content coding)."""
        self.received += len(chunk)
        limit = self._limit
        inflater = self.inflater
        for piece in inflater.feed(chunk) if inflater is not None else (chunk,):
            self._held += len(piece)
            if limit is not None and self._held > limit:
                raise self._too_large(
                    f"it decompresses ({inflater.coding}) to more than that" if inflater is not None
                    else "more than that arrived, and the client stopped reading"
                )
            self._parts.append(piece)

    def finish(self) -> bytes:
        """The whole decoded body, once the wire said it ended.

        :raises ProtocolError: fewer bytes than the Content-Length arrived.
        :raises DecodeError: the compressed stream ended early.
        """
        short = self.cut_short()
        if short is not None:
            raise short
        if self.inflater is not None:
            self.inflater.finish()
        parts = self._parts
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def cut_short(self) -> Optional[ProtocolError]:
        """The error for a body that ended before its Content-Length, if it did (None otherwise).

        A transport whose library reports an early end its own way maps that onto this one.
        """
        length = self.content_length
        if length is None or self.received >= length:
            return None
        return ProtocolError(
            f"Connection broken: IncompleteRead({self.received} bytes read, {length - self.received} more expected)"
        )

    def _choose_inflater(self, accept_encoding: Optional[str]) -> Optional[Inflater]:
        if "Content-Encoding" not in self.headers:  # the usual case, found without a KeyError inside get()
            return None
        header = self.headers.get("Content-Encoding")
        if not header:
            return None
        codings = [c.strip().lower() for c in header.split(",") if c.strip().lower() not in ("", "identity")]
        if not codings:
            return None
        accepted = accepted_codings(accept_encoding)
        sent = accept_encoding or "identity"
        if any(c not in accepted and "*" not in accepted for c in codings):
            problem = (
                f"in Content-Encoding {header!r}, which the client did not ask for (it sent "
                f"Accept-Encoding: {sent}); it was not decoded. To accept gzip, send the header "
                "_headers={'Accept-Encoding': 'gzip'}"
            )
        elif len(codings) > 1 or codings[0] not in INFLATE_WBITS:
            problem = (
                f"in Content-Encoding {header!r}; the client decodes only gzip and deflate (one "
                "coding); read it with a *_without_preload_content method"
            )
        else:
            return Inflater(codings[0])
        raise ResponseFormatError(
            f"Pieces OS at {self._host} answered {self.status} with a body {problem}.",
            status=self.status, reason=self.reason, body=None, headers=self.headers,
            content_type=self.headers.get("Content-Type"),
        )

    def _too_large(self, detail: str) -> ResponseTooLargeError:
        limit = self._limit or 0
        return ResponseTooLargeError(
            f"The response from {self._host} (status {self.status}) is larger than "
            f"max_response_size allows ({size_text(limit)}): {detail}. Raise "
            "Configuration.max_response_size, or set it to None to lift the limit.",
            status=self.status, reason=self.reason, headers=self.headers,
            content_type=self.headers.get("Content-Type"), limit=limit, host=self._host,
        )


class BodyTerms(NamedTuple):
    """What one response's body is read against, fixed when the request is sent.

    ``deadline``: a ``time.monotonic()`` value from a numeric ``_request_timeout`` (that many
    ``request_timeout`` seconds), or ``None``; ``accept_encoding``: what the request allowed.
    """

    host: str
    max_size: Optional[int]
    accept_encoding: Optional[str]
    deadline: Optional[float]
    request_timeout: Optional[float]

    def reader(
        self, status: int, reason: Optional[str], headers: Mapping[str, str], content_length: Optional[int]
    ) -> BodyReader:
        return BodyReader(status, reason, headers, self.host, max_size=self.max_size,
                          accept_encoding=self.accept_encoding, content_length=content_length)

    def failure(
        self, exc: BaseException, status: int, reason: Optional[str], headers: Mapping[str, str],
        timeouts: Tuple[Type[BaseException], ...] = (TimeoutError, ReadTimeoutError),
    ) -> BaseException:
        """The SDK error for a body read that failed with ``exc`` (an SDK error as it is).

        ``timeouts``: what the transport raises when a read waited too long.
        """
        if isinstance(exc, OpenApiException):
            return exc
        if isinstance(exc, DecodeError):
            return decode_error(status, reason, headers, reason_text(exc))
        if isinstance(exc, timeouts):
            return body_timeout_error(self.host, status, self.request_timeout if self.deadline is not None else None)
        return body_broken_error(self.host, status, exc)
