"""ConversationIdsMirror as a state machine, fed hand-made events (no sockets).

The waits across threads are set up by construction: the other thread acts once the waiter is
at its first lock ``acquire`` inside the mirror's wait (testkit.wait.before_call), which it
reaches holding the mirror's condition, so the other thread's change or close can only come
once the waiter is registered on it, and must wake it.
"""

from __future__ import annotations

import copy
import pickle
import threading
import time
from typing import Any, Dict, List, Optional

import pytest
from testkit.wait import before_call

from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers
from pieces_os_client.stream import ConversationIdsMirror, MirrorUpdate, StreamEvent


def event(*changes: str, snapshot: bool = False, connection: int = 1) -> StreamEvent:
    """``"a"`` lists conversation a, ``"-a"`` deletes it, ``"?"`` is an identifier without a conversation."""
    items: List[Dict[str, Any]] = []
    for change in changes:
        if change == "?":
            items.append({"asset": {"id": "x"}})
        elif change.startswith("-"):
            items.append({"conversation": {"id": change[1:]}, "deleted": True})
        else:
            items.append({"conversation": {"id": change}})
    message = StreamedIdentifiers.from_dict({"iterable": items})
    assert message is not None
    return StreamEvent(message, snapshot, connection, time.monotonic())


def test_snapshot_then_changes() -> None:
    mirror = ConversationIdsMirror()
    assert not mirror.ready and mirror.snapshot() == frozenset()
    first = mirror.apply(event("a", "b", snapshot=True))
    assert first is not None and first.snapshot and not first.resync and first.added == {"a", "b"}
    update = mirror.apply(event("c", "-a", "?"))
    assert update is not None and update.added == {"c"} and update.removed == {"a"}
    assert mirror.snapshot() == {"b", "c"} and mirror.ids == {"b", "c"}
    assert "b" in mirror and "a" not in mirror and len(mirror) == 2 and list(mirror) == ["b", "c"]
    assert mirror.version == 2 and mirror.ready and mirror.resyncs == 0


def test_change_that_changes_nothing_is_not_an_update() -> None:
    mirror = ConversationIdsMirror()
    mirror.apply(event("a", snapshot=True))
    assert mirror.apply(event("a")) is None  # "changed" conversation already known
    assert mirror.apply(event("-zzz")) is None  # deleting an unknown id
    assert mirror.version == 1


def test_resync_snapshot_replaces_the_set() -> None:
    updates: List[MirrorUpdate] = []
    mirror = ConversationIdsMirror(on_change=updates.append)
    mirror.apply(event("a", "b", snapshot=True))
    mirror.apply(event("c"))
    mirror.apply(event("b", "d", snapshot=True, connection=2))
    assert mirror.snapshot() == {"b", "d"}
    last = updates[-1]
    assert last.resync and last.added == {"d"} and last.removed == {"a", "c"}
    assert mirror.resyncs == 1
    # an identical snapshot still counts as an update (the consumer learns it was resynced)
    assert mirror.apply(event("b", "d", snapshot=True, connection=3)) is not None


def test_wait_for_and_wait_for_change_across_threads() -> None:
    mirror = ConversationIdsMirror()
    mirror.apply(event(snapshot=True))
    version = mirror.version
    waiting = threading.Event()

    def later() -> None:
        if waiting.wait(30):
            mirror.apply(event("x"))

    applier = threading.Thread(target=later)
    applier.start()
    with before_call("acquire", waiting.set):
        # the change can only come while this waits: the 60 s timeout never runs out
        assert mirror.wait_for(lambda ids: "x" in ids, timeout=60)
    applier.join(30)
    assert waiting.is_set() and not applier.is_alive()
    assert mirror.wait_for_change(since=version, timeout=0)
    assert not mirror.wait_for_change(timeout=0.01)
    assert not mirror.wait_for(lambda ids: "never" in ids, timeout=0.01)


def test_waiters_wake_when_the_stream_ends() -> None:
    mirror = ConversationIdsMirror()
    result: List[Optional[bool]] = [None]
    waiting = threading.Event()

    def wait() -> None:
        with before_call("acquire", waiting.set):
            result[0] = mirror.wait_ready(timeout=60)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert waiting.wait(30), "the waiter never began to wait"
    mirror.close()
    waiter.join(30)  # the waiter's own timeout is 60 s: only the close can end its wait by now
    assert not waiter.is_alive() and result == [False] and mirror.ended


def test_on_change_errors_are_contained(caplog: pytest.LogCaptureFixture) -> None:
    seen: List[int] = []

    def listener(update: MirrorUpdate) -> None:
        seen.append(update.version)
        raise RuntimeError("listener bug")

    mirror = ConversationIdsMirror(on_change=listener)
    assert mirror.apply(event("a", snapshot=True)) is not None
    assert mirror.apply(event("b")) is not None
    assert seen == [1, 2] and mirror.snapshot() == {"a", "b"}
    assert "on_change callback raised" in caplog.text


def test_each_update_keeps_the_set_of_its_own_change() -> None:
    """``update.ids`` is built lazily, but an update read after later changes still shows the
    set right after its own change (the mirror builds it before the next change)."""
    updates: List[MirrorUpdate] = []
    mirror = ConversationIdsMirror(on_change=updates.append)
    mirror.apply(event("a", "b", snapshot=True))
    mirror.apply(event("c"))
    mirror.apply(event("-a", "d"))
    mirror.apply(event("-b"))
    assert [u.ids for u in updates] == [{"a", "b"}, {"a", "b", "c"}, {"b", "c", "d"}, {"c", "d"}]
    assert [(u.added, u.removed) for u in updates] == [({"a", "b"}, set()), ({"c"}, set()), ({"d"}, {"a"}),
                                                       (set(), {"b"})]
    assert [u.version for u in updates] == [1, 2, 3, 4]
    # immutable, equal by value, and shown like the dataclass it was
    with pytest.raises(AttributeError, match="immutable"):
        updates[0].version = 9  # type: ignore[misc]
    same = MirrorUpdate(ids=frozenset({"c", "d"}), removed=frozenset({"b"}), version=4)
    assert updates[-1] == same and hash(updates[-1]) == hash(same) and updates[-1] != updates[-2]
    assert repr(updates[1]).startswith("MirrorUpdate(ids=frozenset({")
    assert pickle.loads(pickle.dumps(updates[2])) == updates[2] and copy.copy(updates[1]) == updates[1]
    assert repr(updates[3]).endswith("added=frozenset(), removed=frozenset({'b'}), snapshot=False, resync=False, "
                                     "version=4)")


def test_a_message_that_adds_and_deletes_one_id_counts_its_net_effect() -> None:
    mirror = ConversationIdsMirror()
    mirror.apply(event("a", snapshot=True))
    assert mirror.apply(event("b", "-b")) is None  # created and deleted in one message: no change
    assert mirror.apply(event("-a", "a")) is None  # deleted and listed again: still there
    update = mirror.apply(event("-a", "c", "-c", "d"))
    assert update is not None and update.added == {"d"} and update.removed == {"a"} and update.ids == {"d"}
    assert mirror.snapshot() == {"d"} and mirror.version == 2


def test_a_change_costs_what_the_message_names_not_the_size_of_the_set() -> None:
    """A big mirror: applying a one-id change must not copy the set (measured in bytes, not time)."""
    import tracemalloc

    mirror = ConversationIdsMirror()
    mirror.apply(event(*(f"id-{n}" for n in range(100_000)), snapshot=True))
    changes = [event(f"new-{n}") for n in range(50)]
    tracemalloc.start()
    try:
        for change in changes:
            assert mirror.apply(change) is not None  # the update is dropped at once: no set to build
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, peak  # one copy of 100,000 ids is megabytes
    assert len(mirror) == 100_050 and "new-49" in mirror and "id-7" in mirror
    assert mirror.snapshot() == mirror.ids and len(mirror.snapshot()) == 100_050


def test_readers_in_other_threads_see_whole_changes_only() -> None:
    """Each change adds one id and deletes the previous one: a reader must always see exactly one
    of them (never both, never none) while a writer applies changes."""
    mirror = ConversationIdsMirror()
    mirror.apply(event("k-0", snapshot=True))
    stop = threading.Event()
    bad: List[Any] = []

    def read() -> None:
        while not stop.is_set():
            seen = mirror.snapshot()
            if len(seen) != 1:
                bad.append(seen)
            if len(mirror) != 1:
                bad.append(len(mirror))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        for n in range(1, 3000):
            mirror.apply(event(f"-k-{n - 1}", f"k-{n}"))
    finally:
        stop.set()
        for reader in readers:
            reader.join(10)
    assert not bad[:3] and mirror.snapshot() == {"k-2999"}
