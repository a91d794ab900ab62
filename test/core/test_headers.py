"""``_core.headers``: the header rules every request keeps to (HTTP calls and the WebSocket
handshake), the masking of credentials, and the codings an ``Accept-Encoding`` allows."""

from __future__ import annotations

from typing import Any, Dict, Set

import pytest

from pieces_os_client._core.headers import accepted_codings, check_headers, header_value, redact_headers
from pieces_os_client.exceptions import ApiValueError


# --------------------------------------------------------------------------- redaction
def test_credentials_are_masked_whatever_the_case_of_their_name() -> None:
    headers = {"X-Application-ID": "app", "authorization": "Bearer t", "Cookie": "c=1",
               "Proxy-Authorization": "Basic x", "X-API-KEY": "k", "User-Agent": "ua", "Accept": "*/*"}
    assert redact_headers(headers) == {"X-Application-ID": "***", "authorization": "***", "Cookie": "***",
                                       "Proxy-Authorization": "***", "X-API-KEY": "***", "User-Agent": "ua",
                                       "Accept": "*/*"}
    assert headers["authorization"] == "Bearer t"  # a copy: the request keeps its credentials


# --------------------------------------------------------------------------- lookup
def test_a_header_is_found_whatever_the_case_of_its_key() -> None:
    headers: Dict[str, Any] = {"Accept-Encoding": "gzip", "X-Count": 3}
    assert header_value(headers, "accept-encoding") == "gzip"
    assert header_value(headers, "x-count") == "3"
    assert header_value(headers, "content-type") is None


# --------------------------------------------------------------------------- checks
def test_ordinary_headers_pass() -> None:
    check_headers({"User-Agent": "pieces-os-client/0.1", "X-Number": 5, "X-Latin": "caf\u00e9",
                   "X-Token-Chars": "!#$%&'*+.^_`|~", "Accept": "application/json; q=0.9"})
    check_headers({})


@pytest.mark.parametrize("name", ["Bad Name", "X:Colon", "", "X\r\nY", "Caf\u00e9", "(x)"])
def test_a_name_that_is_not_an_http_token_is_refused_by_name(name: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        check_headers({name: "v"})
    assert str(caught.value) == f"{name!r} is not a valid HTTP header name"


def test_a_name_that_is_not_text_is_refused() -> None:
    with pytest.raises(ApiValueError, match="is not a valid HTTP header name"):
        check_headers({b"X-Bytes": "v"})  # type: ignore[dict-item]
    with pytest.raises(ApiValueError, match="is not a valid HTTP header name"):
        check_headers({1: "v"})  # type: ignore[dict-item]


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b"])
def test_a_value_that_could_smuggle_a_header_line_is_refused(value: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        check_headers({"X-Trace": value})
    # the message of docs/streaming.md
    assert str(caught.value) == "the value of header 'X-Trace' contains a line break or NUL, which HTTP forbids"


def test_a_value_beyond_latin1_is_refused() -> None:
    with pytest.raises(ApiValueError) as caught:
        check_headers({"X-Price": "10 \u20ac"})
    assert str(caught.value) == (
        "the value of header 'X-Price' has characters HTTP headers cannot carry (Latin-1 only)")


def test_a_value_that_is_not_text_is_checked_as_its_text() -> None:
    class Sneaky:
        def __str__(self) -> str:
            return "ok\r\nX-Injected: 1"

    with pytest.raises(ApiValueError, match="line break or NUL"):
        check_headers({"X-Obj": Sneaky()})


def test_headers_found_valid_once_are_checked_again_unless_all_are_text() -> None:
    class Changing:
        """Valid when first shown, then not: only plain text can be remembered as checked."""

        def __init__(self) -> None:
            self.calls = 0

        def __str__(self) -> str:
            self.calls += 1
            return "fine" if self.calls == 1 else "now\nbroken"

    value = Changing()
    headers = {"X-First": "plain", "X-Changing": value}
    check_headers(headers)
    with pytest.raises(ApiValueError, match="'X-Changing' contains a line break"):
        check_headers(headers)


def test_a_set_of_text_headers_checked_once_is_still_refused_when_one_value_changes() -> None:
    headers = {"X-A": "one", "X-B": "two"}
    check_headers(headers)
    check_headers(headers)
    headers["X-B"] = "two\r\nX-Injected: 1"
    with pytest.raises(ApiValueError, match="'X-B'"):
        check_headers(headers)


def test_an_unhashable_value_is_checked_and_not_a_type_error() -> None:
    check_headers({"X-List": ["a", "b"]})
    with pytest.raises(ApiValueError, match="is not a valid HTTP header name"):
        check_headers({"X-List": ["a"], "Bad Name": "v"})


# --------------------------------------------------------------------------- Accept-Encoding
@pytest.mark.parametrize(
    ("accept", "codings"),
    [
        (None, {"identity"}),
        ("", {"identity"}),
        ("gzip", {"identity", "gzip"}),
        ("GZIP, Deflate", {"identity", "gzip", "deflate"}),
        ("gzip;q=0.5, br;q=1.0", {"identity", "gzip", "br"}),
        ("gzip;q=0.01", {"identity", "gzip"}),
        ("gzip;q=0", {"identity"}),
        ("gzip; q = 0.000 ", {"identity"}),
        ("identity;q=0, gzip", {"gzip"}),
        ("*", {"identity", "*"}),
        (" , ,gzip,", {"identity", "gzip"}),
    ],
)
def test_the_codings_an_accept_encoding_allows(accept: str, codings: Set[str]) -> None:
    assert accepted_codings(accept) == frozenset(codings)
