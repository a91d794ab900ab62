"""``_core.identifiers``: a stream message parsed, the texts a stream reports, and the set
arithmetic of a conversation-ids mirror (docs/streaming.md, "The live mirror"). Messages are
made-up JSON; no socket, no thread."""

from __future__ import annotations

import gc
import json
import logging
from types import TracebackType
from typing import Iterable, List, Optional, Type

import pydantic
import pytest

from pieces_os_client._core.identifiers import (
    MirrorState,
    MirrorView,
    ended_text,
    explain,
    gave_up_text,
    interrupted_text,
    malformed_text,
    notify_change,
    parse_message,
    too_large_text,
)
from pieces_os_client._core.reconnect import ReconnectPolicy
from pieces_os_client.stream import MirrorUpdate, StreamEvent

URL = "ws://localhost:39300/conversations/stream/identifiers"


def message(present: Iterable[str] = (), deleted: Iterable[str] = ()) -> bytes:
    items = [{"conversation": {"id": cid}} for cid in present]
    items += [{"conversation": {"id": cid}, "deleted": True} for cid in deleted]
    return json.dumps({"iterable": items}).encode()


def event(payload: bytes, *, snapshot: bool = False, connection: int = 1) -> StreamEvent:
    return StreamEvent(parse_message(payload), snapshot, connection, 0.0)


def snapshot(*ids: str, connection: int = 1) -> StreamEvent:
    return event(message(ids), snapshot=True, connection=connection)


def change(present: Iterable[str] = (), deleted: Iterable[str] = ()) -> StreamEvent:
    return event(message(present, deleted))


def applied(state: MirrorState, ev: StreamEvent) -> MirrorUpdate:
    update = state.apply(ev)
    assert update is not None
    return update


# --------------------------------------------------------------------------- parsing
def test_a_message_is_parsed_into_the_model() -> None:
    parsed = parse_message(message(["a"], ["b"]))
    assert [(i.conversation.id, i.deleted) for i in parsed.iterable if i.conversation] == [("a", None), ("b", True)]
    assert parse_message(bytearray(b'{"iterable": []}')).iterable == []


def test_json_null_is_not_a_message() -> None:
    with pytest.raises(ValueError, match="the message is JSON null"):
        parse_message(b"null")


@pytest.mark.parametrize("payload", [b"not json", b"[1]", b'{"iterable": 5}', b'{"iterable": [{"conversation": {}}]}'])
def test_what_is_not_a_streamed_identifiers_fails_to_parse(payload: bytes) -> None:
    with pytest.raises(pydantic.ValidationError):
        parse_message(payload)


def parse_error(payload: bytes) -> pydantic.ValidationError:
    try:
        parse_message(payload)
    except pydantic.ValidationError as exc:
        return exc
    raise AssertionError("parsed")


def test_a_parse_error_is_explained_by_its_first_error_and_where() -> None:
    two = parse_error(b'{"iterable": [{"conversation": {}}, {"conversation": {"id": 5}}]}')
    assert explain(two) == "Field required at iterable.0.conversation.id (and 1 more)"
    one = parse_error(b'{"iterable": 5}')
    assert explain(one).endswith(" at iterable") and "more)" not in explain(one)
    assert explain(parse_error(b"[1]")).endswith(" at the top level")


def test_another_error_is_explained_on_one_bounded_line() -> None:
    assert explain(ValueError("the message is JSON null")) == "the message is JSON null"
    long = explain(ValueError("word\n" * 1000))
    assert len(long) == 160 and "\n" not in long and long.endswith("...")


# --------------------------------------------------------------------------- texts
def test_a_malformed_message_is_shown_by_its_size_and_start_only() -> None:
    payload = b'{"iterable": "' + b"x" * 10_000 + b'"}'
    text = malformed_text(URL, parse_error(payload), payload)
    assert text.startswith(f"Skipped a malformed message of {len(payload)} bytes on the identifiers stream at {URL}: ")
    start = text.index("(message: ")
    assert text[start:] == "(message: " + repr('{"iterable": "' + "x" * 63 + "...") + ")"


def test_a_message_over_the_limit_names_size_limit_and_setting() -> None:
    assert too_large_text(URL, 40_000_000, 33_554_432) == (
        f"A message on the identifiers stream at {URL} is at least 40000000 bytes, over the limit of 33554432 bytes "
        "set by max_message_size (default: Configuration.stream_max_message_size); raise the limit, or set it to "
        "None to lift it.")


def test_the_texts_of_a_drop_and_an_end() -> None:
    assert interrupted_text(URL, "the server closed the connection") == (
        f"The identifiers stream at {URL} was interrupted (the server closed the connection); reconnecting.")
    assert ended_text(URL, "the server closed the connection", True) == (
        f"The identifiers stream at {URL} ended: the server closed the connection; reconnects are turned off.")
    assert ended_text(URL, "a snapshot too large", False) == (
        f"The identifiers stream at {URL} ended: a snapshot too large; a new connection would meet the same problem.")


def test_giving_up_counts_the_attempts_and_says_why() -> None:
    flapping = ReconnectPolicy(initial_backoff=0.25, max_backoff=10.0, jitter=0.0, max_attempts=3)
    for step in range(3):
        flapping.next_delay(0.0)
        flapping.connected(float(step))
        flapping.dropped(float(step))
    assert gave_up_text(URL, flapping) == (  # docs/streaming.md
        f"Gave up reconnecting to the identifiers stream at {URL} after 3 failed attempts; the server accepted the "
        "WebSocket but dropped it before the first snapshot each time.")
    unreachable = ReconnectPolicy(initial_backoff=0.25, max_backoff=10.0, jitter=0.0, max_attempts=1)
    unreachable.next_delay(0.0)
    unreachable.failed()
    assert gave_up_text(URL, unreachable) == (
        f"Gave up reconnecting to the identifiers stream at {URL} after 1 failed attempt.")


# --------------------------------------------------------------------------- the mirror's arithmetic
def test_the_first_snapshot_fills_the_set() -> None:
    state = MirrorState()
    update = applied(state, snapshot("a", "b"))
    assert (update.ids, update.added, update.removed) == ({"a", "b"}, {"a", "b"}, frozenset())
    assert (update.snapshot, update.resync, update.version) == (True, False, 1)
    assert state.frozen() == {"a", "b"} and state.snapshots == 1 and state.version == 1


def test_a_change_adds_and_removes_what_it_names() -> None:
    state = MirrorState()
    applied(state, snapshot("a", "b"))
    update = applied(state, change(["c"], ["a"]))
    assert (update.ids, update.added, update.removed) == ({"b", "c"}, {"c"}, {"a"})
    assert (update.snapshot, update.resync, update.version) == (False, False, 2)
    assert state.frozen() == {"b", "c"} and state.count() == 2
    assert state.contains("c") and not state.contains("a")


def test_a_change_that_changes_nothing_is_no_update() -> None:
    state = MirrorState()
    applied(state, snapshot("a"))
    assert state.apply(change(["a"], ["gone"])) is None  # already there, never there
    assert state.apply(change()) is None
    assert state.version == 1 and state.frozen() == {"a"}


def test_the_last_mention_of_an_id_in_a_message_wins() -> None:
    state = MirrorState()
    applied(state, snapshot("a"))
    # present then deleted: "x" was never there, is not there after: nothing changed for it
    both = json.dumps({"iterable": [{"conversation": {"id": "x"}}, {"conversation": {"id": "x"}, "deleted": True},
                                    {"conversation": {"id": "a"}, "deleted": True}, {"conversation": {"id": "a"}}]})
    assert state.apply(event(both.encode())) is None
    readd = json.dumps({"iterable": [{"conversation": {"id": "y"}, "deleted": True}, {"conversation": {"id": "y"}}]})
    update = applied(state, event(readd.encode()))
    assert (update.added, update.removed) == ({"y"}, frozenset())


def test_identifiers_without_a_conversation_are_ignored() -> None:
    state = MirrorState()
    applied(state, snapshot("a"))
    other = json.dumps({"iterable": [{"asset": {"id": "an-asset"}}, {}]}).encode()
    assert state.apply(event(other)) is None


def test_a_later_snapshot_replaces_the_set_and_is_a_resync() -> None:
    state = MirrorState()
    applied(state, snapshot("a", "b"))
    applied(state, change(["c"]))
    update = applied(state, snapshot("c", "d", connection=2))
    assert (update.ids, update.added, update.removed) == ({"c", "d"}, {"d"}, {"a", "b"})
    assert update.snapshot and update.resync and update.version == 3
    assert state.snapshots == 2


def test_a_snapshot_always_counts_as_a_change() -> None:
    state = MirrorState()
    applied(state, snapshot("a"))
    update = applied(state, snapshot("a", connection=2))
    assert (update.added, update.removed, update.version) == (frozenset(), frozenset(), 2)


def test_every_update_keeps_showing_the_set_right_after_its_own_change() -> None:
    state = MirrorState()
    first = applied(state, snapshot("a"))
    second = applied(state, change(["b"]))
    third = applied(state, change(["c"]))  # second's set not read yet when this came
    fourth = applied(state, change([], ["a"]))
    assert first.ids == {"a"}
    assert second.ids == {"a", "b"}
    assert third.ids == {"a", "b", "c"}
    assert fourth.ids == {"b", "c"}


def test_an_update_no_longer_referenced_costs_nothing_later() -> None:
    state = MirrorState()
    applied(state, snapshot("a"))
    applied(state, change(["b"]))  # dropped at once
    gc.collect()
    kept = applied(state, change(["c"]))
    assert kept.ids == {"a", "b", "c"}


def test_the_frozen_set_is_built_once_per_change() -> None:
    state = MirrorState()
    applied(state, snapshot("a"))
    applied(state, change(["b"]))
    built = state.frozen()
    assert state.frozen() is built
    applied(state, change(["c"]))
    assert state.frozen() is not built and built == {"a", "b"}


class CountingLock:
    """A lock that counts how often it was taken (the mirror's contract: every read and change)."""

    def __init__(self) -> None:
        self.entered = 0
        self.held = False

    def __enter__(self) -> None:
        self.entered += 1
        self.held = True

    def __exit__(self, kind: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        self.held = False


def test_every_read_and_change_takes_the_lock() -> None:
    lock = CountingLock()
    state = MirrorState(lock)
    for act in (lambda: state.apply(snapshot("a")), state.frozen, lambda: state.contains("a"), state.count,
                lambda: state.apply(change(["b"]))):
        before = lock.entered
        act()
        assert lock.entered > before and not lock.held


# --------------------------------------------------------------------------- on_change
def test_an_on_change_listener_gets_the_update() -> None:
    seen: List[MirrorUpdate] = []
    update = MirrorUpdate(frozenset({"a"}), frozenset({"a"}), frozenset(), True, False, 1)
    notify_change(seen.append, update, "mirror")
    notify_change(None, update, "mirror")
    assert seen == [update]


def test_what_an_on_change_listener_raises_is_logged_and_not_passed_on(caplog: pytest.LogCaptureFixture) -> None:
    def broken(update: MirrorUpdate) -> None:
        raise RuntimeError("listener bug")

    update = MirrorUpdate(frozenset(), version=1)
    with caplog.at_level(logging.ERROR, logger="pieces_os_client.stream"):
        notify_change(broken, update, "ConversationIdsMirror")
    [record] = caplog.records
    assert record.name == "pieces_os_client.stream"
    assert record.getMessage() == "ConversationIdsMirror: the on_change callback raised"
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_an_interrupt_in_an_on_change_listener_is_not_swallowed() -> None:
    def interrupted(update: MirrorUpdate) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        notify_change(interrupted, MirrorUpdate(frozenset()), "mirror")


# --------------------------------------------------------------------------- what a mirror shows
class View(MirrorView):
    def __init__(self) -> None:
        self._state = MirrorState()


def test_a_view_shows_its_state() -> None:
    view = View()
    assert not view.ready and view.resyncs == 0 and view.version == 0 and len(view) == 0
    view._state.apply(snapshot("b", "a"))
    assert view.ready and view.resyncs == 0
    view._state.apply(change(["c"]))
    assert list(view) == ["a", "b", "c"]  # sorted
    assert view.snapshot() == view.ids == {"a", "b", "c"}
    assert "a" in view and "z" not in view and len(view) == 3
    view._state.apply(snapshot("c", connection=2))
    assert view.resyncs == 1 and view.version == 3
    assert repr(view) == "<View 1 ids version=3>"
