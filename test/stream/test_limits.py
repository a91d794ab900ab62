"""The identifiers stream against a hostile WebSocket server: oversized and fragmented messages,
large malformed messages. The server is a raw socket on 127.0.0.1 that writes frames byte by byte
as each test scripts them, so sizes and fragmentation are exactly what the test says.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import textwrap
import tracemalloc
from typing import Dict, Iterator, List, Optional

import pytest
from testkit.memory import OWN_PEAK_MIB, needs_vmhwm
from testkit.ws import RawServer, frame, frame_header

from pieces_os_client.api_client import ApiClient
from pieces_os_client.configuration import Configuration
from pieces_os_client.exceptions import ApiConnectionError, StreamClosedError, StreamError
from pieces_os_client.stream import IdentifiersStream, StreamEvent

MiB = 1024 * 1024


def snapshot(*ids: str) -> bytes:
    return json.dumps({"iterable": [{"conversation": {"id": i}} for i in ids]}).encode()


def close_codes(data: bytes) -> List[int]:
    """Status codes of the close frames in what a client sent (client frames are masked)."""
    codes, at = [], 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length, at = int.from_bytes(data[at:at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at:at + 8], "big"), at + 8
        mask, at = data[at:at + 4], at + 4
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[at:at + length]))
        at += length
        if opcode == 0x8 and len(payload) >= 2:
            codes.append(int.from_bytes(payload[:2], "big"))
    return codes


def make_stream(server: RawServer, config: Optional[Dict[str, object]] = None, **options: object) -> IdentifiersStream:
    configuration = Configuration(host=server.url)
    for name, value in (config or {}).items():
        setattr(configuration, name, value)
    options.setdefault("initial_backoff", 0.02)
    options.setdefault("max_backoff", 0.1)
    return IdentifiersStream(ApiClient(configuration), **options)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- one huge frame
@needs_vmhwm
def test_a_256_mb_frame_is_refused_from_its_header_in_bounded_memory() -> None:
    """Measured before the bound: ~2.8 GB RSS for this frame. Now the payload is never read."""
    size = 256 * MiB
    sent = []

    def script(sock: socket.socket, n: int) -> None:
        sock.sendall(frame_header(size))
        block = b"x" * MiB
        for _ in range(size // MiB):  # the client stops reading: this ends with an OSError
            sock.sendall(block)
            sent.append(len(block))

    code = textwrap.dedent(
        """
        import json, sys
        from pieces_os_client import ApiClient, Configuration
        from pieces_os_client.exceptions import StreamClosedError
        from pieces_os_client.stream import IdentifiersStream

        errors = []
        stream = IdentifiersStream(ApiClient(Configuration(host=sys.argv[1])), on_error=errors.append)
        outcome = None
        try:
            next(stream)
        except StreamClosedError as exc:
            outcome = str(exc)
        peak_mb = own_peak_mib()
        print(json.dumps({"peak_mb": peak_mb, "outcome": outcome, "closed": stream.closed,
                          "connections": stream.connections,
                          "errors": [[type(e).__name__, str(e)] for e in errors]}))
        """
    )
    with RawServer(script) as server:
        run = subprocess.run([sys.executable, "-c", OWN_PEAK_MIB + code, server.url],
                             capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout)
    assert result["peak_mb"] < 800, result
    assert sum(sent) < size  # the client did not drain the frame
    assert 1009 in close_codes(bytes(server.received[1]))
    kinds = [kind for kind, _ in result["errors"]]
    assert kinds == ["StreamError", "StreamClosedError"]
    message = result["errors"][0][1]
    assert f"at least {size} bytes" in message and f"limit of {32 * MiB} bytes" in message
    assert "max_message_size" in message and "Configuration.stream_max_message_size" in message
    # the opening snapshot was too large: a new connection would get it again, so the stream ends
    assert result["outcome"] is not None and "max_message_size" in result["outcome"]
    assert result["closed"] and result["connections"] == 1 and server.connections == 1


# --------------------------------------------------------------------------- fragments
def test_fragments_count_towards_the_limit_and_the_stream_resyncs() -> None:
    piece = b" " * 400

    def script(sock: socket.socket, n: int) -> None:
        sock.sendall(frame(snapshot(f"gen{n}")))
        if n == 1:  # 3 x 400 bytes in one fragmented message: each frame fits, the message does not
            sock.sendall(frame(piece, fin=False) + frame(piece, opcode=0x0, fin=False)
                         + frame(piece, opcode=0x0, fin=True))

    errors: List[Exception] = []
    with RawServer(script) as server, make_stream(server, max_message_size=1000, on_error=errors.append) as stream:
        events = stream.events()
        first, second = next(events), next(events)
    assert (first.ids, first.connection) == (["gen1"], 1)
    assert second.resync and second.ids == ["gen2"]
    assert [type(e) for e in errors] == [StreamError, ApiConnectionError]
    assert "at least 1200 bytes, over the limit of 1000 bytes" in str(errors[0])
    assert 1009 in close_codes(bytes(server.received[1]))


def test_a_message_at_the_limit_passes_and_none_lifts_the_limit() -> None:
    body = snapshot(*[f"c{i:05}" for i in range(20000)])  # ~0.6 MB, in 64 KiB fragments
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)]

    def script(sock: socket.socket, n: int) -> None:
        for index, chunk in enumerate(chunks):
            sock.sendall(frame(chunk, opcode=0x1 if index == 0 else 0x0, fin=index == len(chunks) - 1))

    for options in ({"max_message_size": len(body)}, {"max_message_size": None}):
        with RawServer(script) as server, make_stream(server, config={"stream_max_message_size": 1000},
                                                      **options) as stream:
            event = next(stream.events())
        assert len(event.ids) == 20000 and event.ids[-1] == "c19999"


def test_the_configuration_sets_the_default_limit() -> None:
    def script(sock: socket.socket, n: int) -> None:
        sock.sendall(frame(snapshot(*[f"id-{i}" for i in range(100)])))

    with RawServer(script) as server:
        stream = make_stream(server, config={"stream_max_message_size": 1000})
        with pytest.raises(StreamClosedError) as caught:
            next(stream)
        stream.close()
    cause = caught.value.__cause__
    assert isinstance(cause, StreamError)
    assert "limit of 1000 bytes" in str(cause) and "Configuration.stream_max_message_size" in str(cause)
    assert server.connections == 1  # no reconnect loop on a snapshot that cannot fit


# --------------------------------------------------------------------------- malformed
def test_a_large_malformed_message_is_reported_by_a_short_prefix(caplog: pytest.LogCaptureFixture) -> None:
    """Reporting used to decode, split and join the whole message to show 80 characters."""
    bad = b"{oops " + b"x " * (4 * MiB)  # 8 MiB, not JSON

    def script(sock: socket.socket, n: int) -> None:
        sock.sendall(frame(snapshot("a")) + frame(bad) + frame(snapshot("b")))

    errors: List[Exception] = []
    caplog.set_level(logging.WARNING, logger="pieces_os_client")
    with RawServer(script) as server, make_stream(server, on_error=errors.append) as stream:
        events: Iterator[StreamEvent] = stream.events()
        assert next(events).ids == ["a"]
        tracemalloc.start()
        try:
            second = next(events)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert second.ids == ["b"]
    # the message itself is held once while read; nothing proportional to it is built to report it
    assert peak < 2 * len(bad), f"{peak / MiB:.1f} MiB for an {len(bad) / MiB:.0f} MiB message"
    assert len(errors) == 1 and isinstance(errors[0], StreamError)
    text = str(errors[0])
    assert len(text) < 600 and "{oops x x x" in text and f"{len(bad)} bytes" in text
    logged = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
    assert len(logged) == 1 and len(logged[0]) < 600
