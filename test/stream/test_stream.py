"""The identifiers stream against the emulator, over real loopback sockets.

Changes are made with plain HTTP (urllib3), independent of the SDK code under test.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest
import urllib3
from testkit import ROOT

from pieces_os_client.api.conversations_api import ConversationsApi
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiTimeoutError,
    ApiValueError,
    StreamClosedError,
    StreamError,
)
from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers
from pieces_os_client.stream import (
    ConversationIdsMirror,
    IdentifiersStream,
    MirrorUpdate,
    StreamEvent,
    stream_url,
)
from pieces_os_client.testing import blackhole_server

FAST: Dict[str, Any] = {"initial_backoff": 0.02, "max_backoff": 0.2}


# --------------------------------------------------------------------------- helpers
class Http:
    """Create / delete / list conversations with plain urllib3."""

    def __init__(self, emu: Emulator) -> None:
        self.base = emu.url
        self.pool = urllib3.PoolManager(retries=False)

    def create(self) -> str:
        reply = self.pool.request("POST", self.base + "/conversations/create", json={"type": "COPILOT"})
        assert reply.status == 200, reply.data
        conversation_id = reply.json()["id"]
        assert isinstance(conversation_id, str)
        return conversation_id

    def delete(self, conversation_id: str) -> None:
        reply = self.pool.request("POST", f"{self.base}/conversations/{conversation_id}/delete")
        assert reply.status == 204, reply.data

    def identifiers(self) -> frozenset[str]:
        reply = self.pool.request("GET", self.base + "/conversations/identifiers")
        assert reply.status == 200
        return frozenset(item["id"] for item in reply.json()["iterable"])


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(seed_conversations=3, ws_queue_size=4096) as emulator:
        yield emulator


@pytest.fixture
def http(emu: Emulator) -> Http:
    return Http(emu)


@pytest.fixture
def client(emu: Emulator) -> Iterator[ApiClient]:
    with ApiClient(Configuration(host=emu.url)) as api_client:
        yield api_client


@pytest.fixture
def api(client: ApiClient) -> ConversationsApi:
    return ConversationsApi(client)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return bool(condition())


def changes(event: StreamEvent) -> List[Tuple[str, bool]]:
    return [(ident.conversation.id, bool(ident.deleted)) for ident in event.message.iterable if ident.conversation]


# --------------------------------------------------------------------------- URL
@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("http://localhost:1000", "ws://localhost:1000/conversations/stream/identifiers"),
        ("https://h:8443/base", "wss://h:8443/base/conversations/stream/identifiers"),
        ("https://h:8443/base/", "wss://h:8443/base/conversations/stream/identifiers"),
        ("HTTP://[::1]:39300", "ws://[::1]:39300/conversations/stream/identifiers"),
        ("http://user:pw@h/a/b", "ws://user:pw@h/a/b/conversations/stream/identifiers"),
    ],
)
def test_url_changes_only_the_scheme(host: str, expected: str) -> None:
    assert stream_url(host) == expected


@pytest.mark.parametrize("host", ["ftp://h", "localhost:1000", "http://"])
def test_url_rejects_non_http_hosts(host: str) -> None:
    with pytest.raises(ApiValueError):
        stream_url(host)


# --------------------------------------------------------------------------- iterator
def test_first_message_is_the_full_list(api: ConversationsApi, http: Http) -> None:
    with api.conversations_stream_identifiers() as stream:
        assert isinstance(stream, IdentifiersStream)
        assert stream.url.startswith("ws://127.0.0.1:")
        first = next(stream.events())
    assert first.snapshot and not first.resync and first.connection == 1
    assert isinstance(first.message, StreamedIdentifiers)
    assert frozenset(first.ids) == http.identifiers()
    assert len(first.ids) == 3


def test_fifty_creates_and_deletes_arrive_in_order(
    api: ConversationsApi, http: Http
) -> None:
    mirror = ConversationIdsMirror()
    seen: List[Tuple[str, bool]] = []
    with api.conversations_stream_identifiers(**FAST) as stream:
        snapshot = next(stream.events())
        mirror.apply(snapshot)
        expected: List[Tuple[str, bool]] = []
        created: List[str] = []
        for i in range(50):  # 50 changes: creates, with every third step deleting an older one
            if i % 3 == 2:
                victim = created.pop(0)
                http.delete(victim)
                expected.append((victim, True))
            else:
                new_id = http.create()
                created.append(new_id)
                expected.append((new_id, False))
        for event in stream.events():
            assert not event.snapshot
            seen.extend(changes(event))
            mirror.apply(event)
            if len(seen) >= len(expected):
                break
    assert seen == expected  # in order, nothing lost, nothing doubled
    assert mirror.snapshot() == http.identifiers()
    assert len(mirror) == 3 + len(created)
    assert stream.closed and stream.reconnects == 0


def test_iteration_ends_when_closed_from_another_thread(api: ConversationsApi) -> None:
    stream = api.conversations_stream_identifiers()
    received: List[StreamedIdentifiers] = []
    done = threading.Event()

    def consume() -> None:
        received.extend(stream)  # blocks in recv after the snapshot
        done.set()

    worker = threading.Thread(target=consume, daemon=True)
    worker.start()
    assert wait_until(lambda: len(received) == 1)
    stream.close()
    # the emulator sends nothing more and answers every ping: only close() ends the iteration
    assert done.wait(10)
    assert len(received) == 1 and stream.closed


def test_close_is_prompt_and_idempotent(api: ConversationsApi, emu: Emulator) -> None:
    closes: List[int] = []
    stream = api.conversations_stream_identifiers(on_close=lambda: closes.append(1))
    next(stream)
    started = time.monotonic()
    stream.close()
    stream.close()
    # close() waits for the server's close frame at most close_timeout (0.5 s) each time; the
    # bound catches a close that waited for something else (the next message, a ping: never)
    assert time.monotonic() - started < 10
    assert closes == [1]
    assert list(stream) == []  # iterating a closed stream ends at once
    assert wait_until(lambda: emu.websocket_count == 0)
    with pytest.raises(StreamClosedError):
        stream.start()


def test_discarded_stream_does_not_raise_hang_or_warn(
    api: ConversationsApi, emu: Emulator
) -> None:
    """The official API page's example calls the method and drops the result."""
    started = time.monotonic()
    api.conversations_stream_identifiers()
    gc.collect()  # filterwarnings=error: a leaked socket's ResourceWarning would fail the test
    assert time.monotonic() - started < 10  # nothing waited for a message (none ever comes)
    assert wait_until(lambda: emu.websocket_count == 0)


# --------------------------------------------------------------------------- background
def test_background_callbacks_receive_snapshot_and_changes(
    api: ConversationsApi, http: Http
) -> None:
    messages: List[StreamedIdentifiers] = []
    events: List[StreamEvent] = []
    closed = threading.Event()
    stream = api.conversations_stream_identifiers(
        on_message=messages.append, on_event=events.append, on_close=closed.set
    )
    try:
        new_id = http.create()
        assert wait_until(lambda: len(messages) == 2)
        assert [e.snapshot for e in events] == [True, False]
        assert events[1].ids == [new_id] and messages[1] is events[1].message
        with pytest.raises(StreamError):
            next(stream)  # a background stream cannot also be iterated
    finally:
        stream.close()
    # the thread would otherwise wait for the next message for ever: it ends because of close()
    assert stream.join(10) and closed.is_set()


def test_callback_exceptions_do_not_stop_the_stream(
    api: ConversationsApi, http: Http, caplog: pytest.LogCaptureFixture
) -> None:
    calls: List[int] = []

    def explode(_message: StreamedIdentifiers) -> None:
        calls.append(1)
        raise RuntimeError("consumer bug")

    with api.conversations_stream_identifiers(on_message=explode):
        http.create()
        assert wait_until(lambda: len(calls) == 2)
    assert "on_message callback raised" in caplog.text


# --------------------------------------------------------------------------- reconnects
def test_drop_reconnects_and_the_mirror_resyncs(
    api: ConversationsApi, emu: Emulator, http: Http
) -> None:
    updates: List[MirrorUpdate] = []
    errors: List[Exception] = []
    with ConversationIdsMirror.open(api, on_change=updates.append, on_error=errors.append, **FAST) as mirror:
        assert mirror.wait_ready(2.0) and mirror.snapshot() == http.identifiers()
        stream = mirror.stream
        assert stream is not None
        for _ in range(10):
            http.create()
        assert mirror.wait_for(lambda ids: ids == http.identifiers(), 3.0)

        assert emu.drop_websockets() == 1
        # changes made while the stream is (probably) down must show up through the resync
        doomed = sorted(mirror.snapshot())[:4]
        for conversation_id in doomed:
            http.delete(conversation_id)
        for _ in range(5):
            http.create()
        assert mirror.wait_for(lambda ids: mirror.resyncs >= 1 and ids == http.identifiers(), 5.0)
        assert stream.reconnects >= 1 and stream.connections == stream.reconnects + 1
        assert any(u.resync for u in updates) and updates[0].snapshot and not updates[0].resync
        assert any(isinstance(e, ApiConnectionError) and e.__cause__ is not None for e in errors)

        # and it keeps following changes after the reconnect
        later = http.create()
        assert mirror.wait_for(lambda ids: later in ids, 3.0)
        assert mirror.snapshot() == http.identifiers()
    assert mirror.ended and stream.closed


def test_resync_event_is_visible_to_an_iterating_consumer(
    api: ConversationsApi, emu: Emulator
) -> None:
    with api.conversations_stream_identifiers(**FAST) as stream:
        events = stream.events()
        assert next(events).snapshot
        emu.drop_websockets()
        after = next(events)
    assert after.snapshot and after.resync and after.connection == 2
    assert stream.reconnects == 1


def test_server_restart_replaces_the_set(api: ConversationsApi, emu: Emulator) -> None:
    port = emu.port
    with ConversationIdsMirror.open(api, **FAST) as mirror:
        assert mirror.wait_ready(2.0) and len(mirror) == 3
        emu.stop()
        with Emulator(port=port, seed_conversations=1) as second:
            assert mirror.wait_for(lambda ids: ids == frozenset(second.conversation_ids()), 5.0)
            assert mirror.resyncs == 1


def test_reconnect_disabled_ends_the_iterator_with_stream_closed(
    api: ConversationsApi, emu: Emulator
) -> None:
    errors: List[BaseException] = []
    closes: List[int] = []
    stream = api.conversations_stream_identifiers(
        reconnect=False, on_error=errors.append, on_close=lambda: closes.append(1)
    )
    assert next(stream.events()).snapshot
    emu.drop_websockets()
    with pytest.raises(StreamClosedError) as caught:
        next(stream)
    assert "reconnects are turned off" in str(caught.value)
    assert caught.value.__cause__ is not None  # the connection error, wrapped
    assert errors == [caught.value] and closes == [1]
    assert stream.closed and stream.error is caught.value
    assert list(stream) == []
    stream.close()
    assert closes == [1]


def test_reconnect_disabled_in_background_calls_on_error_then_on_close(
    api: ConversationsApi, emu: Emulator
) -> None:
    order: List[str] = []
    stream = api.conversations_stream_identifiers(
        reconnect=False,
        on_message=lambda _m: order.append("message"),
        on_error=lambda e: order.append(type(e).__name__),
        on_close=lambda: order.append("close"),
    )
    assert wait_until(lambda: order == ["message"])
    emu.drop_websockets()
    assert stream.join(10)  # reconnect=False: the thread ends with the dropped connection
    assert order == ["message", "StreamClosedError", "close"]


def test_gives_up_after_max_reconnect_attempts(api: ConversationsApi, emu: Emulator) -> None:
    stream = api.conversations_stream_identifiers(max_reconnect_attempts=3, **FAST)
    next(stream)
    emu.stop()
    with pytest.raises(StreamClosedError) as caught:
        next(stream)
    assert "after 3 failed attempts" in str(caught.value)
    assert isinstance(caught.value.__cause__, ApiConnectionError)
    stream.close()


def test_close_during_backoff_is_prompt(api: ConversationsApi, emu: Emulator) -> None:
    closed = threading.Event()
    stream = api.conversations_stream_identifiers(
        on_message=lambda _m: None, on_close=closed.set, initial_backoff=30.0, max_backoff=30.0
    )
    emu.drop_websockets()
    assert wait_until(lambda: not stream.connected, 30)
    stream.close()
    # the backoff is 30 s: only close() can end the thread within this bound
    assert stream.join(10) and closed.is_set()


# --------------------------------------------------------------------------- failures at connect
def test_unreachable_host_raises_api_connection_error() -> None:
    with socket_nobody_listens_on() as port:
        config = Configuration(host=f"http://127.0.0.1:{port}")
        api = ConversationsApi(ApiClient(config))
        started = time.monotonic()
        with pytest.raises(ApiConnectionError) as caught:
            api.conversations_stream_identifiers()
    assert time.monotonic() - started < 20  # refused at once; the bound only catches a hang
    message = str(caught.value)
    assert f"ws://127.0.0.1:{port}/conversations/stream/identifiers" in message
    assert "Is Pieces OS running" in message
    assert isinstance(caught.value.__cause__, OSError)
    assert caught.value.host == f"http://127.0.0.1:{port}"


def test_silent_server_raises_api_timeout_error() -> None:
    with blackhole_server() as url:
        config = Configuration(host=url)
        api = ConversationsApi(ApiClient(config))
        with pytest.raises(ApiTimeoutError) as caught:
            api.conversations_stream_identifiers(connect_timeout=0.3)
    assert "Timed out after 0.3 s" in str(caught.value)


def test_non_websocket_path_raises_stream_error(client: ApiClient) -> None:
    with pytest.raises(StreamError) as caught:
        IdentifiersStream(client, "/no/such/stream")
    assert "refused to open the identifiers stream" in str(caught.value)
    assert "HTTP 404" in str(caught.value)


class socket_nobody_listens_on:
    """A loopback port that refuses connections (bound, never listening)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        port: int = self.sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_example_script_runs() -> None:
    example = ROOT / "examples" / "stream_identifiers.py"
    env = dict(os.environ, PYTHONWARNINGS="error")
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=30, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "initial list: 3 conversations" in done.stdout
    assert "resync after reconnect" in done.stdout and "reconnects: 1" in done.stdout
