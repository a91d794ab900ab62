"""``_core.urls``: which URLs a request may go to, and how a URL is shown without credentials."""

from __future__ import annotations

import traceback

import pytest

from pieces_os_client._core.urls import mask_userinfo, origin_of, without_userinfo
from pieces_os_client.exceptions import ApiValueError


def test_credentials_in_a_url_are_masked_for_showing() -> None:
    assert mask_userinfo("http://me:secret@127.0.0.1:39300/x") == "http://***@127.0.0.1:39300/x"
    assert mask_userinfo("wss://token@h/conversations/stream/identifiers") == (
        "wss://***@h/conversations/stream/identifiers")
    assert mask_userinfo("http://127.0.0.1:39300/x") == "http://127.0.0.1:39300/x"


def test_credentials_are_left_out_of_what_a_request_goes_to() -> None:
    assert without_userinfo("http://me:secret@127.0.0.1:39300/x") == "http://127.0.0.1:39300/x"
    assert without_userinfo("https://h:8443/base") == "https://h:8443/base"


def test_an_at_sign_after_the_host_is_not_a_credential() -> None:
    for url in ("http://h/a@b", "http://h/?q=a@b", "http://h/#a@b"):
        assert mask_userinfo(url) == url
        assert without_userinfo(url) == url


def test_the_origin_is_scheme_host_and_port() -> None:
    assert origin_of("http://127.0.0.1:39300/conversations/identifiers") == "http://127.0.0.1:39300"
    assert origin_of("https://h/x?y=1") == "https://h"
    assert origin_of("http://h:1?x=1") == "http://h:1"
    assert origin_of("http://[::1]:39300/x") == "http://[::1]:39300"


def test_the_origin_leaves_out_credentials() -> None:
    assert origin_of("http://me:secret@h:1/x") == "http://h:1"


@pytest.mark.parametrize("url", ["localhost:39300/conversations", "ftp://h/x", "http://", "ws://h:1/x"])
def test_a_url_that_is_not_http_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        origin_of(url)
    assert str(caught.value).endswith(
        "is not an http:// or https:// URL with a host. Check Configuration.host (for example "
        "http://localhost:39300).")
    assert "/".join(url.split("/", 3)[:3]) in str(caught.value)


def test_the_documented_message_for_a_host_without_a_scheme() -> None:
    with pytest.raises(ApiValueError) as caught:
        origin_of("localhost:39300/conversations")
    assert str(caught.value) == (
        "'localhost:39300/conversations' is not an http:// or https:// URL with a host. Check "
        "Configuration.host (for example http://localhost:39300).")


@pytest.mark.parametrize("url", ["http://h:bad/x", "http://[::1/x", "http://h:-1/x"])
def test_a_url_that_cannot_be_parsed_is_refused(url: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        origin_of(url)
    assert "is not a valid URL" in str(caught.value) and "Check Configuration.host." in str(caught.value)


@pytest.mark.parametrize("url", ["http://me:secret@[::1/x", "http://me:secret@h:bad/x",
                                 "http://me:secret@h:70000/x", "http://me:secret@/x"])
def test_a_refused_url_never_shows_its_credentials(url: str) -> None:
    with pytest.raises(ApiValueError) as caught:
        origin_of(url)
    shown = "".join(traceback.format_exception(type(caught.value), caught.value, caught.value.__traceback__))
    assert "***@" in str(caught.value)
    assert "secret" not in shown
