"""What the sync transport relies on that urllib3, http.client, queue and threading do not promise.

Every such name is used in ``pieces_os_client/_wire.py`` only, and listed in
docs/threads-processes-limits.md ("What this package relies on that urllib3 and http.client do
not promise"). Each test here pins one of them: that the name is there, takes what the
transport passes, and still does what the transport needs. When an upgrade breaks one, the
failure names the upstream name and what changed, so the fix starts from the right place.
"""

from __future__ import annotations

import http.client
import inspect
import io
import queue
import socket
import threading
from typing import Any, List

import urllib3
from testkit.ws import HeadServer
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool

from pieces_os_client import _wire

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def pin(holds: bool, upstream: str, changed: str) -> None:
    """Fail, naming the upstream name the transport relies on and what no longer holds."""
    assert holds, f"upstream change in {upstream}: {changed} (pieces_os_client/_wire.py relies on it)"


def parameters(function: Any) -> List[str]:
    return list(inspect.signature(function).parameters)


def answer(sock: socket.socket, number: int, head: bytes, stop: threading.Event) -> None:
    sock.sendall(ANSWER)


class _FakeSocket:
    """What http.client.HTTPResponse reads from: its makefile("rb")."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.modes: List[str] = []

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        self.modes.append(mode)
        return io.BufferedReader(io.BytesIO(self.data))  # type: ignore[arg-type]


# ---------------------------------------------------------------- http.client
def test_http_client_response_reads_its_status_line_through_read_status() -> None:
    name = "http.client.HTTPResponse._read_status"
    pin(callable(getattr(http.client.HTTPResponse, "_read_status", None)), name, "the method is gone")
    pin(parameters(http.client.HTTPResponse._read_status) == ["self"], name,
        f"its parameters are now {parameters(http.client.HTTPResponse._read_status)}, not (self)")
    calls: List[Any] = []

    class Recording(http.client.HTTPResponse):
        def _read_status(self) -> Any:
            status = super()._read_status()  # type: ignore[misc]
            calls.append(status)
            return status

    sock = _FakeSocket(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ANSWER)
    Recording(sock).begin()  # type: ignore[arg-type]
    pin(len(calls) >= 1, name, "begin() no longer reads the status line through it")
    pin(calls[0][:2] == ("HTTP/1.1", 103) and calls[0][2].strip() == "Early Hints", name,
        f"it no longer returns (version, status, reason): {calls[0]!r}")
    pin(sock.modes == ["rb"], "http.client.HTTPResponse(sock)",
        f"the response no longer reads through sock.makefile('rb'): {sock.modes!r}")


def test_the_transport_skips_interim_answers_through_read_status() -> None:
    name = "http.client.HTTPResponse._read_status"
    watch = _wire._Watch(None, None)
    sock = _FakeSocket(b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ANSWER)
    response = _wire._WireResponse(watch, sock)  # type: ignore[arg-type]
    response.begin()
    pin(response.status == 200 and response.read() == b"ok", name,
        f"overriding it no longer lets the transport skip 1xx answers (status {response.status})")


def test_http_client_response_honours_a_length_set_in_begin() -> None:
    name = "http.client.HTTPResponse.length"

    class Relength(http.client.HTTPResponse):
        def begin(self) -> None:
            super().begin()
            self.length = 1  # as _WireResponse does for a repeated Content-Length

    response = Relength(_FakeSocket(ANSWER))  # type: ignore[arg-type]
    response.begin()
    pin(response.read() == b"o", name, "a length set after begin() no longer bounds the body read")


def test_http_client_builds_each_response_from_the_connection_response_class() -> None:
    name = "http.client.HTTPConnection.response_class"
    pin(http.client.HTTPConnection.response_class is http.client.HTTPResponse, name,
        "the class attribute is gone or no longer http.client.HTTPResponse")
    pin("response_class" in inspect.getsource(http.client.HTTPConnection.getresponse), name,
        "getresponse() no longer builds its response from it")
    built: List[http.client.HTTPResponse] = []

    def build(sock: socket.socket, *args: Any, **kwargs: Any) -> http.client.HTTPResponse:
        response = http.client.HTTPResponse(sock, *args, **kwargs)
        built.append(response)
        return response

    with HeadServer(answer) as server:
        conn = HTTPConnection("127.0.0.1", server.port, timeout=10)  # urllib3's, over http.client's
        try:
            conn.request("GET", "/")
            conn.response_class = build  # type: ignore[assignment]
            response = conn.getresponse()
            pin(len(built) == 1, name, "urllib3's getresponse() no longer reads through the instance's response_class")
            pin(response.data == b"ok", name, "a response built by it no longer gives the body")
        finally:
            conn.close()


# ---------------------------------------------------------------- urllib3's pool
def test_urllib3_pool_takes_and_returns_connections_through_get_conn_and_put_conn() -> None:
    pin(parameters(HTTPConnectionPool._get_conn) == ["self", "timeout"], "urllib3 HTTPConnectionPool._get_conn",
        f"its parameters are now {parameters(HTTPConnectionPool._get_conn)}, not (self, timeout)")
    pin(parameters(HTTPConnectionPool._put_conn) == ["self", "conn"], "urllib3 HTTPConnectionPool._put_conn",
        f"its parameters are now {parameters(HTTPConnectionPool._put_conn)}, not (self, conn)")
    pin(parameters(HTTPConnectionPool._new_conn) == ["self"], "urllib3 HTTPConnectionPool._new_conn",
        f"its parameters are now {parameters(HTTPConnectionPool._new_conn)}, not (self)")
    calls: List[str] = []

    class Recording(HTTPConnectionPool):
        QueueCls = queue.LifoQueue

        def _get_conn(self, timeout: Any = None) -> Any:
            calls.append("get")
            return super()._get_conn(timeout)

        def _put_conn(self, conn: Any) -> None:
            calls.append("put")
            super()._put_conn(conn)

        def _new_conn(self) -> Any:
            calls.append("new")
            return super()._new_conn()

    with HeadServer(answer) as server:
        pool = Recording("127.0.0.1", server.port, maxsize=1, block=True, timeout=10)
        try:
            response = pool.urlopen("GET", "/", retries=False)
            pin(response.data == b"ok", "urllib3 HTTPConnectionPool.urlopen", "the answer was not read")
        finally:
            pool.close()
    pin(calls == ["get", "new", "put"], "urllib3 HTTPConnectionPool._get_conn/_new_conn/_put_conn",
        f"urlopen() no longer takes a connection through _get_conn, opens it with _new_conn and returns it "
        f"through _put_conn: the calls were {calls}")


def test_urllib3_pool_holds_its_slots_in_a_queue_cls_named_pool() -> None:
    name = "urllib3 HTTPConnectionPool.QueueCls / .pool"
    pool = _wire._Pool("127.0.0.1", 9, maxsize=3, block=True)
    try:
        q = pool.__dict__.get("pool")
        pin(isinstance(q, _wire._SlotQueue), name, f"the pool's slot queue is not built from QueueCls: {q!r}")
        assert isinstance(q, _wire._SlotQueue)
        pin(q.maxsize == 3 and list(q.queue) == [None, None, None], name,
            f"the queue no longer starts with maxsize empty slots (None): {q.maxsize}, {list(q.queue)!r}")
    finally:
        pool.close()
    pin(pool.__dict__.get("pool") is None, name, "close() no longer sets .pool to None")
    pin(pool.block is True and pool.host == "127.0.0.1", "urllib3 HTTPConnectionPool.block / .host",
        "the attributes no longer hold the constructor's arguments")


def test_urllib3_pool_close_drains_the_queue_with_get_block_false() -> None:
    name = "urllib3 HTTPConnectionPool.close"
    gets: List[bool] = []

    class Recording(queue.LifoQueue):  # type: ignore[type-arg]
        def get(self, block: bool = True, timeout: Any = None) -> Any:
            gets.append(block)
            return super().get(block, timeout)

    class Pool(HTTPConnectionPool):
        QueueCls = Recording

    Pool("127.0.0.1", 9, maxsize=2).close()
    pin(gets and not any(gets), name, f"close() no longer drains the slot queue with get(block=False): {gets}")


def test_urllib3_pool_manager_builds_pools_from_its_attributes() -> None:
    name = "urllib3 PoolManager.pool_classes_by_scheme / key_fn_by_scheme / connection_pool_kw"
    manager = urllib3.PoolManager(maxsize=2, block=True)
    _wire.install(manager)
    key, context = _wire.pool_route(manager, "http://127.0.0.1:9")
    pin(key == manager.key_fn_by_scheme["http"](dict(context)) and context["maxsize"] == 2, name,
        f"the pool key or context is no longer built from them: {context!r}")
    direct = manager.connection_from_pool_key(key, request_context=dict(context))
    via_url = manager.connection_from_url("http://127.0.0.1:9/x")
    pin(type(direct) is _wire._Pool, name, f"pools are no longer built from pool_classes_by_scheme: {type(direct)}")
    pin(direct is via_url, name, "the route does not reach the pool connection_from_url() gives for the same origin")
    manager.clear()


# ---------------------------------------------------------------- queue and threading
def test_lifo_queue_keeps_its_items_in_a_list_under_one_mutex() -> None:
    name = "queue.LifoQueue (.queue, .mutex, .not_empty, .not_full, .all_tasks_done, _init, _get)"
    taken: List[Any] = []

    class Recording(queue.LifoQueue):  # type: ignore[type-arg]
        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(maxsize)
            self.mutex = threading.RLock()  # type: ignore[assignment]
            self.not_empty = threading.Condition(self.mutex)
            self.not_full = threading.Condition(self.mutex)
            self.all_tasks_done = threading.Condition(self.mutex)

        def _init(self, maxsize: int) -> None:
            super()._init(maxsize)
            taken.append("init")

        def _get(self) -> Any:
            item = super()._get()
            taken.append(item)
            return item

    q = Recording(2)
    pin(taken == ["init"], name, "__init__ no longer calls _init(maxsize)")
    pin(isinstance(q.queue, list), name, f"the items are no longer in a list: {type(q.queue).__name__}")
    q.put(1)
    q.queue.append(2)  # as the pool does, under the mutex
    with q.mutex:
        q.not_empty.notify()
    pin(q.get(timeout=5) == 2 and taken[-1] == 2, name, "get() no longer takes the last item through _get()")
    seen: List[bool] = []
    original = q._get

    def checking() -> Any:
        seen.append(q.mutex._is_owned())  # type: ignore[attr-defined]
        return original()

    q._get = checking  # type: ignore[method-assign]
    q.get(timeout=5)
    pin(seen == [True], name, "get() no longer calls _get() with the queue's mutex held")


def test_an_rlock_tells_whether_the_calling_thread_holds_it() -> None:
    name = "threading.RLock()._is_owned"
    lock: Any = threading.RLock()
    pin(callable(getattr(lock, "_is_owned", None)), name, "the method is gone")
    pin(lock._is_owned() is False, name, "it says True for a free lock")
    lock.acquire()
    lock.acquire()
    try:
        pin(lock._is_owned() is True, name, "it says False in the thread that holds the lock")
        elsewhere: List[bool] = []
        thread = threading.Thread(target=lambda: elsewhere.append(lock._is_owned()))
        thread.start()
        thread.join(10)
        pin(elsewhere == [False], name, f"it says {elsewhere} in a thread that does not hold the lock")
    finally:
        lock.release()
        lock.release()
    pin(lock._is_owned() is False, name, "it says True once the lock is released")


def test_the_pool_frees_a_lock_left_held_twice_by_this_thread() -> None:
    name = "threading.RLock().release"
    pool = _wire._Pool("127.0.0.1", 9, maxsize=1, block=True)
    try:
        q = pool.__dict__["pool"]
        q.mutex.acquire()
        q.mutex.acquire()  # as if an interrupt struck inside a nested hold
        pool._unwedged(q)
        pin(q.mutex.acquire(blocking=False), name, "releasing until RuntimeError no longer frees the lock")
        q.mutex.release()
        free: List[bool] = []
        thread = threading.Thread(target=lambda: free.append(q.mutex.acquire(timeout=5) and not q.mutex.release()))
        thread.start()
        thread.join(10)
        pin(free == [True], name, "another thread cannot take the lock once it is freed")
    finally:
        pool.close()


def test_urllib3_still_offers_the_public_names_used_instead_of_private_ones() -> None:
    # the floor in pyproject.toml (urllib3 2.2) is set by these
    response = urllib3.HTTPResponse(body=io.BytesIO(b"ok"), preload_content=False)
    pin(response.read1(1, decode_content=False) == b"o", "urllib3 HTTPResponse.read1",
        "it no longer reads the undecoded bytes")
    pin(hasattr(urllib3.HTTPResponse, "connection"), "urllib3 HTTPResponse.connection", "the property is gone")
    timeout = urllib3.Timeout(connect=1, read=2)
    pin((timeout.connect_timeout, timeout.read_timeout) == (1, 2), "urllib3 Timeout.connect_timeout/read_timeout",
        "without a total they no longer give the values passed")
