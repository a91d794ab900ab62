"""Who is reset in a forked child (``_core.forks``): the hook runner is called directly, as
``os.register_at_fork`` calls it in the child, so no process is forked here. The real fork, with
live streams, is tested in test/stream/test_fork.py and test/aio/test_fork.py."""

from __future__ import annotations

import gc
import weakref
from typing import Any, Iterator, List, Optional

import pytest

from pieces_os_client._core import forks
from pieces_os_client._core.forks import reset_in_forked_child


class Aware:
    """Counts the resets it got, and may register another object while being reset."""

    def __init__(self, log: List[str], name: str, adds: Optional[Aware] = None) -> None:
        self.log, self.name, self.adds = log, name, adds

    def _after_fork_in_child(self) -> None:
        self.log.append(self.name)
        if self.adds is not None:
            reset_in_forked_child(self.adds)


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[weakref.WeakSet[Any]]:
    """A registry of this test's own: the streams other tests left alive in this process must not
    be reset by a pretend fork."""
    fresh: weakref.WeakSet[Any] = type(forks._LIVE)()  # of the module's kind, empty
    monkeypatch.setattr(forks, "_LIVE", fresh)
    yield fresh


def fork_in_child() -> None:
    forks._run_fork_hooks()  # what os.register_at_fork(after_in_child=...) runs in the child


def test_every_registered_object_is_reset_once_per_fork() -> None:
    log: List[str] = []
    a, b = Aware(log, "a"), Aware(log, "b")
    reset_in_forked_child(a)
    reset_in_forked_child(b)
    reset_in_forked_child(a)  # registering again changes nothing
    fork_in_child()
    assert sorted(log) == ["a", "b"]
    fork_in_child()  # a grandchild: reset again
    assert sorted(log) == ["a", "a", "b", "b"]


def test_nothing_registered_nothing_runs() -> None:
    fork_in_child()


def test_the_registry_does_not_keep_an_object_alive() -> None:
    log: List[str] = []
    kept, dropped = Aware(log, "kept"), Aware(log, "dropped")
    reset_in_forked_child(kept)
    reset_in_forked_child(dropped)
    gone = weakref.ref(dropped)
    del dropped
    gc.collect()
    assert gone() is None  # collected although registered
    fork_in_child()
    assert log == ["kept"]


def test_an_object_registered_during_the_resets_does_not_break_them(registry: weakref.WeakSet[Any]) -> None:
    """A reset may make (and register) a new object; the runner goes on over the objects that
    lived at the fork, and the new one is registered for the next fork."""
    log: List[str] = []
    late = Aware(log, "late")
    first, second = Aware(log, "first", adds=late), Aware(log, "second")
    for obj in (first, second):
        reset_in_forked_child(obj)
    fork_in_child()
    assert sorted(log) == ["first", "second"] and late in registry
    log.clear()
    fork_in_child()
    assert sorted(log) == ["first", "late", "second"]


def test_a_mirror_fed_by_hand_gets_fresh_locks_and_does_not_end() -> None:
    """docs/streaming.md: in the child, a mirror you feed yourself is not marked ended, and it
    must not keep a lock that a thread of the parent may have held at the fork."""
    from pieces_os_client.stream import ConversationIdsMirror

    mirror = ConversationIdsMirror()
    old = mirror._cond
    fork_in_child()
    assert mirror._cond is not old and mirror._state.lock is mirror._cond
    assert not mirror.ended and mirror.snapshot() == frozenset()
