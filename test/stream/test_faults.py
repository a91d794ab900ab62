"""The identifiers stream against small scripted servers: malformed messages, server closes,
keep-alive, handshake headers, TLS and proxies.

The emulator only ever sends well-formed messages, so these use a tiny aiohttp WebSocket server
whose behaviour each test writes as a coroutine.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import ssl
import threading
import time
from typing import Any, Awaitable, Callable, Dict, Iterator, List, Optional

import pytest
from aiohttp import WSMsgType, web
from testkit.wait import until
from testkit.ws import Relay

from pieces_os_client.api.conversations_api import ConversationsApi
from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import ApiConnectionError, StreamClosedError, StreamError
from pieces_os_client.stream import IDENTIFIERS_PATH, IdentifiersStream, StreamEvent
from pieces_os_client.stream._connect import Closing, Connector
from pieces_os_client.stream._link import Link

Script = Callable[[web.WebSocketResponse, int], Awaitable[None]]


def snapshot(*ids: str) -> str:
    return json.dumps({"iterable": [{"conversation": {"id": i}} for i in ids]})


def change(conversation_id: str, deleted: bool = False) -> str:
    ident: Dict[str, Any] = {"conversation": {"id": conversation_id}}
    if deleted:
        ident["deleted"] = True
    return json.dumps({"iterable": [ident]})


class ScriptedServer:
    """An aiohttp WebSocket server on 127.0.0.1 running ``script(ws, connection_number)``."""

    def __init__(
        self,
        script: Script,
        *,
        path: str = IDENTIFIERS_PATH,
        autoping: bool = True,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self.script = script
        self.path = path
        self.autoping = autoping
        self.ssl_context = ssl_context
        self.handshakes: List[Dict[str, str]] = []
        self.pings = 0
        self._loop = asyncio.new_event_loop()
        self._runner: Optional[web.AppRunner] = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=self.autoping)
        await ws.prepare(request)
        self.handshakes.append(dict(request.headers))
        await self.script(ws, len(self.handshakes))
        async for message in ws:
            if message.type == WSMsgType.PING:
                self.pings += 1
        return ws

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get(self.path, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        self.port = server.sockets[0].getsockname()[1]

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


def make_client(host: str, **config: Any) -> ApiClient:
    configuration = Configuration(host=host)
    for name, value in config.items():
        setattr(configuration, name, value)
    return ApiClient(configuration)


def stream_for(server: ScriptedServer, **options: Any) -> IdentifiersStream:
    options.setdefault("initial_backoff", 0.02)
    options.setdefault("max_backoff", 0.1)
    return IdentifiersStream(make_client(server.url), **options)


# --------------------------------------------------------------------------- malformed
@pytest.mark.parametrize(
    "bad",
    ["{not json", '{"iterable": 5}', "null", "[]", '{"iterable": [{"conversation": {}}]}'],
    ids=["syntax", "shape", "null", "array", "missing-id"],
)
def test_malformed_message_goes_to_on_error_and_the_stream_goes_on(
    bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(snapshot("a"))
        await ws.send_str(bad)
        await ws.send_str(change("b"))

    errors: List[Exception] = []
    caplog.set_level(logging.WARNING, logger="pieces_os_client")
    with ScriptedServer(script) as server, stream_for(server, on_error=errors.append) as stream:
        events = stream.events()
        first, second = next(events), next(events)
    assert first.snapshot and first.ids == ["a"]
    assert not second.snapshot and second.ids == ["b"]
    assert len(errors) == 1 and isinstance(errors[0], StreamError)
    assert errors[0].__cause__ is not None
    assert "malformed message" in str(errors[0]) and bad[:10] in str(errors[0])
    assert stream.malformed_messages == 1 and stream.reconnects == 0
    assert any(r.name.startswith("pieces_os_client") and "malformed" in r.getMessage() for r in caplog.records)


def test_invalid_utf8_text_frame_fails_the_connection_with_1007() -> None:
    """RFC 6455 section 8.1: text that is not UTF-8 fails the connection (it used to be skipped as
    a malformed message on a connection that went on)."""
    close_codes: List[Optional[int]] = []

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(snapshot(f"gen{n}"))
        if n == 1:
            writer = ws._writer
            assert writer is not None
            await writer.send_frame(b"\xff\xfe{}", WSMsgType.TEXT)  # text frame that is not UTF-8
            await ws.send_str(change("b"))
            await ws.receive()
            close_codes.append(ws.close_code)

    errors: List[Exception] = []
    with ScriptedServer(script) as server, stream_for(server, on_error=errors.append) as stream:
        events = stream.events()
        assert next(events).snapshot
        resync = next(events)
    assert resync.resync and resync.ids == ["gen2"]  # "b" never came through
    assert [type(e) for e in errors] == [ApiConnectionError]
    assert "not valid UTF-8" in str(errors[0]) and "1007" in str(errors[0])
    assert close_codes == [1007]


def test_malformed_snapshot_triggers_a_fresh_connection() -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str("{broken" if n == 1 else snapshot("x", "y"))

    errors: List[Exception] = []
    with ScriptedServer(script) as server, stream_for(server, on_error=errors.append) as stream:
        event = next(stream.events())
    assert event.snapshot and event.resync and event.connection == 2
    assert sorted(event.ids) == ["x", "y"]
    assert [type(e) for e in errors] == [StreamError, ApiConnectionError]


# --------------------------------------------------------------------------- server closes
def test_server_close_without_reconnect_raises_stream_closed() -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(snapshot("a"))
        await ws.close(code=1001, message=b"going away")

    closes: List[int] = []
    with ScriptedServer(script) as server:
        stream = stream_for(server, reconnect=False, on_close=lambda: closes.append(1))
        assert next(stream).iterable[0].conversation is not None
        with pytest.raises(StreamClosedError) as caught:
            next(stream)
        stream.close()
    assert "code 1001, going away" in str(caught.value)
    assert closes == [1]


def test_server_close_with_reconnect_resyncs() -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(snapshot(f"gen{n}"))
        if n == 1:
            await ws.close(code=1012, message=b"restarting")

    events: List[StreamEvent] = []
    with ScriptedServer(script) as server:
        stream = stream_for(server, on_event=events.append)
        deadline = time.monotonic() + 30
        while len(events) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        stream.close()
    assert [(e.ids, e.snapshot, e.resync) for e in events] == [(["gen1"], True, False), (["gen2"], True, True)]


# --------------------------------------------------------------------------- keep-alive
def test_a_peer_that_stops_answering_pings_is_noticed() -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(snapshot("a"))  # then silence: pings are read but never answered

    with ScriptedServer(script, autoping=False) as server:
        stream = stream_for(server, reconnect=False, ping_interval=0.05, ping_timeout=0.15)
        next(stream)
        started = time.monotonic()
        with pytest.raises(StreamClosedError) as caught:
            next(stream)
        stream.close()
    assert "no answer to a ping within 0.15 s" in str(caught.value)
    # the peer stays silent for ever: the keep-alive ended the wait (the bound catches a hang)
    assert time.monotonic() - started < 20


def test_answered_pings_keep_an_idle_connection_open() -> None:
    answered: List[bytes] = []

    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(snapshot("a"))
        async for message in ws:  # nothing but pongs from here on
            if message.type == WSMsgType.PING:
                await ws.pong(message.data)
                answered.append(message.data)

    errors: List[Exception] = []
    with ScriptedServer(script, autoping=False) as server:
        # the client has one ping out at a time and sends the next only once something arrived:
        # five pings on one connection mean it took four pongs as signs of life (the 30 s
        # ping_timeout never runs out, however slow the machine is to answer)
        stream = stream_for(server, ping_interval=0.03, ping_timeout=30, on_error=errors.append)
        stream.start()
        until(lambda: len(answered) >= 5, what="five pings answered")
        assert stream.connected and stream.connections == 1
        stream.close()
    assert errors == [] and server.handshakes and len(server.handshakes) == 1


# --------------------------------------------------------------------------- handshake
def test_handshake_carries_configured_and_per_call_headers_and_keeps_the_base_path() -> None:
    async def script(ws: web.WebSocketResponse, n: int) -> None:
        await ws.send_str(snapshot())

    with ScriptedServer(script, path="/base" + IDENTIFIERS_PATH) as server:
        config = Configuration(host=server.url + "/base", api_key={"application": "app-123"})
        with ApiClient(config) as client:
            client.set_default_header("X-Default", "d")
            api = ConversationsApi(client)
            with api.conversations_stream_identifiers(_headers={"X-Trace": "t1", "X-Default": "override"}) as s:
                assert s.url == f"ws://127.0.0.1:{server.port}/base{IDENTIFIERS_PATH}"
                next(s)
    headers = server.handshakes[0]
    assert headers["X-Application-ID"] == "app-123"
    assert headers["User-Agent"] == client.user_agent
    assert headers["X-Trace"] == "t1" and headers["X-Default"] == "override"
    assert headers["Upgrade"].lower() == "websocket"


# --------------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def tls() -> Iterator[Dict[str, Any]]:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    with ca.cert_pem.tempfile() as ca_file:
        yield {"ca": ca, "ca_file": ca_file, "server_context": server_context}


def test_wss_with_the_configured_ca(tls: Dict[str, Any]) -> None:
    with Emulator(ssl_context=tls["server_context"], seed_conversations=2) as emu:
        client = make_client(emu.url, ssl_ca_cert=tls["ca_file"])
        with IdentifiersStream(client) as stream:
            assert stream.url.startswith("wss://")
            assert len(next(stream).iterable) == 2
        data_client = make_client(emu.url, ca_cert_data=tls["ca"].cert_pem.bytes().decode())
        with IdentifiersStream(data_client) as stream:
            assert len(next(stream).iterable) == 2
        unverified = make_client(emu.url, verify_ssl=False)
        with IdentifiersStream(unverified) as stream:
            assert len(next(stream).iterable) == 2


def test_wss_rejects_an_unknown_certificate(tls: Dict[str, Any]) -> None:
    with Emulator(ssl_context=tls["server_context"]) as emu, pytest.raises(ApiConnectionError) as caught:
        IdentifiersStream(make_client(emu.url))
    assert "TLS handshake" in str(caught.value)
    assert isinstance(caught.value.__cause__, ssl.SSLError)


def test_wss_hostname_checking_and_server_name(tls: Dict[str, Any]) -> None:
    other = tls["ca"].issue_cert("pieces.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.configure_cert(context)
    with Emulator(ssl_context=context) as emu:
        with pytest.raises(ApiConnectionError):
            IdentifiersStream(make_client(emu.url, ssl_ca_cert=tls["ca_file"]))
        named = make_client(emu.url, ssl_ca_cert=tls["ca_file"], tls_server_name="pieces.example")
        with IdentifiersStream(named) as stream:
            next(stream)
        unchecked = make_client(emu.url, ssl_ca_cert=tls["ca_file"], assert_hostname=False)
        with IdentifiersStream(unchecked) as stream:
            next(stream)


# --------------------------------------------------------------------------- proxy
def test_http_proxy_tunnel_with_credentials_and_headers() -> None:
    with Relay() as proxy, Emulator(seed_conversations=1) as emu:
        port = emu.port
        client = make_client(
            emu.url, proxy=f"http://user:p%40ss@127.0.0.1:{proxy.port}", proxy_headers={"X-Proxy-Tag": "7"}
        )
        with IdentifiersStream(client) as stream:
            assert len(next(stream).iterable) == 1
    head = proxy.heads[0]
    assert head.startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n")
    token = base64.b64encode(b"user:p@ss").decode()
    assert f"Proxy-Authorization: Basic {token}" in head
    assert "X-Proxy-Tag: 7" in head


def test_http_proxy_with_credentials_only_and_no_proxy_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # ignored: the configured proxy is used, as for HTTP calls
    with Relay() as proxy, Emulator(seed_conversations=2) as emu:
        port = emu.port
        client = make_client(emu.url, proxy=f"http://user:p%40ss@127.0.0.1:{proxy.port}")
        with IdentifiersStream(client) as stream:
            assert len(next(stream).iterable) == 2
    assert len(proxy.heads) == 1
    head = proxy.heads[0]
    assert head.startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n")
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'user:p@ss').decode()}" in head


@pytest.mark.parametrize("with_headers", [False, True], ids=["plain", "proxy-headers"])
def test_a_proxy_that_refuses_the_tunnel_is_a_connection_error(with_headers: bool) -> None:
    with Relay(refuse=True) as proxy:
        client = make_client(
            "http://127.0.0.1:9", proxy=f"http://127.0.0.1:{proxy.port}",
            proxy_headers={"X-Proxy-Tag": "1"} if with_headers else None,
        )
        with pytest.raises(ApiConnectionError) as caught:
            IdentifiersStream(client)
    text = str(caught.value)
    assert f"The proxy http://127.0.0.1:{proxy.port} refused to open a tunnel to 127.0.0.1:9" in text
    assert "407" in text


def test_proxy_environment_variables_are_ignored_without_a_configured_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with Relay(refuse=True) as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with Emulator(seed_conversations=1) as emu, IdentifiersStream(make_client(emu.url)) as stream:
            assert len(next(stream).iterable) == 1
    assert proxy.heads == []


def test_wss_through_a_proxy_keeps_the_tls_settings(tls: Dict[str, Any]) -> None:
    other = tls["ca"].issue_cert("pieces.example")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.configure_cert(context)
    with Relay() as proxy, Emulator(ssl_context=context, seed_conversations=1) as emu:
        settings = {"ssl_ca_cert": tls["ca_file"], "proxy": proxy.url}
        with pytest.raises(ApiConnectionError, match="TLS handshake"):
            IdentifiersStream(make_client(emu.url, **settings))
        for extra in ({"tls_server_name": "pieces.example"}, {"proxy_headers": {"X-Proxy-Tag": "2"},
                                                               "tls_server_name": "pieces.example"}):
            with IdentifiersStream(make_client(emu.url, **settings, **extra)) as stream:
                assert stream.url.startswith("wss://") and len(next(stream).iterable) == 1
    assert len(proxy.heads) == 3


# --------------------------------------------------------------------------- close during an attempt
@pytest.mark.parametrize("proxied", [False, True], ids=["direct", "proxy"])
def test_close_ends_a_reconnect_attempt_that_gets_no_answer(proxied: bool) -> None:
    """The reconnect attempt reaches a peer that accepts TCP and never answers (the handshake, or
    the proxy's reply to CONNECT); close() ends the attempt, not connect_timeout (30 s)."""
    with Emulator(seed_conversations=1) as emu, Relay(None if proxied else ("127.0.0.1", emu.port)) as relay:
        client = make_client(emu.url, proxy=relay.url) if proxied else make_client(relay.url)
        closed = threading.Event()
        stream = IdentifiersStream(client, on_message=lambda _m: None, on_close=closed.set,
                                   connect_timeout=30, initial_backoff=0.01, max_backoff=0.01)
        relay.silent = True  # every later connection hangs
        assert emu.drop_websockets() == 1
        deadline = time.monotonic() + 30
        while relay.connections < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert relay.connections == 2 and not stream.connected  # an attempt is waiting for an answer
        stream.close()
        # connect_timeout is 30 s: an attempt that ends within 10 s was ended by close()
        assert stream.join(10), "the connection attempt went on after close()"
        assert closed.is_set()
        assert relay.connections == 2  # and no further attempt was made


def test_close_interrupts_a_tcp_connect_that_gets_no_answer() -> None:
    """A listener whose backlog is full drops new SYNs, so connect() itself hangs; shutting the
    socket down from close() must end it."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(4)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    link = Link()
    connector = Connector(make_client(f"http://127.0.0.1:{port}"), IDENTIFIERS_PATH, None, 30)
    failed: List[BaseException] = []

    def attempt() -> None:
        try:
            connector.open(link)
        except BaseException as exc:
            failed.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    try:
        worker.start()
        deadline = time.monotonic() + 30
        while link.pending is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)  # inside connect() (or, if the kernel took the SYN after all, the handshake)
        started = time.monotonic()
        link.shutdown()
        worker.join(10)
        # connect_timeout is 30 s: only the shutdown can end the attempt within 10 s
        assert not worker.is_alive() and time.monotonic() - started < 10
        assert len(failed) == 1 and isinstance(failed[0], (ApiConnectionError, Closing))
    finally:
        for sock in (*fillers, listener):
            sock.close()
