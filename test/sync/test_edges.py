"""The transport's edges: stale keep-alive connections, interim answers, the response head's
deadline, part-read and dropped raw responses, and a pool whose lock an interrupt left held.

Each server here is a small raw HTTP/1.1 server on 127.0.0.1 that keeps connections alive the
way a real one does (several exchanges per connection) and then misbehaves in one chosen way.
Every server stops by itself: each connection serves a bounded number of exchanges, waits a
bounded time, and the server is shut down at the end of its test.
"""

from __future__ import annotations

import contextlib
import gc
import json
import random
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Optional

import pytest

from pieces_os_client import ApiClient, Configuration, ConversationsApi, SeededConversation
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import ApiConnectionError, ApiTimeoutError

IDS_BODY = b'{"iterable": [{"id": "one"}, {"id": "two"}]}'
MAX_EXCHANGES = 2000  # per connection
MAX_SECONDS = 20.0
#: how long a server that misbehaves slowly (endless interim answers, a trickled head) keeps at
#: it: far beyond every timeout here (1-2 s), so a call that did not stop on its own timeout
#: is caught by HANG; the server stops early once the client has gone or the test ends
STALL = 60.0
#: the upper bound on a call that must stop at its own timeout: far above that timeout on a
#: loaded machine, far below STALL
HANG = 20.0


def conversation_body(name: str) -> bytes:
    stamp = {"value": "2026-01-01T00:00:00.000Z"}
    return json.dumps({
        "id": f"id-{name}", "name": name, "created": stamp, "updated": stamp, "type": "COPILOT",
        "messages": {"iterable": [], "indices": {}},
    }).encode()


class Exchange:
    """One request as the server read it."""

    def __init__(self, method: str, path: str, body: bytes) -> None:
        self.method, self.path, self.body = method, path, body


Behaviour = Callable[["Session", Exchange], bool]  # answers the exchange; False: close the connection


class KeepAliveServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self, behaviour: Behaviour, idle_timeout: float = 5.0) -> None:
        super().__init__(("127.0.0.1", 0), Session)
        self.behaviour = behaviour
        self.idle_timeout = idle_timeout
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # set when the test ends: slow behaviours stop
        self.created: list[str] = []  # the names of the creates this server carried out
        self.connections = 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self.thread.join(MAX_SECONDS)


class Session(socketserver.BaseRequestHandler):
    server: KeepAliveServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        with self.server.lock:
            self.server.connections += 1
        self.reader = conn.makefile("rb")
        self.served = 0
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while self.served < MAX_EXCHANGES and time.monotonic() - started < MAX_SECONDS:
                conn.settimeout(self.server.idle_timeout if self.served else MAX_SECONDS)
                exchange = self.read_exchange()
                if exchange is None or not self.server.behaviour(self, exchange):
                    return
                self.served += 1

    def read_exchange(self) -> Optional[Exchange]:
        try:
            line = self.reader.readline(65537)
        except TimeoutError:
            return None  # idle for too long: close, as servers do
        if not line:
            return None
        method, path, _ = line.decode("latin-1").split(" ", 2)
        length = 0
        while True:
            header = self.reader.readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return Exchange(method, path, self.reader.read(length) if length else b"")

    def send(self, status: str, body: bytes, *headers: str) -> None:
        head = f"HTTP/1.1 {status}\r\n" + "".join(h + "\r\n" for h in headers)
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.request.sendall(head.encode() + body)

    def answer(self, exchange: Exchange) -> None:
        """The normal answer: identifiers for a GET, the conversation for a create."""
        if exchange.method == "POST":
            name = json.loads(exchange.body)["name"]
            with self.server.lock:
                self.server.created.append(name)
            self.send("200 OK", conversation_body(name))
        else:
            self.send("200 OK", IDS_BODY)


@contextlib.contextmanager
def serving(behaviour: Behaviour, idle_timeout: float = 5.0) -> Iterator[KeepAliveServer]:
    server = KeepAliveServer(behaviour, idle_timeout)
    try:
        yield server
    finally:
        server.close()


def api_for(url: str, **settings: Any) -> ConversationsApi:
    return ConversationsApi(ApiClient(Configuration(host=url, **settings)))


def create(api: ConversationsApi, name: str) -> str:
    made = api.conversations_create_specific_conversation(seeded_conversation=SeededConversation(name=name))
    return str(made.name)


# ---------------------------------------------------------------- stale keep-alive connections
def close_soon_after_each_answer(session: Session, exchange: Exchange) -> bool:
    session.answer(exchange)
    time.sleep(random.uniform(0, 0.002))
    return False  # close 0-2 ms after the answer, without saying so


def close_on_reuse(session: Session, exchange: Exchange) -> bool:
    if session.served >= 1:
        return False  # read the second request, then close without an answer
    session.answer(exchange)
    return True


def answer_and_keep(session: Session, exchange: Exchange) -> bool:
    session.answer(exchange)
    return True


@pytest.mark.parametrize(
    ("behaviour", "rounds", "idle_timeout", "pause"),
    [
        (close_soon_after_each_answer, 150, 5.0, None),
        (close_on_reuse, 60, 5.0, None),
        (answer_and_keep, 40, 0.05, 0.05),  # the server's idle timer races the next request
    ],
    ids=["closes-after-each-answer", "closes-on-reuse", "idle-timer-race"],
)
def test_no_create_is_lost_or_duplicated_on_stale_keep_alive_connections(
    behaviour: Behaviour, rounds: int, idle_timeout: float, pause: Optional[float]
) -> None:
    with serving(behaviour, idle_timeout) as server:
        api = api_for(server.url, max_retries=0)
        names = [f"c{i}" for i in range(rounds)]
        made = []
        for name in names:
            if pause is not None:
                time.sleep(random.uniform(pause * 0.8, pause * 1.2))
            made.append(create(api, name))
        api.api_client.close()
    assert made == names  # every create answered, in order
    assert sorted(server.created) == sorted(names)  # each carried out exactly once
    assert len(set(server.created)) == len(server.created)


def test_a_get_on_a_stale_connection_is_sent_again_without_retries() -> None:
    with serving(close_on_reuse) as server:
        api = api_for(server.url, max_retries=0)
        for _ in range(5):
            assert [i.id for i in api.conversations_identifiers_snapshot().iterable] == ["one", "two"]
        api.api_client.close()
    assert server.connections == 5


def test_a_fresh_connection_that_breaks_is_not_sent_again() -> None:
    def drop(session: Session, exchange: Exchange) -> bool:
        return False  # reads the request and closes without an answer, every time

    with serving(drop) as server:
        api = api_for(server.url, max_retries=0)
        with pytest.raises(Exception, match="Remote end closed connection without response"):
            create(api, "once")
        api.api_client.close()
    assert server.connections == 1


def test_a_reused_connection_closed_in_the_middle_of_a_head_is_not_sent_again() -> None:
    def half_a_head_on_reuse(session: Session, exchange: Exchange) -> bool:
        if session.served >= 1:
            session.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: appl")
            return False  # part of an answer, then closed: the request was read
        session.answer(exchange)
        return True

    with serving(half_a_head_on_reuse) as server:
        api = api_for(server.url, max_retries=0)
        assert create(api, "first") == "first"
        with pytest.raises(ApiConnectionError, match="broke during POST"):
            create(api, "second")
        api.api_client.close()
    assert server.connections == 1  # not sent again on another connection
    assert server.created == ["first"]


# ---------------------------------------------------------------- interim answers
def test_an_early_hints_answer_is_skipped_and_the_next_call_gets_its_own_answer() -> None:
    def hints_then_answer(session: Session, exchange: Exchange) -> bool:
        session.request.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        session.request.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
        session.answer(exchange)
        return True

    with serving(hints_then_answer) as server:
        api = api_for(server.url, max_retries=0)
        for round_ in range(3):
            assert [i.id for i in api.conversations_identifiers_snapshot().iterable] == ["one", "two"]
            assert create(api, f"after-{round_}") == f"after-{round_}"
        api.api_client.close()
    assert server.connections == 1  # one connection carried all six exchanges, in step


def test_endless_continue_answers_stop_at_the_request_timeout() -> None:
    def endless_continue(session: Session, exchange: Exchange) -> bool:
        started = time.monotonic()
        while time.monotonic() - started < STALL and not session.server.stopping.is_set():
            session.request.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # fails once the client has gone
            time.sleep(0.005)
        return False

    with serving(endless_continue) as server:
        api = api_for(server.url, max_retries=0)
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as info:
            api.conversations_identifiers_snapshot(_request_timeout=1)
        elapsed = time.monotonic() - started
        api.api_client.close()
    assert 0.5 < elapsed < HANG, elapsed  # the 1 s request timeout, not the server's minute
    assert "did not finish the status line and headers within _request_timeout=1 s" in str(info.value)


def trickled_head(session: Session, exchange: Exchange) -> bool:
    """A header line every 0.2 s for a minute: each read is quick, the head never ends."""
    session.request.sendall(b"HTTP/1.1 200 OK\r\n")
    for i in range(int(STALL / 0.2)):
        if session.server.stopping.is_set():
            break
        session.request.sendall(f"X-Slow-{i}: {i}\r\n".encode())  # fails once the client has gone
        time.sleep(0.2)
    return False


def test_a_trickled_head_stops_at_the_request_timeout_and_says_so() -> None:
    with serving(trickled_head) as server:
        api = api_for(server.url, max_retries=0)
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as info:
            api.conversations_identifiers_snapshot(_request_timeout=2)
        elapsed = time.monotonic() - started
        api.api_client.close()
    assert 1.5 < elapsed < HANG, elapsed  # the 2 s request timeout, not the minute-long trickle
    message = str(info.value)
    assert "did not finish the status line and headers within _request_timeout=2 s" in message
    assert "body" not in message


def test_a_trickled_head_stops_at_the_read_timeout() -> None:
    with serving(trickled_head) as server:
        api = api_for(server.url, max_retries=0, read_timeout=1)
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError, match=r"read timeout \(1 s; it bounds the whole response head\)"):
            api.conversations_identifiers_snapshot()
        elapsed = time.monotonic() - started
        api.api_client.close()
    assert 0.5 < elapsed < HANG, elapsed  # the 1 s read timeout bounds the whole head


# ---------------------------------------------------------------- raw responses
@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(port=0, seed_conversations=30) as running:
        yield running


def test_a_raw_response_released_part_read_does_not_poison_the_next_call(emulator: Emulator) -> None:
    api = api_for(emulator.url, connection_pool_maxsize=1, pool_timeout=5)
    emulator.stall_body_next(3, after_bytes=100, path="/conversations")  # the rest of the body is late
    raw = api.conversations_snapshot_without_preload_content()
    assert raw.read(10)
    raw.release_conn()  # as the docs say: the connection is closed, not pooled with a body unread
    assert create(api, "after-part-read") == "after-part-read"
    assert emulator.request_count("POST", "/conversations/create") == 1
    api.api_client.close()


def test_a_raw_response_dropped_unread_gives_its_slot_back(emulator: Emulator) -> None:
    api = api_for(emulator.url, connection_pool_maxsize=1, pool_timeout=60)
    raw = api.conversations_snapshot_without_preload_content()
    assert raw.status == 200
    del raw
    gc.collect()
    started = time.monotonic()
    assert create(api, "after-drop") == "after-drop"
    assert time.monotonic() - started < HANG  # the slot was free: no wait for the 60 s pool timeout
    api.api_client.close()


# ---------------------------------------------------------------- a pool an interrupt left locked
def test_a_pool_lock_an_interrupt_left_held_is_freed_at_the_next_call(emulator: Emulator) -> None:
    api = api_for(emulator.url, connection_pool_maxsize=2, pool_timeout=60)
    api.conversations_identifiers_snapshot()
    pool = api.api_client.rest_client.pool_manager.connection_from_url(emulator.url)
    assert pool.pool is not None
    pool.pool.mutex.acquire()  # what an interrupt between acquire and try leaves behind
    started = time.monotonic()
    for _ in range(3):
        api.conversations_identifiers_snapshot()
    raw = [api.conversations_snapshot_without_preload_content() for _ in range(2)]  # both slots
    assert time.monotonic() - started < HANG  # five calls, none waited out the 60 s pool timeout
    for response in raw:
        response.release_conn()
    api.api_client.close()


def test_a_pool_lock_held_by_another_thread_bounds_the_wait_by_the_pool_timeout(emulator: Emulator) -> None:
    api = api_for(emulator.url, connection_pool_maxsize=2, pool_timeout=1)
    api.conversations_identifiers_snapshot()
    pool = api.api_client.rest_client.pool_manager.connection_from_url(emulator.url)
    assert pool.pool is not None
    holder = threading.Thread(target=pool.pool.mutex.acquire)  # held by a thread that is gone
    holder.start()
    holder.join()
    started = time.monotonic()
    with pytest.raises(ApiTimeoutError, match="pool_timeout=1 s"):
        api.conversations_identifiers_snapshot()
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < HANG, elapsed  # the pool timeout waited out, not a lock held forever
    api.api_client.close()


# ---------------------------------------------------------------- the smaller items
def test_a_configuration_where_an_api_client_belongs_is_refused_at_once() -> None:
    from pieces_os_client import ApiTypeError

    hint = r"not Configuration \(wrap it: ConversationsApi\(ApiClient\(configuration\)\)\)"
    with pytest.raises(ApiTypeError, match=hint):
        ConversationsApi(Configuration(host="http://127.0.0.1:9"))  # type: ignore[arg-type]


def test_a_body_that_cannot_be_written_names_the_field_and_sends_nothing(emulator: Emulator) -> None:
    from pieces_os_client import ApiValueError

    api = api_for(emulator.url)
    body = SeededConversation.model_construct(name=object())
    with pytest.raises(ApiValueError, match="SeededConversation cannot be written as JSON: field 'name'"):
        api.conversations_create_specific_conversation(seeded_conversation=body)
    assert emulator.request_count("POST", "/conversations/create") == 0
    api.api_client.close()


def test_user_and_password_in_the_host_are_never_shown() -> None:
    from pieces_os_client import ApiValueError

    configuration = Configuration(host="http://me:secret@127.0.0.1:39300")
    assert "secret" not in repr(configuration)
    assert "***@127.0.0.1:39300" in repr(configuration)
    with pytest.raises(ApiValueError) as info:
        Configuration(host="http://me:secret@127.0.0.1:99999")
    assert "secret" not in str(info.value)


def test_user_and_password_in_the_host_reach_no_request_or_error(emulator: Emulator) -> None:
    from pieces_os_client import ApiConnectionError

    port = emulator.url.rsplit(":", 1)[1]
    api = api_for(f"http://me:secret@127.0.0.1:{port}")
    assert create(api, "with-userinfo") == "with-userinfo"  # the request goes to the host, without them
    api.api_client.close()
    refused = api_for("http://me:secret@127.0.0.1:9", max_retries=0)
    with pytest.raises(ApiConnectionError) as info:
        refused.conversations_identifiers_snapshot()
    assert "secret" not in str(info.value)
    assert "secret" not in str(info.value.url)
    refused.api_client.close()


# ---------------------------------------------------------------- the direct route to a pool
@pytest.mark.parametrize(
    "target",
    [
        "/conversations/identifiers",
        "/conversations/abc-DEF_1.2~3/delete?transferables=true",
        "/conversations/a%2Fb/delete",
        "/conversations/a%2fb/delete",  # lower-case escape: urllib3 upper-cases it
        "/conversations/./x/../identifiers",  # dot segments: urllib3 removes them
        "/conversations/.hidden",
        "/conversations/a b/delete",  # a space: urllib3 escapes it
        "/conversations/caf\u00e9",
        "/conversations?x=1&y=a,b;c=d@e:f",
        "",
    ],
)
def test_a_request_reaches_the_wire_as_urllib3_would_send_it(target: str) -> None:
    """The transport sends most requests straight to the origin's pool (no URL parsing per call).

    Whatever it sends must be what urllib3's ``PoolManager`` sends for the same URL: the same
    request line, whichever way the request took.
    """
    import urllib3

    seen: list[str] = []

    def record(session: Session, exchange: Exchange) -> bool:
        with session.server.lock:
            seen.append(exchange.path)
        session.send("200 OK", b"{}")
        return True

    with serving(record) as server:
        client = ApiClient(Configuration(host=server.url, max_retries=0))
        manager = urllib3.PoolManager()
        try:
            client.rest_client.request("GET", server.url + target)
            manager.request("GET", server.url + target)
        finally:
            client.close()
            manager.clear()
    assert len(seen) == 2
    assert seen[0] == seen[1]
