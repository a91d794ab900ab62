"""What a stream hands its consumer (``_core.events``): a ``StreamEvent``'s derived views of its
message, and ``MirrorUpdate`` as a value (equality, hash, immutability, pickling, copies, repr).
No sockets: the messages are made up."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import weakref
from typing import Any, Dict, List, Optional

import pytest

from pieces_os_client._core.events import MirrorUpdate, StreamEvent
from pieces_os_client._core.identifiers import MirrorState
from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers


def message(*items: Dict[str, Any]) -> StreamedIdentifiers:
    parsed = StreamedIdentifiers.from_dict({"iterable": list(items)})
    assert parsed is not None
    return parsed


def conversation(cid: str, deleted: Optional[bool] = None) -> Dict[str, Any]:
    item: Dict[str, Any] = {"conversation": {"id": cid}}
    if deleted is not None:
        item["deleted"] = deleted
    return item


def event(*items: Dict[str, Any], snapshot: bool = False, connection: int = 1) -> StreamEvent:
    return StreamEvent(message(*items), snapshot, connection, 12.5)


# --------------------------------------------------------------------------- StreamEvent
@pytest.mark.parametrize(
    ("snapshot", "connection", "resync"),
    [(True, 1, False), (True, 2, True), (True, 7, True), (False, 1, False), (False, 3, False)],
)
def test_resync_is_a_snapshot_after_a_reconnect(snapshot: bool, connection: int, resync: bool) -> None:
    assert event(snapshot=snapshot, connection=connection).resync is resync


def test_ids_and_deleted_ids_keep_message_order() -> None:
    changes = event(conversation("c"), conversation("a", deleted=True), conversation("b", deleted=False),
                    {"asset": {"id": "not-a-conversation"}}, conversation("d", deleted=True), conversation("e"),
                    {"asset": {"id": "a-deleted-asset"}, "deleted": True})
    assert changes.ids == ["c", "b", "e"]  # deleted=False is a present conversation
    assert changes.deleted_ids == ["a", "d"]  # identifiers of other kinds are not conversations
    assert changes.received_at == 12.5 and changes.connection == 1 and not changes.snapshot


def test_an_empty_message_has_no_ids() -> None:
    unchecked = StreamedIdentifiers.model_construct(iterable=None)  # type: ignore[arg-type]  # unvalidated
    for empty in (event(), StreamEvent(unchecked, True, 1, 0.0)):
        assert empty.ids == [] and empty.deleted_ids == []


def test_a_stream_event_is_frozen() -> None:
    first = event(conversation("a"), snapshot=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.snapshot = False  # type: ignore[misc]
    assert first == StreamEvent(first.message, True, 1, 12.5)


# --------------------------------------------------------------------------- MirrorUpdate
def update(**fields: Any) -> MirrorUpdate:
    values: Dict[str, Any] = {"ids": frozenset({"a", "b"}), "added": frozenset({"b"}), "removed": frozenset({"z"}),
                              "snapshot": False, "resync": False, "version": 3}
    values.update(fields)
    return MirrorUpdate(**values)


def test_a_mirror_update_needs_its_ids() -> None:
    with pytest.raises(TypeError, match="MirrorUpdate needs ids"):
        MirrorUpdate()
    bare = MirrorUpdate(frozenset({"a"}))
    assert (bare.ids, bare.added, bare.removed, bare.snapshot, bare.resync, bare.version) == (
        frozenset({"a"}), frozenset(), frozenset(), False, False, 0)


def test_the_sets_are_frozen_copies() -> None:
    ids, added = {"a", "b"}, {"b"}
    made = MirrorUpdate(ids, added, set())  # type: ignore[arg-type]  # any set is taken, as a frozenset
    ids.add("c")
    added.clear()
    assert made.ids == frozenset({"a", "b"}) and made.added == frozenset({"b"})
    assert all(type(s) is frozenset for s in (made.ids, made.added, made.removed))


@pytest.mark.parametrize(
    "change",
    [{"ids": frozenset({"a"})}, {"added": frozenset()}, {"removed": frozenset({"y"})}, {"snapshot": True},
     {"resync": True}, {"version": 4}],
)
def test_equal_by_value_and_hashed_alike(change: Dict[str, Any]) -> None:
    one, same, other = update(), update(), update(**change)
    assert one == same and hash(one) == hash(same) and len({one, same}) == 1
    assert one != other and other != one and len({one, other}) == 2
    assert one != (one.ids, one.added, one.removed, one.snapshot, one.resync, one.version)
    assert one.__eq__("not an update") is NotImplemented


@pytest.mark.parametrize("name", ["ids", "added", "removed", "snapshot", "resync", "version", "new_field", "_ids"])
def test_a_mirror_update_is_immutable(name: str) -> None:
    made = update()
    with pytest.raises(AttributeError, match=rf"MirrorUpdate is immutable \(cannot set '{name}'\)"):
        setattr(made, name, 1)
    with pytest.raises(AttributeError, match=rf"MirrorUpdate is immutable \(cannot delete '{name}'\)"):
        delattr(made, name)
    assert made == update()


def test_the_repr_shows_every_field() -> None:
    assert repr(update(ids=frozenset({"a"}), added=frozenset({"a"}), removed=frozenset(), snapshot=True,
                       resync=True, version=1)) == (
        "MirrorUpdate(ids=frozenset({'a'}), added=frozenset({'a'}), removed=frozenset(), snapshot=True, "
        "resync=True, version=1)")


def test_pickle_and_copy_give_equal_independent_values() -> None:
    made = update(snapshot=True, resync=True)
    for clone in (pickle.loads(pickle.dumps(made)), copy.copy(made), copy.deepcopy(made)):
        assert type(clone) is MirrorUpdate and clone == made and hash(clone) == hash(made)
        assert (clone.ids, clone.added, clone.removed) == (frozenset({"a", "b"}), frozenset({"b"}), frozenset({"z"}))
        assert (clone.snapshot, clone.resync, clone.version) == (True, True, 3)
    assert weakref.ref(made)() is made  # the mirror keeps a weak reference to its newest update


def test_a_lazily_built_update_is_copied_and_pickled_with_its_set() -> None:
    """An update made by a mirror builds ``ids`` when first read; a copy or pickle carries the
    set itself, not the mirror, and keeps showing the set of that update's own change."""
    state = MirrorState()
    first = state.apply(event(conversation("a"), conversation("b"), snapshot=True))
    change = state.apply(event(conversation("c")))
    assert first is not None and change is not None
    pickled = pickle.dumps(change)
    copied = copy.copy(change)
    assert MirrorUpdate.__reduce__(change)[1][0] == frozenset({"a", "b", "c"})  # by value: the built set
    state.apply(event(conversation("a", deleted=True)))
    for clone in (pickle.loads(pickled), copied, change):
        assert clone.ids == frozenset({"a", "b", "c"}) and clone.added == frozenset({"c"}) and clone.version == 2
    assert first.ids == frozenset({"a", "b"})
    assert change == MirrorUpdate(frozenset({"a", "b", "c"}), frozenset({"c"}), version=2)
    assert b"MirrorState" not in pickled and b"_source" not in pickled


def test_updates_in_a_list_compare_by_value() -> None:
    state = MirrorState()
    seen: List[Optional[MirrorUpdate]] = [state.apply(event(conversation("x"), snapshot=True, connection=2))]
    assert seen == [MirrorUpdate(frozenset({"x"}), frozenset({"x"}), frozenset(), True, True, 1)]
