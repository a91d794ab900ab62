"""The I/O-free rules of a discovery probe: ``_core.deadline`` (how long each wait may block,
within a step and within the whole) and ``_core.probe`` (reading a short HTTP answer fed in
pieces, to a bounded size). No sockets, no sleeps: clock values are made up."""

from __future__ import annotations

from typing import List

import pytest

from pieces_os_client._core.deadline import Deadline, OutOfTime, seconds_text
from pieces_os_client._core.probe import ProbeAnswer, ProbeError, probe_request


# --------------------------------------------------------------------------- deadline
def test_a_step_never_outlasts_the_whole_it_belongs_to() -> None:
    search = Deadline.after(100.0, 5.0)
    assert search.within(101.0, 0.5) == Deadline(101.5, 0.5)  # the step's own allowance is sooner
    assert search.within(104.8, 0.5) == Deadline(105.0, pytest.approx(0.2))  # cut to what is left
    assert search.left(104.0) == pytest.approx(1.0) and search.left(106.0) == 0.0
    assert not search.expired(104.99) and search.expired(105.0)
    unbounded = Deadline.after(0.0, None)
    assert unbounded.left(1e9) is None and unbounded.wait(1e9) is None
    assert unbounded.within(10.0, 0.5) == Deadline(10.5, 0.5)


def test_a_wait_with_nothing_left_must_not_start() -> None:
    step = Deadline.after(0.0, 0.5)
    assert step.wait(0.2) == pytest.approx(0.3)
    with pytest.raises(OutOfTime, match=r"the 0\.5 s allowed were used up") as caught:
        step.wait(0.5)
    assert isinstance(caught.value, TimeoutError)
    assert [seconds_text(s) for s in (0.5, 1.0, 1 / 3, None)] == ["0.5 s", "1 s", "0.333 s", "no limit"]


# --------------------------------------------------------------------------- probe
def fed(chunks: List[bytes], limit: int = 4096) -> ProbeAnswer:
    answer = ProbeAnswer(limit)
    for chunk in chunks:
        answer.feed(chunk)
    return answer


def test_the_request_asks_for_one_plain_answer_and_a_closed_connection() -> None:
    assert probe_request("127.0.0.1:39300", "/.well-known/health") == (
        b"GET /.well-known/health HTTP/1.1\r\nHost: 127.0.0.1:39300\r\nAccept: text/plain\r\n"
        b"Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
    )


def test_an_answer_fed_a_byte_at_a_time_is_read_once_its_length_is_in() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    answer = ProbeAnswer(4096)
    for index in range(len(raw)):
        assert not answer.done
        answer.feed(raw[index:index + 1])
        assert answer.has_head == (index >= raw.index(b"\r\n\r\n") + 3)
    seen = (answer.done, answer.status, answer.reason, bytes(answer.body), answer.cut)
    assert seen == (True, 200, "OK", b"ok", False)


def test_interim_answers_are_skipped_and_chunked_wins_over_content_length() -> None:
    answer = fed([b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n",
                  b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n",
                  b"2;ext=1\r\nok\r\n3\r\n ok\r\n0\r\nTrailer: x\r\n", b"\r\n"])
    assert (answer.done, answer.status, bytes(answer.body)) == (True, 200, b"ok ok")


def test_the_body_is_read_to_its_limit_and_no_further() -> None:
    flood = fed([b"HTTP/1.1 200 OK\r\n\r\n", b"x" * 10_000], limit=4096)
    assert flood.done and flood.cut and len(flood.body) == 4096
    closed = fed([b"HTTP/1.0 200 OK\r\n\r\nok then", b""])  # the body ends with the connection
    assert closed.done and bytes(closed.body) == b"ok then" and not closed.cut
    empty = fed([b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"])
    assert empty.done and empty.body == b""


@pytest.mark.parametrize(("chunks", "words"), [
    ([b"SSH-2.0-OpenSSH_9.6\r\n\r\n"], "does not begin with an HTTP/1.x status line"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"], "an invalid Content-Length: '-1'"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n"], "an invalid Content-Length: '2, 3'"),
    ([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"], "an invalid chunk size"),
    ([b"HTTP/1.1 101 Switching Protocols\r\n\r\n"], "switched protocols"),
    ([b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok", b""], "closed before the body was complete (2 bytes in)"),
    ([b"HTTP/1.1 200 O", b""], "closed in the middle of the response head (14 bytes in)"),
    ([b""], "closed before the answer began"),
    ([b"HTTP/1.1 200 OK\r\nX: " + b"y" * 20_000], "the response head is longer than 16384 bytes"),
])
def test_an_answer_the_probe_cannot_read_says_why(chunks: List[bytes], words: str) -> None:
    with pytest.raises(ProbeError, match=words.replace("(", r"\(").replace(")", r"\)")):
        fed(chunks)


def test_equal_duplicate_lengths_count_as_one() -> None:
    answer = fed([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nokEXTRA"])
    assert answer.done and bytes(answer.body) == b"ok"
