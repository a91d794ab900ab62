"""Which credentials reach the wire: the API's own (``X-Application-ID``) on every HTTP call and
on the stream's handshake, ``access_token`` on neither (the API document declares no scheme for
it, and the official SDK sends it on none of these operations), and nothing ever past the
configured origin. Read off a raw server that keeps each request head; the asyncio client's
twin is test/aio/test_auth.py."""

from __future__ import annotations

import pytest
from testkit.origin import origin_script
from testkit.ws import HeadServer

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.exceptions import ApiException


def _nothing(*_: object) -> None:
    return None


def test_only_the_api_key_reaches_the_wire_on_http_and_on_the_handshake() -> None:
    with HeadServer(_nothing) as elsewhere, HeadServer(origin_script(elsewhere.url)) as origin:
        config = Configuration(host=origin.url, api_key={"application": "app-1"}, access_token="tok-1",
                               max_retries=0)
        with ApiClient(config) as client:
            api = ConversationsApi(client)
            api.conversations_identifiers_snapshot()
            with pytest.raises(ApiException) as redirected:
                api.conversations_snapshot()  # a 307 elsewhere: not followed
            with api.conversations_stream_identifiers(reconnect=False) as stream:
                next(stream)
            # the official escape hatch still sends the token, to this origin, when a call asks
            api.conversations_identifiers_snapshot(_request_auth=config.auth_settings()["auth0"])
    assert redirected.value.status == 307
    heads = [head.decode("latin-1").lower() for head in origin.heads]
    assert [head.split(" ", 2)[1] for head in heads] == [
        "/conversations/identifiers", "/conversations", "/conversations/stream/identifiers",
        "/conversations/identifiers",
    ]
    assert all("\r\nx-application-id: app-1\r\n" in head for head in heads[:3])
    assert not any("authorization" in head or "tok-1" in head for head in heads[:3]), heads
    assert "\r\nauthorization: bearer tok-1\r\n" in heads[3]
    assert elsewhere.connections == 0  # no credential ever went past the configured origin
