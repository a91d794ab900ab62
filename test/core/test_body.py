"""``_core.body``: a response body read within the client's limits, fed chunk by chunk as a
transport would (docs/threads-processes-limits.md, "Response size" and "Content encodings";
docs/errors.md for the messages). No socket: the chunks are made up."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from typing import Dict, Optional, Tuple

import pytest
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError

from pieces_os_client._core.body import CHUNK, ENCODED_CHUNK, BodyReader, BodyTerms, size_text
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiTimeoutError,
    ResponseFormatError,
    ResponseTooLargeError,
    ServiceException,
)

HOST = "http://localhost:39300"
JSON = {"Content-Type": "application/json"}
LIMIT_ADVICE = "Raise Configuration.max_response_size, or set it to None to lift the limit."


def reader(
    headers: Optional[Dict[str, str]] = None, *, limit: Optional[int] = 1024, accept: Optional[str] = None,
    length: Optional[int] = None, status: int = 200,
) -> BodyReader:
    return BodyReader(status, "OK", headers if headers is not None else JSON, HOST, max_size=limit,
                      accept_encoding=accept, content_length=length)


def feed_all(body: BodyReader, data: bytes, step: int) -> None:
    for start in range(0, len(data), step):
        body.feed(data[start:start + step])


# --------------------------------------------------------------------------- sizes
@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1024 bytes, 1 KiB"),
        (1536, "1536 bytes, 1.5 KiB"),
        (268435456, "268435456 bytes, 256 MiB"),
        (1 << 30, "1073741824 bytes, 1 GiB"),
    ],
)
def test_sizes_are_shown_in_bytes_and_in_the_largest_unit(size: int, text: str) -> None:
    assert size_text(size) == text


# --------------------------------------------------------------------------- plain bodies
def test_a_body_fed_in_pieces_comes_back_whole() -> None:
    body = reader(length=11)
    for piece in (b"hello", b" ", b"world"):
        body.feed(piece)
    assert body.finish() == b"hello world"
    assert body.received == 11


def test_a_body_with_no_declared_length_ends_when_the_wire_says_so() -> None:
    body = reader()
    body.feed(b"{}")
    assert body.finish() == b"{}"
    assert reader().finish() == b""


def test_a_declared_length_above_the_limit_fails_before_any_byte_is_read() -> None:
    with pytest.raises(ResponseTooLargeError) as caught:
        reader(limit=10, length=11)
    error = caught.value
    assert str(error) == (
        f"The response from {HOST} (status 200) is larger than max_response_size allows (10 bytes): its "
        f"Content-Length is 11 bytes. {LIMIT_ADVICE}")
    assert (error.limit, error.host, error.status, error.reason, error.content_type) == (
        10, HOST, 200, "OK", "application/json")
    assert isinstance(error, ResponseFormatError) and error.body is None


def test_a_declared_length_at_the_limit_is_read() -> None:
    body = reader(limit=10, length=10)
    body.feed(b"0123456789")
    assert body.finish() == b"0123456789"


def test_a_body_growing_past_the_limit_fails_as_soon_as_it_passes() -> None:
    body = reader(limit=4096)
    body.feed(b"x" * 4000)
    body.feed(b"x" * 96)  # exactly at the limit: still fine
    with pytest.raises(ResponseTooLargeError) as caught:
        body.feed(b"x")
    assert str(caught.value) == (  # the message of docs/errors.md, at this limit
        f"The response from {HOST} (status 200) is larger than max_response_size allows (4096 bytes, 4 KiB): "
        f"more than that arrived, and the client stopped reading. {LIMIT_ADVICE}")
    assert caught.value.limit == 4096


def test_no_limit_reads_whatever_arrives() -> None:
    body = reader(limit=None, length=5 * CHUNK)
    feed_all(body, bytes(5 * CHUNK), CHUNK)
    assert len(body.finish()) == 5 * CHUNK


def test_an_error_status_is_named_in_the_size_error() -> None:
    with pytest.raises(ResponseTooLargeError, match=r"\(status 500\)"):
        reader(limit=1, length=2, status=500)


def test_fewer_bytes_than_declared_is_a_body_cut_short() -> None:
    body = reader(length=4096, limit=None)
    body.feed(b"x" * 20)
    with pytest.raises(ProtocolError) as caught:
        body.finish()
    assert str(caught.value) == "Connection broken: IncompleteRead(20 bytes read, 4076 more expected)"
    # and the SDK error both clients raise for it, as docs/errors.md shows it
    failure = terms().failure(caught.value, 200, "OK", JSON)
    assert type(failure) is ApiConnectionError
    assert str(failure) == (
        f"The connection to {HOST} broke while reading the response body (status 200): Connection broken: "
        "IncompleteRead(20 bytes read, 4076 more expected)")


# --------------------------------------------------------------------------- how much to read
def test_a_declared_body_is_asked_for_in_one_read_unless_time_is_bounded() -> None:
    assert reader(length=300, limit=None).read_size(bounded_time=False) == 300
    assert reader(length=0, limit=None).read_size(bounded_time=False) == 1
    assert reader(length=300, limit=None).read_size(bounded_time=True) == CHUNK
    assert reader(limit=None).read_size(bounded_time=False) == CHUNK


def test_a_read_never_asks_for_more_than_one_byte_past_the_limit() -> None:
    body = reader(limit=100, length=100)
    assert body.read_size(bounded_time=False) == 100
    body.feed(b"x" * 60)
    assert body.read_size(bounded_time=False) == 41
    assert reader(limit=100).read_size(bounded_time=True) == 101


def test_a_compressed_body_is_read_in_encoded_steps_whatever_the_limit() -> None:
    body = reader({"Content-Encoding": "gzip"}, accept="gzip", limit=10, length=8)
    assert body.read_size(bounded_time=False) == ENCODED_CHUNK
    assert reader({"Content-Encoding": "gzip"}, accept="gzip", limit=None).read_size(bounded_time=True) == (
        ENCODED_CHUNK)


# --------------------------------------------------------------------------- content codings
@pytest.mark.parametrize("header", ["identity", "", " , identity"])
def test_identity_is_no_coding(header: str) -> None:
    body = reader({"Content-Encoding": header})
    assert body.inflater is None
    body.feed(b"plain")
    assert body.finish() == b"plain"


def test_a_coding_not_asked_for_is_refused_unread_with_the_documented_message() -> None:
    with pytest.raises(ResponseFormatError) as caught:
        reader({"Content-Encoding": "gzip", "Content-Type": "application/json"}, accept=None)
    error = caught.value
    assert type(error) is ResponseFormatError
    assert str(error) == (
        f"Pieces OS at {HOST} answered 200 with a body in Content-Encoding 'gzip', which the client did not "
        "ask for (it sent Accept-Encoding: identity); it was not decoded. To accept gzip, send the header "
        "_headers={'Accept-Encoding': 'gzip'}.")
    assert (error.status, error.content_type, error.body) == (200, "application/json", None)


def test_a_coding_refused_by_q_zero_or_asked_for_another_is_not_decoded() -> None:
    with pytest.raises(ResponseFormatError, match=r"it sent Accept-Encoding: gzip;q=0\)"):
        reader({"Content-Encoding": "gzip"}, accept="gzip;q=0")
    with pytest.raises(ResponseFormatError, match="'deflate', which the client did not ask for"):
        reader({"Content-Encoding": "deflate"}, accept="gzip")


def test_the_refusal_comes_whatever_the_status() -> None:
    with pytest.raises(ResponseFormatError, match="answered 500 with a body in Content-Encoding 'gzip'"):
        reader({"Content-Encoding": "gzip"}, status=500)


@pytest.mark.parametrize(("header", "accept"), [("br", "br"), ("gzip, deflate", "gzip, deflate"),
                                                 ("zstd", "*")])
def test_codings_the_client_cannot_undo_are_refused_even_when_asked_for(header: str, accept: str) -> None:
    with pytest.raises(ResponseFormatError) as caught:
        reader({"Content-Encoding": header}, accept=accept)
    assert str(caught.value) == (
        f"Pieces OS at {HOST} answered 200 with a body in Content-Encoding {header!r}; the client decodes only "
        "gzip and deflate (one coding); read it with a *_without_preload_content method.")


def test_a_wildcard_accepts_gzip() -> None:
    body = reader({"Content-Encoding": "gzip"}, accept="*")
    body.feed(gzip.compress(b"starred"))
    assert body.finish() == b"starred"


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "GZip"])
def test_gzip_is_decoded_fed_in_any_pieces(coding: str) -> None:
    data = b'{"iterable": []}' * 1000
    wire = gzip.compress(data)
    for step in (1, 7, len(wire)):
        body = reader({"Content-Encoding": coding}, accept="gzip, x-gzip", limit=None, length=len(wire))
        feed_all(body, wire, step)
        assert body.finish() == data
        assert body.received == len(wire)


def test_several_gzip_members_are_one_body() -> None:
    body = reader({"Content-Encoding": "gzip"}, accept="gzip")
    body.feed(gzip.compress(b"first ") + gzip.compress(b"second"))
    assert body.finish() == b"first second"


def test_deflate_is_decoded_with_or_without_its_zlib_header() -> None:
    data = b"deflated " * 100
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for wire in (zlib.compress(data), raw.compress(data) + raw.flush()):
        body = reader({"Content-Encoding": "deflate"}, accept="deflate")
        feed_all(body, wire, 3)
        assert body.finish() == data


def test_bytes_after_the_end_of_a_deflate_stream_are_not_part_of_the_body() -> None:
    body = reader({"Content-Encoding": "deflate"}, accept="deflate")
    body.feed(zlib.compress(b"the body") + b"trailing junk")
    assert body.finish() == b"the body"


def test_what_a_coding_inflates_to_counts_against_the_limit() -> None:
    wire = gzip.compress(bytes(100_000))
    assert len(wire) < 1000
    body = reader({"Content-Encoding": "gzip"}, accept="gzip", limit=50_000, length=len(wire))
    with pytest.raises(ResponseTooLargeError) as caught:
        body.feed(wire)
    assert str(caught.value) == (
        f"The response from {HOST} (status 200) is larger than max_response_size allows (50000 bytes, "
        f"48.8281 KiB): it decompresses (gzip) to more than that. {LIMIT_ADVICE}")


def test_a_bomb_is_stopped_long_before_its_end() -> None:
    wire = gzip.compress(bytes(16 * CHUNK))  # 16 MiB of zeros in about 16 KiB
    body = reader({"Content-Encoding": "gzip"}, accept="gzip", limit=CHUNK // 2)
    with pytest.raises(ResponseTooLargeError):
        feed_all(body, wire, 1024)
    assert body.received < len(wire) // 4  # stopped at the limit, not after inflating it all


def raw_deflate_with_output_held_back() -> Tuple[bytes, bytes]:
    """A body and its raw deflate stream whose last input byte zlib takes in while a full step
    of output (CHUNK bytes) still leaves output inside zlib. Found by trying a few sizes."""
    for extra in range(1, 64):
        data = bytes(CHUNK + extra)
        raw = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
        wire = raw.compress(data) + raw.flush()
        probe = zlib.decompressobj(-zlib.MAX_WBITS)
        if len(probe.decompress(wire, CHUNK)) == CHUNK and not probe.unconsumed_tail and not probe.eof:
            return data, wire
    raise AssertionError("no stream with output held back inside zlib was found")


def test_a_step_that_fills_the_output_leaves_nothing_behind() -> None:
    data, wire = raw_deflate_with_output_held_back()
    body = reader({"Content-Encoding": "deflate"}, accept="deflate", limit=None)
    body.feed(wire)  # no input left, yet output is: it must be asked for again
    assert body.finish() == data


def test_a_compressed_body_that_ends_early_is_a_decode_failure() -> None:
    wire = gzip.compress(b"x" * 10_000)
    body = reader({"Content-Encoding": "gzip"}, accept="gzip", limit=None)
    body.feed(wire[: len(wire) // 2])
    with pytest.raises(DecodeError) as caught:
        body.finish()
    assert str(caught.value).startswith("the gzip body could not be decompressed: ")
    assert "ended early" in str(caught.value)


def test_bytes_that_are_not_the_coding_fail_to_decode_with_the_documented_error() -> None:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    body = reader(headers, accept="gzip")
    with pytest.raises(DecodeError) as caught:
        body.feed(b"this is not gzip at all")
    failure = terms().failure(caught.value, 200, "OK", headers)
    assert type(failure) is ResponseFormatError
    assert str(failure).startswith(
        "Pieces OS answered 200 with a body that could not be decoded (Content-Encoding: gzip): the gzip body "
        "could not be decompressed: ")
    assert (failure.status, failure.content_type, failure.body) == (200, "application/json", None)


# --------------------------------------------------------------------------- BodyTerms
def terms(deadline: Optional[float] = None, request_timeout: Optional[float] = None) -> BodyTerms:
    return BodyTerms(HOST, 1024, None, deadline, request_timeout)


def test_terms_make_a_reader_with_their_limit_and_codings() -> None:
    made = BodyTerms(HOST, 10, "gzip", None, None).reader(200, "OK", {"Content-Encoding": "gzip"}, None)
    assert made.inflater is not None and made.inflater.coding == "gzip"
    with pytest.raises(ResponseTooLargeError, match=r"allows \(10 bytes\): its Content-Length is 11 bytes"):
        BodyTerms(HOST, 10, None, None, None).reader(200, "OK", JSON, 11)


def test_an_sdk_error_raised_while_reading_is_passed_on_as_it_is() -> None:
    error = ServiceException(500, "Internal Server Error")
    assert terms().failure(error, 500, "Internal Server Error", JSON) is error


@pytest.mark.parametrize("timeout", [TimeoutError("timed out"), ReadTimeoutError(None, "/x", "Read timed out.")])
def test_a_body_read_that_waited_too_long_under_a_deadline(timeout: BaseException) -> None:
    failure = terms(deadline=1000.0, request_timeout=2.0).failure(timeout, 200, "OK", JSON)
    assert type(failure) is ApiTimeoutError
    assert str(failure) == (  # docs/errors.md
        f"Pieces OS at {HOST} did not send the whole response body (status 200) within _request_timeout=2 s, "
        "which bounds the whole attempt, body included")


@pytest.mark.parametrize("request_timeout", [None, 5.0])
def test_a_body_read_that_waited_too_long_without_a_deadline(request_timeout: Optional[float]) -> None:
    failure = terms(request_timeout=request_timeout).failure(TimeoutError(), 200, "OK", JSON)
    assert type(failure) is ApiTimeoutError
    assert str(failure) == f"Pieces OS at {HOST} stopped sending the response body before the read timeout"


def test_what_counts_as_a_timeout_is_the_transports_to_say() -> None:
    custom = terms(deadline=5.0, request_timeout=1.0)
    failure = custom.failure(asyncio.TimeoutError(), 200, "OK", JSON, timeouts=(asyncio.TimeoutError,))
    assert type(failure) is ApiTimeoutError
    broke = custom.failure(ConnectionResetError(104, "Connection reset by peer"), 200, "OK", JSON,
                           timeouts=(asyncio.TimeoutError,))
    assert type(broke) is ApiConnectionError
    assert str(broke) == (f"The connection to {HOST} broke while reading the response body (status 200): "
                          "[Errno 104] Connection reset by peer")
