"""The I/O-free framing rules both clients call: ``_core.framing`` (where a body ends, RFC 9112
section 6.3, and the head scan the asyncio client feeds aiohttp through), the head-timeout
failure of ``_core.failures`` and the cut-short body of ``_core.body``. No sockets: bytes in,
decisions out. The same cases over real sockets, through both clients: test/sync/test_framing.py
and test/aio/test_framing.py."""

from __future__ import annotations

from typing import Sequence

import pytest
import urllib3
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from pieces_os_client._core.body import BodyReader
from pieces_os_client._core.failures import HeadTimeout, cause_of_type, head_read_timeout, translate
from pieces_os_client._core.framing import (
    Framing,
    FramingError,
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


# --------------------------------------------------------------------------- failures the readers report
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
