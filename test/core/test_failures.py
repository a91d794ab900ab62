"""``_core.failures``: which SDK error, and which message, each transport failure becomes
(docs/errors.md, "What each error means"), for both clients. The failures are built as the
transports hand them over (urllib3's exceptions, wrapped in ``MaxRetryError`` when retries ran
out); no socket is opened."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import pytest
import urllib3
from urllib3.connection import HTTPConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from pieces_os_client._core.failures import (
    HeadTimeout,
    body_broken_error,
    body_timeout_error,
    cause_of_type,
    parse_request_timeout,
    pool_timeout_error,
    reason_text,
    translate,
)
from pieces_os_client.exceptions import ApiConnectionError, ApiTimeoutError, ApiValueError

HOST = "http://localhost:39300"
DEFAULT = urllib3.Timeout(connect=5.0, read=60.0)
RESET = ConnectionResetError(104, "Connection reset by peer")


def given_up(reason: Exception, url: str = "/conversations") -> MaxRetryError:
    """What urllib3 raises once the retries for ``reason`` ran out."""
    return MaxRetryError(None, url, reason)  # type: ignore[arg-type]


def refused() -> NewConnectionError:
    return NewConnectionError(HTTPConnection("localhost", 39300),
                              "Failed to establish a new connection: [Errno 111] Connection refused")


def exactly(error: BaseException, kind: type, text: str) -> None:
    assert type(error) is kind
    assert str(error) == text


# --------------------------------------------------------------------------- translate
def test_a_refused_connection_is_a_connection_error_with_the_documented_advice() -> None:
    error = translate(given_up(refused()), "GET", f"{HOST}/conversations", HOST, DEFAULT)
    exactly(error, ApiConnectionError,
            f"Could not connect to Pieces OS at {HOST}: Failed to establish a new connection: [Errno 111] "
            "Connection refused. Start Pieces OS (or `python -m pieces_os_client.emulator` for a local "
            "stand-in) and check the host: Pieces OS 11 and later listen on a port in 39300-39333; leave "
            "`host` unset to let the client find it.")
    assert (error.host, error.url, error.method) == (HOST, f"{HOST}/conversations", "GET")
    assert isinstance(error, MaxRetryError)  # what the official SDK's callers catch


def test_a_refused_connection_is_no_timeout_though_urllib3_derives_one_from_the_other() -> None:
    assert issubclass(NewConnectionError, ConnectTimeoutError)
    error = translate(refused(), "GET", f"{HOST}/x", HOST, DEFAULT)
    assert not isinstance(error, ApiTimeoutError)
    assert not isinstance(translate(ConnectionRefusedError(111, "Connection refused"), "GET", "/x", HOST, DEFAULT),
                          ApiTimeoutError)


def test_a_refused_connection_to_a_discovered_host_says_where_the_client_looked() -> None:
    error = translate(given_up(refused()), "GET", f"{HOST}/x", HOST, DEFAULT, searched=True)
    assert type(error) is ApiConnectionError
    assert "No running Pieces OS was found either (looked at " in str(error)
    assert "ports 39300-39333" in str(error) and "pass `host=` if it listens elsewhere" in str(error)


def test_a_connect_timeout_names_the_connect_timeout() -> None:
    timeout = ConnectTimeoutError(HTTPConnection("localhost", 39300), "Connection to localhost timed out.")
    error = translate(given_up(timeout), "GET", f"{HOST}/x", HOST, urllib3.Timeout(connect=0.2, read=60.0))
    exactly(error, ApiTimeoutError,
            f"Timed out connecting to Pieces OS at {HOST} (connect timeout 0.2 s). Is Pieces OS running and "
            "is this the right host?")
    assert isinstance(error, TimeoutError)
    whole = translate(timeout, "GET", f"{HOST}/x", HOST, urllib3.Timeout(total=3.0))
    assert "(connect timeout 3.0 s in total per attempt)" in str(whole)


def test_no_answer_within_the_read_timeout() -> None:
    url = f"{HOST}/conversations"
    error = translate(given_up(ReadTimeoutError(None, url, "Read timed out.")),  # type: ignore[arg-type]
                      "GET", url, HOST, urllib3.Timeout(connect=5.0, read=0.2))
    exactly(error, ApiTimeoutError,
            f"Pieces OS at {HOST} accepted the connection but sent no response to GET {url} within the read "
            "timeout (0.2 s)")


def head_timed_out(received: int) -> ReadTimeoutError:
    """A read timeout raised while the response head was being read (as the transports chain it)."""
    timeout = ReadTimeoutError(None, "/x", "Read timed out.")  # type: ignore[arg-type]
    timeout.__cause__ = HeadTimeout("head", received)
    return timeout


def test_a_head_begun_but_not_finished_within_request_timeout_says_how_much_arrived() -> None:
    url = f"{HOST}/conversations/identifiers"
    error = translate(given_up(head_timed_out(1234)), "GET", url, HOST, urllib3.Timeout(total=2.0))
    exactly(error, ApiTimeoutError,  # docs/threads-processes-limits.md
            f"Pieces OS at {HOST} began answering GET {url} but did not finish the status line and headers "
            "within _request_timeout=2 s, which bounds the whole attempt (1234 bytes arrived)")


def test_a_head_begun_but_not_finished_within_the_read_timeout() -> None:
    error = translate(head_timed_out(7), "GET", f"{HOST}/x", HOST, urllib3.Timeout(connect=5.0, read=0.5))
    assert type(error) is ApiTimeoutError
    assert str(error).endswith(
        "within the read timeout (0.5 s; it bounds the whole response head) (7 bytes arrived)")


def test_a_head_timeout_before_any_byte_is_no_answer_at_all() -> None:
    error = translate(head_timed_out(0), "GET", f"{HOST}/x", HOST, urllib3.Timeout(connect=5.0, read=0.5))
    assert type(error) is ApiTimeoutError
    assert "accepted the connection but sent no response to GET" in str(error)


def test_a_tls_failure_is_a_connection_error_naming_the_settings() -> None:
    reason = SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
                      "certificate (_ssl.c:1006)")
    error = translate(given_up(reason), "GET", "https://127.0.0.1:39300/x", "https://127.0.0.1:39300", DEFAULT)
    exactly(error, ApiConnectionError,
            "TLS handshake with https://127.0.0.1:39300 failed: [SSL: CERTIFICATE_VERIFY_FAILED] certificate "
            "verify failed: unable to get local issuer certificate (_ssl.c:1006). Check verify_ssl / ssl_ca_cert.")


def test_a_proxy_failure_names_the_proxy() -> None:
    reason = ProxyError("Unable to connect to proxy", OSError("Tunnel connection failed: 403 Forbidden"))
    error = translate(given_up(reason), "GET", f"{HOST}/x", HOST, DEFAULT)
    exactly(error, ApiConnectionError,
            f"Could not reach {HOST} through the proxy: Unable to connect to proxy (OSError: Tunnel connection "
            "failed: 403 Forbidden)")


def test_a_connection_reset_during_the_exchange() -> None:
    url = f"{HOST}/conversations/create"
    error = translate(ProtocolError("Connection aborted.", RESET), "POST", url, HOST, DEFAULT)
    exactly(error, ApiConnectionError,
            f"The connection to {HOST} broke during POST {url}: Connection aborted. (ConnectionResetError: "
            "[Errno 104] Connection reset by peer)")
    assert (error.method, error.url) == ("POST", url)


def test_an_os_error_is_a_broken_connection() -> None:
    error = translate(BrokenPipeError(32, "Broken pipe"), "POST", f"{HOST}/x", HOST, DEFAULT)
    assert type(error) is ApiConnectionError
    assert str(error) == f"The connection to {HOST} broke during POST {HOST}/x: [Errno 32] Broken pipe"


def test_any_other_failure_names_the_request() -> None:
    error = translate(given_up(ValueError("something odd")), "GET", f"{HOST}/x", HOST, DEFAULT)
    exactly(error, ApiConnectionError, f"Request GET {HOST}/x to {HOST} failed: something odd")


def test_retries_run_out_with_no_reason_still_an_sdk_error() -> None:
    error = translate(MaxRetryError(None, "/x", None), "GET", f"{HOST}/x", HOST, DEFAULT)  # type: ignore[arg-type]
    assert type(error) is ApiConnectionError
    assert str(error).startswith(f"Request GET {HOST}/x to {HOST} failed: ")


# --------------------------------------------------------------------------- the other errors
def test_no_free_connection_in_time_names_both_settings() -> None:
    error = pool_timeout_error("GET", f"{HOST}/x", HOST, 30.0, 4)
    exactly(error, ApiTimeoutError,
            f"GET {HOST}/x: no connection became free within pool_timeout=30 s (all "
            "connection_pool_maxsize=4 connections were busy); raise Configuration.pool_timeout or "
            "connection_pool_maxsize, or make fewer calls at once")
    assert (error.host, error.url, error.method) == (HOST, f"{HOST}/x", "GET")


def test_a_body_past_request_timeout() -> None:
    exactly(body_timeout_error(HOST, 200, 2.0), ApiTimeoutError,  # docs/errors.md
            f"Pieces OS at {HOST} did not send the whole response body (status 200) within "
            "_request_timeout=2 s, which bounds the whole attempt, body included")


def test_a_body_that_stopped_before_the_read_timeout() -> None:
    exactly(body_timeout_error(HOST, 200, None), ApiTimeoutError,
            f"Pieces OS at {HOST} stopped sending the response body before the read timeout")


def test_a_body_cut_short() -> None:
    cut = ProtocolError("Connection broken: IncompleteRead(20 bytes read, 4076 more expected)")
    exactly(body_broken_error(HOST, 200, cut), ApiConnectionError,  # docs/errors.md
            f"The connection to {HOST} broke while reading the response body (status 200): Connection broken: "
            "IncompleteRead(20 bytes read, 4076 more expected)")


# --------------------------------------------------------------------------- parts
def test_a_head_timeout_is_a_timeout_that_counts_what_arrived() -> None:
    timeout = HeadTimeout("head", 12)
    assert isinstance(timeout, TimeoutError)
    assert (str(timeout), timeout.phase, timeout.received) == ("timed out reading the response head", "head", 12)


def test_a_cause_is_found_in_the_chain() -> None:
    inner = HeadTimeout("head", 1)
    middle = OSError("middle")
    middle.__context__ = inner
    outer = RuntimeError("outer")
    outer.__cause__ = middle
    assert cause_of_type(outer, HeadTimeout) is inner
    assert cause_of_type(outer, OSError) is middle
    assert cause_of_type(inner, HeadTimeout) is inner
    assert cause_of_type(outer, KeyError) is None
    assert cause_of_type(None, KeyError) is None


def test_a_chain_that_loops_is_searched_a_bounded_number_of_steps() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert cause_of_type(first, KeyError) is None


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (ProtocolError("Connection aborted.", RESET),
         "Connection aborted. (ConnectionResetError: [Errno 104] Connection reset by peer)"),
        (ProtocolError("Connection aborted: boom", OSError("boom")), "Connection aborted: boom"),
        (refused(), "Failed to establish a new connection: [Errno 111] Connection refused"),
        (ProtocolError("<urllib3.connection.HTTPConnection object at 0x7f00>: Failed to establish"),
         "Failed to establish"),
        (MaxRetryError(None, "/x", RESET), "[Errno 104] Connection reset by peer"),  # type: ignore[arg-type]
        (ProtocolError(""), "ProtocolError"),
    ],
)
def test_the_reason_text_keeps_the_human_part(exc: BaseException, text: str) -> None:
    assert reason_text(exc) == text


# --------------------------------------------------------------------------- _request_timeout
@pytest.mark.parametrize(
    ("value", "parts"),
    [
        (2, (None, None, 2.0)),
        (0.5, (None, None, 0.5)),
        ((1, 30), (1.0, 30.0, None)),
        ((0.25, 2.5), (0.25, 2.5, None)),
        (urllib3.Timeout(connect=1.0, read=2.0), (1.0, 2.0, None)),
        (urllib3.Timeout(total=5), (None, None, 5.0)),
        (urllib3.Timeout(), (None, None, None)),
    ],
)
def test_a_request_timeout_is_seconds_for_the_attempt_or_a_pair(value: Any, parts: Tuple[Optional[float], ...]) -> None:
    assert parse_request_timeout(value) == parts


@pytest.mark.parametrize("value", [0, -1, -0.5, math.inf, math.nan])
def test_a_request_timeout_must_be_positive(value: float) -> None:
    with pytest.raises(ApiValueError) as caught:
        parse_request_timeout(value)
    assert str(caught.value) == f"_request_timeout must be positive, not {value!r}"


@pytest.mark.parametrize("value", [(0, 1), (1, -2), (1, True), (1, math.inf), (1, "2"), (None, 1)])
def test_a_request_timeout_pair_must_hold_two_positive_numbers(value: Tuple[Any, Any]) -> None:
    with pytest.raises(ApiValueError) as caught:
        parse_request_timeout(value)
    assert str(caught.value) == f"_request_timeout pair must hold two positive numbers, not {value!r}"


@pytest.mark.parametrize("value", [True, False, "5", [1, 2], (1, 2, 3), (1,), None])
def test_a_request_timeout_of_another_kind_is_refused(value: Optional[object]) -> None:
    with pytest.raises(ApiValueError) as caught:
        parse_request_timeout(value)
    assert str(caught.value) == f"_request_timeout must be seconds or a (connect, read) pair, not {value!r}"
