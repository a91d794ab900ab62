"""Helpers for the asyncio client's tests: running one test's coroutine, a raw HTTP server,
a listener that never accepts, and small builders.

No pytest-asyncio: each test calls :func:`run` with its coroutine, in a fresh event loop with
debug mode on and a loop exception handler that must record nothing. The suite already turns
warnings into errors, so a leaked transport, session or socket fails the test that leaked it
(``gc.collect()`` runs after the loop closes so such a leak is found here, not in a later test).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, Dict, List, Optional, TypeVar

import pytest

from pieces_os_client import Configuration

T = TypeVar("T")

#: the identifiers snapshot's path, the operation most tests call
IDENTIFIERS = "/conversations/identifiers"

#: the longest one test's coroutine may run before it is cancelled and the test fails
DEFAULT_LIMIT = 60.0


def run(coro: Coroutine[Any, Any, T], *, debug: bool = True, limit: float = DEFAULT_LIMIT) -> T:
    """Run ``coro`` in a new event loop and return its result.

    The loop gets an exception handler that records every call; the test fails if anything
    was recorded (a task that died unseen, a callback that raised), even when ``coro`` passed.
    """
    recorded: List[Dict[str, Any]] = []

    async def main() -> T:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: recorded.append(context))
        return await asyncio.wait_for(coro, limit)

    try:
        result = asyncio.run(main(), debug=debug)
    finally:
        gc.collect()
    assert not recorded, f"the event loop's exception handler was called: {recorded!r}"
    return result


def config(url: str, **settings: Any) -> Configuration:
    """A configuration for the server at ``url`` with the given settings."""
    return Configuration(host=url, **settings)


async def cancelled_after(delay: float, call: Awaitable[Any]) -> None:
    """Start ``call``, cancel it after ``delay`` seconds, and check that it ends cancelled."""
    task = asyncio.ensure_future(call)
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def cancelled_once_seen(emu: Any, seen: int, call: Awaitable[Any], settle: float = 0.2) -> None:
    """Start ``call``; once the emulator has recorded ``seen`` requests to IDENTIFIERS in all (so
    the call's request has reached it, however slow the machine), let it settle into its wait
    for ``settle`` seconds, then cancel it and check that it ends cancelled."""
    task = asyncio.ensure_future(call)
    await until(lambda: emu.request_count("GET", IDENTIFIERS) >= seen or task.done())
    await asyncio.sleep(settle)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait, polling every 10 ms, until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout} s"
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------ a raw HTTP server
class RawServer:
    """An HTTP/1.1 server on 127.0.0.1 that records request heads and counts connections.

    ``answer(head) -> bytes`` makes each whole response; ``close_after`` closes the connection
    right after answering (without saying so), as a server whose keep-alive timer ran out;
    ``drop_reused`` closes a connection, unanswered, when a second request arrives on it (after
    writing ``reused_reply`` to it, say part of a response head). ``hold``, an event, keeps every
    answer back (its request head already recorded in ``heads``) until the test sets it: a call
    stays in flight for as long as the test needs, whatever the machine's speed.
    """

    def __init__(
        self, answer: Callable[[bytes], bytes], *, close_after: bool = False, delay: float = 0.0,
        drop_reused: bool = False, reused_reply: bytes = b"", hold: Optional[asyncio.Event] = None,
    ) -> None:
        self.answer = answer
        self.close_after = close_after
        self.drop_reused = drop_reused
        self.reused_reply = reused_reply
        self.dropped = 0
        self.delay = delay
        self.hold = hold
        self.heads: List[bytes] = []
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self._server: Optional[asyncio.base_events.Server] = None
        self._writers: List[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        self._writers.append(writer)
        served = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                if self.drop_reused and served:
                    self.dropped += 1
                    if self.reused_reply:
                        writer.write(self.reused_reply)
                        await writer.drain()
                    return
                served += 1
                self.heads.append(head)
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.hold is not None:
                    await self.hold.wait()
                writer.write(self.answer(head))
                await writer.drain()
                if self.close_after:
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self.open -= 1
            writer.close()


def json_answer(body: bytes = b'{"iterable":[]}', *, extra: bytes = b"", status: bytes = b"200 OK") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def header_lines(head: bytes) -> List[str]:
    """A request head's header lines, Host's port left out, as sent (order and case kept)."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [line for line in lines if line and not line.lower().startswith("host:")]


@contextlib.contextmanager
def unanswered_listener() -> Iterator[str]:
    """A URL whose listener never accepts and whose backlog is full: connecting hangs."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(listener.getsockname())
            fillers.append(filler)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
