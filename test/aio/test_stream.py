"""The asyncio identifiers stream and mirror, over real sockets on 127.0.0.1.

Each test runs in a fresh loop (``asyncio.run``, debug mode) with a loop exception handler that
must record nothing; the emulator (or a raw asyncio server) runs on that same loop. The suite
turns warnings into errors, so a leaked socket or transport fails the test that leaked it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import socket
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Dict, List, Optional, TypeVar

import pytest
from testkit.aio import until

from pieces_os_client import ApiClient, Configuration
from pieces_os_client._core.handshake import accept_value
from pieces_os_client.aio._mirror import AsyncConversationIdsMirror
from pieces_os_client.aio._stream import AsyncIdentifiersStream
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import (
    ApiConnectionError,
    ApiTimeoutError,
    ApiTypeError,
    ApiValueError,
    StreamClosedError,
    StreamError,
)
from pieces_os_client.stream import StreamEvent

T = TypeVar("T")
PATH = "/conversations/stream/identifiers"


def _run(main: Callable[[], Coroutine[Any, Any, T]], *, debug: bool = True, limit: float = 60) -> T:
    """Run ``main()`` in a fresh loop; fail if the loop's exception handler saw anything."""
    seen: List[Dict[str, Any]] = []

    async def wrapper() -> T:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, context: seen.append(context))
        return await asyncio.wait_for(main(), limit)

    result = asyncio.run(wrapper(), debug=debug)
    gc.collect()
    assert not seen, seen
    return result


def _client(url: str) -> ApiClient:
    return ApiClient(Configuration(host=url))


def _stream(url: str, **options: Any) -> AsyncIdentifiersStream:
    return AsyncIdentifiersStream(_client(url), PATH, **options)


async def _next(events: Any, timeout: float = 30) -> StreamEvent:
    event: StreamEvent = await asyncio.wait_for(events.__anext__(), timeout)
    return event


def _other_tasks() -> List[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task is not asyncio.current_task() and not task.done()]


def _stream_tasks() -> List[str]:
    """Pending tasks of the stream's own (a connection attempt or a read)."""
    names = [task.get_coro().__qualname__ for task in _other_tasks()]  # type: ignore[union-attr]
    return [name for name in names if name in ("open_wire",)]


# ---------------------------------------------------------------------- raw servers
class RawServer:
    """An asyncio server on 127.0.0.1 whose connections ``handler`` serves; counts them."""

    def __init__(self, handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.handler = handler
        self.connections = 0
        self.server: Optional[asyncio.AbstractServer] = None
        self.writers: List[asyncio.StreamWriter] = []
        self.tasks: List[asyncio.Task[Any]] = []

    async def __aenter__(self) -> RawServer:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self.writers.append(writer)
            task = asyncio.current_task()
            assert task is not None
            self.tasks.append(task)
            try:
                await self.handler(reader, writer)
            except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass  # a handler task must not end cancelled: asyncio's stream callback would log it
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()
        await self.server.wait_closed()
        # every transport has finished closing (not a pause that a busy machine may outlast)
        await asyncio.gather(*(writer.wait_closed() for writer in self.writers), return_exceptions=True)


async def read_head(reader: asyncio.StreamReader) -> Dict[str, str]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return {line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip() for line in lines[1:] if ":" in line}


async def upgrade(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    headers = await read_head(reader)
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_value(headers["sec-websocket-key"]).encode() + b"\r\n\r\n"
    )
    await writer.drain()


def text_frame(payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        return bytes([0x81, length]) + payload
    if length < 1 << 16:
        return bytes([0x81, 126]) + length.to_bytes(2, "big") + payload
    return bytes([0x81, 127]) + length.to_bytes(8, "big") + payload


EMPTY_SNAPSHOT = b'{"iterable": []}'


# ---------------------------------------------------------------------- the basics
def test_first_snapshot_then_creates_and_deletes_in_order() -> None:
    async def main() -> None:
        async with Emulator(port=0) as emu:
            first = emu.create_conversation()
            async with _stream(emu.url) as stream:
                events = stream.events()
                snapshot = await _next(events)
                assert snapshot.snapshot and not snapshot.resync and snapshot.ids == [first]
                created = [emu.create_conversation() for _ in range(5)]
                emu.delete_conversation(created[1])
                emu.delete_conversation(first)
                seen = [await _next(events) for _ in range(7)]
                assert [e.ids for e in seen[:5]] == [[c] for c in created]
                assert [e.deleted_ids for e in seen[5:]] == [[created[1]], [first]]
                assert not any(e.snapshot for e in seen)
                assert stream.messages_received == 8 and stream.connections == 1 and stream.reconnects == 0
                assert stream.connected and not stream.closed and stream.last_event is seen[-1]
            assert stream.closed and not stream.connected and stream.error is None

    _run(main)


def test_awaitable_open_async_for_and_aclose() -> None:
    async def main() -> None:
        async with Emulator(port=0) as emu:
            stream = await _stream(emu.url)
            assert stream.connected and stream.connections == 1
            created = emu.create_conversation()
            got = []
            async for message in stream:
                got.append([i.conversation.id for i in message.iterable or () if i.conversation])
                if len(got) == 2:
                    break
            assert got == [[created], [created]] or got[1] == [created]
            await stream.aclose()
            await stream.aclose()  # idempotent
            assert [m async for m in stream] == []

    _run(main)


def test_url_is_masked_and_options_are_checked_like_the_sync_stream() -> None:
    client = _client("http://me:secret@127.0.0.1:9")
    stream = AsyncIdentifiersStream(client, PATH)
    assert stream.url == "ws://***@127.0.0.1:9" + PATH and "secret" not in repr(stream)
    with pytest.raises(ApiTypeError, match="reconect"):
        AsyncIdentifiersStream(client, PATH, reconect=True)  # type: ignore[call-arg]
    with pytest.raises(ApiValueError, match="backoff_jitter"):
        AsyncIdentifiersStream(client, PATH, backoff_jitter=2)
    with pytest.raises(ApiValueError, match="max_message_size"):
        AsyncIdentifiersStream(client, PATH, max_message_size=0)
    with pytest.raises(ApiValueError, match="close_read_limit must be finite and >= 0, not -1"):
        AsyncIdentifiersStream(client, PATH, close_read_limit=-1)


def test_header_injection_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ApiValueError, match="X-Evil"):
        AsyncIdentifiersStream(_client("http://127.0.0.1:9"), PATH, headers={"X-Evil": "a\r\nHost: elsewhere"})


def test_unreachable_is_an_api_connection_error_naming_the_url() -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        stream = _stream(f"http://127.0.0.1:{port}")
        with pytest.raises(ApiConnectionError, match=f"127.0.0.1:{port}"):
            await stream
        await stream.aclose()

    _run(main)


# ---------------------------------------------------------------------- the mirror
def test_mirror_equals_the_server_after_drops_and_after_a_restart() -> None:
    async def main() -> None:
        emu = await Emulator(port=0).astart()
        port = emu.port
        try:
            client = _client(emu.url)
            async with await AsyncConversationIdsMirror.open(client, initial_backoff=0.05) as mirror:
                assert await mirror.wait_ready(30)
                for _ in range(3):
                    created = emu.create_conversation()
                    assert await mirror.wait_for(lambda ids, c=created: c in ids, 30)  # type: ignore[misc]
                    emu.drop_websockets()
                    gone = emu.create_conversation()  # may be missed while disconnected: the resync brings it
                    emu.delete_conversation(created)
                    assert await mirror.wait_for(lambda ids, g=gone: ids == set(emu.conversation_ids()), 30)
                assert mirror.resyncs >= 3
                await emu.astop()
                emu = Emulator(port=port)
                await emu.astart()
                fresh = emu.create_conversation()
                assert await mirror.wait_for(lambda ids: ids == {fresh}, 30)
                assert mirror.snapshot() == set(emu.conversation_ids())
                assert mirror.stream is not None and mirror.stream.reconnects >= 4
            assert mirror.ended and not _stream_tasks()
        finally:
            await emu.astop()

    _run(main)


def test_mirror_open_accepts_an_api_with_conversations_stream_identifiers() -> None:
    class Api:
        def __init__(self, client: ApiClient) -> None:
            self.api_client = client
            self.calls = 0

        def conversations_stream_identifiers(self, **options: Any) -> AsyncIdentifiersStream:
            self.calls += 1
            return AsyncIdentifiersStream(self.api_client, PATH, **options)

    async def main() -> None:
        async with Emulator(port=0) as emu:
            api = Api(_client(emu.url))
            mirror = await AsyncConversationIdsMirror.open(api)
            try:
                assert await mirror.wait_ready(30) and api.calls == 1
                created = emu.create_conversation()
                assert await mirror.wait_for(lambda ids: created in ids, 30)
                assert not await mirror.wait_for(lambda ids: "never" in ids, 0.1)
            finally:
                await mirror.aclose()
            assert mirror.ended and not await mirror.wait_for_change(timeout=5)

    _run(main)


# ---------------------------------------------------------------------- hostile servers
def test_reconnect_storm_is_bounded_by_the_policy() -> None:
    arrived: List[float] = []

    async def drop_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrived.append(asyncio.get_running_loop().time())
        await upgrade(reader, writer)

    async def main() -> None:
        async with RawServer(drop_at_once) as server:
            stream = _stream(server.url, backoff_jitter=0.0)
            await stream
            consumer = asyncio.ensure_future(_next(stream.events(), 30))
            await until(lambda: server.connections >= 4 or consumer.done())  # three reconnects
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await consumer
            await stream.aclose()
            # the policy spaces the attempts 0.25, 0.5, 1 s apart (no jitter) at the least: the
            # gaps the server saw, which a slow machine can only lengthen
            gaps = [round(arrived[n + 1] - arrived[n], 2) for n in range(3)]
            assert [gap >= least for gap, least in zip(gaps, (0.25, 0.5, 1.0), strict=True)] == [True] * 3, gaps

            limited = _stream(server.url, backoff_jitter=0.0, initial_backoff=0.01, max_reconnect_attempts=3)
            await limited
            with pytest.raises(StreamClosedError, match=r"Gave up reconnecting .* after 3 failed attempts"):
                await _next(limited.events(), 10)
            assert limited.closed and limited.error is not None
            await limited.aclose()

    _run(main)


def test_a_redirect_is_refused_naming_status_and_masked_location() -> None:
    async def redirect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: http://user:pw@elsewhere.test/x\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def main() -> None:
        async with RawServer(redirect) as server:
            stream = _stream(server.url)
            with pytest.raises(StreamError, match=re.escape("HTTP 302 Found, a redirect to 'http://***@elsewhere.test/x'")):
                await stream
            assert server.connections == 1
            await stream.aclose()

    _run(main)


def test_a_trickled_handshake_is_bounded_by_connect_timeout() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        # about a minute of trickle (0.05 s a byte): only connect_timeout can end the handshake
        for byte in b"HTTP/1.1 101 Switching Protocols\r\nX-Slow: " + b"a" * 1200:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)

    async def main() -> None:
        async with RawServer(trickle) as server:
            stream = _stream(server.url, connect_timeout=0.5)
            started = time.monotonic()
            with pytest.raises(ApiTimeoutError, match=r"0\.5 s .*during the WebSocket handshake"):
                await stream
            took = time.monotonic() - started
            assert 0.45 < took < 20, took  # the 0.5 s bound, not the minute-long trickle's end
            await stream.aclose()

    _run(main)


def test_an_oversized_message_is_refused_before_its_payload() -> None:
    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await upgrade(reader, writer)
        writer.write(bytes([0x81, 127]) + (10**9).to_bytes(8, "big"))  # a header claiming 1 GB, no payload
        await writer.drain()
        await asyncio.sleep(3600)  # hold the connection open until the server closes

    async def main() -> None:
        async with RawServer(big) as server:
            stream = _stream(server.url, max_message_size=1024)
            await stream
            with pytest.raises(StreamClosedError, match="larger than max_message_size") as caught:
                await _next(stream.events())
            assert isinstance(caught.value.__cause__, StreamError)
            assert "1000000000 bytes" in str(caught.value.__cause__) and server.connections == 1
            await stream.aclose()

    _run(main)


def test_an_oversized_change_after_the_snapshot_reconnects() -> None:
    async def big_change(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await upgrade(reader, writer)
        writer.write(text_frame(EMPTY_SNAPSHOT) + text_frame(b" " * 2000))
        await writer.drain()
        await asyncio.sleep(3600)  # hold the connection open until the server closes

    async def main() -> None:
        async with RawServer(big_change) as server:
            stream = _stream(server.url, max_message_size=1024, initial_backoff=0.01)
            async with stream:
                events = stream.events()
                assert (await _next(events)).snapshot
                again = await _next(events)
                assert again.resync and stream.reconnects == 1

    _run(main)


# ---------------------------------------------------------------------- cancellation
def _reading(stream: AsyncIdentifiersStream) -> Callable[[], bool]:
    """Whether the iterating task waits for the socket to bring something."""
    return lambda: stream._waiter is not None


def _in_backoff(stream: AsyncIdentifiersStream) -> Callable[[], bool]:
    """Whether the iterating task waits out a reconnect delay."""
    return lambda: stream._wake is not None


async def _assert_cancelled_cleanly(
    stream: AsyncIdentifiersStream, step: Awaitable[Any], inside: Callable[[], bool]
) -> None:
    """Start ``step``, wait until ``inside()`` says it is in the wait the test aims at, cancel it."""
    task = asyncio.ensure_future(step)
    await until(lambda: inside() or task.done())
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stream._pending is None or stream._pending.closed
    assert stream._step is None or stream._step.done()
    assert not _stream_tasks()
    if stream._wire is not None and not stream._wire.closed:  # nothing of the read stays registered
        assert not asyncio.get_running_loop().remove_reader(stream._wire.fd)


def test_cancelled_while_connecting_and_in_the_handshake() -> None:
    asked: List[Dict[str, str]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await read_head(reader))
        await asyncio.sleep(3600)  # never answer; the server cancels this when it closes

    async def main() -> None:
        async with RawServer(silent) as server:
            stream = _stream(server.url, connect_timeout=60)
            # the server has the handshake request: the client waits for its answer
            await _assert_cancelled_cleanly(stream, stream.open(), lambda: len(asked) == 1)
            assert not stream.connected
            await stream.aclose()
        # a TCP connect that hangs: a listener that never accepts, its backlog full
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(0)
            fillers = []
            try:
                for _ in range(8):
                    filler = socket.socket()
                    filler.setblocking(False)
                    fillers.append(filler)
                    with contextlib.suppress(BlockingIOError):
                        filler.connect(listener.getsockname())
                stream = _stream(f"http://127.0.0.1:{listener.getsockname()[1]}", connect_timeout=60)
                # the TCP connect never completes: once the attempt has begun, it is inside it
                await _assert_cancelled_cleanly(stream, stream.open(), lambda: stream._pending is not None)
                await stream.aclose()
            finally:
                for filler in fillers:
                    filler.close()

    _run(main)


def test_cancelled_while_reading_and_in_backoff_the_stream_goes_on() -> None:
    async def main() -> None:
        async with Emulator(port=0) as emu, _stream(emu.url, initial_backoff=2, max_backoff=2,
                                                   backoff_jitter=0.0) as stream:
            events = stream.events()
            assert (await _next(events)).snapshot
            await _assert_cancelled_cleanly(stream, events.__anext__(), _reading(stream))  # in a read
            assert stream.connected
            created = emu.create_conversation()
            assert (await _next(events)).ids == [created]  # nothing was lost
            emu.drop_websockets()
            await _assert_cancelled_cleanly(stream, events.__anext__(), _in_backoff(stream))
            resync = await _next(events)
            assert resync.resync and resync.ids == [created]

    _run(main)


def test_aclose_from_another_task_ends_a_waiting_iteration_promptly() -> None:
    async def main() -> None:
        async with Emulator(port=0) as emu:
            stream = await _stream(emu.url)
            events = stream.events()
            assert (await _next(events)).snapshot

            async def drain() -> int:
                return len([event async for event in events])

            reader = asyncio.ensure_future(drain())
            await until(_reading(stream))  # it waits for a message that never comes
            await stream.aclose()
            # the emulator sends nothing more and the keep-alive ping is 20 s away: only aclose()
            # can end the iteration within this bound
            assert await asyncio.wait_for(reader, 10) == 0
            assert stream.closed and not stream.connected

    _run(main)


def test_an_unclosed_stream_warns_once_naming_the_class() -> None:
    async def main() -> None:
        async with Emulator(port=0) as emu:
            stream = await _stream(emu.url)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                del stream
                gc.collect()
            assert [str(w.message).split(" ws://")[0] for w in caught] == ["unclosed <AsyncIdentifiersStream"]
            assert caught[0].category is ResourceWarning

            # one that waited for a message has its keep-alive timer armed: the timer must not
            # keep the abandoned stream (and its socket) alive until it goes off
            stream = await _stream(emu.url)
            events = stream.events()
            assert (await _next(events)).snapshot
            await _assert_cancelled_cleanly(stream, events.__anext__(), _reading(stream))
            assert stream._timer is not None
            wire = stream._wire
            assert wire is not None
            await asyncio.sleep(0)  # the loop lets go of the cancelled read's exception (and its frames)
            await asyncio.sleep(0)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                del stream, events
                gc.collect()
            assert [w.category for w in caught] == [ResourceWarning] and wire.closed

    _run(main)


# ---------------------------------------------------------------------- many streams, fork
@pytest.mark.parametrize("count", [4, 8])
def test_many_streams_on_one_loop_deliver_to_one_consumer(count: int) -> None:
    # what it checks is that every stream hands every change over, in order; how fast is
    # measured in benchmarks/, where a busy machine does not decide a landing
    async def main() -> None:
        async with Emulator(port=0) as emu:
            streams = [await _stream(emu.url) for _ in range(count)]
            queue: asyncio.Queue[StreamEvent] = asyncio.Queue()

            async def pump(stream: AsyncIdentifiersStream) -> None:
                async for event in stream.events():
                    queue.put_nowait(event)

            pumps = [asyncio.ensure_future(pump(s)) for s in streams]
            for _ in range(count):
                assert (await asyncio.wait_for(queue.get(), 30)).snapshot
            for _ in range(50):
                created = emu.create_conversation()
                for _ in range(count):
                    event = await asyncio.wait_for(queue.get(), 30)
                    assert event.ids == [created]  # each change, once per stream, before the next
            assert queue.empty()
            for stream in streams:
                await stream.aclose()
            await asyncio.wait_for(asyncio.gather(*pumps), 30)

    _run(main, debug=False)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_forked_child_never_touches_the_parents_socket() -> None:
    async def main() -> None:
        async with Emulator(port=0) as emu, _stream(emu.url) as stream, \
                await AsyncConversationIdsMirror.open(_client(emu.url)) as mirror:
            events = stream.events()
            assert (await _next(events)).snapshot and await mirror.wait_ready(30)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
                pid = os.fork()
            if pid == 0:
                status = 1
                try:
                    if (stream.closed and not stream.connected and stream._wire is None and mirror.ended
                            and mirror.ready and mirror.stream is not None and mirror.stream.closed):
                        status = 0
                finally:
                    os._exit(status)
            deadline = time.monotonic() + 30
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert os.waitstatus_to_exitcode(status) == 0
            created = emu.create_conversation()
            event = await _next(events)
            assert event.ids == [created] and not event.snapshot and stream.reconnects == 0
            assert await mirror.wait_for(lambda ids: created in ids, 30) and not mirror.ended

    _run(main)


def test_wss_through_tls_with_the_configured_ca() -> None:
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)

    async def main() -> None:
        async with Emulator(port=0, ssl_context=server) as emu:
            created = emu.create_conversation()
            with ca.cert_pem.tempfile() as ca_file:
                client = ApiClient(Configuration(host=emu.url, ssl_ca_cert=ca_file))
                async with AsyncIdentifiersStream(client, PATH) as stream:
                    assert stream.url.startswith("wss://")
                    events = stream.events()
                    assert (await _next(events)).ids == [created]
                    emu.delete_conversation(created)
                    assert (await _next(events)).deleted_ids == [created]

    _run(main)


def test_through_an_http_proxy_with_its_headers_and_a_refusal() -> None:
    from testkit.ws import Relay

    async def main() -> None:
        async with Emulator(port=0) as emu:
            created = emu.create_conversation()
            with Relay() as relay:
                config = Configuration(host=emu.url, proxy=f"http://u:p@127.0.0.1:{relay.port}",
                                       proxy_headers={"X-Proxy-Token": "t"})
                async with AsyncIdentifiersStream(ApiClient(config), PATH) as stream:
                    assert (await _next(stream.events())).ids == [created]
                assert relay.heads[0].startswith(f"CONNECT 127.0.0.1:{emu.port} HTTP/1.1")
                assert "X-Proxy-Token: t" in relay.heads[0] and "Proxy-Authorization: Basic " in relay.heads[0]
            with Relay(refuse=True) as refusing:
                config = Configuration(host=emu.url, proxy=f"http://127.0.0.1:{refusing.port}")
                stream = AsyncIdentifiersStream(ApiClient(config), PATH)
                with pytest.raises(ApiConnectionError, match="refused to open a tunnel"):
                    await stream
                await stream.aclose()

    _run(main)


def test_aclose_while_another_task_opens() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)  # never answer; the server cancels this when it closes

    async def main() -> None:
        async with RawServer(silent) as server:
            stream = _stream(server.url, connect_timeout=5)
            opening = asyncio.ensure_future(stream.open())
            await until(lambda: server.connections == 1)  # the opening is under way
            await stream.aclose()
            with pytest.raises(StreamClosedError, match="closed while it was being opened"):
                await opening
            assert not _stream_tasks() and (stream._pending is None or stream._pending.closed)

    _run(main)


def test_keepalive_pings_and_an_unanswered_ping_drops_the_connection() -> None:
    received: List[int] = []

    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await upgrade(reader, writer)
        writer.write(text_frame(EMPTY_SNAPSHOT))
        await writer.drain()
        while True:  # read the client's frames, answer none
            head = await reader.readexactly(2)
            length = head[1] & 0x7F
            await reader.readexactly(4 + length)  # mask and a short payload
            received.append(head[0] & 0x0F)

    async def main() -> None:
        async with RawServer(deaf) as server:
            stream = _stream(server.url, ping_interval=0.2, ping_timeout=0.2, initial_backoff=0.01)
            async with stream:
                events = stream.events()
                first = await _next(events)
                again = await _next(events)
                # a ping after 0.2 s of silence, the drop 0.2 s later, then the reconnect: not
                # sooner; the deaf server would hold the connection for ever, so the upper bound
                # only catches a hang
                assert first.snapshot and again.resync and 0.35 < again.received_at - first.received_at < 20
                assert 0x9 in received  # the ping, masked as a client's frames must be

    _run(main)


def test_malformed_messages_and_a_close_frame() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await upgrade(reader, writer)
        if server.connections == 1:
            writer.write(text_frame(b"not json"))  # a bad snapshot: start over
        else:
            created = b'{"iterable": [{"conversation": {"id": "c1"}}]}'
            writer.write(text_frame(EMPTY_SNAPSHOT) + text_frame(b"[1, 2]") + text_frame(created)
                         + bytes([0x88, 4]) + (4000).to_bytes(2, "big") + b"ok")
        await writer.drain()
        await asyncio.sleep(3600)  # hold the connection open until the server closes

    async def main() -> None:
        async with server, _stream(server.url, initial_backoff=0.01) as stream:
            events = stream.events()
            first = await _next(events)
            assert first.snapshot and first.connection == 2 and stream.malformed_messages == 1
            change = await _next(events)
            assert change.ids == ["c1"] and stream.malformed_messages == 2
            resync = await _next(events)  # after the server's close frame
            assert resync.resync and resync.connection == 3

    server = RawServer(script)
    _run(main)


def test_a_silent_tls_handshake_is_bounded_and_cancellable() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)  # never answer; the server cancels this when it closes

    async def main() -> None:
        async with RawServer(silent) as server:
            url = server.url.replace("http://", "https://")
            stream = _stream(url, connect_timeout=0.3)
            with pytest.raises(ApiTimeoutError, match="during the TLS handshake"):
                await stream
            await stream.aclose()
            stream = _stream(url, connect_timeout=60)
            # connected, so in the TLS handshake, which the silent server never answers
            await _assert_cancelled_cleanly(stream, stream.open(), lambda: server.connections == 2)
            await stream.aclose()

    _run(main)
