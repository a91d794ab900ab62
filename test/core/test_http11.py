"""The I/O-free HTTP/1.1 answer reader the asyncio client drives (``_core/http11.py``): bytes in,
head and body out, whatever the split of the bytes; the keep-alive decision; and the refusals,
each what http.client or urllib3 raises for the sync client."""

from __future__ import annotations

import http.client
from typing import List, Optional, Tuple

import pytest
from urllib3.exceptions import ProtocolError

from pieces_os_client._core.framing import FramingError
from pieces_os_client._core.http11 import Answer, ResponseReader, request_head

BODY = b'{"iterable":[{"id":"a"}]}'


def read_all(data: bytes, *, step: int, head_request: bool = False, eof: bool = True,
             size: int = 7) -> Tuple[Answer, bytes, ResponseReader]:
    """Feed ``data`` ``step`` bytes at a time (then the end, with ``eof``); the head and the body."""
    reader = ResponseReader(head_request=head_request)
    pieces = [data[i:i + step] for i in range(0, len(data), step)]
    answer: Optional[Answer] = None
    body: List[bytes] = []
    fed_eof = False
    for _ in range(len(pieces) + len(data) + 10):
        if answer is None:
            answer = reader.head()
        if answer is not None:
            chunk = reader.body(size)
            if chunk == b"":
                return answer, b"".join(body), reader
            if chunk is not None:
                body.append(chunk)
                continue
        if pieces:
            reader.feed(pieces.pop(0))
        elif eof and not fed_eof:
            reader.feed_eof()
            fed_eof = True
        else:
            raise AssertionError("the reader wants bytes that never come")
    raise AssertionError("the reader did not finish")


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
           b"5;ext=1\r\n" + BODY[:5] + b"\r\n" + b"%X\r\n" % (len(BODY) - 5) + BODY[5:] + b"\r\n"
           b"0\r\nTrailer-Field: x\r\n\r\n")


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 4096])
def test_every_framing_reads_alike_whatever_the_split(step: int) -> None:
    length = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    interim = b"HTTP/1.1 100 Continue\r\nX-Hint: 1\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + length
    until_close = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + BODY
    bare_lf = b"HTTP/1.1 200 OK\nContent-Length: %d\n\n%s" % (len(BODY), BODY)
    for data, reusable in ((length, True), (interim, True), (CHUNKED, True), (until_close, False),
                           (bare_lf, True)):
        answer, body, reader = read_all(data, step=step, eof=not reusable)
        assert (answer.status, body, reader.complete, reader.reusable) == (200, BODY, True, reusable), data
        assert reader.received == len(data)
    answer, _, _ = read_all(CHUNKED, step=step)
    assert answer.fields == [("Transfer-Encoding", "chunked"), ("X-A", "1")]


def test_fields_come_as_sent_and_the_framing_is_the_sync_clients() -> None:
    head = (b"HTTP/1.1 200 Fine\r\nX-Twice: one\r\nx-twice: two\r\nX-Latin: caf\xe9\r\nX-Fold: a\r\n  b\r\n"
            b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), len(BODY), BODY))
    answer, body, reader = read_all(head, step=5)
    assert (answer.reason, body, reader.reusable) == ("Fine", BODY, True)
    assert answer.fields[:4] == [("X-Twice", "one"), ("x-twice", "two"), ("X-Latin", "caf\xe9"), ("X-Fold", "a b")]
    reader = ResponseReader(head_request=False)
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc")
    with pytest.raises(FramingError) as caught:
        reader.head()
    assert caught.value.status == 200 and "differ" in caught.value.problem


@pytest.mark.parametrize(("head", "reusable"), [
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", False),
    (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, CLOSE\r\n", False),
    (b"HTTP/1.0 200 OK\r\n", False),
    (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", True),
    (b"HTTP/1.1 200 OK\r\n", True),
])
def test_whether_the_connection_carries_another_exchange(head: bytes, reusable: bool) -> None:
    _, body, reader = read_all(head + b"Content-Length: 2\r\n\r\nok", step=4096, eof=False)
    assert (body, reader.reusable) == (b"ok", reusable)
    # bytes after the body, or a HEAD answer's declared length: never read as the next answer
    _, _, extra = read_all(head + b"Content-Length: 2\r\n\r\nokHTTP/1.1", step=4096, eof=False)
    assert not extra.reusable
    answer, body, head_answer = read_all(head + b"Content-Length: 2\r\n\r\n", step=4096, eof=False,
                                         head_request=True)
    assert (body, head_answer.reusable, answer.framing.length) == (b"", reusable, 0)


def test_a_body_cut_short_and_a_chunked_body_cut_short() -> None:
    _, body, reader = read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + BODY, step=4096)
    assert (body, reader.complete, reader.reusable) == (BODY, False, False)
    with pytest.raises(ProtocolError, match="Response ended prematurely"):
        read_all(CHUNKED[:-9], step=4096)
    with pytest.raises(ProtocolError, match="Invalid chunk length"):
        read_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", step=4096)
    with pytest.raises(ProtocolError, match="did not end with a line break"):
        read_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX\r\n0\r\n\r\n", step=4096)


@pytest.mark.parametrize(("data", "error", "words"), [
    (b"", http.client.RemoteDisconnected, "without response"),
    (b"HTTP/1.1 200 OK\r\nContent-Type: appl", http.client.RemoteDisconnected, "middle of the response head"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", http.client.BadStatusLine, "SSH"),
    (b"HTTP/1.1 2000 OK\r\n\r\n", http.client.BadStatusLine, "2000"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n", http.client.HTTPException, "(101)"),
    (b"HTTP/1.1 200 OK\r\n" + b"X: 1\r\n" * 101 + b"\r\n", http.client.HTTPException, "more than 100 headers"),
    (b"HTTP/1.1 100 Continue\r\n" + b"X: 1\r\n" * 101 + b"\r\n", http.client.HTTPException, "interim"),
    (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000, http.client.LineTooLong, "header line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", http.client.HTTPException, "without a colon"),
])
def test_answers_that_are_not_http_are_refused_as_http_client_refuses_them(
    data: bytes, error: type, words: str,
) -> None:
    reader = ResponseReader(head_request=False)
    reader.feed(data)
    reader.feed_eof()
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        reader.head()


def test_an_endless_head_is_refused_once_past_the_limit() -> None:
    reader = ResponseReader(head_request=False)
    reader.feed(b"HTTP/1.1 200 OK\r\n")
    with pytest.raises(http.client.HTTPException, match="longer than"):
        for _ in range(100_000):  # bounded: the limit is 256 KiB, passed after some 26,000 lines
            assert reader.head() is None
            reader.feed(b"X-Slow: 1\r\n")


def test_the_request_head_puts_host_first_and_a_length_where_asked() -> None:
    assert request_head("POST", "/x?a=1", "127.0.0.1:9", {"Accept": "application/json"}, 2) == (
        b"POST /x?a=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAccept: application/json\r\nContent-Length: 2\r\n\r\n")
    assert request_head("GET", "/", "[::1]", {"X-Latin": "caf\xe9"}, None) == (
        b"GET / HTTP/1.1\r\nHost: [::1]\r\nX-Latin: caf\xe9\r\n\r\n")
