"""The asyncio client's request-path shortcuts keep their promises: header checks remembered
only for valid sets, and response headers exactly as the sync client gives them.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio

import pytest
from testkit.aio import IDENTIFIERS, RawServer, config, header_lines, json_answer, run

from pieces_os_client import ApiClient, ApiValueError, ConversationsApi
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi


def test_headers_are_checked_on_every_call_whatever_the_call_before_sent() -> None:
    class Odd:
        """A header value that cannot be compared with anything."""

        def __eq__(self, other: object) -> bool:
            raise TypeError("no comparing")

        __hash__ = None  # type: ignore[assignment]

        def __str__(self) -> str:
            return "odd"

    async def main() -> None:
        async with RawServer(lambda head: json_answer()) as server:
            async with AsyncApiClient(config(server.url)) as client:
                api = AsyncConversationsApi(client)
                for _ in range(2):
                    await api.conversations_identifiers_snapshot()
                    with pytest.raises(ApiValueError, match="line break"):
                        await api.conversations_identifiers_snapshot(_headers={"X-Bad": "a\r\nb"})
                    await api.conversations_identifiers_snapshot(_headers={"accept-encoding": "gzip"})
                    await api.conversations_identifiers_snapshot(_headers={"X-Odd": Odd()})
                    with pytest.raises(ApiValueError, match="line break"):
                        await client.request("GET", server.url + IDENTIFIERS, headers={"X-Bad": "a\nb"})
            heads = [header_lines(head) for head in server.heads]
        assert len(heads) == 6
        for lines in heads:
            assert sum(line.lower().startswith("accept-encoding:") for line in lines) == 1
        assert "Accept-Encoding: identity" in heads[0] and "accept-encoding: gzip" in heads[1]
        assert "X-Odd: odd" in heads[2] and "Accept-Encoding: identity" in heads[3]

    run(main())


def test_response_headers_are_the_sync_clients_repeats_case_and_latin1_included() -> None:
    extra = (b"X-Twice: one\r\nx-twice: two\r\nX-Latin: caf\xe9\r\nSet-Cookie: a=1\r\n"
             b"Set-Cookie: b=2\r\nRetry-After: 0\r\n")

    async def main() -> None:
        async with RawServer(lambda head: json_answer(extra=extra)) as server:
            cfg = config(server.url)
            with ApiClient(cfg) as sync_client:
                sync_api = ConversationsApi(sync_client)
                sync_headers = (await asyncio.to_thread(
                    sync_api.conversations_identifiers_snapshot_with_http_info)).headers
            async with AsyncApiClient(cfg) as client:
                async_headers = (await AsyncConversationsApi(client)
                                 .conversations_identifiers_snapshot_with_http_info()).headers
        assert sync_headers is not None and async_headers is not None
        assert type(async_headers) is type(sync_headers)
        assert list(async_headers.items()) == list(sync_headers.items())
        assert async_headers.getlist("x-twice") == ["one", "two"] == sync_headers.getlist("X-Twice")
        assert async_headers["x-latin"] == "caf\xe9"
        assert async_headers == sync_headers

    run(main())
