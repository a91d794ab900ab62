"""Hostile servers: whatever comes back over the socket, the caller only ever sees SDK errors.

A tiny raw-socket server answers each connection with bytes the test chooses (Hypothesis
generates them: random bytes, random or deeply nested JSON, huge strings, wrong types, unknown
fields and enum values, odd statuses, content types and encodings). The client must return a
typed result or raise a subclass of ``OpenApiException`` - never a json, pydantic, urllib3 or
http.client exception, and never a ``RecursionError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from testkit.answers import (
    CONVERSATION,
    Drawn,
    ScriptedServer,
    check_documented_outcome,
    http_response,
    json_values,
    nested,
    responses,
)

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.exceptions import (
    ERROR_BODY_LIMIT,
    ApiConnectionError,
    OpenApiException,
    ResponseFormatError,
    ServiceException,
)
from pieces_os_client.models import (
    Conversation,
)


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


@pytest.fixture(scope="module")
def api(server: ScriptedServer) -> Iterator[ConversationsApi]:
    config = Configuration(host=server.url, max_retries=0, connect_timeout=2, read_timeout=2)
    with ApiClient(config) as client:
        yield ConversationsApi(client)


@pytest.fixture(scope="module")
def retrying_api(server: ScriptedServer) -> Iterator[ConversationsApi]:
    config = Configuration(host=server.url, max_retries=1, backoff_factor=0, backoff_max=0.05,
                           connect_timeout=2, read_timeout=2)
    with ApiClient(config) as client:
        yield ConversationsApi(client)


OPERATIONS: dict[str, Callable[[ConversationsApi], Any]] = {
    "identifiers": lambda a: a.conversations_identifiers_snapshot(),
    "snapshot": lambda a: a.conversations_snapshot(transferables=False),
    "create": lambda a: a.conversations_create_specific_conversation(seeded_conversation={"name": "n"}),
    "from_asset": lambda a: a.conversations_create_from_asset("asset/1"),
    "delete": lambda a: a.conversations_delete_specific_conversation("c?1"),
    "identifiers_info": lambda a: a.conversations_identifiers_snapshot_with_http_info(),
}


def call_and_check(api: ConversationsApi, operation: str) -> Any:
    """Run one operation: a result, or an SDK error whose original cause (if any) is kept."""
    try:
        return OPERATIONS[operation](api)
    except OpenApiException as error:
        str(error)  # the message must render, whatever the body was
        return error
    # anything else propagates and fails the test, with Hypothesis's minimal example


# ---------------------------------------------------------------- 7. properties
@settings(max_examples=500, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(response=responses(), operation=st.sampled_from(sorted(OPERATIONS)))
def test_any_response_gives_its_documented_result_or_sdk_error(
    api: ConversationsApi, server: ScriptedServer, response: Drawn, operation: str
) -> None:
    server.response = response.raw
    outcome = call_and_check(api, operation)
    event(type(outcome).__name__)
    check_documented_outcome(response, operation, outcome)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(response=responses(), operation=st.sampled_from(["identifiers", "snapshot", "identifiers_info"]))
def test_retried_gets_give_their_documented_result_or_sdk_error(
    retrying_api: ConversationsApi, server: ScriptedServer, response: Drawn, operation: str
) -> None:
    # with a retry allowed, urllib3 drains and discards bad answers to 429/5xx before trying
    # again; the server gives the same answer each time, so the outcome is the same as unretried
    server.response = response.raw
    before = server.requests
    outcome = call_and_check(retrying_api, operation)
    check_documented_outcome(response, operation, outcome)
    if response.clean and response.status in {429, 500, 502, 503, 504}:
        assert server.requests - before == 2, "a GET answered 429/5xx is tried once more (max_retries=1)"


extra_keys = st.text(min_size=1, max_size=10).filter(lambda k: k not in {"schema", "iterable", "indices", "score"})
item_extra_keys = st.text(min_size=1, max_size=10).filter(lambda k: k not in {"schema", "id", "reference"})


@settings(max_examples=100, deadline=None, database=None)
@given(
    ids=st.lists(st.text(max_size=20), max_size=5),
    extra=st.dictionaries(extra_keys, json_values, max_size=4),
    item_extra=st.dictionaries(item_extra_keys, json_values, max_size=3),
)
def test_documents_with_unknown_fields_parse_and_keep_them(
    api: ConversationsApi, server: ScriptedServer, ids: list[str], extra: dict[str, Any],
    item_extra: dict[str, Any]
) -> None:
    document = {"iterable": [{"id": i, **item_extra} for i in ids], **extra}
    server.response = http_response(200, json.dumps(document).encode(), [("Content-Type", "application/json")])
    result = api.conversations_identifiers_snapshot()
    assert [r.id for r in result.iterable] == ids
    assert result.model_extra == extra
    assert all(r.model_extra == item_extra for r in result.iterable)
    assert json.loads(result.to_json()) == document  # written back unchanged


@settings(max_examples=50, deadline=None, database=None)
@given(kind=st.text(min_size=1, max_size=30).filter(lambda t: t != "COPILOT"))
def test_unknown_enum_values_are_accepted_verbatim(api: ConversationsApi, server: ScriptedServer, kind: str) -> None:
    document = {**CONVERSATION, "type": kind}
    server.response = http_response(200, json.dumps(document).encode(), [("Content-Type", "application/json")])
    conversation = api.conversations_create_specific_conversation()
    assert isinstance(conversation, Conversation)
    assert conversation.type == kind
    assert json.loads(conversation.to_json())["type"] == kind


# ---------------------------------------------------------------- deep nesting, explicitly
@pytest.mark.parametrize("kind", ["array", "object", "references"])
def test_deeply_nested_json_is_a_format_error_not_a_recursion_error(
    api: ConversationsApi, server: ScriptedServer, kind: str
) -> None:
    server.response = http_response(200, nested(100_000, kind), [("Content-Type", "application/json")])
    with pytest.raises(ResponseFormatError) as info:
        api.conversations_identifiers_snapshot()
    assert "recursion limit" in str(info.value) or "does not match" in str(info.value)
    assert info.value.__cause__ is not None


def test_deeply_nested_error_body_is_kept_as_text(api: ConversationsApi, server: ScriptedServer) -> None:
    body = nested(100_000, "array")
    server.response = http_response(500, body, [("Content-Type", "application/json")])
    with pytest.raises(ServiceException) as info:
        api.conversations_identifiers_snapshot()
    # the body is kept as text, cut to its first ERROR_BODY_LIMIT bytes
    marker = f"... [cut: {len(body) - ERROR_BODY_LIMIT} of {len(body)} bytes not kept]"
    assert info.value.body == body[:ERROR_BODY_LIMIT].decode() + marker
    assert info.value.data is None
    assert len(str(info.value)) < 1000


def test_huge_valid_string_parses(api: ConversationsApi, server: ScriptedServer) -> None:
    big = "x" * 5_000_000
    server.response = http_response(200, json.dumps({"iterable": [{"id": big}]}).encode(),
                                    [("Content-Type", "application/json")])
    assert api.conversations_identifiers_snapshot().iterable[0].id == big


def test_not_http_at_all_is_a_connection_error(api: ConversationsApi, server: ScriptedServer) -> None:
    server.response = b"SSH-2.0-OpenSSH_9.6\r\n"
    with pytest.raises(ApiConnectionError) as info:
        api.conversations_identifiers_snapshot()
    assert "broke during GET" in str(info.value)


def test_conflicting_content_lengths_are_a_malformed_answer(api: ConversationsApi, server: ScriptedServer) -> None:
    # RFC 9112, section 6.3: invalid framing; decided before urllib3 sees the head (see test_framing.py)
    server.response = http_response(200, b"{}", [("Content-Length", "12, 13")])
    with pytest.raises(ResponseFormatError, match=r"Content-Length values differ \('12', '13'\)"):
        api.conversations_identifiers_snapshot()


@pytest.mark.parametrize("status", [200, 503])
@pytest.mark.parametrize("retries", [0, 1])
def test_negative_chunk_size_is_an_sdk_error(server: ScriptedServer, status: int, retries: int) -> None:
    # found by Hypothesis: http.client raised a bare ValueError for a chunk size of "-2"
    server.response = http_response(status, b"-2\r\n", [("Transfer-Encoding", "chunked")])
    config = Configuration(host=server.url, max_retries=retries, backoff_factor=0)
    with ApiClient(config) as client, pytest.raises(ApiConnectionError) as info:
        ConversationsApi(client).conversations_identifiers_snapshot()
    assert "read length must be non-negative" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)
