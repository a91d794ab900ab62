"""Helpers shared by the tests: raw HTTP against the emulator, and an SDK client for a host."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any, Dict, Mapping, NamedTuple, Optional

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.emulator import Emulator

DEMO_ASSET = "2254f2c8-5797-40e8-ac56-41166dc0e159"


class Reply(NamedTuple):
    status: int
    headers: Dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self.headers
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def call(
    emu: Emulator,
    method: str,
    path: str,
    body: Optional[bytes] = None,
    headers: Optional[Mapping[str, str]] = None,
    timeout: float = 5.0,
) -> Reply:
    """Send one request over a fresh http.client connection; the path goes on the wire as given."""
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        conn.close()


def raw_exchange(emu: Emulator, request: bytes, timeout: float = 5.0) -> bytes:
    """Write raw bytes to the emulator and read until it closes the connection."""
    with socket.create_connection(("127.0.0.1", emu.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def post_json(emu: Emulator, path: str, payload: Any) -> Reply:
    return call(emu, "POST", path, json.dumps(payload).encode(), {"Content-Type": "application/json"})


@contextlib.contextmanager
def api_for(host: str, **settings: Any) -> Iterator[ConversationsApi]:
    """A ConversationsApi on its own ApiClient for ``host``, closed on exit."""
    with ApiClient(Configuration(host=host, **settings)) as client:
        yield ConversationsApi(client)
