"""Finding a running Pieces OS: the environment variable, the port file, the port scan, the health check.

Every server here is real and on loopback: the emulator, or a small raw socket server that
answers every request with one fixed response (a web server that is not Pieces OS).
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import pytest
from testkit.hostile import HOSTILE
from testkit.ws import HeadServer

from pieces_os_client import ApiClient, Configuration, ConversationsApi
from pieces_os_client.discovery import (
    CANDIDATE_PORTS,
    ENV_VAR,
    DiscoveryTrace,
    check_health,
    find_pieces_os,
    is_pieces_os,
    port_file_paths,
    read_port_file,
    searched_places,
    trace_discovery,
)
from pieces_os_client.emulator import Emulator
from pieces_os_client.exceptions import ApiConnectionError, ApiValueError

NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# A web server that answers 200 to everything, health check included, with a page of its own.
ANY_PAGE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 19\r\nConnection: close\r\n\r\n"
    b"<html>hello</html>\n"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def not_pieces(raw_server: Callable[[Optional[bytes]], int]) -> int:
    """A port that accepts connections and answers every request with 404."""
    return raw_server(NOT_FOUND)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home directory and no XDG data dir (so no real port file is read), no PIECES_OS_URL.

    Every test that lets discovery read the port files needs it: on a machine running Pieces
    OS, the real port file names it, and it would be found before anything the test set up.
    """
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    return tmp_path


def write_port_file(home: Path, text: str) -> Path:
    path = port_file_paths(home)[0]
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_candidate_ports_cover_every_known_pieces_os_port() -> None:
    assert CANDIDATE_PORTS[:34] == tuple(range(39300, 39334))
    assert 1000 in CANDIDATE_PORTS and 5323 in CANDIDATE_PORTS


def test_scan_skips_closed_and_foreign_ports_and_finds_the_emulator(emu: Emulator, not_pieces: int, home: Path) -> None:
    ports = [_free_port(), not_pieces, emu.port]
    assert find_pieces_os(ports=ports, host="127.0.0.1") == f"http://127.0.0.1:{emu.port}"
    assert is_pieces_os(emu.url)
    assert not is_pieces_os(f"http://127.0.0.1:{not_pieces}")


def test_scan_finds_nothing(not_pieces: int, home: Path) -> None:
    # the empty home matters: a real Pieces OS's port file would be found before any scan
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
    monkeypatch.setattr("pieces_os_client.discovery.find_pieces_os", lambda **_: None)
    with ApiClient(Configuration(max_retries=0)) as client, pytest.raises(ApiConnectionError) as info:
        ConversationsApi(client).conversations_identifiers_snapshot()
    message = str(info.value)
    assert message.startswith(f"Could not connect to Pieces OS at {closed}: ")
    assert "No running Pieces OS was found either (looked at PIECES_OS_URL, the port file " in message
    assert "and ports 39300-39333, 1000 and 5323" in message
    assert info.value.host == closed


# ---------------------------------------------------------------- a candidate must look like Pieces OS
def test_a_web_server_that_answers_200_to_everything_is_not_pieces_os(
    emu: Emulator, raw_server: Callable[[Optional[bytes]], int], home: Path
) -> None:
    page = raw_server(ANY_PAGE)
    check = check_health(f"http://127.0.0.1:{page}")
    assert (check.answered, check.looks_like_pieces_os) == (True, False)
    assert "answered 200 OK with b'<html>hello</html>" in check.detail
    assert find_pieces_os(ports=[page, emu.port], host="127.0.0.1") == f"http://127.0.0.1:{emu.port}"


def test_the_emulator_answers_health_as_pieces_os_does(emu: Emulator) -> None:
    check = check_health(emu.url)
    assert check == (emu.url, True, True, "answered 200 ok")


def test_nothing_found_names_the_servers_passed_over(
    raw_server: Callable[[Optional[bytes]], int], not_pieces: int, home: Path
) -> None:
    page = raw_server(ANY_PAGE)
    assert find_pieces_os(ports=[_free_port(), not_pieces, page], host="127.0.0.1") is None
    places = searched_places()
    assert places.startswith("PIECES_OS_URL, the port file ~/Documents/com.pieces.os/production/Config/.port.txt")
    assert f"port {not_pieces}: GET /.well-known/health answered 404 Not Found, not Pieces OS's 200 ok" in places
    assert f"port {page}: GET /.well-known/health answered 200 OK with b'<html>" in places


def test_an_environment_variable_naming_a_server_that_is_not_pieces_os_says_so(
    not_pieces: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{not_pieces}"
    monkeypatch.setenv(ENV_VAR, url)
    with pytest.raises(ApiConnectionError) as info:
        find_pieces_os(ports=[])
    assert str(info.value) == (
        f"PIECES_OS_URL is {url}, but the server there does not look like Pieces OS: GET /.well-known/health "
        "answered 404 Not Found, not Pieces OS's 200 ok. Point PIECES_OS_URL at Pieces OS (or the emulator), "
        "or unset it to let the client search."
    )
    # the same error reaches a caller who relies on discovery, on the first call
    with ApiClient(Configuration()) as client, pytest.raises(ApiConnectionError, match="does not look like Pieces OS"):
        ConversationsApi(client).conversations_identifiers_snapshot()


# ---------------------------------------------------------------- the port file Pieces OS writes
def test_port_file_locations_per_platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tail = Path("com.pieces.os", "production", "Config", ".port.txt")
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    assert port_file_paths(tmp_path, "darwin") == [tmp_path / "Library" / tail]
    assert port_file_paths(tmp_path, "win32") == [tmp_path / "Documents" / tail]
    assert port_file_paths(tmp_path, "linux") == [tmp_path / "Documents" / tail, tmp_path / ".local/share" / tail]
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert port_file_paths(tmp_path, "linux")[1] == tmp_path / "data" / tail


@pytest.mark.parametrize(
    ("text", "port"), [("39301", 39301), ("39301\n", 39301), ("", None), ("port", None), ("0", None)]
)
def test_reading_the_port_file(home: Path, text: str, port: int | None) -> None:
    assert read_port_file(write_port_file(home, text)) == port


def test_the_port_file_wins_over_the_scan(emu: Emulator, home: Path) -> None:
    with Emulator() as named:
        write_port_file(home, f"{named.port}\n")
        assert find_pieces_os(ports=[emu.port], host="127.0.0.1") == f"http://127.0.0.1:{named.port}"
        # and Configuration() with no host goes there (on "localhost", as Pieces OS is addressed)
        config = Configuration()
        with ApiClient(config) as client:
            created = ConversationsApi(client).conversations_create_specific_conversation()
        assert config.host == f"http://localhost:{named.port}"
        assert created.id in named.conversation_ids() and created.id not in emu.conversation_ids()


def test_a_stale_port_file_falls_back_to_the_scan(emu: Emulator, not_pieces: int, home: Path) -> None:
    write_port_file(home, str(not_pieces))
    assert find_pieces_os(ports=[emu.port], host="127.0.0.1") == f"http://127.0.0.1:{emu.port}"
    port_file_paths(home)[0].write_text(str(_free_port()))  # nothing listens there any more
    assert find_pieces_os(ports=[emu.port], host="127.0.0.1") == f"http://127.0.0.1:{emu.port}"


# ---------------------------------------------------------------- every wait has an end
# A server that trickles its answer (or says nothing) must cost a probe its timeout (0.5 s by
# default), never more; the whole search ends within its own total. HANG only catches a probe
# that waits on, as one held for the 13 minutes a 4 KiB trickle takes would.
HANG = 30.0


def _bounded(work: Callable[[], object]) -> tuple[object, float]:
    """``work()``'s result (or the exception it raised) and its duration, run in a worker thread
    that must end within HANG seconds."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:  # handed to the test
            outcome.append(exc)

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(HANG)
    assert not worker.is_alive(), f"still waiting after {HANG} s"
    return outcome[0], time.monotonic() - started


@pytest.mark.parametrize("kind", ["trickling", "trickling_head"])
def test_a_hostile_server_at_pieces_os_url_costs_the_first_call_one_probe(
    kind: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pieces_os_client.discovery as discovery_module

    # the first call's search, with 3 s for its probe instead of 0.5 s: the trickling server's
    # 200 head (sent at once) arrives within it on any machine, and neither its 13-minute body
    # nor the other's 13-minute head can finish, so each kind has one outcome
    monkeypatch.setattr(discovery_module, "find_pieces_os", functools.partial(find_pieces_os, timeout=3))
    with HeadServer(HOSTILE[kind]) as server:
        monkeypatch.setenv(ENV_VAR, server.url)
        config = Configuration()
        found, seconds = _bounded(lambda: config.host)
    print(f"{kind}: Configuration().host took {seconds:.3f} s")
    if kind == "trickling":
        # a 200 came, then a body too slow to finish: some server, but not Pieces OS
        assert isinstance(found, ApiConnectionError), found
        assert "does not look like Pieces OS: GET /.well-known/health answered 200 OK, but the body did not " \
               "finish within 3 s" in str(found)
    else:
        # no complete answer in time: the user's choice stands, as for a Pieces OS still starting
        assert found == server.url


def test_each_probe_ends_within_its_timeout_and_says_how_it_ended(emu: Emulator, home: Path) -> None:
    servers = [HeadServer(HOSTILE[kind]) for kind in ("trickling", "trickling_head", "silent", "flooding")]
    with servers[0], servers[1], servers[2], servers[3]:
        ports = [server.port for server in servers] + [emu.port]
        # 2 s a probe: the heads the trickling and flooding servers send at once, and the
        # emulator's answer, arrive within it on a loaded machine too
        trace, seconds = _bounded(lambda: trace_discovery(ports, host="127.0.0.1", timeout=2, port_files=[],
                                                          total=None))
    print(f"scan past 4 hostile ports (2 s a probe): {seconds:.3f} s")
    assert isinstance(trace, DiscoveryTrace)
    outcomes = [(step.outcome, step.detail) for step in trace.steps[1:]]
    assert [outcome for outcome, _ in outcomes] == ["not_pieces_os", "no_answer", "no_answer", "not_pieces_os",
                                                    "pieces_os"]
    assert outcomes[0][1].startswith("GET /.well-known/health answered 200 OK, but the body did not finish "
                                     "within 2 s (")
    assert outcomes[1][1].startswith("the status line and headers did not finish within 2 s (")
    assert outcomes[2][1] == "no answer within 2 s"
    assert outcomes[3][1] == "GET /.well-known/health answered 200 OK with b'" + "x" * 40 + "', not Pieces OS's 200 ok"
    assert trace.url == emu.url


def test_the_whole_search_ends_within_its_total_and_says_what_it_left_untried(home: Path) -> None:
    servers = [HeadServer(HOSTILE["silent"]) for _ in range(5)]
    with servers[0], servers[1], servers[2], servers[3], servers[4]:
        ports = [server.port for server in servers]
        # a probe may take 5 s, the search 1 s: the first probe is cut to the search's end, so
        # it is the only one tried however slow the machine (with 0.5 s probes a second one
        # would get whatever a busy machine left of the second half)
        trace, seconds = _bounded(lambda: trace_discovery(ports, host="127.0.0.1", timeout=5, port_files=[],
                                                          total=1.0))
        assert isinstance(trace, DiscoveryTrace)
        print(f"search with total=1 over 5 silent ports: {seconds:.3f} s")
        outcomes = [step.outcome for step in trace.steps[1:]]
        assert outcomes == ["no_answer"] + ["out_of_time"] * 4, outcomes
        assert trace.steps[-1].detail == "not tried: the search's 1 s were used up"
        assert find_pieces_os(ports, host="127.0.0.1", port_files=[], total=0.3) is None
    untried = ", ".join(str(port) for port in ports[1:])  # one 0.5 s probe cut to 0.3 s, then none
    assert searched_places().endswith(
        f"; the search stopped after 0.3 s (discovery_timeout) before trying ports {untried}")


def test_discovery_timeout_bounds_the_search_of_the_first_call(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pieces_os_client.configuration as configuration_module

    closed = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setattr(configuration_module, "DEFAULT_HOST", closed)  # nothing found: the first call fails here
    with HeadServer(HOSTILE["silent"]) as silent_server:
        write_port_file(home, str(silent_server.port))  # the port file's probe uses up the whole search
        config = Configuration(discovery_timeout=0.3, max_retries=0)
        with ApiClient(config) as client, pytest.raises(ApiConnectionError) as info:
            ConversationsApi(client).conversations_identifiers_snapshot()
    assert Configuration().discovery_timeout == 5.0
    assert ("the search stopped after 0.3 s (discovery_timeout) before trying ports 39300-39333, 1000, 5323"
            in str(info.value))


# ---------------------------------------------------------------- PIECES_OS_URL must be a usable URL
@pytest.mark.parametrize(("value", "words"), [
    ("http://" + "a" * 300 + ":39300", "has a host name of 300 characters; DNS allows at most 253"),
    ("http://" + "a" * 70 + ".example:39300", "whose label 'aaaaaaaaaaaaaaaaaaaa...' is 70 characters long"),
    ("http://pieces..local:39300", "has an empty label in its host name"),
    ("localhost:39300", "is not an http:// or https:// URL with a host"),
    ("http://localhost:port", "is not a valid URL: Port could not be cast to integer value"),
])
def test_a_pieces_os_url_that_is_no_usable_url_is_an_api_value_error_naming_it(
    value: str, words: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, value)
    with ApiClient(Configuration()) as client, pytest.raises(ApiValueError) as info:
        ConversationsApi(client).conversations_identifiers_snapshot()
    message = str(info.value)
    assert message.startswith(f"The environment variable {ENV_VAR} '{value[:40]}")
    assert words in message and "codec" not in message
    assert "Set it to the URL of Pieces OS (for example http://localhost:39300), or unset it" in message
    steps, url = trace_discovery()  # the trace says the same, and does not raise
    assert url is None and [(s.outcome, words in s.detail) for s in steps] == [("invalid", True)]
