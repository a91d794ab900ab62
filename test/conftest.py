"""Shared pytest configuration for the test suite.

The package's own fixtures (``pieces_emulator``, ``pieces_emulator_session``) come from its
pytest plugin (the ``pytest11`` entry point in pyproject.toml), as they do in a user's suite.

Under CI (``CI=true``) a test that cannot run fails instead of skipping, with the reason it
gave (the OpenAPI document, the official SDK, an interpreter, a kernel behaviour...): a green
run has run everything. Elsewhere a skip keeps its reason, and the run ends with a line that
counts the skips by reason.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Optional

import pytest

from pieces_os_client.emulator import Emulator

UNDER_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}

# A suite started in the background by a shell without job control (`bash -c 'pytest &'`, a
# script's `&`, nohup) inherits SIGINT ignored, and so would every program it starts: the
# command-line tests that send Ctrl-C to one would then see it ignored. Catching SIGINT here
# (as Python does by default) gives each child the default disposition again at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if UNDER_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"CI runs every test, and this one could not run: {_skip_reason(report)}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reasons = collections.Counter(_skip_reason(r) for r in terminalreporter.stats.get("skipped", []))
    listed = "; ".join(f"{count} x {reason}" for reason, count in reasons.most_common())
    terminalreporter.write_line(f"skipped: {sum(reasons.values())}" + (f" ({listed})" if listed else ""))


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    """One emulator per test module (cheap to share; `emu` resets it for each test)."""
    with Emulator() as emu:
        yield emu


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """The module's emulator, emptied: no conversations, faults or recorded requests."""
    emulator.reset()
    emulator.clear_requests()
    return emulator


@pytest.fixture
def raw_server() -> Iterator[Callable[[Optional[bytes]], int]]:
    """Servers on loopback that answer every request with one fixed response (None: never answer).

    Each connection is served in a thread of its own, which waits up to 30 s for the request (a
    loaded machine may take a while to send it) and is woken when the test ends.
    """
    stop = threading.Event()
    servers: list[tuple[socket.socket, threading.Thread]] = []
    held: list[socket.socket] = []
    workers: list[threading.Thread] = []

    def answer(conn: socket.socket, response: bytes) -> None:
        with conn:
            conn.settimeout(30)
            try:
                conn.recv(65536)
                conn.sendall(response)
            except OSError:
                pass

    def start(response: Optional[bytes]) -> int:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.1)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except OSError:
                    continue
                held.append(conn)
                if response is None:  # a hung server: keeps the connection, says nothing
                    continue
                worker = threading.Thread(target=answer, args=(conn, response), daemon=True)
                workers.append(worker)
                worker.start()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        servers.append((server, thread))
        return int(server.getsockname()[1])

    yield start
    stop.set()
    for server, thread in servers:
        thread.join(30)  # the accept loop looks at ``stop`` every 0.1 s
        server.close()
    for conn in held:
        with contextlib.suppress(OSError):  # wakes a worker still waiting for its request
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()
    for worker in workers:
        worker.join(30)
