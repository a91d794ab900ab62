"""The asyncio client depends on no library's internals: it runs with no aiohttp at all, its
source touches no private module or underscore name of a dependency, and the sockets of a
client leaked past its event loop are closed, TLS ones included.

Each client test runs in a fresh event loop (``asyncio.run``); warnings are errors (pyproject.toml).
"""

from __future__ import annotations

import ast
import asyncio
import gc
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import warnings
from typing import Any, Dict, Iterator, List, Optional, Set

import pytest
import trustme
from testkit import ROOT

from pieces_os_client import Configuration
from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi

#: the modules of the asyncio client (HTTP and stream) and the I/O-free reader it drives
SOURCES = [*sorted((ROOT / "pieces_os_client" / "aio").glob("*.py")), ROOT / "pieces_os_client" / "_core" / "http11.py"]
#: names the asyncio client once reached into (aiohttp's, urllib3's, asyncio's): none may come back
FORMER_PRIVATE = ("_container", "_sock", "_conns", "_acquired", "_factory", "_retry_connection", "_fp",
                  "_original_response", "start_timeout(")


def _third_party_names(tree: ast.Module) -> Dict[str, str]:
    """Local name -> the module it came from, for every import of a package other than this SDK."""
    names: Dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("pieces_os_client"):
                    names[(alias.asname or alias.name).split(".")[0]] = alias.name
        elif (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
              and not node.module.startswith("pieces_os_client")):
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def test_no_private_name_of_a_dependency_in_the_asyncio_client() -> None:
    problems: List[str] = []
    for path in SOURCES:
        text = path.read_text()
        tree = ast.parse(text)
        imported = _third_party_names(tree)
        for origin in imported.values():
            parts = origin.split(".")
            if parts[0] == "aiohttp":
                problems.append(f"{path.name} imports {origin}: the asyncio client needs no aiohttp")
            if any(part.startswith("_") and not part.startswith("__") for part in parts):
                problems.append(f"{path.name} imports the private name {origin}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in imported):
                problems.append(f"{path.name}:{node.lineno} reads {node.value.id}.{node.attr}")
        for name in FORMER_PRIVATE:
            if f".{name}" in text:
                problems.append(f"{path.name} uses .{name}")
    assert not problems, "\n".join(problems)


def test_the_asyncio_client_runs_without_aiohttp_installed() -> None:
    # aiohttp made unimportable before anything loads: the client, its errors and TLS setup load anyway
    script = textwrap.dedent("""
        import sys
        sys.modules["aiohttp"] = None
        import asyncio, socket, threading
        from pieces_os_client import Configuration
        from pieces_os_client.aio import AsyncApiClient, AsyncConversationsApi
        body = b'{"iterable":[{"id":"a"}]}'
        listener = socket.create_server(("127.0.0.1", 0))
        def serve():
            conn, _ = listener.accept()
            with conn:
                for _ in range(2):  # two calls, one kept-alive connection
                    head = b""
                    while b"\\r\\n\\r\\n" not in head:
                        head += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                                 b"Transfer-Encoding: chunked\\r\\n\\r\\n5\\r\\n" + body[:5] + b"\\r\\n"
                                 + b"%x\\r\\n" % (len(body) - 5) + body[5:] + b"\\r\\n0\\r\\n\\r\\n")
        threading.Thread(target=serve, daemon=True).start()
        async def main():
            host = "http://127.0.0.1:%d" % listener.getsockname()[1]
            async with AsyncApiClient(Configuration(host=host, max_retries=0)) as client:
                api = AsyncConversationsApi(client)
                for _ in range(2):
                    assert [c.id for c in (await api.conversations_identifiers_snapshot()).iterable] == ["a"]
        asyncio.run(main())
        assert "aiohttp" not in {name for name, module in sys.modules.items() if module is not None}
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# ----------------------------------------------------------------------------- leaked sockets
class WatchingServer:
    """Answers each request with an empty identifiers list, keeps the connection, and records
    when the client's end of it closes (plain TCP or TLS)."""

    BODY = b'{"iterable":[]}'

    def __init__(self, context: Optional[ssl.SSLContext] = None) -> None:
        self._context = context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        scheme = "https" if context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"
        self.closed_by_client = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> WatchingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except OSError:
                continue
            raw.settimeout(10)
            try:
                conn = self._context.wrap_socket(raw, server_side=True) if self._context else raw
                with conn:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(self.BODY), self.BODY))
                    conn.settimeout(0.05)
                    while not self._stop.is_set():  # until the client's socket closes (EOF or reset)
                        try:
                            if not conn.recv(65536):
                                break
                        except (TimeoutError, ssl.SSLWantReadError):
                            continue
                        except (OSError, ssl.SSLError):
                            break
                    if not self._stop.is_set():
                        self.closed_by_client.set()
            except (OSError, ssl.SSLError):
                continue


@pytest.fixture(scope="module")
def tls() -> Iterator[Any]:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    with ca.cert_pem.tempfile() as ca_file:
        yield server, ca_file


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("ending", ["collected", "aclose-in-another-loop"])
def test_the_sockets_of_a_client_whose_loop_is_gone_are_closed(secure: bool, ending: str, tls: Any) -> None:
    server_context, ca_file = tls
    with WatchingServer(server_context if secure else None) as server:
        settings: Dict[str, Any] = {"ssl_ca_cert": ca_file} if secure else {}
        client = AsyncApiClient(Configuration(host=server.url, max_retries=0, **settings))

        async def call() -> None:
            assert (await AsyncConversationsApi(client).conversations_identifiers_snapshot()).iterable == []

        asyncio.run(call())  # the loop closes; the kept-alive connection stays open in the pool
        assert not server.closed_by_client.wait(0.2)
        caught: Set[str] = set()
        if ending == "collected":
            with warnings.catch_warnings(record=True) as records:
                warnings.simplefilter("always")
                del client
                gc.collect()
            caught = {str(record.message).split(" ")[0] for record in records}
            assert caught == {"AsyncApiClient"}, caught
        else:
            asyncio.run(client.aclose())
        assert server.closed_by_client.wait(10), "the leaked connection's socket was left open"

