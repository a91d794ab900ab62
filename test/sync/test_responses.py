"""Error statuses, bodies that are not what the document promises, retries, and bad arguments.

Each test checks the exception type, the words a person reads, how many requests reached the
emulator and, where waiting is involved, the waits the client asked for (the ``sleeps``
fixture: exact, whatever the machine's load). The wall clock only shows that a wait was slept
in full (lower bounds) and that nothing much longer was waited for (HANG, far above the waits
and far below the alternative each test sets up).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import pydantic
import pytest
import urllib3
from testkit.emulator import api_for
from testkit.wait import SleepLog
from urllib3.util.retry import Retry

from pieces_os_client import ConversationsApi
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import (
    ApiException,
    ApiTypeError,
    ApiValueError,
    BadRequestException,
    ConflictException,
    ForbiddenException,
    NotFoundException,
    ResponseFormatError,
    ServiceException,
    TooManyRequestsException,
    UnauthorizedException,
    UnprocessableEntityException,
)
from pieces_os_client.models import Conversation, FlattenedConversations

FAST = {"backoff_factor": 0.05, "backoff_jitter": 0.0}
IDS = "/conversations/identifiers"
CREATE = "/conversations/create"
#: an upper bound that only a hang, or a wait of a minute or more, can break
HANG = 20.0




@pytest.fixture
def api(emu: Emulator) -> Iterator[ConversationsApi]:
    with api_for(emu.url, **FAST) as client:
        yield client


def timed(call: Callable[[], Any], expected: type[BaseException]) -> tuple[Any, float]:
    started = time.monotonic()
    with pytest.raises(expected) as info:
        call()
    return info.value, time.monotonic() - started


# ---------------------------------------------------------------- 3. 5xx
def test_500_with_a_text_reason_is_a_service_exception(api: ConversationsApi, emu: Emulator, sleeps: SleepLog) -> None:
    emu.fail_next(500, count=3, body="the database is locked")
    error, elapsed = timed(api.conversations_identifiers_snapshot, ServiceException)
    assert error.status == 500
    assert error.reason == "Internal Server Error"
    assert error.body == "the database is locked"
    assert error.data is None
    assert error.headers is not None and error.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = str(error)
    assert text.startswith("(500)\nReason: Internal Server Error\n")
    assert "HTTP response body: the database is locked" in text
    assert isinstance(error, ApiException)
    assert emu.request_count("GET", IDS) == 3  # retried max_retries (2) times
    assert sleeps.seconds == [pytest.approx(0.1)]  # backoff 0 s (not slept), then 0.05 * 2
    assert 0.1 <= elapsed < HANG


def test_get_recovers_when_the_fault_clears(api: ConversationsApi, emu: Emulator) -> None:
    emu.fail_next(500, count=1)
    assert api.conversations_identifiers_snapshot().iterable == []
    assert emu.request_count("GET", IDS) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
def test_create_is_never_retried_on_an_error_status(api: ConversationsApi, emu: Emulator, status: int) -> None:
    emu.fail_next(status, count=1)
    with pytest.raises(ApiException) as info:
        api.conversations_create_specific_conversation(seeded_conversation={"name": "x"})
    assert info.value.status == status
    assert emu.request_count("POST", CREATE) == 1
    assert emu.conversation_ids() == []


def test_create_from_asset_and_delete_are_never_retried_on_500(api: ConversationsApi, emu: Emulator) -> None:
    emu.fail_next(500, count=2)
    with pytest.raises(ServiceException):
        api.conversations_create_from_asset(emu.asset_ids()[0])
    with pytest.raises(ServiceException):
        api.conversations_delete_specific_conversation("whatever")
    assert emu.request_count() == 2


def test_default_backoff_timing_for_a_failing_get(emu: Emulator, sleeps: SleepLog) -> None:
    # defaults: backoff_factor 0.25 and up to 0.25 s jitter -> waits of 0 s, then 0.5-0.75 s
    emu.fail_next(503, count=3)
    with api_for(emu.url) as api:
        _, elapsed = timed(api.conversations_identifiers_snapshot, ServiceException)
    assert emu.request_count() == 3
    assert len(sleeps.seconds) == 1 and 0.5 <= sleeps.seconds[0] <= 0.75, sleeps.seconds
    assert 0.5 <= elapsed < HANG  # the wait was slept in full


# ---------------------------------------------------------------- Retry-After
@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_for_get(emu: Emulator, status: int, sleeps: SleepLog) -> None:
    emu.fail_next(status, count=1, retry_after=1)
    with api_for(emu.url, **FAST) as api:
        started = time.monotonic()
        assert api.conversations_identifiers_snapshot().iterable == []
        elapsed = time.monotonic() - started
    assert emu.request_count() == 2
    assert sleeps.seconds == [1.0]  # the server's second, where the backoff would wait 0 s
    assert 1.0 <= elapsed < HANG


def test_retry_after_is_capped_at_backoff_max(emu: Emulator, sleeps: SleepLog) -> None:
    # urllib3 alone would sleep for an hour here
    emu.fail_next(429, count=1, retry_after=3600)
    with api_for(emu.url, backoff_max=0.3, backoff_factor=0.05, backoff_jitter=0.0) as api:
        started = time.monotonic()
        assert api.conversations_identifiers_snapshot().iterable == []
        elapsed = time.monotonic() - started
    assert emu.request_count() == 2
    assert sleeps.seconds == [pytest.approx(0.3)]
    assert 0.3 <= elapsed < HANG  # not the hour


def test_unparsable_retry_after_falls_back_to_backoff(api: ConversationsApi, emu: Emulator, sleeps: SleepLog) -> None:
    # it used to surface as ApiConnectionError("Invalid Retry-After header")
    emu.fail_next(503, count=3, retry_after="soon")
    error, elapsed = timed(api.conversations_identifiers_snapshot, ServiceException)
    assert error.status == 503 and error.headers is not None and error.headers["Retry-After"] == "soon"
    assert emu.request_count() == 3
    assert sleeps.seconds == [pytest.approx(0.1)]  # FAST's backoff: 0 s, then 0.1 s
    assert elapsed < HANG


def test_backoff_max_bounds_the_exponential_backoff(emu: Emulator, sleeps: SleepLog) -> None:
    # factor 30 would mean a 60 s wait before the second retry; backoff_max keeps it at 0.2 s
    emu.fail_next(500, count=3)
    with api_for(emu.url, backoff_factor=30, backoff_max=0.2, backoff_jitter=0.0) as api:
        _, elapsed = timed(api.conversations_identifiers_snapshot, ServiceException)
    assert emu.request_count() == 3
    assert sleeps.seconds == [pytest.approx(0.2)]
    assert 0.2 <= elapsed < HANG


def test_too_many_requests_on_get_gives_up_after_the_retries(api: ConversationsApi, emu: Emulator) -> None:
    emu.fail_next(429, count=3, body="slow down")
    error, _ = timed(api.conversations_snapshot, TooManyRequestsException)
    assert (error.status, error.body) == (429, "slow down")
    assert emu.request_count() == 3


# ---------------------------------------------------------------- 4xx
@pytest.mark.parametrize(
    ("status", "exc_type", "reason"),
    [
        (400, BadRequestException, "Bad Request"),
        (401, UnauthorizedException, "Unauthorized"),
        (403, ForbiddenException, "Forbidden"),
        (404, NotFoundException, "Not Found"),
        (409, ConflictException, "Conflict"),
        (418, ApiException, "I'm a Teapot"),
        (422, UnprocessableEntityException, HTTPStatus(422).phrase),  # "Unprocessable Content" on 3.13+
    ],
)
@pytest.mark.parametrize("operation", ["get", "post"])
def test_client_errors_map_to_their_subclass_and_are_not_retried(
    api: ConversationsApi, emu: Emulator, status: int, exc_type: type[ApiException], reason: str, operation: str
) -> None:
    emu.fail_next(status, count=1, body=f"nope {status}")
    call = api.conversations_identifiers_snapshot if operation == "get" else api.conversations_create_from_asset
    args = () if operation == "get" else (emu.asset_ids()[0],)
    with pytest.raises(exc_type) as info:
        call(*args)
    assert type(info.value) is exc_type
    assert (info.value.status, info.value.reason, info.value.body) == (status, reason, f"nope {status}")
    assert f"({status})\nReason: {reason}\n" in str(info.value)
    assert emu.request_count() == 1


def test_a_redirect_is_not_followed_and_is_an_api_exception(api: ConversationsApi, emu: Emulator) -> None:
    emu.fail_next(302, count=1, body="elsewhere")
    error, _ = timed(api.conversations_identifiers_snapshot, ApiException)
    assert type(error) is ApiException and error.status == 302
    assert emu.request_count() == 1


# ---------------------------------------------------------------- 4. bodies that are not what was promised
def _three_forms(api: ConversationsApi) -> list[Callable[[], Any]]:
    return [api.conversations_identifiers_snapshot, api.conversations_identifiers_snapshot_with_http_info]


def test_malformed_json_is_a_response_format_error(api: ConversationsApi, emu: Emulator) -> None:
    emu.break_next("malformed_json", count=2)
    for call in _three_forms(api):
        error, _ = timed(call, ResponseFormatError)
        message = str(error)
        assert message.startswith(f"Pieces OS answered 200 to GET {IDS} with a body that is not valid JSON")
        assert "Content-Type: application/json; 14 bytes; body starts: '{\"iterable\": ['" in message
        assert (error.status, error.content_type, error.body) == (200, "application/json", '{"iterable": [')
        assert isinstance(error.__cause__, pydantic.ValidationError)
    assert emu.request_count() == 2  # a bad body is not retried


def test_html_with_200_is_a_response_format_error(api: ConversationsApi, emu: Emulator) -> None:
    emu.break_next("html")
    error, _ = timed(lambda: api.conversations_create_specific_conversation(), ResponseFormatError)
    message = str(error)
    assert f"Pieces OS answered 200 to POST {CREATE} with a body that is not valid JSON" in message
    assert "Content-Type: text/html; charset=utf-8" in message
    assert "body starts: '<!DOCTYPE html>" in message
    assert error.body is not None and "<h1>Welcome</h1>" in error.body
    assert emu.request_count() == 1


def test_empty_200_body_is_a_response_format_error(api: ConversationsApi, emu: Emulator) -> None:
    emu.fail_next(200, body="")
    error, _ = timed(api.conversations_snapshot, ResponseFormatError)
    assert "Pieces OS answered 200 to GET /conversations with a body that could not be read as Conversations" in str(
        error
    )
    assert "the body is empty" in str(error) and "0 bytes" in str(error)
    assert isinstance(error.__cause__, ValueError)


def test_valid_json_of_the_wrong_shape_is_a_response_format_error(api: ConversationsApi, emu: Emulator) -> None:
    emu.fail_next(200, body=json.dumps({"iterable": [{"name": "no id"}, 5]}))
    error, _ = timed(api.conversations_identifiers_snapshot, ResponseFormatError)
    message = str(error)
    assert "with a body that does not match FlattenedConversations" in message
    assert "iterable.0.id: Field required" in message
    assert "Content-Type: text/plain; charset=utf-8" in message
    assert isinstance(error.__cause__, pydantic.ValidationError)


def test_a_long_bad_body_is_shown_as_a_snippet(api: ConversationsApi, emu: Emulator) -> None:
    emu.fail_next(200, body="x" * 100_000)
    error, _ = timed(api.conversations_identifiers_snapshot, ResponseFormatError)
    assert len(str(error)) < 600 and "100000 bytes" in str(error)
    # the exception keeps a bounded prefix of the body, and says how much was cut
    assert error.body == "x" * 65536 + "... [cut: 34464 of 100000 bytes not kept]"


def test_undocumented_success_status_is_parsed_as_the_documented_type(api: ConversationsApi, emu: Emulator) -> None:
    # 201 instead of 200: the caller still gets a Conversation, never a silent None
    emu.fail_next(201, body="")
    with pytest.raises(ResponseFormatError, match="could not be read as Conversation"):
        api.conversations_create_specific_conversation()
    ids = api.conversations_identifiers_snapshot_with_http_info()
    emu.fail_next(201, body=ids.raw_data.decode())
    assert isinstance(api.conversations_identifiers_snapshot(), FlattenedConversations)


def test_without_preload_content_hands_back_a_bad_body_unparsed(api: ConversationsApi, emu: Emulator) -> None:
    emu.break_next("html")
    raw = api.conversations_identifiers_snapshot_without_preload_content()
    try:
        assert isinstance(raw, urllib3.BaseHTTPResponse)
        assert raw.status == 200 and raw.read().startswith(b"<!DOCTYPE html>")
    finally:
        raw.release_conn()
    emu.fail_next(500, body="raw failure")
    raw = api.conversations_create_specific_conversation_without_preload_content()
    try:
        assert (raw.status, raw.read()) == (500, b"raw failure")  # no exception: the caller reads it
    finally:
        raw.release_conn()
    assert emu.request_count() == 2


class _OneShotServer:
    """Answers every connection with the same raw bytes, then closes it."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while not self.stop.is_set():
                try:
                    conn, _ = self.sock.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(30)  # the client's request head: long in coming only on a loaded machine
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(self.response)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def test_body_that_cannot_be_decoded_is_a_response_format_error() -> None:
    junk = b"definitely not gzip"
    server = _OneShotServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(junk), junk)
    )
    try:
        with api_for(server.url, max_retries=0) as api:
            error, _ = timed(lambda: api.conversations_identifiers_snapshot(_headers={"Accept-Encoding": "gzip"}),
                             ResponseFormatError)
    finally:
        server.close()
    assert "Pieces OS answered 200 with a body that could not be decoded (Content-Encoding: gzip)" in str(error)
    assert isinstance(error.__cause__, urllib3.exceptions.DecodeError)


def test_gzip_body_is_decoded_when_asked_for_and_refused_otherwise() -> None:
    body = gzip.compress(b'{"iterable": [{"id": "zipped"}]}')
    server = _OneShotServer(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    try:
        with api_for(server.url, max_retries=0) as api:
            asked = api.conversations_identifiers_snapshot(_headers={"Accept-Encoding": "gzip"})
            assert [r.id for r in asked.iterable] == ["zipped"]
            with pytest.raises(ResponseFormatError, match="Content-Encoding 'gzip', which the client did not ask for"):
                api.conversations_identifiers_snapshot()  # http.client sent "Accept-Encoding: identity"
    finally:
        server.close()


# ---------------------------------------------------------------- 10. retry configuration
def test_max_retries_zero_sends_exactly_one_request(emu: Emulator) -> None:
    emu.fail_next(503, count=5)
    with api_for(emu.url, max_retries=0) as api:
        timed(api.conversations_identifiers_snapshot, ServiceException)
    assert emu.request_count() == 1


def test_int_retries_sets_the_number_of_attempts(emu: Emulator) -> None:
    emu.fail_next(500, count=10)
    with api_for(emu.url, retries=4, **FAST) as api:
        timed(api.conversations_identifiers_snapshot, ServiceException)
    assert emu.request_count() == 5


def test_custom_urllib3_retry_policy_is_used_as_given(emu: Emulator) -> None:
    # a policy that also retries POST on 500: the user's choice, honoured exactly
    policy = Retry(total=1, status_forcelist=[500], allowed_methods=None, backoff_factor=0, raise_on_status=False)
    emu.fail_next(500, count=1)
    with api_for(emu.url, retries=policy) as api:
        created = api.conversations_create_specific_conversation(seeded_conversation={"name": "second try"})
    assert isinstance(created, Conversation) and created.name == "second try"
    assert emu.request_count("POST", CREATE) == 2


def test_custom_retry_that_raises_on_status_is_still_an_sdk_error(emu: Emulator) -> None:
    # Retry(raise_on_status=True) makes urllib3 raise MaxRetryError(ResponseError): wrapped, not leaked
    policy = Retry(total=1, status_forcelist=[503], backoff_factor=0)
    emu.fail_next(503, count=3)
    with api_for(emu.url, retries=policy) as api:
        error, _ = timed(api.conversations_identifiers_snapshot, urllib3.exceptions.MaxRetryError)
    assert type(error).__module__ == "pieces_os_client.exceptions"
    assert "failed: too many 503 error responses" in str(error)
    assert emu.request_count() == 2


def test_retries_false_is_one_attempt(emu: Emulator) -> None:
    emu.fail_next(500, count=3)
    with api_for(emu.url, retries=Retry(0, raise_on_status=False)) as api:
        timed(api.conversations_identifiers_snapshot, ServiceException)
    assert emu.request_count() == 1


# ---------------------------------------------------------------- 5. bad arguments: nothing is sent
@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"_request_auth": "token"}, ApiTypeError, "_request_auth must be a dict"),
        ({"_request_auth": ["in", "header"]}, ApiTypeError, "_request_auth must be a dict"),
        ({"_request_auth": {"in": "header"}}, ApiValueError, "_request_auth is missing 'key', 'value'"),
        ({"_request_auth": {"in": "body", "key": "k", "value": "v"}}, ApiValueError,
         "must be in `query`, `header` or `cookie`"),
        ({"_headers": {"X-Evil": "a\r\nInjected: 1"}}, ApiValueError, "contains a line break or NUL"),
        ({"_headers": {"X Bad": "1"}}, ApiValueError, "is not a valid HTTP header name"),
        ({"_headers": {"X-Snow": "☃"}}, ApiValueError, "HTTP headers cannot carry"),
        ({"_request_timeout": float("nan")}, ApiValueError, "must be positive"),
        ({"_request_timeout": float("inf")}, ApiValueError, "must be positive"),
        ({"_request_timeout": 0}, ApiValueError, "must be positive"),
        ({"_request_timeout": (1, float("nan"))}, ApiValueError, "two positive numbers"),
        ({"_request_timeout": (1, 2, 3)}, ApiValueError, "seconds or a (connect, read) pair"),
        ({"_request_timeout": "5"}, ApiValueError, "seconds or a (connect, read) pair"),
        ({"_request_timeout": True}, ApiValueError, "seconds or a (connect, read) pair"),
    ],
)
def test_bad_call_options_fail_before_sending(
    api: ConversationsApi, emu: Emulator, options: dict[str, Any], error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as info:
        api.conversations_identifiers_snapshot(**options)
    assert words in str(info.value)
    assert emu.request_count() == 0


def test_lone_surrogate_in_an_id_fails_before_sending(api: ConversationsApi, emu: Emulator) -> None:
    with pytest.raises(ApiValueError, match="path parameter 'asset' is not valid Unicode text"):
        api.conversations_create_from_asset("\ud800")
    assert emu.request_count() == 0


def test_unicode_in_configured_api_key_fails_before_sending(emu: Emulator) -> None:
    with api_for(emu.url, api_key={"application": "clé-☃"}) as api, pytest.raises(ApiValueError) as info:
        api.conversations_identifiers_snapshot()
    assert "X-Application-ID" in str(info.value)
    assert "clé" not in str(info.value)  # the secret itself is not echoed
    assert emu.request_count() == 0


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("localhost:39300", "is not an http:// or https:// URL with a host"),
        ("ftp://localhost", "is not an http:// or https:// URL with a host"),
        ("http://[::1", "is not a valid URL"),
    ],
)
def test_unusable_host_is_a_value_error(host: str, words: str) -> None:
    # refused by Configuration itself, before any client exists
    with pytest.raises(ApiValueError) as info, api_for(host) as api:
        api.conversations_identifiers_snapshot()
    assert words in str(info.value) and "Configuration.host" in str(info.value)


# ---------------------------------------------------------------- 6. hostile ids travel intact
HOSTILE_IDS = ["a/b", "what?x=1", "frag#ment", "100%", "%2F", "..", ".", "../../conversations", "naïve ☃ 𝄞", " x "]


@pytest.mark.parametrize("asset_id", HOSTILE_IDS)
def test_hostile_asset_id_reaches_the_server_intact(api: ConversationsApi, emu: Emulator, asset_id: str) -> None:
    emu.add_asset("hostile", "print('hi')", "py", asset_id=asset_id)
    output = api.conversations_create_from_asset(asset_id)
    # the server found the asset by exactly this id and grounded the conversation on it
    stored = emu.conversation(output.conversation.id)
    assert stored is not None and [a["id"] for a in stored["assets"]["iterable"]] == [asset_id]
    assert emu.conversation_ids() == [output.conversation.id]
    # on the wire: one percent-encoded segment, nothing left for a router or proxy to reinterpret
    raw_path = emu.requests[-1].path
    prefix = "/conversations/create/from_asset/"
    assert raw_path.startswith(prefix)
    raw_segment = raw_path[len(prefix):]
    assert unquote(raw_segment) == asset_id
    assert not set(raw_segment) & set("/?# ") and raw_segment.isascii()
    assert raw_segment not in (".", "..")
    assert emu.request_count() == 1


@pytest.mark.parametrize("conversation_id", HOSTILE_IDS)
def test_hostile_conversation_id_is_deleted_exactly(api: ConversationsApi, emu: Emulator, conversation_id: str) -> None:
    emu.create_conversation({"name": "hostile"}, conversation_id=conversation_id)
    bystander = emu.create_conversation({"name": "bystander"})
    api.conversations_delete_specific_conversation(conversation_id)
    assert emu.conversation_ids() == [bystander]
