"""Test helpers: run the Pieces OS emulator around a test, and a server that never answers.

This module is also a pytest plugin, registered through the ``pytest11`` entry point: with
this package installed, every test can ask for the fixtures by name, no import needed::

    import pieces_os_client

    def test_lists_conversations(pieces_emulator):
        config = pieces_os_client.Configuration(host=pieces_emulator.url)
        ...

``pieces_emulator`` gives every test a fresh emulator (each start takes a few milliseconds);
``pieces_emulator_session`` shares one for the whole session, so call ``.reset()`` where a
test needs a clean store. With pytest-asyncio installed, ``pieces_emulator_async`` gives an
async test a fresh emulator serving in the test's own event loop. Outside pytest, use :func:`running_emulator` and
:func:`blackhole_server` as context managers.

Loading the plugin is cheap: it imports neither aiohttp nor the emulator. A fixture that
needs the emulator without aiohttp installed fails its test with one line saying what to
install (the ``emulator`` extra, from a clone of this repository). Without pytest, this module
still imports; the fixtures are then simply absent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator, List

if TYPE_CHECKING:
    from pieces_os_client.emulator import Emulator

__all__ = ["blackhole_server", "running_emulator"]


@contextlib.contextmanager
def running_emulator(**kwargs: Any) -> Iterator[Emulator]:
    """Start an :class:`~pieces_os_client.emulator.Emulator` for the duration of a ``with`` block.

    Keyword arguments go to the ``Emulator`` constructor (the port defaults to a free one).
    """
    from pieces_os_client.emulator import Emulator

    emulator = Emulator(**kwargs)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@contextlib.contextmanager
def blackhole_server(host: str = "127.0.0.1") -> Iterator[str]:
    """A server that accepts TCP connections and never sends a byte; yields its ``http://`` URL.

    Use it to check that a client's connect and read timeouts fire. Connections are held open
    until the block ends, then closed.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, 0), family=family, backlog=128)
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    held: List[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept_forever, name=f"pieces-blackhole:{port}", daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown}:{port}"
    finally:
        stop.set()
        thread.join()
        listener.close()
        for conn in held:
            conn.close()


try:
    import pytest
except ImportError:  # pragma: no cover - the fixtures are only for pytest users
    pass
else:

    def _require_emulator() -> None:
        try:
            from pieces_os_client.emulator import Emulator  # noqa: F401
        except ImportError as exc:  # aiohttp missing: one line, not a traceback
            pytest.fail(str(exc), pytrace=False)

    @pytest.fixture
    def pieces_emulator() -> Iterator[Emulator]:
        """A fresh emulator for one test (demo assets, no conversations, no faults)."""
        _require_emulator()
        with running_emulator() as emulator:
            yield emulator

    @pytest.fixture(scope="session")
    def pieces_emulator_session() -> Iterator[Emulator]:
        """One emulator shared by the whole session; call ``.reset()`` for a clean store."""
        _require_emulator()
        with running_emulator() as emulator:
            yield emulator

    __all__ += ["pieces_emulator", "pieces_emulator_session"]

    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - the async fixture needs pytest-asyncio
        pass
    else:

        @pytest_asyncio.fixture
        async def pieces_emulator_async() -> AsyncIterator[Emulator]:
            """A fresh emulator for one async test, serving in the test's own event loop.

            Needs pytest-asyncio (mark the test ``@pytest.mark.asyncio``, or run in its auto
            mode). A blocking call the client makes shows up as a stall of that loop.
            """
            _require_emulator()
            from pieces_os_client.emulator import Emulator

            async with Emulator() as emulator:
                yield emulator

        __all__ += ["pieces_emulator_async"]
