"""The identifiers stream used the way programs use it: from many threads at once, closed from
other threads and from its own callbacks, interrupted, or left running at exit. Real emulator
over loopback; afterwards no stream thread and no socket may be left behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Iterator, List

import pytest
from testkit.wait import before_call, until
from testkit.ws import RawServer, frame

from pieces_os_client.api.conversations_api import ConversationsApi
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.emulator import Emulator
from pieces_os_client.models.streamed_identifiers import StreamedIdentifiers
from pieces_os_client.stream import ConversationIdsMirror, IdentifiersStream

STREAM_THREAD = "pieces-identifiers-stream"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(seed_conversations=2) as emulator:
        yield emulator


@pytest.fixture
def api(emu: Emulator) -> Iterator[ConversationsApi]:
    with ApiClient(Configuration(host=emu.url)) as client:
        yield ConversationsApi(client)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))


def stream_threads() -> List[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == STREAM_THREAD]


def assert_nothing_left(emu: Emulator, fds_before: int) -> None:
    """Every stream thread has ended, the server saw every WebSocket close, no descriptor leaked."""
    until(lambda: not stream_threads(), what="every stream thread ended")
    until(lambda: emu.websocket_count == 0, what="the server saw every WebSocket close")
    until(lambda: open_fds() <= fds_before, what=f"open descriptors back to {fds_before}")


def test_many_threads_open_and_close_streams_on_one_client(api: ConversationsApi, emu: Emulator) -> None:
    with api.conversations_stream_identifiers() as warm:  # first use: imports, the client's pool
        next(warm)
    fds_before = open_fds()
    errors: List[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(number: int) -> None:
        try:
            barrier.wait(30)
            for cycle in range(10):
                if (number + cycle) % 2:  # iterate in this thread
                    with api.conversations_stream_identifiers() as stream:
                        assert len(next(stream).iterable) == 2
                else:  # a background thread, closed from this one
                    got = threading.Event()
                    stream = api.conversations_stream_identifiers(on_message=lambda _m, got=got: got.set())
                    assert got.wait(30)
                    stream.close()
                    assert stream.join(30)
        except BaseException as exc:  # collected for the main thread to report
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert not any(thread.is_alive() for thread in workers)
    assert errors == []
    assert_nothing_left(emu, fds_before)


def test_closed_from_other_threads_and_from_its_own_callbacks(api: ConversationsApi, emu: Emulator) -> None:
    with api.conversations_stream_identifiers() as warm:
        next(warm)
    api.conversations_identifiers_snapshot()  # the client's pooled HTTP connection stays open
    fds_before = open_fds()

    # opened in this thread, closed from another stream's callback thread while this one iterates
    iterated = api.conversations_stream_identifiers()
    assert next(iterated).iterable is not None
    with before_call("recv") as reading:  # this thread has reached the read that blocks
        def close_iterated(_message: object) -> None:
            reading.wait(30)
            iterated.close()

        closer = api.conversations_stream_identifiers(on_message=close_iterated)
        assert list(iterated) == [] and iterated.closed  # the close woke the blocked iterator
    assert reading.is_set()
    closer.close()

    # closed from inside its own on_message (at the first change: the snapshot may come before
    # the constructor returns): no self-join, on_close once, the thread ends
    closes: List[str] = []
    messages: List[StreamedIdentifiers] = []

    def on_message(message: StreamedIdentifiers) -> None:
        messages.append(message)
        if len(messages) == 2:
            started = time.monotonic()
            itself.close()
            itself.close()
            closes.append(f"close() took {time.monotonic() - started:.1f} s")

    itself = IdentifiersStream(api.api_client, on_message=on_message, on_close=lambda: closes.append("on_close"))
    api.conversations_create_specific_conversation(seeded_conversation={"type": "COPILOT"})
    assert itself.join(30) and itself.closed
    assert len(messages) == 2 and closes == ["close() took 0.0 s", "on_close"]

    # a mirror closed from its own on_change (at the first change, as above)
    with ConversationIdsMirror.open(api, on_change=lambda u: None if u.snapshot else mirror.close()) as mirror:
        api.conversations_create_specific_conversation(seeded_conversation={"type": "COPILOT"})
        until(lambda: mirror.ended, what="the mirror ended")
        assert mirror.stream is not None and mirror.stream.join(30)
    assert_nothing_left(emu, fds_before)


def test_threads_sharing_one_iterator_each_get_whole_messages() -> None:
    """Each message goes to exactly one of the iterating threads; none is torn, lost or doubled.
    The server sends 1000 small messages in one burst once four threads iterate (one in the
    read, the others waiting for their turn at it)."""
    changes = [f"c{n}" for n in range(1000)]
    iterating: List[int] = []

    def script(sock: socket.socket, _number: int) -> None:
        sock.sendall(frame(b'{"iterable": []}'))
        until(lambda: len(iterating) == 4, what="four consumers iterating")
        sock.sendall(b"".join(frame(json.dumps({"iterable": [{"conversation": {"id": c}}]}).encode())
                              for c in changes))

    errors: List[Exception] = []
    seen: List[List[str]] = [[], [], [], []]
    with RawServer(script) as server:
        stream = IdentifiersStream(ApiClient(Configuration(host=server.url)), reconnect=False)

        def consume(number: int) -> None:
            try:
                iterating.append(number)
                for event in stream.events():
                    seen[number].extend(event.ids)
            except Exception as exc:  # collected for the main thread to report
                errors.append(exc)

        consumers = [threading.Thread(target=consume, args=(n,)) for n in range(4)]
        for thread in consumers:
            thread.start()
        until(lambda: sum(map(len, seen)) >= len(changes) or bool(errors), what="every change delivered")
        stream.close()
        for thread in consumers:
            thread.join(30)
        assert not any(thread.is_alive() for thread in consumers)
    assert errors == [] and stream.malformed_messages == 0
    assert sorted(c for ids in seen for c in ids) == sorted(changes)


def test_close_from_a_signal_handler_while_iterating(api: ConversationsApi) -> None:
    """The usual SIGTERM handler: it runs in the main thread, inside the blocked read."""
    stream = api.conversations_stream_identifiers()
    next(stream)
    handled: List[int] = []

    def handler(signum: int, _frame: object) -> None:
        handled.append(signum)
        if len(handled) == 1:  # once: a later signal may come while this close() still runs
            stream.close()

    previous = signal.signal(signal.SIGALRM, handler)
    try:
        # the timer starts as this thread reaches the read, and repeats in case its first signal
        # came on the instant before the read began to wait (then the next one interrupts it)
        with before_call("recv", lambda: signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)) as reading:
            started = time.monotonic()
            assert list(stream) == [] and stream.closed
        assert reading.is_set()
        # the emulator sends nothing more and answers pings: without the handler the read never ends
        assert time.monotonic() - started < 20
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_script(body: str, *, interrupt: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter with an emulator as ``emu`` and a ConversationsApi as
    ``api``; it prints "ready" when it wants a SIGINT (``interrupt``) or to start the clock.

    What the scripts could wait for instead of ending is a connection attempt's 30 s
    connect_timeout or a read that never ends: the 20 s bound tells those from a prompt end."""
    script = textwrap.dedent(
        """
        import signal, sys, threading, time
        signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
        import pieces_os_client
        from pieces_os_client.emulator import Emulator
        from pieces_os_client.stream import ConversationIdsMirror

        emu = Emulator(seed_conversations=1).start()
        api = pieces_os_client.ConversationsApi(
            pieces_os_client.ApiClient(pieces_os_client.Configuration(host=emu.url)))
        """
    ) + textwrap.dedent(body)
    env = dict(os.environ, PYTHONWARNINGS="error")
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.communicate(timeout=60)
            started = time.monotonic()
            if interrupt:  # the script is at its blocking read (it said so as it reached it)
                proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
            elapsed = time.monotonic() - started
        finally:
            proc.kill()  # a no-op once it has ended
    assert elapsed < 20, f"the script took {elapsed:.1f} s to end"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_script_ends_promptly_with_streams_still_running() -> None:
    done = run_script(
        """
        import socket
        silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
        got = threading.Event()
        background = api.conversations_stream_identifiers(on_message=lambda _m: got.set())
        mirror = ConversationIdsMirror.open(api)
        reconnecting = api.conversations_stream_identifiers(
            on_message=lambda _m: None, initial_backoff=0.01, max_backoff=0.01, connect_timeout=30)
        assert got.wait(30) and mirror.wait_ready(30)
        emu.drop_websockets()  # every stream reconnects: some attempts are in progress at exit
        print("ready", flush=True)
        """
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_ctrl_c_while_iterating_closes_the_stream() -> None:
    done = run_script(
        """
        # reads wake each second to see about a ping: a SIGINT that came on the instant before
        # the read began to wait is acted on within a second, not after the default 20 s
        stream = api.conversations_stream_identifiers(ping_interval=1)
        next(stream)

        def ready(frame, event, arg):  # "ready" as this thread reaches the read that blocks
            if event == "c_call" and getattr(arg, "__name__", None) == "recv":
                sys.setprofile(None)
                print("ready", flush=True)

        try:
            sys.setprofile(ready)
            for message in stream:  # blocks: nothing changes
                pass
        except KeyboardInterrupt:
            sys.setprofile(None)
            deadline = time.monotonic() + 15
            while emu.websocket_count and time.monotonic() < deadline:
                time.sleep(0.005)
            print(stream.closed, emu.websocket_count, list(stream))
        """,
        interrupt=True,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "True 0 []\n", "")
