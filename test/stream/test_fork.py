"""A stream inherited across ``os.fork()`` is detached in the child: whatever the child does with
it, the parent's connection goes on. Real fork, real emulator over loopback."""

from __future__ import annotations

import gc
import os
import queue
import threading
import time
import warnings
from typing import Callable, Iterator

import pytest
import urllib3

from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import StreamClosedError
from pieces_os_client.stream import ConversationIdsMirror, IdentifiersStream, StreamEvent

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(seed_conversations=1) as emulator:
        yield emulator


def in_child(body: Callable[[], None]) -> int:
    """Run ``body`` in a forked child; its exit status (0: ``body`` returned, 1: it raised)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            body()
            status = 0
        finally:
            os._exit(status)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    raise AssertionError("the child did not finish within 60 s")


def create(emu: Emulator) -> str:
    reply = urllib3.request("POST", emu.url + "/conversations/create", json={"type": "COPILOT"})
    assert reply.status == 200
    conversation_id = reply.json()["id"]
    assert isinstance(conversation_id, str)
    return conversation_id


def test_a_child_closing_an_inherited_background_stream_leaves_the_parents_connection(emu: Emulator) -> None:
    events: queue.Queue[StreamEvent] = queue.Queue()
    with IdentifiersStream(ApiClient(Configuration(host=emu.url)), on_event=events.put) as stream:
        assert events.get(timeout=30).snapshot

        def child() -> None:
            stream.close()
            stream.close()
            assert stream.closed and not stream.connected
            assert next(stream, None) is None  # iterating an inherited stream ends at once
            assert stream.join()  # would wait forever for the parent's thread otherwise
            with pytest.raises(StreamClosedError, match="inherited"):
                stream.start()

        assert in_child(child) == 0
        created = create(emu)
        event = events.get(timeout=30)
        assert (event.snapshot, event.ids, event.connection) == (False, [created], 1)
        assert stream.connected and stream.reconnects == 0


def test_a_child_dropping_an_inherited_stream_leaves_the_parents_connection(emu: Emulator) -> None:
    streams = [IdentifiersStream(ApiClient(Configuration(host=emu.url)))]
    events = [streams[0].events()]  # from here only these lists refer to it: the child can drop it
    assert next(events[0]).snapshot

    def child() -> None:
        streams.clear()  # the child's copies: the stream is garbage now, and its finalizer runs
        events.clear()
        gc.collect()

    try:
        assert in_child(child) == 0
        created = create(emu)
        event = next(events[0])
        assert (event.snapshot, event.ids, event.connection) == (False, [created], 1)
    finally:
        streams[0].close()


def test_a_mirror_inherited_across_fork_has_ended_in_the_child(emu: Emulator) -> None:
    with ConversationIdsMirror.open(ApiClient(Configuration(host=emu.url))) as mirror:
        assert mirror.wait_ready(30)
        version = mirror.version

        def child() -> None:
            assert mirror.ended  # its stream is closed here: nothing will ever change the set
            # each wait returns at once, as the mirror has ended; one that ran into its 30 s
            # timeout instead fails the bound
            waits = [lambda: not mirror.wait_for(lambda ids: "never" in ids, timeout=30),
                     lambda: not mirror.wait_for_change(timeout=30),
                     lambda: mirror.wait_ready(timeout=30)]  # it was ready before the fork
            for number, wait in enumerate(waits):
                started = time.monotonic()
                assert wait(), number
                assert time.monotonic() - started < 20, f"wait {number} ran into its timeout"
            mirror.close()

        assert in_child(child) == 0
        assert not mirror.ended
        created = create(emu)
        assert mirror.wait_for(lambda ids: created in ids, 30)
        assert mirror.version == version + 1 and mirror.stream is not None and mirror.stream.reconnects == 0


def test_a_mirror_locked_by_a_parent_thread_at_the_fork_is_usable_in_the_child(emu: Emulator) -> None:
    """The reader thread may be inside ``apply`` (holding the mirror's lock) at the moment of the
    fork; that thread does not exist in the child, so the child must not inherit the held lock."""
    with ConversationIdsMirror.open(ApiClient(Configuration(host=emu.url))) as mirror:
        assert mirror.wait_ready(30)
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with mirror._cond:  # what the reader thread does while it applies a message
                holding.set()
                release.wait(60)  # held until the child has answered

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert holding.wait(30)

        def child() -> None:
            answers: queue.Queue[object] = queue.Queue()
            probe = threading.Thread(target=lambda: answers.put((mirror.ended, len(mirror))), daemon=True)
            probe.start()
            assert answers.get(timeout=30) == (True, 1)  # a deadlock would leave the queue empty

        try:
            assert in_child(child) == 0
        finally:
            release.set()
            holder.join(30)
        created = create(emu)
        assert mirror.wait_for(lambda ids: created in ids, 30) and not mirror.ended
