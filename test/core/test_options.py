"""The checks of a stream's options (``_core.options``), called directly: which error class and
which message a user sees for a misspelled option, a callback that cannot be called as the
stream calls it, or a number out of range (docs/streaming.md, "Reconnects and resync" and
"Callback signatures"). No sockets, no streams."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Callable, Dict, Optional

import pytest

from pieces_os_client._core.options import (
    CALLBACK_SIGNATURES,
    callback_style,
    check_callback,
    check_number,
    check_stream_options,
    keyword_options,
    reject_taken,
    reject_unknown,
)
from pieces_os_client.exceptions import ApiTypeError, ApiValueError

#: the options of docs/streaming.md's reference, as the stream takes them by default
DEFAULTS: Dict[str, Any] = {
    "path": "/conversations/stream/identifiers", "headers": None, "reconnect": True, "max_reconnect_attempts": None,
    "initial_backoff": 0.25, "max_backoff": 10.0, "backoff_jitter": 0.5, "ping_interval": 20.0,
    "ping_timeout": 10.0, "connect_timeout": None, "close_timeout": 0.5, "close_read_limit": 65536,
    "max_message_size": ...,
}
MIB32 = 32 * 1024 * 1024


def checked(config_size: Optional[int] = MIB32, **changes: Any) -> Optional[int]:
    return check_stream_options(config_size, **{**DEFAULTS, **changes})


# --------------------------------------------------------------------------- unknown and taken names
def test_no_unknown_option_no_error() -> None:
    reject_unknown({}, ["ping_interval"])


def test_a_misspelled_option_names_the_likely_one_and_lists_the_valid_ones() -> None:
    with pytest.raises(ApiTypeError) as caught:
        reject_unknown({"pingg_interval": 5}, ["reconnect", "ping_interval"])
    assert isinstance(caught.value, TypeError)
    assert str(caught.value) == ("unknown identifiers stream option: pingg_interval (did you mean ping_interval?). "
                                 "Valid identifiers stream options: ping_interval, reconnect")


def test_several_unknown_options_are_named_together() -> None:
    with pytest.raises(ApiTypeError) as caught:
        reject_unknown({"reconect": False, "retries": 3, "pingg_interval": 5}, ["reconnect", "ping_interval"])
    assert str(caught.value) == (
        "unknown identifiers stream options: pingg_interval, reconect, retries "
        "(pingg_interval: did you mean ping_interval?; reconect: did you mean reconnect?). "
        "Valid identifiers stream options: ping_interval, reconnect")


def test_an_option_the_entry_point_sets_itself_is_refused_with_advice() -> None:
    taken = {"path": "this method opens the identifiers path", "headers": "pass handshake headers as _headers="}
    reject_taken({"reconnect": False}, taken, "conversations_stream_identifiers()")
    with pytest.raises(ApiTypeError) as caught:
        reject_taken({"reconnect": False, "path": "/x", "headers": {}}, taken, "conversations_stream_identifiers()")
    assert str(caught.value) == ("conversations_stream_identifiers() does not take the stream option headers: "
                                 "pass handshake headers as _headers=")  # the first in name order


def test_of_several_taken_options_the_first_by_name_is_named() -> None:
    """Whatever the order of a set of names (it varies with their hashes), the error names the same one."""
    names = [f"option_{letter}" for letter in "abcdefghij"]
    taken = {name: f"advice {name}" for name in names}
    for i, first in enumerate(names):
        for later in names[i + 1:]:
            with pytest.raises(ApiTypeError) as caught:
                reject_taken({later: 1, first: 2}, taken, "f()")
            assert str(caught.value) == f"f() does not take the stream option {first}: advice {first}"


def test_keyword_options_are_the_keyword_only_parameters() -> None:
    def function(a: int, b: int = 0, *args: int, c: int, d: int = 1, **rest: int) -> None: ...

    assert list(keyword_options(function)) == ["c", "d"]


def test_the_valid_names_are_the_documented_options() -> None:
    from pieces_os_client.aio import AsyncIdentifiersStream
    from pieces_os_client.stream import IdentifiersStream

    documented = set(DEFAULTS) - {"path"}
    callbacks = set(CALLBACK_SIGNATURES)
    assert set(keyword_options(IdentifiersStream.__init__)) == documented | callbacks
    assert set(keyword_options(AsyncIdentifiersStream.__init__)) == documented


# --------------------------------------------------------------------------- callbacks
def test_a_callback_is_callable_or_none() -> None:
    check_callback("on_message", None)
    check_callback("on_message", print)
    with pytest.raises(ApiTypeError) as caught:
        check_callback("on_message", 5)
    assert str(caught.value) == "on_message must be callable or None, not int (5)"


def test_a_long_value_is_shown_cut_short() -> None:
    with pytest.raises(ApiTypeError) as caught:
        check_callback("on_error", "x" * 100)
    assert str(caught.value) == f"on_error must be callable or None, not str ('{'x' * 56}...)"


def sdk_message(message: object) -> None: ...
def official_message(ws: object, message: object) -> None: ...
def sdk_close() -> None: ...
def official_close(ws: object, code: Optional[int], reason: Optional[str]) -> None: ...


@pytest.mark.parametrize(
    ("name", "callback", "style"),
    [
        ("on_message", sdk_message, "sdk"),
        ("on_message", official_message, "official"),
        ("on_message", lambda *args: None, "sdk"),  # both fit: this SDK's style first
        ("on_message", lambda message, extra=None: None, "sdk"),
        ("on_event", sdk_message, "sdk"),
        ("on_error", lambda error: None, "sdk"),
        ("on_error", lambda ws, error: None, "official"),
        ("on_close", sdk_close, "sdk"),
        ("on_close", official_close, "official"),
        ("on_close", lambda ws=None, code=None, reason=None: None, "sdk"),
        ("on_message", [].append, "sdk"),
        ("on_close", None, None),
    ],
)
def test_callback_style(name: str, callback: Optional[Callable[..., object]], style: Optional[str]) -> None:
    assert callback_style(name, callback) == style


def test_a_callable_whose_signature_cannot_be_read_is_called_in_this_sdks_style() -> None:
    class Opaque:
        __signature__ = "unreadable"  # inspect.signature raises TypeError

        def __call__(self, *args: object) -> None: ...

    assert callback_style("on_close", Opaque()) == "sdk"
    assert callback_style("on_message", max) == "sdk"  # a builtin without a signature (ValueError)


def test_a_callback_that_fits_neither_style_names_both() -> None:
    with pytest.raises(ApiTypeError) as caught:
        callback_style("on_close", lambda ws, code: None)
    text = str(caught.value)
    assert text.startswith("on_close must take the arguments the stream passes: on_close() or, in the official "
                           "style, on_close(stream, code, reason); <function ")
    assert text.endswith(" has the signature (ws, code)")


def test_on_event_has_no_official_style() -> None:
    with pytest.raises(ApiTypeError) as caught:
        callback_style("on_event", lambda ws, event: None)
    text = str(caught.value)
    assert text.startswith("on_event must take the arguments the stream passes: on_event(event); <function ")
    assert text.endswith(" has the signature (ws, event)") and "official style" not in text


def test_a_required_keyword_fits_no_style() -> None:
    def on_error(error: object, *, context: object) -> None: ...

    with pytest.raises(ApiTypeError, match=r"on_error must take .* on_error\(error\) or, in the official style, "
                                           r"on_error\(stream, error\); "):
        callback_style("on_error", on_error)


def test_callback_style_refuses_what_is_not_callable() -> None:
    with pytest.raises(ApiTypeError, match=r"^on_close must be callable or None, not str \('x'\)$"):
        callback_style("on_close", "x")


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    ("value", "kwargs"),
    [(0, {}), (0.0, {}), (5, {}), (1e300, {}), (None, {"optional": True}), (1e-9, {"strict": True}),
     (1.0, {"high": 1.0}), (1, {"low": 1, "integer": True}), (2**70, {"integer": True})],
)
def test_numbers_in_range_pass(value: object, kwargs: Dict[str, Any]) -> None:
    check_number("n", value, **kwargs)


@pytest.mark.parametrize(
    ("value", "kwargs", "text"),
    [
        (True, {}, "n must be a number, not bool (True)"),
        (False, {"integer": True}, "n must be an int, not bool (False)"),
        (None, {}, "n must be a number, not NoneType (None)"),
        ("5", {"optional": True}, "n must be a number or None, not str ('5')"),
        (2.0, {"integer": True}, "n must be an int, not float (2.0)"),
        (2.5, {"integer": True, "optional": True}, "n must be an int or None, not float (2.5)"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_api_type_error(value: object, kwargs: Dict[str, Any], text: str) -> None:
    with pytest.raises(ApiTypeError) as caught:
        check_number("n", value, **kwargs)
    assert str(caught.value) == text


@pytest.mark.parametrize(
    ("value", "kwargs", "text"),
    [
        (-1, {}, "n must be finite and >= 0, not -1"),
        (-0.5, {}, "n must be finite and >= 0, not -0.5"),
        (math.nan, {}, "n must be finite and >= 0, not nan"),
        (math.inf, {}, "n must be finite and >= 0, not inf"),
        (-math.inf, {"optional": True}, "n must be finite and >= 0, not -inf"),
        (0, {"strict": True}, "n must be finite and > 0, not 0"),
        (1.5, {"high": 1.0}, "n must be finite and >= 0 and <= 1, not 1.5"),
        (0, {"low": 1, "integer": True}, "n must be finite and >= 1, not 0"),
        (0.5, {"low": 0.5, "strict": True, "high": 2}, "n must be finite and > 0.5 and <= 2, not 0.5"),
    ],
)
def test_a_value_out_of_range_is_an_api_value_error(value: object, kwargs: Dict[str, Any], text: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        check_number("n", value, **kwargs)
    assert isinstance(caught.value, ValueError) and str(caught.value) == text


# --------------------------------------------------------------------------- all of a stream's options
def test_the_defaults_pass_and_the_configured_bound_is_used_when_left_out() -> None:
    assert checked() == MIB32
    assert checked(None) is None  # the configuration lifted it
    assert checked(max_message_size=1024) == 1024  # the stream's option wins
    assert checked(max_message_size=None) is None


def test_documented_edge_values_pass() -> None:
    assert checked(headers={"X-A": "b"}, reconnect=False, max_reconnect_attempts=0, initial_backoff=0,
                   max_backoff=0, backoff_jitter=1, ping_interval=0, ping_timeout=0.5, connect_timeout=2,
                   close_timeout=0, close_read_limit=0, max_message_size=1) == 1
    assert checked(ping_interval=None) == MIB32  # None or 0: never ping
    assert checked(headers=MappingProxyType({"X-A": "b"})) == MIB32  # any mapping, not only a dict


@pytest.mark.parametrize(
    ("option", "value", "error", "text"),
    [
        ("path", b"/p", ApiTypeError, "path must be a str, not bytes"),
        ("headers", ["X-A: b"], ApiTypeError, "headers must be a mapping or None, not list"),
        ("reconnect", 1, ApiTypeError, "reconnect must be True or False, not int (1)"),
        ("reconnect", None, ApiTypeError, "reconnect must be True or False, not NoneType (None)"),
        ("max_reconnect_attempts", 2.5, ApiTypeError, "max_reconnect_attempts must be an int or None, not float (2.5)"),
        ("max_reconnect_attempts", -1, ApiValueError, "max_reconnect_attempts must be finite and >= 0, not -1"),
        ("initial_backoff", math.nan, ApiValueError, "initial_backoff must be finite and >= 0, not nan"),
        ("initial_backoff", None, ApiTypeError, "initial_backoff must be a number, not NoneType (None)"),
        ("max_backoff", math.inf, ApiValueError, "max_backoff must be finite and >= 0, not inf"),
        ("backoff_jitter", 1.5, ApiValueError, "backoff_jitter must be finite and >= 0 and <= 1, not 1.5"),
        ("ping_interval", True, ApiTypeError, "ping_interval must be a number or None, not bool (True)"),
        ("ping_interval", -1, ApiValueError, "ping_interval must be finite and >= 0, not -1"),
        ("ping_timeout", 0, ApiValueError, "ping_timeout must be finite and > 0, not 0"),
        ("ping_timeout", None, ApiTypeError, "ping_timeout must be a number, not NoneType (None)"),
        ("connect_timeout", "5", ApiTypeError, "connect_timeout must be a number or None, not str ('5')"),
        ("connect_timeout", 0, ApiValueError, "connect_timeout must be finite and > 0, not 0"),
        ("close_timeout", -0.1, ApiValueError, "close_timeout must be finite and >= 0, not -0.1"),
        ("close_read_limit", None, ApiTypeError, "close_read_limit must be an int, not NoneType (None)"),
        ("close_read_limit", 1.5, ApiTypeError, "close_read_limit must be an int, not float (1.5)"),
        ("close_read_limit", -1, ApiValueError, "close_read_limit must be finite and >= 0, not -1"),
        ("max_message_size", 0, ApiValueError, "max_message_size must be finite and >= 1, not 0"),
        ("max_message_size", 1e6, ApiTypeError, "max_message_size must be an int or None, not float (1000000.0)"),
    ],
)
def test_each_option_is_checked_by_name(option: str, value: object, error: type, text: str) -> None:
    with pytest.raises(error) as caught:
        checked(MIB32, **{option: value})
    assert type(caught.value) is error and str(caught.value) == text


def test_a_bad_configured_bound_names_the_configuration_setting() -> None:
    with pytest.raises(ApiValueError) as caught:
        checked(0)
    assert str(caught.value) == "Configuration.stream_max_message_size must be finite and >= 1, not 0"
    assert checked(0, max_message_size=10) == 10  # not used, so not checked
