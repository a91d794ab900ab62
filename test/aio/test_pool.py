"""The asyncio client's keep-alive pool across origins: ``connection_pool_maxsize`` bounds the
open connections, idle ones to other origins included, and a client calling two HTTPS origins
in turn keeps one connection to each.

Each test runs in a fresh event loop in debug mode (``testkit.aio.run``), whose exception
handler must record nothing; warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import asyncio
from typing import Any, List

from testkit.aio import IDENTIFIERS, RawServer, config, json_answer, run

from pieces_os_client.aio import AsyncApiClient


def test_the_pool_bound_counts_idle_connections_to_every_origin() -> None:
    async def main() -> None:
        servers = [RawServer(lambda head: json_answer()) for _ in range(3)]
        for server in servers:
            await server.__aenter__()
        try:
            async with AsyncApiClient(config(servers[0].url, connection_pool_maxsize=2)) as client:
                for _ in range(3):
                    for server in servers:
                        assert (await client.request("GET", server.url + IDENTIFIERS)).status == 200
                        await asyncio.sleep(0.05)  # lets each server see a close as it happens
                        assert sum(each.open for each in servers) <= 2, [each.open for each in servers]
        finally:
            for server in servers:
                await server.__aexit__(None, None, None)

    run(main())


def test_two_https_origins_called_in_turn_keep_one_connection_each(tls: Any) -> None:
    server_context, ca_file = tls
    connections: List[int] = [0, 0]

    async def main() -> None:
        async def serve(index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            connections[index] += 1
            try:
                while await reader.readuntil(b"\r\n\r\n"):
                    writer.write(json_answer())
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        listeners = [await asyncio.start_server(lambda r, w, i=i: serve(i, r, w), "127.0.0.1", 0, ssl=server_context)
                     for i in range(2)]
        urls = [f"https://127.0.0.1:{listener.sockets[0].getsockname()[1]}" for listener in listeners]
        try:
            async with AsyncApiClient(config(urls[0], ssl_ca_cert=ca_file, max_retries=0)) as client:
                for _ in range(4):
                    for url in urls:
                        assert (await client.request("GET", url + IDENTIFIERS)).status == 200
        finally:
            for listener in listeners:
                listener.close()
                await listener.wait_closed()

    run(main())
    assert connections == [1, 1]


def test_a_host_header_given_by_the_caller_is_sent_once_as_the_sync_client_sends_it() -> None:
    from pieces_os_client import ApiClient

    async def main() -> None:
        async with RawServer(lambda head: json_answer()) as server:
            cfg = config(server.url)
            with ApiClient(cfg) as sync_client:
                await asyncio.to_thread(sync_client.rest_client.request, "GET", server.url + IDENTIFIERS,
                                        headers={"Host": "pieces.example"})
            async with AsyncApiClient(cfg) as client:
                await client.request("GET", server.url + IDENTIFIERS, headers={"Host": "pieces.example"})
            sync_head, async_head = (head.decode("latin-1").lower() for head in server.heads)
        for head in (sync_head, async_head):
            assert head.count("\r\nhost:") == 1 and "\r\nhost: pieces.example\r\n" in head, head

    run(main())
