"""Stream options are checked at the door, before any connection: unknown names, callbacks,
numbers. Also: the public import paths of the stream package, and that importing it is cheap."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any, Dict, Iterator

import pytest

import pieces_os_client
from pieces_os_client.api.conversations_api import ConversationsApi
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import ApiTypeError, ApiValueError
from pieces_os_client.stream import ConversationIdsMirror, IdentifiersStream


@pytest.fixture(scope="module")
def client() -> Iterator[ApiClient]:
    with Emulator() as emu, ApiClient(Configuration(host=emu.url)) as api_client:
        yield api_client


# --------------------------------------------------------------------------- unknown names
def test_a_misspelled_option_is_an_api_type_error_listing_the_valid_ones(client: ApiClient) -> None:
    with pytest.raises(ApiTypeError) as caught:
        IdentifiersStream(client, pingg_interval=5, reconect=False)  # type: ignore[arg-type]
    text = str(caught.value)
    assert "unknown identifiers stream options: pingg_interval, reconect" in text
    assert "ping_interval" in text and "reconnect" in text and "max_message_size" in text


@pytest.mark.parametrize("entry", ["api", "mirror"])
def test_the_entry_points_raise_the_same(client: ApiClient, entry: str) -> None:
    with pytest.raises(ApiTypeError, match="unknown identifiers stream option: retries"):
        if entry == "api":
            ConversationsApi(client).conversations_stream_identifiers(retries=3)
        else:
            ConversationIdsMirror.open(client, retries=3)


# --------------------------------------------------------------------------- callbacks
@pytest.mark.parametrize("name", ["on_message", "on_event", "on_error", "on_close"])
def test_a_callback_must_be_callable(client: ApiClient, name: str) -> None:
    with pytest.raises(ApiTypeError, match=f"{name} must be callable or None, not int \\(5\\)"):
        IdentifiersStream(client, **{name: 5})


def test_the_mirror_checks_on_change() -> None:
    with pytest.raises(ApiTypeError, match="on_change must be callable"):
        ConversationIdsMirror(on_change="redraw")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    ("options", "error", "text"),
    [
        ({"ping_interval": True}, ApiTypeError, "ping_interval must be a number or None, not bool"),
        ({"connect_timeout": "5"}, ApiTypeError, "connect_timeout must be a number or None, not str"),
        ({"max_reconnect_attempts": 2.5}, ApiTypeError, "max_reconnect_attempts must be an int"),
        ({"max_reconnect_attempts": -1}, ApiValueError, "max_reconnect_attempts must be finite and >= 0, not -1"),
        ({"initial_backoff": math.nan}, ApiValueError, "initial_backoff must be finite and >= 0, not nan"),
        ({"max_backoff": math.inf}, ApiValueError, "max_backoff must be finite and >= 0, not inf"),
        ({"backoff_jitter": 1.5}, ApiValueError, "backoff_jitter must be finite and >= 0 and <= 1, not 1.5"),
        ({"ping_timeout": 0}, ApiValueError, "ping_timeout must be finite and > 0, not 0"),
        ({"connect_timeout": -1.0}, ApiValueError, "connect_timeout must be finite and > 0, not -1.0"),
        ({"close_timeout": -0.1}, ApiValueError, "close_timeout must be finite and >= 0, not -0.1"),
        ({"close_read_limit": -1}, ApiValueError, "close_read_limit must be finite and >= 0, not -1"),
        ({"close_read_limit": 1.5}, ApiTypeError, "close_read_limit must be an int, not float"),
        ({"close_read_limit": None}, ApiTypeError, "close_read_limit must be an int, not NoneType"),
        ({"max_message_size": 0}, ApiValueError, "max_message_size must be finite and >= 1, not 0"),
        ({"max_message_size": 1e6}, ApiTypeError, "max_message_size must be an int or None, not float"),
        ({"reconnect": 1}, ApiTypeError, "reconnect must be True or False, not int"),
        ({"headers": ["X-A: b"]}, ApiTypeError, "headers must be a mapping or None, not list"),
    ],
)
def test_numbers_and_types_are_checked(
    client: ApiClient, options: Dict[str, Any], error: type, text: str
) -> None:
    with pytest.raises(error) as caught:
        IdentifiersStream(client, **options)
    assert text in str(caught.value)


def test_a_bad_configured_limit_names_the_configuration_setting() -> None:
    config = Configuration(host="http://127.0.0.1:9")
    with pytest.raises(ApiValueError) as caught:
        config.stream_max_message_size = -5
    assert "stream_max_message_size must be 1 or more, not -5" in str(caught.value)
    assert config.stream_max_message_size == 32 * 1024 * 1024  # the refused value is not kept


def test_good_values_are_accepted(client: ApiClient) -> None:
    with IdentifiersStream(
        client, max_reconnect_attempts=0, initial_backoff=0, max_backoff=0.5, backoff_jitter=1,
        ping_interval=None, ping_timeout=0.5, connect_timeout=2, close_timeout=0, close_read_limit=0,
        max_message_size=None,
    ) as stream:
        assert next(stream).iterable == []


# --------------------------------------------------------------------------- the package
def test_public_import_paths() -> None:
    from pieces_os_client.stream import (
        IDENTIFIERS_PATH,
        MirrorUpdate,
        StreamEvent,
        stream_url,
    )

    assert IDENTIFIERS_PATH == "/conversations/stream/identifiers"
    assert stream_url("http://h:1") == "ws://h:1" + IDENTIFIERS_PATH
    for name, value in [("IdentifiersStream", IdentifiersStream), ("ConversationIdsMirror", ConversationIdsMirror),
                        ("StreamEvent", StreamEvent), ("MirrorUpdate", MirrorUpdate)]:
        assert getattr(pieces_os_client, name) is value
        assert name in pieces_os_client.stream.__all__


def test_importing_the_stream_package_is_cheap() -> None:
    code = (
        "import sys, pieces_os_client.stream;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('websocket', 'pydantic')"
        " or m.startswith('pieces_os_client.models')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    ("entry", "name", "advice"),
    [("api", "headers", "as _headers="), ("api", "path", "identifiers path"),
     ("mirror", "on_event", "on_change="), ("mirror", "on_close", "mirror.ended")],
)
def test_an_option_the_entry_point_sets_itself_is_an_api_type_error(
    client: ApiClient, entry: str, name: str, advice: str
) -> None:
    value: Any = {"X-A": "b"} if name == "headers" else "/x" if name == "path" else print
    with pytest.raises(ApiTypeError) as caught:
        if entry == "api":
            ConversationsApi(client).conversations_stream_identifiers(**{name: value})
        else:
            ConversationIdsMirror.open(client, **{name: value})
    assert f"does not take the stream option {name}" in str(caught.value) and advice in str(caught.value)


def test_a_misspelled_option_gets_a_suggestion_for_each_close_name(client: ApiClient) -> None:
    with pytest.raises(ApiTypeError) as caught:
        IdentifiersStream(client, pingg_interval=5, reconect=False, colour=1)  # type: ignore[arg-type]
    assert str(caught.value).startswith(
        "unknown identifiers stream options: colour, pingg_interval, reconect "
        "(pingg_interval: did you mean ping_interval?; reconect: did you mean reconnect?). Valid "
    )
