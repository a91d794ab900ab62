"""The asyncio client through a proxy: plain HTTP in the absolute form with the proxy's
credentials and ``proxy_headers``, as the sync client sends it; HTTPS through a ``CONNECT``
tunnel; and a proxy that refuses the tunnel.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from testkit.aio import IDENTIFIERS, RawServer, config, json_answer, run
from testkit.ws import Relay

from pieces_os_client import ApiClient, ApiConnectionError, ConversationsApi
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.emulator import Emulator


def test_plain_http_through_a_proxy_sends_what_the_sync_client_sends() -> None:
    target = "http://127.0.0.1:9"  # never connected to: the proxy answers

    async def main() -> None:
        async with RawServer(lambda head: json_answer()) as proxy:
            cfg = config(target, proxy=proxy.url.replace("http://", "http://me:s%40cret@"),
                         proxy_headers={"X-Proxy-Note": "1"}, max_retries=0)
            with ApiClient(cfg) as sync_client:
                await asyncio.to_thread(ConversationsApi(sync_client).conversations_identifiers_snapshot)
            async with AsyncApiClient(cfg) as client:
                assert (await AsyncConversationsApi(client).conversations_identifiers_snapshot()).iterable == []
            sync_head, async_head = (head.decode("latin-1") for head in proxy.heads)
        assert async_head.split("\r\n")[0] == sync_head.split("\r\n")[0] == f"GET {target}{IDENTIFIERS} HTTP/1.1"
        assert "\r\nX-Proxy-Note: 1\r\n" in sync_head and "\r\nX-Proxy-Note: 1\r\n" in async_head
        # the proxy URL's user:password, as the stream sends it on CONNECT (me:s@cret)
        assert "\r\nProxy-Authorization: Basic bWU6c0BjcmV0\r\n" in async_head

    run(main())


def test_https_goes_through_a_connect_tunnel_and_a_refused_tunnel_says_so(tls: Any) -> None:
    server_context, ca_file = tls

    async def main() -> None:
        async with Emulator(port=0, ssl_context=server_context) as emu:
            with Relay() as relay:
                cfg = config(emu.url, proxy=relay.url, ssl_ca_cert=ca_file, max_retries=0)
                async with AsyncApiClient(cfg) as client:
                    api = AsyncConversationsApi(client)
                    created = await api.conversations_create_specific_conversation()
                    assert [c.id for c in (await api.conversations_identifiers_snapshot()).iterable] == [created.id]
                port = emu.url.rsplit(":", 1)[1]
                assert [head.split("\r\n")[0] for head in relay.heads] == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]
            with Relay(refuse=True) as refusing:
                cfg = config(emu.url, proxy=refusing.url, ssl_ca_cert=ca_file, max_retries=0)
                async with AsyncApiClient(cfg) as client:
                    with pytest.raises(ApiConnectionError, match=r"through the proxy.*407") as caught:
                        await AsyncConversationsApi(client).conversations_identifiers_snapshot()
                assert "Could not reach" in str(caught.value)

    run(main())
