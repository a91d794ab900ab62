"""Hostile servers, through the asyncio client: the outcome docs/errors.md promises for every answer.

The twin of test/sync/test_hostile.py, with the same server, the same generated answers and
the same oracle (``testkit.answers``): whatever bytes come back, the caller gets the
operation's result for a 2xx with its document, the status's own error class for an error
status, ``ResponseFormatError`` for a 2xx without its document, and only ever an SDK error.
Each example runs in a fresh event loop (``testkit.aio.run``), whose exception handler must
record nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from testkit.aio import run
from testkit.answers import Drawn, ScriptedServer, check_documented_outcome, http_response, responses

from pieces_os_client import Configuration
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
from pieces_os_client.exceptions import ApiConnectionError, OpenApiException

OPERATIONS: dict[str, Callable[[AsyncConversationsApi], Awaitable[Any]]] = {
    "identifiers": lambda a: a.conversations_identifiers_snapshot(),
    "snapshot": lambda a: a.conversations_snapshot(transferables=False),
    "create": lambda a: a.conversations_create_specific_conversation(seeded_conversation={"name": "n"}),
    "from_asset": lambda a: a.conversations_create_from_asset("asset/1"),
    "delete": lambda a: a.conversations_delete_specific_conversation("c?1"),
    "identifiers_info": lambda a: a.conversations_identifiers_snapshot_with_http_info(),
}


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def call(server: ScriptedServer, operation: str, **settings: Any) -> Any:
    """Run one operation in a fresh loop and client: its result, or the SDK error it raised."""
    config = Configuration(host=server.url, connect_timeout=2, read_timeout=2, **settings)

    async def main() -> Any:
        async with AsyncApiClient(config) as client:
            try:
                return await OPERATIONS[operation](AsyncConversationsApi(client))
            except OpenApiException as error:
                str(error)  # the message must render, whatever the body was
                return error
            # anything else propagates and fails the test, with Hypothesis's minimal example

    return run(main())


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(response=responses(), operation=st.sampled_from(sorted(OPERATIONS)))
def test_any_response_gives_its_documented_result_or_sdk_error(
    server: ScriptedServer, response: Drawn, operation: str
) -> None:
    server.response = response.raw
    outcome = call(server, operation, max_retries=0)
    event(type(outcome).__name__)
    check_documented_outcome(response, operation, outcome)


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(response=responses(), operation=st.sampled_from(["identifiers", "snapshot", "identifiers_info"]))
def test_retried_gets_give_their_documented_result_or_sdk_error(
    server: ScriptedServer, response: Drawn, operation: str
) -> None:
    # the server gives the same answer each time, so the outcome is the same as unretried
    server.response = response.raw
    before = server.requests
    outcome = call(server, operation, max_retries=1, backoff_factor=0, backoff_max=0.05)
    check_documented_outcome(response, operation, outcome)
    if response.clean and response.status in {429, 500, 502, 503, 504}:
        assert server.requests - before == 2, "a GET answered 429/5xx is tried once more (max_retries=1)"


def test_not_http_at_all_is_a_connection_error(server: ScriptedServer) -> None:
    server.response = b"SSH-2.0-OpenSSH_9.6\r\n"
    outcome = call(server, "identifiers", max_retries=0)
    assert isinstance(outcome, ApiConnectionError), repr(outcome)


def test_negative_chunk_size_is_an_sdk_error(server: ScriptedServer) -> None:
    server.response = http_response(200, b"-2\r\n", [("Transfer-Encoding", "chunked")])
    outcome = call(server, "identifiers", max_retries=0)
    assert isinstance(outcome, OpenApiException), repr(outcome)
