"""The I/O-free rules of ``_core.exchange`` for one HTTP exchange: which answers are interim,
when the response head must be complete, and when a request on a stale connection is sent
again (docs/threads-processes-limits.md, "The response head, interim answers, stale
connections"). Clock values are made up."""

from __future__ import annotations

import math

import pytest

from pieces_os_client._core.exchange import head_deadline, is_interim, may_resend_stale


@pytest.mark.parametrize("status", [100, 102, 103, 199])
def test_informational_answers_are_skipped(status: int) -> None:
    assert is_interim(status)


@pytest.mark.parametrize("status", [101, 200, 204, 99, 301, 500])
def test_switching_protocols_and_final_answers_are_not_interim(status: int) -> None:
    # a 101 to a plain request is a broken exchange, not something to wait past
    assert not is_interim(status)


def test_the_head_deadline_counts_the_read_timeout_from_now() -> None:
    assert head_deadline(1000.0, 60.0) == 1060.0
    assert head_deadline(5.5, 0.25) == 5.75
    assert head_deadline(7.0, 0.0) == 7.0  # nothing left of the attempt: due at once


@pytest.mark.parametrize("timeout", [None, math.inf, math.nan])
def test_no_read_timeout_means_no_head_deadline(timeout: float) -> None:
    assert head_deadline(1000.0, timeout) is None


def test_a_reused_connection_that_failed_before_any_answer_is_resent() -> None:
    assert may_resend_stale(reused=True, response_bytes=0, resends=0, pool_size=4)


def test_a_fresh_connection_is_never_resent_as_stale() -> None:
    assert not may_resend_stale(reused=False, response_bytes=0, resends=0, pool_size=4)


def test_a_connection_that_had_begun_answering_is_not_stale() -> None:
    # a head cut short is a broken connection: the server read the request
    assert not may_resend_stale(reused=True, response_bytes=1, resends=0, pool_size=4)
    assert not may_resend_stale(reused=True, response_bytes=4096, resends=0, pool_size=4)


@pytest.mark.parametrize("pool_size", [1, 2, 5])
def test_resends_are_bounded_by_the_pool_size(pool_size: int) -> None:
    allowed = [may_resend_stale(reused=True, response_bytes=0, resends=n, pool_size=pool_size)
               for n in range(pool_size + 3)]
    assert allowed == [True] * pool_size + [False] * 3


def test_a_pool_of_no_size_still_allows_one_resend() -> None:
    assert may_resend_stale(reused=True, response_bytes=0, resends=0, pool_size=0)
    assert not may_resend_stale(reused=True, response_bytes=0, resends=1, pool_size=0)
