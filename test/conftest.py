"""Shared pytest configuration for the test suite.

The package's own fixtures (``pieces_emulator``, ``pieces_emulator_session``) come from its
pytest plugin (the ``pytest11`` entry point in pyproject.toml), as they do in a user's suite.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Optional

import pytest

from pieces_os_client.emulator import Emulator


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
    """Servers on loopback that answer every request with one fixed response (None: never answer)."""
    stop = threading.Event()
    servers: list[tuple[socket.socket, threading.Thread]] = []
    held: list[socket.socket] = []

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
                if response is None:  # a hung server: keeps the connection, says nothing
                    held.append(conn)
                    continue
                with conn:
                    conn.settimeout(2)
                    try:
                        conn.recv(65536)
                        conn.sendall(response)
                    except OSError:
                        pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        servers.append((server, thread))
        return int(server.getsockname()[1])

    yield start
    stop.set()
    for server, thread in servers:
        thread.join(2)
        server.close()
    for conn in held:
        conn.close()
