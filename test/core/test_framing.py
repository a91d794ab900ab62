"""The I/O-free framing rules both clients call: ``_core.framing`` (where a body ends, RFC 9112
section 6.3, and the head scan the asyncio client feeds aiohttp through), the head-timeout
failure of ``_core.failures`` and the cut-short body of ``_core.body``. No sockets: bytes in,
decisions out. The same cases over real sockets, through both clients: test/sync/test_framing.py
and test/aio/test_framing.py."""

from __future__ import annotations

from typing import List, Optional, Sequence

import pytest
import urllib3
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from pieces_os_client._core.body import BodyReader
from pieces_os_client._core.failures import HeadTimeout, cause_of_type, head_read_timeout, translate
from pieces_os_client._core.framing import (
    MAX_HEAD,
    Framing,
    FramingError,
    HeadScan,
    body_framing,
    framing_error,
)
from pieces_os_client.exceptions import ApiTimeoutError, ResponseFormatError

HOST = "http://127.0.0.1:39300"
UNTIL_CLOSE = Framing(None, False)
CHUNKED = Framing(None, True)
NO_BODY = Framing(0, False)


def framing(lengths: Sequence[str] = (), codings: Sequence[str] = (), status: int = 200, head: bool = False) -> Framing:
    return body_framing(status, head_request=head, content_lengths=lengths, transfer_encodings=codings)


# --------------------------------------------------------------------------- the decision
@pytest.mark.parametrize(("lengths", "codings", "expected"), [
    ((), (), UNTIL_CLOSE),
    (("25",), (), Framing(25, False)),
    (("0",), (), Framing(0, False)),
    (("25", "25"), (), Framing(25, False)),  # repeated fields, equal: one value
    (("25, 25",), (), Framing(25, False)),  # a list, equal
    (("025", " 25 ", "25,25"), (), Framing(25, False)),  # equal as numbers
    ((str(10**30),), (), Framing(10**30, False)),  # no parser's integer: still a length
    (("100",), ("chunked",), CHUNKED),  # Transfer-Encoding wins; Content-Length ignored
    (("-1",), ("chunked",), CHUNKED),  # ... even an invalid one
    ((), ("Chunked",), CHUNKED),
])
def test_valid_framing(lengths: Sequence[str], codings: Sequence[str], expected: Framing) -> None:
    assert framing(lengths, codings) == expected


@pytest.mark.parametrize(("lengths", "codings", "problem"), [
    (("25", "26"), (), "its Content-Length values differ ('25', '26')"),
    (("25, 26",), (), "its Content-Length values differ ('25', '26')"),
    (("25", "25, 26"), (), "its Content-Length values differ ('25', '25', '26')"),
    (("-1",), (), "Content-Length '-1' is not a number of bytes"),
    (("abc",), (), "Content-Length 'abc' is not a number of bytes"),
    (("+2",), (), "Content-Length '+2' is not a number of bytes"),
    (("",), (), "Content-Length '' is not a number of bytes"),
    (("2 5",), (), "Content-Length '2 5' is not a number of bytes"),
    (("2.5",), (), "Content-Length '2.5' is not a number of bytes"),
    (("\u00b2",), (), "Content-Length '\u00b2' is not a number of bytes"),  # a digit to str.isdigit, not to HTTP
    (("25", "x"), (), "Content-Length 'x' is not a number of bytes"),
    (("1" * 1001,), (), "is not a number of bytes"),
    ((), ("gzip",), "Transfer-Encoding 'gzip', which the client cannot read (it reads chunked only)"),
    ((), ("gzip, chunked",), "Transfer-Encoding 'gzip, chunked'"),
    ((), ("chunked", "chunked"), "Transfer-Encoding 'chunked, chunked'"),  # chunked at most once
    (("2",), ("identity",), "Transfer-Encoding 'identity'"),
])
def test_invalid_framing(lengths: Sequence[str], codings: Sequence[str], problem: str) -> None:
    with pytest.raises(FramingError) as info:
        framing(lengths, codings)
    assert problem in info.value.problem


@pytest.mark.parametrize(("status", "head"), [(200, True), (204, False), (304, False), (100, False), (101, False)])
def test_an_answer_without_a_body_ignores_its_framing_fields(status: int, head: bool) -> None:
    assert framing(("-1", "abc"), ("gzip",), status=status, head=head) == NO_BODY


def test_the_malformed_answer_error_names_status_problem_and_keeps_the_headers() -> None:
    exc = FramingError("Content-Length '-1' is not a number of bytes").answered(
        200, "OK", [("Content-Type", "application/json"), ("Content-Length", "-1")])
    error = framing_error(HOST, exc)
    assert type(error) is ResponseFormatError
    assert str(error) == (
        f"Pieces OS at {HOST} answered 200 with a malformed response: Content-Length '-1' is not a number of "
        "bytes, so where its body ends cannot be known (RFC 9112, section 6.3). The body was not read and "
        "the connection was closed."
    )
    assert (error.status, error.reason, error.content_type, error.body) == (200, "OK", "application/json", None)
    assert error.headers is not None and error.headers["Content-Length"] == "-1"


# --------------------------------------------------------------------------- the head scan
def scan(data: bytes, step: Optional[int] = None, *, head_request: bool = False) -> tuple[bytes, HeadScan]:
    """What the scan hands on for ``data`` fed whole (``step`` None) or ``step`` bytes at a time."""
    scanner = HeadScan()
    scanner.start(head_request=head_request)
    size = step or len(data) or 1
    return b"".join(scanner.feed(data[i:i + size]) for i in range(0, len(data), size)), scanner


def every_split(data: bytes, *, head_request: bool = False) -> tuple[bytes, HeadScan]:
    """``scan`` fed whole and in pieces of 1, 2, 3 and 7 bytes: the same bytes and decision each time."""
    passed, scanner = scan(data, head_request=head_request)
    for step in (1, 2, 3, 7):
        again, other = scan(data, step, head_request=head_request)
        assert again == passed, step
        assert (other.framing, other.fields, other.active) == (scanner.framing, scanner.fields, scanner.active)
        assert (other.error is None) == (scanner.error is None)
    return passed, scanner


H = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
BODY = b'{"iterable":[]}'


@pytest.mark.parametrize("data", [
    H + b"Content-Length: 15\r\n\r\n" + BODY,
    H + b"content-length:15\r\n\r\n" + BODY,
    H + b"Transfer-Encoding: chunked\r\n\r\nf\r\n" + BODY + b"\r\n0\r\n\r\n",
    H + b"\r\n" + BODY,
    b"HTTP/1.1 200 OK\nContent-Length: 15\n\n" + BODY,  # lines ended by LF alone
    b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n" + H + b"Content-Length: 15\r\n\r\n"
    + BODY,
    b"HTTP/1.1 204 No Content\r\n\r\n",
])
def test_plain_heads_pass_unchanged(data: bytes) -> None:
    passed, scanner = every_split(data)
    assert passed == data
    assert scanner.error is None and scanner.fields is None and not scanner.active
    assert scanner.framing is not None


@pytest.mark.parametrize(("data", "passed"), [
    # bytes after a body of known length belong to no message: dropped until the next exchange
    (b"HTTP/1.1 204 No Content\r\nContent-Length: 1\r\nConnection: close\r\n\r\n\x00",
     b"HTTP/1.1 204 No Content\r\nContent-Length: 1\r\nConnection: close\r\n\r\n"),
    (b"HTTP/1.1 304 Not Modified\r\n\r\ngarbage", b"HTTP/1.1 304 Not Modified\r\n\r\n"),
    (H + b"Content-Length: 2\r\n\r\n{}trailing", H + b"Content-Length: 2\r\n\r\n{}"),
    (H + b"Content-Length: 0\r\n\r\n{}", H + b"Content-Length: 0\r\n\r\n"),
    # a body that lasts until the close, or is chunked, is passed whole (its parser ends it)
    (H + b"\r\n{}and more", H + b"\r\n{}and more"),
    (H + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nx",
     H + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nx"),
])
def test_bytes_past_a_body_of_known_length_are_dropped(data: bytes, passed: bytes) -> None:
    got, scanner = every_split(data)
    assert got == passed
    assert scanner.error is None and not scanner.active
    scanner.start(head_request=False)  # the next exchange reads what comes, from its first byte
    assert scanner.feed(b"HTTP/1.1 200 OK\r\n") == b""  # held: a head not yet whole


@pytest.mark.parametrize(("fields", "plain", "expected"), [
    (b"Content-Length: 15\r\nContent-Length: 15\r\n", b"Content-Length: 15\r\n", Framing(15, False)),
    (b"Content-Length: 15, 15\r\n", b"Content-Length: 15\r\n", Framing(15, False)),
    (b"Content-Length: 0, 0\r\n", b"Content-Length: 0\r\n", Framing(0, False)),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 100\r\n", b"Transfer-Encoding: chunked\r\n", CHUNKED),
    (b"Content-Length: 9\r\nTransfer-Encoding: chunked\r\n", b"Transfer-Encoding: chunked\r\n", CHUNKED),
    (b"Content-Length: %d\r\n" % 10**30, b"", Framing(10**30, False)),  # past 2**63: none, and read to the close
    (b"Content-Length: 15\r\n 15\r\n", None, None),  # a folded line: not plain
])
def test_valid_framing_in_another_form_is_handed_on_plain(
    fields: bytes, plain: Optional[bytes], expected: Optional[Framing],
) -> None:
    data = H + fields + b"X-After: 1\r\n\r\n" + BODY
    passed, scanner = every_split(data)
    if plain is None:  # "15 15": not a number
        assert scanner.error is not None and passed == b""
        return
    assert expected is not None
    body = BODY if expected.length is None else BODY[:expected.length]  # what is past the body is no message's
    assert passed == H + b"X-After: 1\r\n" + plain + b"\r\n" + body
    assert scanner.framing == expected
    # the fields as they came, for the response's headers
    assert scanner.fields is not None and ("X-After", "1") in scanner.fields
    assert len(scanner.fields) == 2 + fields.count(b"\r\n")


@pytest.mark.parametrize("head_request", [True, False])
def test_no_body_answers_lose_fields_a_parser_would_refuse(head_request: bool) -> None:
    status = b"200 OK" if head_request else b"304 Not Modified"
    data = b"HTTP/1.1 " + status + b"\r\nContent-Length: -1\r\nContent-Length: 7\r\nETag: x\r\n\r\n"
    passed, scanner = every_split(data, head_request=head_request)
    assert passed == b"HTTP/1.1 " + status + b"\r\nETag: x\r\n\r\n"
    assert scanner.framing == NO_BODY


def test_an_interim_answer_with_odd_fields_is_handed_on_plain_and_the_scan_goes_on() -> None:
    data = b"HTTP/1.1 100 Continue\r\nContent-Length: x\r\n\r\n" + H + b"Content-Length: 15\r\n\r\n" + BODY
    passed, scanner = every_split(data)
    assert passed == b"HTTP/1.1 100 Continue\r\n\r\n" + H + b"Content-Length: 15\r\n\r\n" + BODY
    assert scanner.framing == Framing(15, False) and scanner.fields is None


@pytest.mark.parametrize(("fields", "problem"), [
    (b"Content-Length: 15\r\nContent-Length: 16\r\n", "its Content-Length values differ ('15', '16')"),
    (b"Content-Length: -1\r\n", "Content-Length '-1' is not a number of bytes"),
    (b"Content-Length: abc\r\n", "Content-Length 'abc' is not a number of bytes"),
    (b"Transfer-Encoding: gzip\r\n", "Transfer-Encoding 'gzip'"),
])
def test_invalid_framing_stops_the_scan_and_hands_on_nothing(fields: bytes, problem: str) -> None:
    passed, scanner = every_split(H + fields + b"\r\n" + BODY)
    assert passed == b""
    assert scanner.error is not None and problem in scanner.error.problem
    assert (scanner.error.status, scanner.error.reason) == (200, "OK")
    assert ("Content-Type", "application/json") in scanner.error.fields
    assert not scanner.active


def test_a_head_is_held_until_whole_then_the_rest_passes_as_it_comes() -> None:
    scanner = HeadScan()
    scanner.start(head_request=False)
    assert scanner.feed(H) == b""
    assert scanner.feed(b"Content-Length: 15\r\n\r") == b""
    assert scanner.feed(b"\n{") == H + b"Content-Length: 15\r\n\r\n{"
    assert scanner.feed(b"more") == b"more"  # the body: not looked at
    scanner.start(head_request=False)  # the next exchange on the connection
    assert scanner.feed(b"HTTP/1.1 204 No Content\r\n") == b""


def test_bytes_that_are_not_a_head_and_heads_past_the_limit_go_on_as_they_came() -> None:
    for data in (b"SSH-2.0-OpenSSH\r\n\r\n", b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", b"HTTP/1.1 2xx OK\r\n\r\n"):
        passed, scanner = scan(data)
        assert passed == data and scanner.error is None and not scanner.active
    scanner = HeadScan()
    scanner.start(head_request=False)
    line = b"X-Big: " + b"a" * 1000 + b"\r\n"
    held: List[bytes] = [scanner.feed(H)]
    while scanner.active:
        held.append(scanner.feed(line))
    assert b"".join(held) == H + line * (len(held) - 1)
    assert MAX_HEAD < len(b"".join(held)) < MAX_HEAD + 2 * len(line)
    assert scanner.feed(b"\r\n") == b"\r\n"  # no longer scanned: aiohttp's parser decides


def test_before_start_nothing_is_scanned() -> None:
    assert HeadScan().feed(H + b"Content-Length: -1\r\n\r\n") == H + b"Content-Length: -1\r\n\r\n"


# --------------------------------------------------------------------------- a head that stalls
def test_a_head_timeout_with_bytes_in_names_the_head_and_the_count() -> None:
    timeout = urllib3.Timeout(connect=5, read=0.5)
    url = HOST + "/conversations"
    quiet = head_read_timeout(url, 0)
    assert type(quiet) is ReadTimeoutError and cause_of_type(quiet, HeadTimeout) is None
    assert "sent no response to GET" in str(translate(MaxRetryError(None, url, quiet), "GET", url, HOST, timeout))  # type: ignore[arg-type]
    begun = head_read_timeout(url, 57)
    head = cause_of_type(begun, HeadTimeout)
    assert head is not None and (head.phase, head.received) == ("head", 57)
    error = translate(MaxRetryError(None, url, begun), "GET", url, HOST, timeout)  # type: ignore[arg-type]
    assert type(error) is ApiTimeoutError
    assert str(error) == (
        f"Pieces OS at {HOST} began answering GET {url} but did not finish the status line and headers "
        "within the read timeout (0.5 s; it bounds the whole response head) (57 bytes arrived)"
    )


# --------------------------------------------------------------------------- a body cut short
def test_a_body_cut_short_is_said_one_way() -> None:
    reader = BodyReader(200, "OK", {}, HOST, max_size=None, accept_encoding=None, content_length=10)
    reader.feed(b"{}")
    short = reader.cut_short()
    assert short is not None and str(short) == "Connection broken: IncompleteRead(2 bytes read, 8 more expected)"
    reader.feed(b"12345678")
    assert reader.cut_short() is None
    assert BodyReader(200, "OK", {}, HOST, max_size=None, accept_encoding=None, content_length=None).cut_short() is None
