"""Many threads on one SDK: first use in a fresh process, the connection pool, a shared client.

The race test starts fresh interpreters whose threads are released together by a barrier, each
making its first use of a different part of the SDK (operations, model classes in every way
they can be reached, the identifiers stream). Lazy loading and lazy model building must hold
up: no thread may fail or hang. A single process rarely shows a race, so the test runs many.

The pool tests count connections where they arrive: a relay on 127.0.0.1 in front of the
emulator accepts every TCP connection the client opens and forwards it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List, Set

import pytest
from testkit.emulator import DEMO_ASSET
from testkit.wait import until

from pieces_os_client import ApiClient, ApiTimeoutError, Configuration, ConversationsApi, _lazy
from pieces_os_client.emulator import Emulator

#: an upper bound only a hang, or waiting out a 60 s timeout, can break
HANG = 20.0


class WatchedLock:
    """A re-entrant lock that notes which threads asked for it: a test holding it sees another
    thread come to wait for it, instead of sleeping and supposing it did."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._guard = threading.Lock()
        self.askers: Set[int] = set()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        with self._guard:
            self.askers.add(threading.get_ident())
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def asked_by(self, other_than: int) -> int:
        """How many threads other than ``other_than`` have asked for the lock."""
        with self._guard:
            return len(self.askers - {other_than})


@pytest.fixture
def build_lock(monkeypatch: pytest.MonkeyPatch) -> WatchedLock:
    """The SDK's build lock, watched for the length of the test."""
    lock = WatchedLock()
    monkeypatch.setattr(_lazy, "BUILD_LOCK", lock)
    return lock

# One fresh process: THREADS threads wait at a barrier, then each makes a first use.
# argv: host, seed (the seed rotates which thread does what). Prints a JSON list of failures.
_RACE_CHILD = r"""
import json, sys, threading
import pieces_os_client as sdk

host, seed = sys.argv[1], int(sys.argv[2])
THREADS = 8
barrier = threading.Barrier(THREADS)
failures = []


def api():
    return sdk.ConversationsApi(sdk.ApiClient(sdk.Configuration(host=host, max_retries=0)))


def create():
    api().conversations_create_specific_conversation(seeded_conversation={"name": "race"})


def snapshot():
    api().conversations_snapshot()


def identifiers():
    api().conversations_identifiers_snapshot_with_http_info()


def stream():
    got = threading.Event()
    errors = []
    with api().conversations_stream_identifiers(on_message=lambda m: got.set(), on_error=errors.append):
        if not got.wait(20):
            raise AssertionError("no stream message within 20 s")
    if errors:
        raise errors[0]


def module_import_and_constructor():
    from pieces_os_client.models.seeded_conversation import SeededConversation

    SeededConversation(name="x", messages=[{"fragment": {"string": {"raw": "hi"}}, "role": "USER"}]).to_json()


def lazy_name_from_json():
    sdk.Conversation.from_json(
        '{"id": "c1", "type": "COPILOT", "created": {"value": "2024-01-01T00:00:00Z"},'
        ' "updated": {"value": "2024-01-01T00:00:00Z"}, "messages": {"iterable": []}}'
    )


def models_package_validate():
    from pieces_os_client.models import FlattenedConversations

    FlattenedConversations.model_validate({"iterable": [{"id": "c1"}]})


def construct_and_dump():
    from pieces_os_client.models.flattened_anchor import FlattenedAnchor

    FlattenedAnchor.model_construct(id="x").to_dict()


def type_adapter_of_a_model():
    from typing import List

    from pydantic import TypeAdapter

    from pieces_os_client.models.flattened_conversation_messages import FlattenedConversationMessages

    TypeAdapter(List[FlattenedConversationMessages]).validate_python([{"iterable": []}])


def application_model_with_a_model_field():
    from pydantic import BaseModel

    from pieces_os_client.models.referenced_conversation import ReferencedConversation

    class Holder(BaseModel):
        ref: ReferencedConversation

    Holder(ref={"id": "c1"})


WORK = [create, snapshot, identifiers, stream, module_import_and_constructor,
        lazy_name_from_json, models_package_validate, construct_and_dump,
        type_adapter_of_a_model, application_model_with_a_model_field]


def run(index):
    job = WORK[(index + seed) % len(WORK)]
    try:
        barrier.wait(30)
        job()
    except BaseException as exc:
        failures.append(f"{job.__name__}: {type(exc).__module__}.{type(exc).__name__}: {str(exc)[:300]}")


threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(THREADS)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join(40)
    if thread.is_alive():
        failures.append("a thread was still running after 40 s")
print(json.dumps(failures))
sys.stdout.flush()
"""

# 24 rounds in the main run; CI's extra runs (other Pythons, lowest versions) use fewer.
RACE_ROUNDS = int(os.environ.get("PIECES_TEST_RACE_ROUNDS", "24"))
RACE_PARALLEL = 2


def _race_round(host: str, seed: int) -> List[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _RACE_CHILD, host, str(seed)],
        capture_output=True, text=True, timeout=90,
    )
    if proc.returncode != 0:
        return [f"exit {proc.returncode}: {proc.stderr[-2000:]}"]
    lines = proc.stdout.strip().splitlines()
    failures: List[str] = json.loads(lines[-1]) if lines else ["no output"]
    return failures


def test_first_use_from_many_threads_in_fresh_processes(emulator: Emulator) -> None:
    emulator.reset()
    with ThreadPoolExecutor(RACE_PARALLEL) as pool:
        results = list(pool.map(lambda seed: _race_round(emulator.url, seed), range(RACE_ROUNDS)))
    failed = {seed: failures for seed, failures in enumerate(results) if failures}
    assert not failed, f"{len(failed)} of {RACE_ROUNDS} fresh processes failed: {failed}"


# ---------------------------------------------------------------- the pydantic behaviour the lock relies on
# The build lock only works if pydantic builds a deferred model through ``model_rebuild``
# (which PiecesModel overrides). These tests fail loudly if a pydantic release changes that.


def test_pydantic_still_builds_a_deferred_model_through_model_rebuild(build_lock: WatchedLock) -> None:
    from pieces_os_client.models import PiecesModel

    class Probe(PiecesModel):
        value: int

    assert Probe.__pydantic_complete__ is False
    results: List[int] = []
    worker = threading.Thread(target=lambda: results.append(Probe.model_validate({"value": 7}).value), daemon=True)
    with build_lock:
        worker.start()
        # the worker either comes to wait for the lock held here, or builds without it and ends
        until(lambda: build_lock.asked_by(threading.get_ident()) or not worker.is_alive(), what="the worker's build")
        assert worker.is_alive(), "pydantic built the model without PiecesModel.model_rebuild (no build lock)"
        assert results == []
    worker.join(30)
    assert results == [7]
    assert Probe.__pydantic_complete__ is True


_FOREIGN_SCHEMA_CHILD = r"""
import json, sys
from typing import List

from pydantic import BaseModel, TypeAdapter

from pieces_os_client.models.conversation import Conversation
from pieces_os_client.models.flattened_conversation_messages import FlattenedConversationMessages as InCycle

before = sorted(m for m in sys.modules if m.startswith("pieces_os_client.models."))
hooked = "__get_pydantic_core_schema__" in InCycle.__dict__
item = {"id": "c1", "created": {"value": "2024-01-01T00:00:00Z"}, "updated": {"value": "2024-01-01T00:00:00Z"},
        "messages": {"iterable": [{"id": "m1"}]}}
if sys.argv[1] == "adapter":
    parsed = TypeAdapter(List[Conversation]).validate_python([item])[0]
else:
    class Holder(BaseModel):
        conversation: Conversation

    parsed = Holder(conversation=item).conversation
print(json.dumps({
    "flattened_anchor_before": "pieces_os_client.models.flattened_anchor" in before,
    "hooked": hooked,
    "hook_left": "__get_pydantic_core_schema__" in InCycle.__dict__,
    "message": type(parsed.messages.iterable[0]).__name__,
    "complete": Conversation.__pydantic_complete__,
}))
"""


@pytest.mark.parametrize("how", ["adapter", "application_model"])
def test_pydantic_asks_a_model_for_its_schema_so_the_cycle_is_linked_first(how: str) -> None:
    """A schema pydantic builds for a model outside our own builds links the model's cycle first.

    The generated modules leave their cycle's imports to the first build; a ``TypeAdapter``
    or an application's model with one of ours as a field makes pydantic generate that
    schema itself. It asks the class's ``__get_pydantic_core_schema__`` first: if a pydantic
    release stops doing that, the names are missing and this fails.
    """
    proc = subprocess.run([sys.executable, "-c", _FOREIGN_SCHEMA_CHILD, how],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found == {"flattened_anchor_before": False, "hooked": True, "hook_left": False,
                     "message": "ReferencedConversationMessage", "complete": False}


def test_a_model_that_cannot_be_built_raises_an_sdk_error_not_a_pydantic_one() -> None:
    from pydantic import PydanticUndefinedAnnotation
    from pydantic.errors import PydanticErrorMixin

    from pieces_os_client import OpenApiException
    from pieces_os_client.models import PiecesModel

    class Broken(PiecesModel):
        __module__ = "pieces_os_client.models.zz_not_generated"
        part: Nowhere = None  # type: ignore[name-defined]  # noqa: F821 - never defined

    for attempt in (lambda: Broken.model_validate({}), lambda: Broken(), lambda: Broken.from_json("{}")):
        with pytest.raises(OpenApiException) as info:
            attempt()
        assert not isinstance(info.value, PydanticErrorMixin)
        assert "Broken" in str(info.value) and "Nowhere" in str(info.value)
        assert isinstance(info.value.__cause__, PydanticUndefinedAnnotation)

    class Foreign(PiecesModel):  # a user's subclass keeps pydantic's raise_errors=False meaning
        part: Nowhere = None  # type: ignore[name-defined]  # noqa: F821 - never defined

    assert Foreign.model_rebuild(raise_errors=False) is False
    with pytest.raises(OpenApiException):
        Foreign.model_rebuild()


_LOCK_PROBE = r"""
import os, threading
import pieces_os_client
from pieces_os_client import _lazy

# 1. a lazy public name loads under the build lock: held here, the loader comes to wait for it
original = _lazy.BUILD_LOCK
asked = threading.Event()
class Watched:
    def __init__(self):
        self.lock = threading.RLock()
    def acquire(self, blocking=True, timeout=-1):
        if threading.current_thread() is not threading.main_thread():
            asked.set()
        return self.lock.acquire(blocking, timeout)
    def release(self):
        self.lock.release()
    __enter__ = acquire
    def __exit__(self, *exc):
        self.release()
_lazy.BUILD_LOCK = Watched()
_lazy.BUILD_LOCK.acquire()
loader = threading.Thread(target=lambda: pieces_os_client.SeededConversation, daemon=True)
loader.start()
while not asked.is_set() and loader.is_alive():  # one or the other within the test's timeout
    asked.wait(0.01)
print("blocked" if loader.is_alive() and asked.is_set() else "not blocked")
_lazy.BUILD_LOCK.release()
loader.join(30)
print("loaded" if not loader.is_alive() else "still blocked")
_lazy.BUILD_LOCK = original

# 2. a child forked while another thread holds the lock gets a free lock
held, done = threading.Event(), threading.Event()
def holder():
    with _lazy.BUILD_LOCK:
        held.set()
        done.wait(20)
threading.Thread(target=holder, daemon=True).start()
held.wait(10)
pid = os.fork()
if pid == 0:
    os._exit(0 if _lazy.BUILD_LOCK.acquire(timeout=5) else 1)
_, status = os.waitpid(pid, 0)
done.set()
print("child free" if os.waitstatus_to_exitcode(status) == 0 else "child stuck")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_lazy_names_load_under_the_build_lock_and_a_forked_child_gets_a_free_lock() -> None:
    proc = subprocess.run([sys.executable, "-c", _LOCK_PROBE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["blocked", "loaded", "child free"], proc.stdout + proc.stderr


# ---------------------------------------------------------------- connections, counted at the server


class CountingRelay:
    """A TCP relay on 127.0.0.1 in front of ``target_port``; counts the connections it accepts."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.accepted = 0
        self.open_now = 0
        self.most_open = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []

    def __enter__(self) -> CountingRelay:
        self._spawn(self._accept_loop)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            upstream = socket.create_connection(("127.0.0.1", self._target))
            with self._lock:
                self.accepted += 1
                self.open_now += 1
                self.most_open = max(self.most_open, self.open_now)
                self._sockets += [client, upstream]
            self._spawn(self._pump, client, upstream, True)
            self._spawn(self._pump, upstream, client, False)

    def _pump(self, source: socket.socket, sink: socket.socket, counts: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)
        if counts:
            with self._lock:
                self.open_now -= 1


@pytest.fixture
def relay(emu: Emulator) -> Iterator[CountingRelay]:
    with CountingRelay(emu.port) as counting:
        yield counting


@pytest.fixture
def urllib3_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[List[logging.LogRecord]]:
    """The WARNING (and worse) records urllib3 logs during the test ("Connection pool is full" ...)."""
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        yield caplog.records
    # caplog.records is live: the test reads it at its end


def _urllib3_records(records: List[logging.LogRecord]) -> List[str]:
    return [r.getMessage() for r in records if r.name.startswith("urllib3") and r.levelno >= logging.WARNING]


def test_pool_size_bounds_the_open_connections(
    emu: Emulator, relay: CountingRelay, urllib3_warnings: List[logging.LogRecord]
) -> None:
    # Each request is held 30 ms by the server, so 32 threads really do want 32 connections.
    emu.delay_next(0.03, count=None)
    config = Configuration(host=relay.url, connection_pool_maxsize=4, max_retries=0)
    with ApiClient(config) as client:
        api = ConversationsApi(client)
        barrier = threading.Barrier(32)

        def calls(_: int) -> int:
            barrier.wait(10)
            return sum(len(api.conversations_identifiers_snapshot().iterable) + 1 for _ in range(3))

        with ThreadPoolExecutor(32) as pool:
            assert sum(pool.map(calls, range(32))) == 96
    assert 1 <= relay.accepted <= 4, f"{relay.accepted} connections for a pool of 4"
    assert emu.request_count("GET", "/conversations/identifiers") == 96
    assert _urllib3_records(urllib3_warnings) == []


def test_a_call_waits_for_a_free_connection_then_times_out_naming_the_setting(
    emu: Emulator, relay: CountingRelay
) -> None:
    config = Configuration(host=relay.url, connection_pool_maxsize=1, pool_timeout=0.3, max_retries=0)
    with ApiClient(config) as client:
        api = ConversationsApi(client)
        held = api.conversations_identifiers_snapshot_without_preload_content()  # keeps the only connection
        started = time.monotonic()
        with pytest.raises(ApiTimeoutError) as info:
            api.conversations_identifiers_snapshot()
        # the pool timeout waited out in full, and not the held response's 60 s read timeout
        assert 0.3 <= time.monotonic() - started < HANG
        message = str(info.value)
        assert "pool_timeout=0.3" in message and "connection_pool_maxsize=1" in message, message
        # the connection comes back to the pool once the held response is read
        held.read()
        held.release_conn()
        assert api.conversations_identifiers_snapshot().iterable == []
        # a waiting call gets the connection as soon as it is released
        held = api.conversations_identifiers_snapshot_without_preload_content()
        releaser = threading.Timer(0.1, lambda: (held.read(), held.release_conn()))
        releaser.start()
        client.configuration.pool_timeout = 60  # however late the release comes on a busy machine
        started = time.monotonic()
        assert api.conversations_identifiers_snapshot().iterable == []
        assert time.monotonic() - started < HANG  # the release, not the pool timeout, ended the wait
        releaser.join()
    assert relay.accepted == 1


# ---------------------------------------------------------------- one client shared by 8 threads

THREADS = 8
CALLS_PER_THREAD = 40


def test_one_client_shared_by_eight_threads_keeps_exact_state(
    emu: Emulator, relay: CountingRelay, urllib3_warnings: List[logging.LogRecord]
) -> None:
    config = Configuration(host=relay.url, connection_pool_maxsize=4)
    errors: List[str] = []
    created: List[Set[str]] = [set() for _ in range(THREADS)]
    deleted: List[Set[str]] = [set() for _ in range(THREADS)]
    calls = [0] * THREADS
    with ApiClient(config) as client:
        api = ConversationsApi(client)
        barrier = threading.Barrier(THREADS)

        def worker(index: int) -> None:
            rng = random.Random(index)
            mine_alive: List[str] = []
            barrier.wait(10)
            for step in range(CALLS_PER_THREAD):
                choice = rng.choice(("create", "create", "from_asset", "snapshot", "identifiers", "delete"))
                if choice == "delete" and not mine_alive:
                    choice = "identifiers"
                calls[index] += 1
                try:
                    if choice == "create":
                        made = api.conversations_create_specific_conversation(
                            seeded_conversation={"name": f"t{index}-{step}"}, transferables=False
                        )
                        created[index].add(made.id)
                        mine_alive.append(made.id)
                    elif choice == "from_asset":
                        made_id = api.conversations_create_from_asset(DEMO_ASSET).conversation.id
                        created[index].add(made_id)
                        mine_alive.append(made_id)
                    elif choice == "snapshot":
                        ids = {c.id for c in api.conversations_snapshot(transferables=False).iterable}
                        assert set(mine_alive) <= ids, "a conversation of this thread is missing"
                    elif choice == "identifiers":
                        ids = {c.id for c in api.conversations_identifiers_snapshot().iterable}
                        assert set(mine_alive) <= ids, "a conversation of this thread is missing"
                    else:
                        victim = mine_alive.pop(rng.randrange(len(mine_alive)))
                        api.conversations_delete_specific_conversation(victim)
                        deleted[index].add(victim)
                except Exception as exc:
                    errors.append(f"thread {index} step {step} {choice}: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not any(thread.is_alive() for thread in threads), "a worker did not finish within 120 s"
    assert errors == []
    expected = set().union(*created) - set().union(*deleted)
    assert set(emu.conversation_ids()) == expected
    assert sum(len(c) for c in created) == len(set().union(*created))  # every id was new
    assert sum(calls) == THREADS * CALLS_PER_THREAD
    assert len(emu.requests) == sum(calls)  # each call sent once: nothing lost, nothing retried
    assert 1 <= relay.accepted <= 4, f"{relay.accepted} connections for a pool of 4"
    assert _urllib3_records(urllib3_warnings) == []



class _Client(ApiClient):
    def __init__(self) -> None:
        super().__init__(Configuration(host="http://127.0.0.1:9"))


class _Configuration(Configuration):
    def __init__(self) -> None:
        super().__init__(host="http://127.0.0.1:9")


@pytest.mark.parametrize("cls", [_Client, _Configuration])
def test_a_default_is_made_once_when_many_threads_ask_at_once(cls: type, build_lock: WatchedLock) -> None:
    threads = 8
    seen: List[int] = []
    made: List[object] = []
    real_init = cls.__init__

    def counted_init(self: object) -> None:
        made.append(self)
        real_init(self)

    cls.__init__ = counted_init  # type: ignore[misc]

    def first_use() -> None:
        seen.append(id(cls.get_default()))  # type: ignore[attr-defined]

    try:
        workers = [threading.Thread(target=first_use) for _ in range(threads)]
        with build_lock:  # every thread finds no default, and all of them wait here at once
            for worker in workers:
                worker.start()
            until(lambda: build_lock.asked_by(threading.get_ident()) == threads, what="all threads at the lock")
            assert made == [] and seen == []
        for worker in workers:
            worker.join(30)
        assert len(seen) == threads and len(set(seen)) == 1
        assert len(made) == 1
    finally:
        cls.__init__ = real_init  # type: ignore[misc]
        cls.set_default(None)  # type: ignore[attr-defined]
