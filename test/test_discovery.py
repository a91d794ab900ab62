"""Finding a running Pieces OS: the environment variable, the port scan, the health check."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.discovery import CANDIDATE_PORTS, ENV_VAR, find_pieces_os, is_pieces_os
from pieces_os_client.emulator import Emulator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def not_pieces() -> Iterator[int]:
    """A port that accepts connections and answers every request with 404."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(2)
    server.close()


def test_candidate_ports_cover_every_known_pieces_os_port() -> None:
    assert CANDIDATE_PORTS[:34] == tuple(range(39300, 39334))
    assert 1000 in CANDIDATE_PORTS and 5323 in CANDIDATE_PORTS


def test_scan_skips_closed_and_foreign_ports_and_finds_the_emulator(
    emu: Emulator, not_pieces: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    ports = [_free_port(), not_pieces, emu.port]
    assert find_pieces_os(ports=ports, host="127.0.0.1") == f"http://127.0.0.1:{emu.port}"
    assert is_pieces_os(emu.url)
    assert not is_pieces_os(f"http://127.0.0.1:{not_pieces}")


def test_scan_finds_nothing(not_pieces: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert find_pieces_os(ports=[_free_port(), not_pieces], host="127.0.0.1") is None


def test_environment_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "http://127.0.0.1:45678/")
    assert find_pieces_os(ports=[]) == "http://127.0.0.1:45678"


def test_configuration_without_host_discovers_on_first_use(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, emu.url)
    config = Configuration()
    assert config.discover and not config.host_was_given
    with ApiClient(config) as client:
        created = ConversationsApi(client).conversations_create_specific_conversation()
    assert config.host == emu.url
    assert created.id in emu.conversation_ids()


def test_a_given_host_turns_discovery_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "http://127.0.0.1:1")
    config = Configuration(host="http://127.0.0.1:2/")
    assert (config.host, config.discover, config.host_was_given) == ("http://127.0.0.1:2", False, True)
    config = Configuration(discover=False)
    assert config.host == "http://localhost:1000"
    config.host = "http://127.0.0.1:3"
    assert config.host == "http://127.0.0.1:3" and not config.discover


def test_nothing_found_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    import pieces_os_client.configuration as configuration_module
    from pieces_os_client.exceptions import ApiConnectionError

    monkeypatch.delenv(ENV_VAR, raising=False)
    closed = f"http://127.0.0.1:{_free_port()}"
    # discovery finds nothing; the fallback host is a closed port (the real default, 1000, may be taken)
    monkeypatch.setattr(configuration_module, "DEFAULT_HOST", closed)
    monkeypatch.setattr("pieces_os_client.discovery.find_pieces_os", lambda: None)
    with ApiClient(Configuration(max_retries=0)) as client, pytest.raises(ApiConnectionError) as info:
        ConversationsApi(client).conversations_identifiers_snapshot()
    message = str(info.value)
    assert message.startswith(f"Could not connect to Pieces OS at {closed}: ")
    assert "No running Pieces OS was found either (looked at PIECES_OS_URL and ports 39300-39333" in message
    assert info.value.host == closed
