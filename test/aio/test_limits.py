"""The asyncio client's limits on what a server sends: max_response_size and refused or
oversized content encodings, compared with the sync client.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest
from testkit.aio import RawServer, config, json_answer, run

from pieces_os_client import ApiClient, ResponseFormatError, ResponseTooLargeError
from pieces_os_client.aio import AsyncApiClient


def test_max_response_size_and_refused_encodings_match_the_sync_client() -> None:
    big = json.dumps({"iterable": [{"id": "x" * 40}] * 200}).encode()
    zipped = gzip.compress(big)

    def answer(head: bytes) -> bytes:
        if b"zipped" in head.split(b"\r\n")[0]:
            return json_answer(zipped, extra=b"Content-Encoding: gzip\r\n")
        return json_answer(big)

    async def main() -> None:
        async with RawServer(answer) as server:
            cfg = config(server.url, max_response_size=1000)
            url = server.url
            with ApiClient(cfg) as sync_client:
                def sync_call(path: str, **headers: str) -> BaseException:
                    try:
                        sync_client.rest_client.request("GET", url + path, headers=headers)
                    except BaseException as exc:
                        return exc
                    raise AssertionError("no error")

                sync_large = await asyncio.to_thread(sync_call, "/plain")
                sync_refused = await asyncio.to_thread(sync_call, "/zipped")
                sync_bomb = await asyncio.to_thread(sync_call, "/zipped", **{"Accept-Encoding": "gzip"})
            async with AsyncApiClient(cfg) as client:
                with pytest.raises(ResponseTooLargeError) as large:
                    await client.request("GET", url + "/plain")
                with pytest.raises(ResponseFormatError) as refused:
                    await client.request("GET", url + "/zipped")
                with pytest.raises(ResponseTooLargeError) as bomb:
                    await client.request("GET", url + "/zipped", headers={"Accept-Encoding": "gzip"})
                cfg.max_response_size = None
                async with AsyncApiClient(cfg) as unlimited:
                    decoded = await unlimited.request("GET", url + "/zipped", headers={"Accept-Encoding": "gzip"})
                    assert decoded.data == big
            for mine, theirs in ((large, sync_large), (refused, sync_refused), (bomb, sync_bomb)):
                assert type(mine.value) is type(theirs)
                assert mine.value.args == theirs.args

    run(main())
