"""ConversationsApi against the emulator over real sockets: every operation in all three forms."""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import urllib3

import pieces_os_client
from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.api_response import ApiResponse
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import (
    ApiTypeError,
    ApiValueError,
    ServiceException,
)
from pieces_os_client.models import (
    Conversation,
    Conversations,
    ConversationsCreateFromAssetOutput,
    FlattenedConversations,
    SeededConversation,
)

DEMO_ASSET = "2254f2c8-5797-40e8-ac56-41166dc0e159"



@pytest.fixture
def api(emu: Emulator) -> Iterator[ConversationsApi]:
    with ApiClient(Configuration(host=emu.url)) as client:
        yield ConversationsApi(client)


# ---------------------------------------------------------------- create
def test_create_without_seed_returns_a_typed_conversation(api: ConversationsApi, emu: Emulator) -> None:
    conversation = api.conversations_create_specific_conversation()
    assert isinstance(conversation, Conversation)
    assert conversation.id in emu.conversation_ids()
    assert conversation.type == "COPILOT"


def test_create_with_model_and_dict_seeds(api: ConversationsApi, emu: Emulator) -> None:
    by_model = api.conversations_create_specific_conversation(
        transferables=True, seeded_conversation=SeededConversation(name="from a model")
    )
    by_dict = api.conversations_create_specific_conversation(False, {"name": "from a dict"})
    assert (by_model.name, by_dict.name) == ("from a model", "from a dict")
    stored = {c["id"]: c["name"] for c in (emu.conversation(i) or {} for i in emu.conversation_ids())}
    assert stored[by_model.id] == "from a model"
    assert stored[by_dict.id] == "from a dict"
    assert emu.requests[-1].query == "transferables=false"
    assert emu.requests[-2].query == "transferables=true"


def test_create_with_http_info(api: ConversationsApi) -> None:
    response = api.conversations_create_specific_conversation_with_http_info(
        seeded_conversation=SeededConversation(name="info")
    )
    assert isinstance(response, ApiResponse)
    assert response.status_code == 200
    assert response.headers is not None and "json" in response.headers["Content-Type"]
    assert isinstance(response.data, Conversation)
    assert json.loads(response.raw_data)["id"] == response.data.id


def test_create_without_preload_content(api: ConversationsApi, emu: Emulator) -> None:
    raw = api.conversations_create_specific_conversation_without_preload_content(seeded_conversation={"name": "raw"})
    try:
        assert isinstance(raw, urllib3.BaseHTTPResponse)
        assert raw.status == 200
        body = json.loads(raw.read())
    finally:
        raw.release_conn()
    assert body["name"] == "raw"
    assert body["id"] in emu.conversation_ids()


# ---------------------------------------------------------------- create from asset
def test_create_from_asset_all_forms(api: ConversationsApi, emu: Emulator) -> None:
    output = api.conversations_create_from_asset(DEMO_ASSET)
    assert isinstance(output, ConversationsCreateFromAssetOutput)
    assert output.conversation.id in emu.conversation_ids()

    info = api.conversations_create_from_asset_with_http_info(uuid.UUID(DEMO_ASSET))
    assert info.status_code == 200 and info.data.conversation.id != output.conversation.id

    raw = api.conversations_create_from_asset_without_preload_content(DEMO_ASSET)
    try:
        assert raw.status == 200 and "conversation" in json.loads(raw.read())
    finally:
        raw.release_conn()
    assert len(emu.conversation_ids()) == 3


def test_create_from_unknown_asset_is_a_service_exception(api: ConversationsApi) -> None:
    with pytest.raises(ServiceException) as info:
        api.conversations_create_from_asset("no-such-asset")
    assert info.value.status == 500
    assert info.value.body and "no-such-asset" in info.value.body
    assert "(500)" in str(info.value)


# ---------------------------------------------------------------- identifiers and snapshot
def test_identifiers_snapshot_all_forms(api: ConversationsApi) -> None:
    created = {api.conversations_create_specific_conversation().id for _ in range(3)}
    ids = api.conversations_identifiers_snapshot()
    assert isinstance(ids, FlattenedConversations)
    assert {ref.id for ref in ids.iterable} == created

    info = api.conversations_identifiers_snapshot_with_http_info()
    assert info.status_code == 200 and {r.id for r in info.data.iterable} == created

    raw = api.conversations_identifiers_snapshot_without_preload_content()
    try:
        assert {r["id"] for r in json.loads(raw.read())["iterable"]} == created
    finally:
        raw.release_conn()


def test_snapshot_all_forms(api: ConversationsApi, emu: Emulator) -> None:
    first = api.conversations_create_specific_conversation(seeded_conversation={"name": "one"})
    snapshot = api.conversations_snapshot(transferables=False)
    assert isinstance(snapshot, Conversations)
    assert [(c.id, c.name) for c in snapshot.iterable] == [(first.id, "one")]
    assert snapshot.iterable[0].created is not None

    info = api.conversations_snapshot_with_http_info(True)
    assert info.data.iterable[0].id == first.id
    assert emu.requests[-1].query == "transferables=true"

    raw = api.conversations_snapshot_without_preload_content()
    try:
        assert json.loads(raw.read())["iterable"][0]["id"] == first.id
    finally:
        raw.release_conn()
    assert emu.requests[-1].query == ""


# ---------------------------------------------------------------- delete
def test_delete_all_forms(api: ConversationsApi, emu: Emulator) -> None:
    ids = [api.conversations_create_specific_conversation().id for _ in range(3)]
    assert api.conversations_delete_specific_conversation(ids[0]) is None
    info = api.conversations_delete_specific_conversation_with_http_info(ids[1])
    assert (info.status_code, info.data, info.raw_data) == (204, None, b"")
    raw = api.conversations_delete_specific_conversation_without_preload_content(ids[2])
    try:
        assert raw.status == 204
    finally:
        raw.release_conn()
    assert emu.conversation_ids() == []


def test_delete_unknown_is_a_service_exception(api: ConversationsApi) -> None:
    with pytest.raises(ServiceException) as info:
        api.conversations_delete_specific_conversation("missing-id")
    assert info.value.status == 500
    assert info.value.body and "missing-id" in info.value.body


@pytest.mark.parametrize(
    ("conversation_id", "encoded"),
    [
        ("a/b", "a%2Fb"),
        ("what?x=1", "what%3Fx%3D1"),
        ("frag#ment", "frag%23ment"),
        ("100%", "100%25"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("naïve ☃", "na%C3%AFve%20%E2%98%83"),
    ],
)
def test_path_parameters_are_percent_encoded(
    api: ConversationsApi, emu: Emulator, conversation_id: str, encoded: str
) -> None:
    with pytest.raises(ServiceException) as info:
        api.conversations_delete_specific_conversation(conversation_id)
    assert emu.requests[-1].path == f"/conversations/{encoded}/delete"
    assert info.value.body and conversation_id in info.value.body


# ---------------------------------------------------------------- argument errors: nothing is sent
@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda a: a.conversations_snapshot(transferables="yes"), ApiTypeError, "transferables must be a bool"),
        (lambda a: a.conversations_create_specific_conversation(seeded_conversation=42), ApiTypeError,
         "seeded_conversation must be a SeededConversation or a dict"),
        (lambda a: a.conversations_create_specific_conversation(seeded_conversation={"type": 5}), ApiValueError,
         "seeded_conversation is not a valid SeededConversation"),
        (lambda a: a.conversations_delete_specific_conversation(123), ApiTypeError,
         "path parameter 'conversation' must be a str"),
        (lambda a: a.conversations_delete_specific_conversation(""), ApiValueError, "must not be empty"),
        (lambda a: a.conversations_create_from_asset(None), ApiTypeError, "path parameter 'asset' must be a str"),
        (lambda a: a.conversations_snapshot(_request_timeout=-1), ApiValueError, "must be positive"),
        (lambda a: a.conversations_snapshot(_request_timeout=(1, "x")), ApiValueError, "two positive numbers"),
        (lambda a: a.conversations_snapshot(_host_index=1), ApiValueError, "_host_index must be 0"),
        (lambda a: a.conversations_snapshot(_headers=["x"]), ApiTypeError, "_headers must be a dict"),
        (lambda a: a.conversations_snapshot(_bogus=1), ApiTypeError, "unexpected keyword argument(s): _bogus"),
    ],
)
def test_bad_arguments_fail_before_sending(
    api: ConversationsApi, emu: Emulator, call: Any, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        call(api)
    assert emu.request_count() == 0


# ---------------------------------------------------------------- headers, user agent, auth
class _CaptureServer:
    """A one-shot HTTP server on 127.0.0.1 that records the raw request and answers 200 {}."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.raw = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.settimeout(5)
            while b"\r\n\r\n" not in self.raw:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                self.raw += chunk
            body = b'{"iterable": []}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def headers(self) -> dict[str, str]:
        self.thread.join(5)
        self.sock.close()
        lines = self.raw.decode().split("\r\n\r\n")[0].split("\r\n")[1:]
        return {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}


def test_headers_user_agent_and_application_id() -> None:
    server = _CaptureServer()
    config = Configuration(host=server.url, api_key={"application": "app-123"})
    with ApiClient(config) as client:
        client.set_default_header("X-Trace", "t-1")
        ConversationsApi(client).conversations_identifiers_snapshot(_headers={"X-Call": "c-1"})
    headers = server.headers()
    version = importlib.metadata.version("pieces_os_client")
    assert headers["user-agent"] == f"pieces-os-client-python/{version}"
    assert pieces_os_client.__version__ == version
    assert headers["x-application-id"] == "app-123"
    assert headers["x-trace"] == "t-1"
    assert headers["x-call"] == "c-1"
    assert headers["accept"] == "application/json"


def test_request_auth_overrides_configured_credentials() -> None:
    server = _CaptureServer()
    config = Configuration(host=server.url, api_key={"application": "configured"})
    with ApiClient(config) as client:
        ConversationsApi(client).conversations_identifiers_snapshot(
            _request_auth={"in": "header", "key": "X-Application-ID", "value": "per-call", "type": "api_key"}
        )
    assert server.headers()["x-application-id"] == "per-call"


# ---------------------------------------------------------------- lifecycle
def test_context_exit_closes_the_pool(emu: Emulator) -> None:
    with ApiClient(Configuration(host=emu.url)) as client:
        ConversationsApi(client).conversations_identifiers_snapshot()
        assert len(client.rest_client.pool_manager.pools) == 1
    assert len(client.rest_client.pool_manager.pools) == 0
    # still usable after close: a new pool is made on demand
    assert ConversationsApi(client).conversations_identifiers_snapshot().iterable == []
    client.close()


def test_default_api_client_is_used_when_none_given(emu: Emulator) -> None:
    Configuration.set_default(Configuration(host=emu.url))
    ApiClient.set_default(None)
    try:
        api = ConversationsApi()
        assert api.conversations_identifiers_snapshot().iterable == []
        api.api_client.close()
    finally:
        Configuration.set_default(None)
        ApiClient.set_default(None)


# ---------------------------------------------------------------- public names, lazily
@pytest.mark.parametrize(
    "name",
    ["Configuration", "ApiClient", "ConversationsApi", "ApiException", "ApiResponse", "SeededConversation",
     "Conversation", "FlattenedConversations", "StreamedIdentifiers", "ServiceException", "ApiConnectionError"],
)
def test_top_level_names_resolve(name: str) -> None:
    assert getattr(pieces_os_client, name).__name__ == name
    assert name in dir(pieces_os_client)


def test_unknown_top_level_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pieces_os_client.Nope  # noqa: B018


def test_import_is_lazy() -> None:
    code = (
        "import sys, pieces_os_client;"
        "loaded = lambda p: sorted(m for m in sys.modules if m.startswith(p));"
        "print(len(loaded('pieces_os_client')), len(loaded('pydantic')), len(loaded('urllib3')));"
        "from pieces_os_client.api.conversations_api import ConversationsApi;"
        "print(len(loaded('pieces_os_client.models.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    package_modules, pydantic_modules, urllib3_modules, models_after_api = map(int, out)
    assert package_modules <= 2  # the package and its _version
    assert pydantic_modules == 0 and urllib3_modules == 0
    assert models_after_api == 0


# ---------------------------------------------------------------- large bodies
def test_large_snapshot_parses_and_leaves_the_collector_as_it_was() -> None:
    import gc

    with Emulator(port=0, seed_conversations=150) as big, ApiClient(Configuration(host=big.url)) as client:
        api = ConversationsApi(client)
        response = api.conversations_snapshot_with_http_info()
        assert len(response.raw_data) > 64 * 1024  # large enough for the collector pause
        assert len(response.data.iterable) == 150
        assert gc.isenabled()
        gc.disable()
        try:
            assert len(api.conversations_snapshot().iterable) == 150
            assert not gc.isenabled()  # the application's choice is left alone
        finally:
            gc.enable()


# ---------------------------------------------------------------- the official building blocks
def test_official_low_level_path_param_serialize_call_api_deserialize(api: ConversationsApi, emu: Emulator) -> None:
    client = api.api_client
    method, url, headers, body, post_params = client.param_serialize(
        "POST", "/conversations/create", body=SeededConversation(name="low level"),
        header_params={"Content-Type": "application/json"},
    )
    assert (method, url) == ("POST", f"{emu.url}/conversations/create")
    response = client.call_api(method, url, headers, body, post_params)
    response.read()
    result = client.response_deserialize(response, {"200": "Conversation", "500": None})
    assert result.status_code == 200 and result.data.name == "low level"
    assert result.data.id in emu.conversation_ids()
    assert client.sanitize_for_serialization(SeededConversation(name="x")) == {"name": "x", "type": "COPILOT"}
