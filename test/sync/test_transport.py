"""Transport failures: Pieces OS down, slow, silent, cutting connections, or speaking bad TLS.

Each test checks the exception type, the words a person reads, and how many requests reached
the server. Time enters only where it is the point, and then so that a busy machine cannot
break it: a server that stays silent stays silent for a minute (or for good), against timeouts
of 0.2 s, so an upper bound of 20 s tells "the timeout fired" from "it waited for the server";
a lower bound shows a timeout or backoff did not end early; and the backoff a client chose is
read from the waits it asked for (the ``sleeps`` fixture), not from a wall clock.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme
import urllib3
import urllib3.util.connection
from testkit.emulator import api_for
from testkit.wait import SleepLog
from urllib3.exceptions import InsecureRequestWarning, MaxRetryError, NewConnectionError, ReadTimeoutError

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiException,
    ApiTimeoutError,
    OpenApiException,
)
from pieces_os_client.testing import blackhole_server

# Small backoff so retried calls stay fast; jitter off so the waits are exact.
FAST = {"backoff_factor": 0.05, "backoff_jitter": 0.0}
#: how long a slow server takes: far beyond any timeout here, so a call that did not give up
#: on its own timeout is caught by HANG
STALL = 60.0
#: the upper bound on a call that must end on its own timeout (0.2 s, a few times over, plus
#: backoff): far above that even on a loaded machine, far below STALL
HANG = 20.0


@pytest.fixture
def connection_attempts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection urllib3 opens during the test, as (host, port)."""
    attempts: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def counting(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        attempts.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", counting)
    return attempts


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(call: Callable[[], Any], expected: type[BaseException]) -> tuple[Any, float]:
    started = time.monotonic()
    with pytest.raises(expected) as info:
        call()
    return info.value, time.monotonic() - started


# ---------------------------------------------------------------- 1. server down
@pytest.mark.parametrize("operation", ["identifiers", "create"])
def test_server_down_is_a_clear_connection_error(
    operation: str, connection_attempts: list[tuple[str, int]], sleeps: SleepLog
) -> None:
    port = closed_port()
    with api_for(f"http://127.0.0.1:{port}", **FAST) as api:
        call = {
            "identifiers": api.conversations_identifiers_snapshot,
            "create": api.conversations_create_specific_conversation,
        }[operation]
        error, elapsed = timed(call, ApiConnectionError)

    assert type(error) is ApiConnectionError  # refused is not a timeout
    message = str(error)
    assert f"Could not connect to Pieces OS at http://127.0.0.1:{port}" in message
    assert "Connection refused" in message
    assert "Start Pieces OS" in message and "python -m pieces_os_client.emulator" in message
    assert "39300-39333" in message
    assert error.host == f"http://127.0.0.1:{port}"
    # official-SDK code catches urllib3's MaxRetryError around calls
    assert isinstance(error, MaxRetryError) and isinstance(error, OpenApiException)
    assert isinstance(error.__cause__, MaxRetryError)
    assert isinstance(error.__cause__.reason, NewConnectionError)
    # the connection never happened, so even a create is safely tried again: 1 + max_retries
    assert connection_attempts == [("127.0.0.1", port)] * 3
    # backoff: 0 s before the first retry (no wait at all), 0.05 * 2 before the second
    assert sleeps.seconds == [pytest.approx(0.1)]
    assert 0.1 <= elapsed < HANG


def test_server_down_is_caught_by_official_style_except_clauses() -> None:
    with api_for(f"http://127.0.0.1:{closed_port()}", max_retries=0) as api:
        try:
            api.conversations_snapshot()
        except MaxRetryError as caught:  # what code written for the official SDK does
            assert isinstance(caught, ApiConnectionError)
        else:  # pragma: no cover
            pytest.fail("no error")


def test_default_backoff_for_a_refused_get(connection_attempts: list[tuple[str, int]], sleeps: SleepLog) -> None:
    # defaults: 2 retries, backoff_factor 0.25, jitter up to 0.25 s -> 0 s, then 0.5-0.75 s
    with api_for(f"http://127.0.0.1:{closed_port()}") as api:
        _, elapsed = timed(api.conversations_identifiers_snapshot, ApiConnectionError)
    assert len(connection_attempts) == 3
    assert len(sleeps.seconds) == 1 and 0.5 <= sleeps.seconds[0] <= 0.75, sleeps.seconds
    assert 0.5 <= elapsed < HANG  # the wait was slept, and nothing else was waited for


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs to a full listen backlog")
def test_connect_timeout_is_an_api_timeout_error(connection_attempts: list[tuple[str, int]]) -> None:
    # A listener that never accepts, its accept queue full: new connections hang in SYN.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        # the first filler's handshake completing is what fills the queue: wait for it, not a while
        _, writable, _ = select.select([], fillers[:1], [], 30)
        assert writable and fillers[0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        try:
            with api_for(f"http://127.0.0.1:{port}", connect_timeout=0.2, max_retries=1, **FAST) as api:
                error, elapsed = timed(api.conversations_identifiers_snapshot, ApiTimeoutError)
        finally:
            for filler in fillers:
                filler.close()
    assert f"Timed out connecting to Pieces OS at http://127.0.0.1:{port} (connect timeout 0.2 s)" in str(error)
    assert "Is Pieces OS running" in str(error)
    assert isinstance(error, TimeoutError) and isinstance(error, ApiConnectionError)
    assert len(connection_attempts) == 2
    # two connect timeouts of 0.2 s waited in full; the kernel alone would keep trying for minutes
    assert 0.4 <= elapsed < HANG


# ---------------------------------------------------------------- 2. slow and silent servers
def test_slow_get_times_out_after_every_retry(emu: Emulator, sleeps: SleepLog) -> None:
    emu.delay_next(STALL, count=3)
    with api_for(emu.url, read_timeout=0.2, **FAST) as api:
        error, elapsed = timed(api.conversations_identifiers_snapshot, ApiTimeoutError)
    message = str(error)
    assert f"Pieces OS at {emu.url} accepted the connection but sent no response" in message
    assert "GET " in message and "/conversations/identifiers" in message
    assert "within the read timeout (0.2 s)" in message
    assert isinstance(error, TimeoutError) and isinstance(error, MaxRetryError)
    assert isinstance(error.__cause__, MaxRetryError) and isinstance(error.__cause__.reason, ReadTimeoutError)
    assert emu.request_count("GET", "/conversations/identifiers") == 3  # max_retries + 1
    assert sleeps.seconds == [pytest.approx(0.1)]  # no wait before the first retry, 0.1 s before the second
    assert 0.7 <= elapsed < HANG  # 3 x 0.2 s read timeout + 0.1 s backoff, and not the server's minute


def test_slow_get_succeeds_once_the_delay_clears(emu: Emulator) -> None:
    emu.delay_next(STALL, count=1)
    with api_for(emu.url, read_timeout=0.2, **FAST) as api:
        started = time.monotonic()
        assert api.conversations_identifiers_snapshot().iterable == []
        elapsed = time.monotonic() - started
    assert emu.request_count() == 2
    assert 0.2 <= elapsed < HANG  # one read timeout waited out, then answered; not the stalled answer


def test_per_call_timeout_pair_overrides_the_configured_one(emu: Emulator) -> None:
    emu.delay_next(STALL, count=1)
    with api_for(emu.url, read_timeout=30, max_retries=0) as api:
        error, elapsed = timed(
            lambda: api.conversations_snapshot(_request_timeout=(1.0, 0.2)), ApiTimeoutError
        )
    assert "within the read timeout (0.2 s)" in str(error)
    assert emu.request_count() == 1
    assert 0.2 <= elapsed < HANG  # the call's 0.2 s, not the configured 30 s (nor the server's 60 s)


def test_per_call_total_timeout_is_reported_not_crashed(emu: Emulator) -> None:
    # A single number is a total per attempt; describing it used to raise urllib3's TimeoutStateError.
    emu.delay_next(STALL, count=1)
    with api_for(emu.url, max_retries=0) as api:
        error, elapsed = timed(lambda: api.conversations_snapshot(_request_timeout=0.2), ApiTimeoutError)
    assert "within the read timeout (0.2 s in total per attempt)" in str(error)
    assert emu.request_count() == 1
    assert 0.15 <= elapsed < HANG


@pytest.fixture
def stalling_emu() -> Iterator[Emulator]:
    """An emulator of the test's own: work it holds for a minute is dropped when the test ends,
    not done in the middle of a later test."""
    with Emulator() as own:
        yield own


def test_slow_create_is_never_sent_twice(stalling_emu: Emulator) -> None:
    """The request reached Pieces OS and may create a conversation: it is not re-sent."""
    emu = stalling_emu
    emu.delay_next(STALL, count=1)
    with api_for(emu.url, read_timeout=0.2, **FAST) as api:
        error, elapsed = timed(
            lambda: api.conversations_create_specific_conversation(seeded_conversation={"name": "once"}),
            ApiTimeoutError,
        )
        assert "POST " in str(error) and "/conversations/create" in str(error)
        assert isinstance(error.__cause__, ReadTimeoutError)
        assert 0.2 <= elapsed < HANG  # the read timeout fired; the server was still holding the request
        # the server holds the request, so nothing exists yet; and nothing sent a second one
        assert emu.request_count("POST", "/conversations/create") == 1
        assert emu.conversation_ids() == []
        # the same client goes on working (its pool was not left with a half-read connection)
        assert api.conversations_identifiers_snapshot().iterable == []
    assert emu.request_count("POST", "/conversations/create") == 1


def test_slow_create_from_asset_and_delete_are_not_resent(stalling_emu: Emulator) -> None:
    emu = stalling_emu
    asset = emu.asset_ids()[0]
    doomed = emu.create_conversation({"name": "doomed"})
    emu.delay_next(STALL, count=2)
    with api_for(emu.url, read_timeout=0.2, **FAST) as api:
        timed(lambda: api.conversations_create_from_asset(asset), ApiTimeoutError)
        timed(lambda: api.conversations_delete_specific_conversation(doomed), ApiTimeoutError)
        assert api.conversations_identifiers_snapshot().iterable is not None
    assert emu.request_count("POST", "/conversations/create/from_asset/*") == 1
    assert emu.request_count("POST", f"/conversations/{doomed}/delete") == 1
    assert emu.conversation_ids() == [doomed]  # both requests still held: neither was done twice


def test_blackhole_server_times_out_within_the_bound() -> None:
    with blackhole_server() as url, api_for(url, read_timeout=0.2, max_retries=0) as api:
        error, elapsed = timed(api.conversations_identifiers_snapshot, ApiTimeoutError)
    assert f"Pieces OS at {url} accepted the connection but sent no response" in str(error)
    assert 0.2 <= elapsed < HANG  # the read timeout, against a server that never answers


def test_blackhole_server_post_is_tried_once(connection_attempts: list[tuple[str, int]]) -> None:
    with blackhole_server() as url, api_for(url, read_timeout=0.2, **FAST) as api:
        _, elapsed = timed(api.conversations_create_specific_conversation, ApiTimeoutError)
    assert len(connection_attempts) == 1
    assert 0.2 <= elapsed < HANG


def test_hanging_response_honours_the_read_timeout(emu: Emulator) -> None:
    emu.break_next("hang")
    with api_for(emu.url, read_timeout=0.2, max_retries=0) as api:
        _, elapsed = timed(api.conversations_snapshot, ApiTimeoutError)
    assert emu.request_count() == 1
    assert 0.2 <= elapsed < HANG  # the read timeout, against a response that never comes


# ---------------------------------------------------------------- connections that break
@pytest.mark.parametrize(
    ("mode", "received"),
    [("truncated", "IncompleteRead(20 bytes read, 4076 more expected)"),
     ("disconnect", "IncompleteRead(0 bytes read, 4096 more expected)")],
)
def test_response_cut_short_is_a_connection_error(emu: Emulator, mode: str, received: str) -> None:
    emu.break_next(mode, count=2)
    with api_for(emu.url, max_retries=0) as api:
        for call in (api.conversations_identifiers_snapshot, api.conversations_identifiers_snapshot_with_http_info):
            error, elapsed = timed(call, ApiConnectionError)
            assert type(error) is ApiConnectionError
            assert f"The connection to {emu.url} broke while reading the response body (status 200)" in str(error)
            assert received in str(error)
            assert isinstance(error.__cause__, urllib3.exceptions.ProtocolError)
            assert elapsed < HANG  # the cut was seen, not sat out until a timeout
    assert emu.request_count() == 2


@pytest.mark.parametrize("mode", ["truncated", "disconnect"])
def test_get_whose_body_is_cut_short_is_retried(emu: Emulator, mode: str) -> None:
    emu.break_next(mode, count=2)
    with api_for(emu.url, **FAST) as api:
        assert api.conversations_identifiers_snapshot().iterable == []
    assert emu.request_count() == 3  # two broken answers, then the real one


def test_get_whose_body_keeps_breaking_gives_up_after_the_retries(emu: Emulator) -> None:
    emu.break_next("truncated", count=3)
    with api_for(emu.url, **FAST) as api:
        error, elapsed = timed(api.conversations_snapshot, ApiConnectionError)
    assert "broke while reading the response body" in str(error)
    assert emu.request_count() == 3
    assert elapsed < HANG  # each break seen at once, no 60 s default read timeout sat out


def test_create_whose_body_is_cut_short_is_not_resent(emu: Emulator) -> None:
    emu.break_next("truncated", count=1, path="/conversations/create")
    with api_for(emu.url, **FAST) as api:
        error, _ = timed(api.conversations_create_specific_conversation, ApiConnectionError)
    assert "broke while reading the response body" in str(error)
    assert emu.request_count() == 1


def test_reset_before_any_response_get_is_retried(emu: Emulator) -> None:
    emu.break_next("reset_before_response", count=1)
    with api_for(emu.url, **FAST) as api:
        assert api.conversations_identifiers_snapshot().iterable == []
    assert emu.request_count() == 2


def test_reset_before_any_response_get_gives_up_after_the_retries(emu: Emulator) -> None:
    emu.break_next("reset_before_response", count=3)
    with api_for(emu.url, **FAST) as api:
        error, elapsed = timed(api.conversations_snapshot, ApiConnectionError)
    assert type(error) is ApiConnectionError
    assert f"The connection to {emu.url} broke during GET {emu.url}/conversations" in str(error)
    assert "Connection reset by peer" in str(error) or "Connection aborted" in str(error)
    assert emu.request_count() == 3
    assert elapsed < HANG  # each break seen at once, no 60 s default read timeout sat out


def test_reset_before_any_response_create_is_not_resent(emu: Emulator) -> None:
    emu.break_next("reset_before_response", count=1)
    with api_for(emu.url, **FAST) as api:
        error, _ = timed(api.conversations_create_specific_conversation, ApiConnectionError)
    assert f"broke during POST {emu.url}/conversations/create" in str(error)
    assert isinstance(error.__cause__, urllib3.exceptions.ProtocolError)
    assert emu.request_count() == 1
    assert emu.conversation_ids() == []


def test_without_preload_content_hands_back_the_broken_response_unread(emu: Emulator) -> None:
    emu.break_next("truncated")
    with api_for(emu.url) as api:
        raw = api.conversations_identifiers_snapshot_without_preload_content()
        try:
            assert raw.status == 200 and raw.headers["Content-Length"] == "4096"
            with pytest.raises(urllib3.exceptions.ProtocolError):
                raw.read()  # the raw urllib3 response is the caller's to read, as in the official SDK
        finally:
            raw.release_conn()


# ---------------------------------------------------------------- 9. TLS
@pytest.fixture(scope="module")
def tls_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_emulator(tls_ca: trustme.CA) -> Iterator[Emulator]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    with Emulator(ssl_context=context) as emu:
        yield emu


def test_tls_unknown_ca_fails_by_default(tls_emulator: Emulator, connection_attempts: list[tuple[str, int]]) -> None:
    tls_emulator.clear_requests()
    assert tls_emulator.url.startswith("https://")
    with api_for(tls_emulator.url, **FAST) as api:
        error, elapsed = timed(api.conversations_identifiers_snapshot, ApiConnectionError)
    assert type(error) is ApiConnectionError
    assert f"TLS handshake with {tls_emulator.url} failed" in str(error)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error) and "certificate verify failed" in str(error)
    assert "Check verify_ssl / ssl_ca_cert" in str(error)
    assert isinstance(error.__cause__, MaxRetryError)
    assert isinstance(error.__cause__.reason, urllib3.exceptions.SSLError)
    # a certificate problem does not go away by retrying: one attempt, nothing reached the API
    assert len(connection_attempts) == 1
    assert tls_emulator.request_count() == 0
    assert elapsed < HANG  # only a hang could break this: the attempts are counted above


def test_tls_passes_with_ssl_ca_cert_file(tls_emulator: Emulator, tls_ca: trustme.CA) -> None:
    with tls_ca.cert_pem.tempfile() as ca_file, api_for(tls_emulator.url, ssl_ca_cert=ca_file) as api:
        assert api.conversations_identifiers_snapshot().iterable is not None


def test_tls_passes_with_ca_cert_data(tls_emulator: Emulator, tls_ca: trustme.CA) -> None:
    with api_for(tls_emulator.url, ca_cert_data=tls_ca.cert_pem.bytes().decode("ascii")) as api:
        assert api.conversations_identifiers_snapshot().iterable is not None


def test_tls_passes_with_verify_ssl_off_and_urllib3_warns(tls_emulator: Emulator) -> None:
    config = Configuration(host=tls_emulator.url)
    config.verify_ssl = False
    with ApiClient(config) as client, pytest.warns(InsecureRequestWarning):
        assert ConversationsApi(client).conversations_identifiers_snapshot().iterable is not None


def test_tls_wrong_ca_still_fails(tls_emulator: Emulator) -> None:
    other = trustme.CA()
    with other.cert_pem.tempfile() as ca_file, api_for(tls_emulator.url, ssl_ca_cert=ca_file, max_retries=0) as api:
        error, _ = timed(api.conversations_identifiers_snapshot, ApiConnectionError)
    assert "certificate verify failed" in str(error)


def test_plain_http_client_against_tls_server_is_a_connection_error(tls_emulator: Emulator) -> None:
    plain = "http://" + tls_emulator.url.split("://", 1)[1]
    tls_emulator.clear_requests()
    with api_for(plain, max_retries=0) as api, pytest.raises(OpenApiException) as info:
        api.conversations_identifiers_snapshot()
    # aiohttp answers plain HTTP on a TLS port with garbage or a reset; either way an SDK error
    assert isinstance(info.value, (ApiConnectionError, ApiException))
