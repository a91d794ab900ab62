"""The fast paths of the performance work keep their promises.

* Large documents are parsed with the cyclic collector paused, and the result leaves the
  parse outside the young generation (no young pass over it pending), relying on CPython's
  ``gc.freeze()`` / ``gc.unfreeze()`` behaviour: if a CPython release changes it, these
  tests fail rather than the speed quietly going away.
* The application's own collector state (disabled, frozen objects) is left as it was.
"""

from __future__ import annotations

import gc
import json
from typing import Any, Dict, Iterator, List

import pydantic
import pytest
from testkit.emulator import api_for

from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.emulator import Emulator
from pieces_os_client.models import Conversations
from pieces_os_client.models._base import GC_PAUSE_BYTES


def _conversation(index: int) -> Dict[str, Any]:
    moment = {"value": "2024-06-11T09:00:00.000Z"}
    return {
        "id": f"conversation-{index:05d}",
        "name": f"conversation number {index}",
        "created": moment,
        "updated": moment,
        "type": "COPILOT",
        "messages": {"iterable": [{"id": f"message-{index}"}]},
        "a_field_from_a_newer_server": {"kept": [index, None]},
    }


def _big_document(minimum: int = GC_PAUSE_BYTES + 1) -> bytes:
    items: List[Dict[str, Any]] = []
    text = b""
    while len(text) < minimum:
        items.extend(_conversation(len(items) + n) for n in range(100))
        text = json.dumps({"iterable": items}).encode()
    return text


def _young_ids() -> set[int]:
    return {id(o) for generation in (0, 1) for o in gc.get_objects(generation=generation)}


@pytest.fixture
def collector() -> Iterator[None]:
    """Start with nothing frozen (as a program that never calls ``gc.freeze()``: Python 3.12
    itself starts with a few hundred objects frozen, which the parse leaves alone); leave the
    collector as the test found it."""
    enabled = gc.isenabled()
    gc.unfreeze()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:
        gc.disable()


def _assert_not_young(result: Conversations) -> None:
    young = _young_ids()
    objects = [result, *result.iterable, *(c.messages for c in result.iterable)]
    assert not [o for o in objects if id(o) in young], "parsed objects left in the young generations"
    assert gc.get_count()[0] < gc.get_threshold()[0], "a young pass over the result is still pending"


def test_big_document_leaves_no_young_pass_pending(collector: None) -> None:
    gc.enable()
    result = Conversations.from_json(_big_document())
    assert result is not None and gc.isenabled()
    _assert_not_young(result)
    # Nothing lost on the way: unknown fields and values kept.
    first = result.iterable[0]
    assert first.model_extra == {"a_field_from_a_newer_server": {"kept": [0, None]}}
    assert json.loads(result.to_json())["iterable"][0]["a_field_from_a_newer_server"] == {"kept": [0, None]}


def test_small_document_takes_the_plain_path(collector: None) -> None:
    gc.enable()
    gc.collect()
    gc.freeze()  # everything so far out of the way; the parse would unfreeze it if it ran the big path
    small = json.dumps({"iterable": [_conversation(1)]}).encode()
    assert len(small) < GC_PAUSE_BYTES
    Conversations.from_json(small)
    assert gc.get_freeze_count() > 0


def test_application_state_is_kept(collector: None) -> None:
    document = _big_document()
    gc.disable()
    Conversations.from_json(document)
    assert not gc.isenabled(), "a collector the application disabled was turned back on"

    gc.enable()
    gc.freeze()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    Conversations.from_json(document)
    assert gc.get_freeze_count() >= frozen, "objects the application froze were unfrozen"
    assert gc.isenabled()


def test_failed_parse_resumes_the_collector(collector: None) -> None:
    gc.enable()
    broken = _big_document()[:-10]
    with pytest.raises(pydantic.ValidationError):
        Conversations.from_json(broken)
    assert gc.isenabled()


def test_snapshot_over_http_leaves_no_young_pass_pending(collector: None) -> None:
    with Emulator() as emu:
        seed = {"type": "COPILOT", "name": "x" * 2000}
        for _ in range(40):  # about 100 KB of snapshot
            emu.create_conversation(seed)
        with ApiClient(Configuration(host=emu.url)) as client:
            from pieces_os_client.api.conversations_api import ConversationsApi

            gc.enable()
            response = ConversationsApi(client).conversations_snapshot_with_http_info()
            assert len(response.raw_data or b"") >= GC_PAUSE_BYTES
            assert gc.isenabled()
            _assert_not_young(response.data)


# ---------------------------------------------------------------- the request path's shortcuts
def test_header_checks_are_remembered_only_for_valid_sets(emu: Emulator) -> None:
    from pieces_os_client.exceptions import ApiValueError
    with api_for(emu.url) as api:
        for _ in range(2):  # the second call takes the remembered path
            api.conversations_identifiers_snapshot(_headers={"X-Trace": "ok"})
        for _ in range(2):  # a refused set is refused every time, never remembered
            with pytest.raises(ApiValueError, match="line break"):
                api.conversations_identifiers_snapshot(_headers={"X-Trace": "ok\r\nX-Evil: 1"})
            with pytest.raises(ApiValueError, match="not a valid HTTP header name"):
                api.conversations_identifiers_snapshot(_headers={"X Trace": "ok"})
        with pytest.raises(ApiValueError, match="Latin-1"):
            api.conversations_identifiers_snapshot(_headers={"X-Trace": "\u20ac"})
    assert emu.request_count("GET", "/conversations/identifiers") == 2


def test_response_headers_are_case_insensitive(emu: Emulator) -> None:
    with api_for(emu.url) as api:
        response = api.conversations_identifiers_snapshot_with_http_info()
    assert response.headers is not None
    assert response.headers["content-type"] == response.headers["Content-Type"]
    assert response.headers["CONTENT-TYPE"].startswith("application/json")


def test_media_type_choice_prefers_json() -> None:
    assert ApiClient.select_header_accept(["text/plain", "application/JSON"]) == "application/JSON"
    assert ApiClient.select_header_accept(["text/plain", "text/html"]) == "text/plain"
    assert ApiClient.select_header_accept([]) is None
    assert ApiClient.select_header_content_type(["application/vnd.api+json"]) == "application/vnd.api+json"
