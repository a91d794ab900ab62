"""``_core.retry``: which method, status and failure is sent again, and after how long
(docs/errors.md, "Retries and timeouts"). The policy is the SDK's own
(``Configuration.retry_policy()``) unless a test says otherwise; the jitter is fixed by
replacing the random numbers; responses are the few attributes a ``Retry`` reads. No socket,
no sleep."""

from __future__ import annotations

import random
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from urllib3 import HTTPHeaderDict
from urllib3.connection import HTTPConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

import pieces_os_client
from pieces_os_client._core.retry import after_error, after_status, backoff, body_retries, may_retry_status

URL = "/conversations/identifiers"


def sdk_policy(**settings: float) -> Retry:
    return pieces_os_client.Configuration(host="http://127.0.0.1:9", **settings).retry_policy()  # type: ignore[arg-type]


class Answer:
    """A response as a ``Retry`` reads it: status, headers, no redirect; ``close()`` is recorded."""

    def __init__(self, status: int, headers: Optional[Dict[str, str]] = None) -> None:
        self.status = status
        self.headers = HTTPHeaderDict(headers or {})
        self.closed = False

    def get_redirect_location(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def jitter(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[float]]:
    """Fix the jitter: the random fraction is ``jitter[0]`` (0 unless a test sets it)."""
    fraction = [0.0]
    monkeypatch.setattr(random, "random", lambda: fraction[0])
    monkeypatch.setattr(random, "uniform", lambda low, high: low + (high - low) * fraction[0])
    yield fraction


def resend_on_status(policy: Retry, method: str, status: int, headers: Optional[Dict[str, str]] = None,
                     ) -> List[Optional[float]]:
    """The delays of the resends ``policy`` makes while every answer is ``status`` (None: handed over)."""
    delays: List[Optional[float]] = []
    for _ in range(10):
        decision = after_status(policy, method, URL, Answer(status, headers))
        if decision is None:
            delays.append(None)
            return delays
        policy, delay = decision
        delays.append(delay)
    raise AssertionError("retried without end")


# --------------------------------------------------------------------------- statuses
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_a_get_is_retried_on_overload_and_transient_failures(status: int, jitter: List[float]) -> None:
    # the first retry at once, the next after backoff_factor * 2 (0.5 s); then the answer itself
    assert resend_on_status(sdk_policy(), "GET", status) == [0.0, 0.5, None]


def test_with_the_defaults_three_attempts_wait_half_to_three_quarters_of_a_second(jitter: List[float]) -> None:
    jitter[0] = 0.0
    assert sum(d or 0 for d in resend_on_status(sdk_policy(), "GET", 503)) == 0.5
    jitter[0] = 0.999
    assert sum(d or 0 for d in resend_on_status(sdk_policy(), "GET", 503)) == pytest.approx(0.75, abs=0.001)


def test_the_backoff_doubles_up_to_backoff_max(jitter: List[float]) -> None:
    delays = resend_on_status(sdk_policy(max_retries=7), "GET", 500)
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0, None]
    jitter[0] = 0.999
    assert max(d or 0 for d in resend_on_status(sdk_policy(max_retries=7), "GET", 500)) == 8.0


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_reads_are_retried(method: str, jitter: List[float]) -> None:
    assert resend_on_status(sdk_policy(), method, 503)[0] == 0.0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_create_or_delete_is_never_resent_on_a_status(method: str) -> None:
    answer = Answer(503, {"Retry-After": "1"})
    assert after_status(sdk_policy(), method, URL, answer) is None
    assert not answer.closed  # handed to the caller, who reads the error body


@pytest.mark.parametrize("status", [200, 400, 404, 409, 501, 505])
def test_other_statuses_are_not_retried(status: int) -> None:
    answer = Answer(status)
    assert after_status(sdk_policy(), "GET", URL, answer) is None
    assert not answer.closed


def test_an_answer_that_is_retried_is_dropped_unread() -> None:
    answer = Answer(503)
    assert after_status(sdk_policy(), "GET", URL, answer) is not None
    assert answer.closed


def test_no_retries_sends_exactly_one_request() -> None:
    assert resend_on_status(sdk_policy(max_retries=0), "GET", 503) == [None]


def test_retry_after_replaces_the_backoff(jitter: List[float]) -> None:
    assert resend_on_status(sdk_policy(), "GET", 429, {"Retry-After": "3"}) == [3.0, 3.0, None]


def test_retry_after_is_capped_at_backoff_max(jitter: List[float]) -> None:
    assert resend_on_status(sdk_policy(), "GET", 503, {"Retry-After": "3600"}) == [8.0, 8.0, None]
    assert resend_on_status(sdk_policy(backoff_max=2.0), "GET", 503, {"Retry-After": "3600"})[0] == 2.0


def test_a_retry_after_that_cannot_be_parsed_is_ignored(jitter: List[float]) -> None:
    assert resend_on_status(sdk_policy(), "GET", 503, {"Retry-After": "soon"}) == [0.0, 0.5, None]


def test_a_retry_policy_of_ones_own_decides_everything() -> None:
    # docs/errors.md: a urllib3 Retry replaces the policy; one that allows POST re-sends creates
    own = Retry(total=1, allowed_methods=None, status_forcelist=[503], backoff_factor=0)
    assert resend_on_status(own, "POST", 503) == [0.0, None]


# --------------------------------------------------------------------------- which statuses to ask about
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 413])
def test_statuses_a_retry_might_follow_are_asked_about(status: int) -> None:
    assert may_retry_status(sdk_policy(), status)


@pytest.mark.parametrize("status", [200, 201, 204, 304, 400, 404, 418, 501, 505])
def test_statuses_no_retry_follows_are_not(status: int) -> None:
    assert not may_retry_status(sdk_policy(), status)


def test_a_policy_that_decides_for_itself_is_always_asked() -> None:
    class Picky(Retry):
        def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
            return status_code == 200

    assert may_retry_status(Picky(total=1), 200)
    assert may_retry_status(Picky(total=1), 404)
    assert may_retry_status(Retry(total=1, status_forcelist=[418]), 418)
    assert not may_retry_status(Retry(total=1, status_forcelist=None), 500)


# --------------------------------------------------------------------------- failures
def refused() -> NewConnectionError:
    return NewConnectionError(HTTPConnection("127.0.0.1", 9), "Failed to establish a new connection")


def connect_timeout() -> ConnectTimeoutError:
    return ConnectTimeoutError(HTTPConnection("127.0.0.1", 9), "Connection timed out")


def read_timeout() -> ReadTimeoutError:
    return ReadTimeoutError(None, URL, "Read timed out.")  # type: ignore[arg-type]


def reset() -> ProtocolError:
    return ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))


def resend_on_error(policy: Retry, method: str, make: Callable[[], Exception]) -> Tuple[List[float], BaseException]:
    """The delays of the resends while every attempt fails the same way, and what ends them."""
    delays: List[float] = []
    for _ in range(10):
        try:
            policy, delay = after_error(policy, method, URL, make())
        except Exception as final:
            return delays, final
        delays.append(delay)
    raise AssertionError("retried without end")


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("make", [refused, connect_timeout])
def test_a_request_that_never_left_is_retried_whatever_its_method(method: str, make: Callable[[], Exception],
                                                                   jitter: List[float]) -> None:
    delays, final = resend_on_error(sdk_policy(), method, make)
    assert delays == [0.0, 0.5]
    assert type(final) is MaxRetryError and isinstance(final.reason, type(make()))


@pytest.mark.parametrize("make", [read_timeout, reset])
def test_a_get_is_retried_after_a_read_failure(make: Callable[[], Exception], jitter: List[float]) -> None:
    delays, final = resend_on_error(sdk_policy(), "GET", make)
    assert delays == [0.0, 0.5]
    assert type(final) is MaxRetryError and isinstance(final.reason, type(make()))


@pytest.mark.parametrize("make", [read_timeout, reset])
def test_a_create_is_not_resent_after_a_read_failure(make: Callable[[], Exception]) -> None:
    # it may have been processed: the failure itself goes to the caller
    delays, final = resend_on_error(sdk_policy(), "POST", make)
    assert delays == []
    assert type(final) is type(make())


def test_a_tls_failure_is_not_retried() -> None:
    delays, final = resend_on_error(sdk_policy(), "GET", lambda: SSLError("certificate verify failed"))
    assert delays == []
    assert type(final) is MaxRetryError and isinstance(final.reason, SSLError)


def test_with_no_retries_the_first_failure_ends_the_call() -> None:
    delays, final = resend_on_error(sdk_policy(max_retries=0), "GET", refused)
    assert delays == [] and type(final) is MaxRetryError


# --------------------------------------------------------------------------- bodies cut short
def test_a_body_cut_short_is_retried_for_reads_only() -> None:
    policy = sdk_policy()
    assert [body_retries(policy, m) for m in ("GET", "HEAD", "OPTIONS")] == [2, 2, 2]
    assert [body_retries(policy, m) for m in ("POST", "PUT", "DELETE")] == [0, 0, 0]
    assert body_retries(sdk_policy(max_retries=0), "GET") == 0
    assert body_retries(sdk_policy(max_retries=5), "GET") == 5


def test_body_retries_follow_the_smaller_of_the_total_and_read_budgets() -> None:
    assert body_retries(Retry(total=5, read=1), "GET") == 1
    assert body_retries(Retry(total=1, read=5), "GET") == 1
    assert body_retries(Retry(total=None, read=3), "GET") == 3
    assert body_retries(Retry(total=False, read=None), "GET") == 0  # no count at all: none
    assert body_retries(Retry(total=-1), "GET") == 0
    assert body_retries(Retry(total=2, allowed_methods=None), "POST") == 2  # a policy that allows every method


def test_the_wait_before_a_body_retry_doubles_and_its_jitter_is_bounded(jitter: List[float]) -> None:
    policy = sdk_policy()
    assert [backoff(policy, n) for n in range(7)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    jitter[0] = 0.5
    assert backoff(policy, 1) == 0.625
    assert backoff(sdk_policy(backoff_jitter=0.0), 1) == 0.5


def test_the_wait_before_a_body_retry_is_never_longer_than_backoff_max(jitter: List[float]) -> None:
    # docs/errors.md: "doubling from there, never longer than backoff_max", jitter included
    jitter[0] = 0.999
    assert backoff(sdk_policy(), 10) == 8.0
    assert backoff(sdk_policy(backoff_max=0.0), 0) == 0.0
