"""The ``pieces-os-client`` command line, run as users run it: ``python -m pieces_os_client ...``
in a subprocess, against the emulator (or against servers that are not Pieces OS).

Every run gets its own ``HOME`` (no port file from a real Pieces OS on this machine) and no
``PIECES_OS_URL``; doctor's port scan is limited with ``--ports`` to ports the test controls.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from testkit.cli import RUN_TIMEOUT, cli_env, named, on_terminal, one_line_error
from testkit.emulator import DEMO_ASSET

from pieces_os_client.discovery import ENV_VAR
from pieces_os_client.emulator import Emulator
from pieces_os_client.models.conversation import Conversation


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


NOT_PIECES = b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here\n"


# ------------------------------------------------------------------ start-up, help, usage
def test_help_imports_no_models_urllib3_or_pydantic() -> None:
    code = (
        "import sys\n"
        "from pieces_os_client.cli import main\n"
        "for argv in (['--help'], ['--version'], ['conversations', 'list', '--help'], ['doctor', '--help'],\n"
        "             ['conversations', 'frobnicate'], ['doctor', '--timeout', 'x']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in sys.modules if m.startswith(('pieces_os_client.models', 'urllib3', 'pydantic',\n"
        "         'pieces_os_client.api', 'pieces_os_client.configuration', 'websocket'))]\n"
        "print(heavy, file=sys.stderr)\n"
        "sys.exit(1 if heavy else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=RUN_TIMEOUT,
                            env=cli_env(Path.home()))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("argv", [
    ["doctor"], ["conversations", "list"], ["conversations", "show"], ["conversations", "export"],
    ["conversations", "watch"], ["conversations", "create"], ["conversations", "delete"], [],
])
def test_every_command_has_help_with_an_example(cli: Any, argv: list[str]) -> None:
    result = cli(*argv, "--help")
    assert result.returncode == 0, result.stderr
    assert "example" in result.stdout and "pieces-os-client" in result.stdout
    if argv:
        assert "--host" in result.stdout


def test_version_and_usage_errors(cli: Any) -> None:
    from pieces_os_client import __version__

    result = cli("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"pieces-os-client {__version__}")
    for argv in (["conversations"], ["frobnicate"], ["conversations", "list", "--host", "ftp://x"],
                 ["doctor", "--timeout", "-1"], ["doctor", "--ports", "70000"],
                 ["conversations", "export", "--format", "pdf", "--out", "x"]):
        result = cli(*argv)
        assert result.returncode == 2, (argv, result.stderr)
        assert result.stdout == "" and "Traceback" not in result.stderr
        assert "error:" in result.stderr


def test_emulator_subcommand_is_pieces_os_emulator(cli: Any) -> None:
    result = cli("emulator", "--help")
    assert result.returncode == 0
    assert "--seed-conversations" in result.stdout
    assert cli("emulator", "--port", "nope").returncode == 2


# ------------------------------------------------------------------ list
def test_list_newest_first_text_and_json(cli: Any, emu: Emulator) -> None:
    ids = named(emu, "first", "second", "third")
    emu.create_conversation(from_asset=DEMO_ASSET)
    result = cli("conversations", "list", "--json", "--host", emu.url)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows][1:] == ["third", "second", "first"]
    assert rows[0]["messages"] == 1 and rows[1]["messages"] == 0
    assert set(rows[0]) == {"id", "name", "type", "created", "updated", "messages"}
    assert rows[3]["id"] == ids[0] and rows[3]["type"] == "COPILOT"

    text = cli("conversations", "list", "--host", emu.url)
    assert text.returncode == 0 and text.stderr == ""
    lines = text.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "TYPE", "CREATED", "UPDATED", "MESSAGES"]
    assert lines[2].startswith(ids[2]) and "third" in lines[2]
    assert "\x1b" not in text.stdout


def test_list_cuts_names_to_the_width_but_never_in_json(cli: Any, emu: Emulator) -> None:
    long_name = "a long name " * 30
    named(emu, long_name, "evil\x1b[31mred\nline")
    narrow = cli("conversations", "list", "--host", emu.url, env={"COLUMNS": "120"})
    assert narrow.returncode == 0
    assert all(len(line) <= 120 for line in narrow.stdout.splitlines()), narrow.stdout
    assert "…" in narrow.stdout and long_name not in narrow.stdout
    assert "\x1b" not in narrow.stdout and "evil\\x1b[31mred\\nline" in narrow.stdout
    full = json.loads(cli("conversations", "list", "--json", "--host", emu.url, env={"COLUMNS": "40"}).stdout)
    assert long_name in [row["name"] for row in full]


def test_list_with_no_server_is_one_line_and_exit_1(cli: Any) -> None:
    port = _closed_port()
    result = cli("conversations", "list", "--host", f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    line = one_line_error(result)
    assert line.startswith("pieces-os-client: error: ") and str(port) in line


def test_list_finds_the_server_through_pieces_os_url(cli: Any, emu: Emulator) -> None:
    named(emu, "found by discovery")
    result = cli("conversations", "list", env={ENV_VAR: emu.url})
    assert result.returncode == 0 and "found by discovery" in result.stdout


def test_a_closed_pipe_ends_quietly(emu: Emulator, tmp_path: Path) -> None:
    """``pieces-os-client conversations list | head -1``: the reader goes away early."""
    named(emu, *[f"conversation {i}" for i in range(50)])
    for extra in ([], ["--json"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pieces_os_client", "conversations", "list", "--host", emu.url, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env(tmp_path),
        )
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # as head does after its line: every write now fails with EPIPE
        try:
            code = proc.wait(RUN_TIMEOUT)
        finally:
            stderr = proc.stderr.read().decode()
            proc.stderr.close()
        assert code == 0, stderr
        assert stderr == ""


# ------------------------------------------------------------------ show
def test_show_text_json_and_unknown_id(cli: Any, emu: Emulator) -> None:
    seeded = emu.create_conversation({"type": "COPILOT", "name": "Chat", "messages": [
        {"role": "USER", "fragment": {"string": {"raw": "How do I\nsort a list?"}}},
        {"role": "ASSISTANT", "fragment": {"string": {"raw": "Use sorted()."}}},
    ]})
    text = cli("conversations", "show", seeded, "--host", emu.url)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("Chat\n")
    assert "[1] USER" in text.stdout and "    How do I\n    sort a list?\n" in text.stdout
    assert "[2] ASSISTANT" in text.stdout and "Use sorted()." in text.stdout
    assert "messages: 2" in text.stdout

    as_json = cli("conversations", "show", seeded, "--json", "--host", emu.url)
    conversation = Conversation.from_json(as_json.stdout)
    assert conversation is not None and conversation.id == seeded and len(conversation.messages.iterable) == 2

    missing = cli("conversations", "show", "no-such-id", "--host", emu.url)
    assert missing.returncode == 1 and "no conversation with id no-such-id" in one_line_error(missing)


# ------------------------------------------------------------------ create and delete
def test_create_by_name_and_from_an_asset(cli: Any, emu: Emulator) -> None:
    result = cli("conversations", "create", "--name", "Release checklist", "--host", emu.url)
    assert result.returncode == 0, result.stderr
    new_id = result.stdout.strip()
    assert emu.conversation(new_id)["name"] == "Release checklist"  # type: ignore[index]

    result = cli("conversations", "create", "--from-asset", DEMO_ASSET, "--json", "--host", emu.url)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["id"] in emu.conversation_ids() and document["assets"]["iterable"][0]["id"] == DEMO_ASSET

    both = cli("conversations", "create", "--name", "x", "--from-asset", DEMO_ASSET, "--host", emu.url)
    assert both.returncode == 2 and "cannot be combined" in one_line_error(both)
    unknown = cli("conversations", "create", "--from-asset", "no-such-asset", "--host", emu.url)
    assert unknown.returncode == 1 and "asset not found" in one_line_error(unknown)


def test_delete_needs_yes_off_a_terminal(cli: Any, emu: Emulator) -> None:
    keep, gone = named(emu, "keep", "gone")
    refused = cli("conversations", "delete", gone, "--host", emu.url, input="y\n")
    assert refused.returncode == 2
    assert "--yes" in one_line_error(refused)
    assert gone in emu.conversation_ids()

    result = cli("conversations", "delete", gone, "--yes", "--host", emu.url)
    assert (result.returncode, result.stdout) == (0, gone + "\n"), result.stderr
    assert emu.conversation_ids() == [keep]

    partly = cli("conversations", "delete", keep, "no-such-id", "--yes", "--json", "--host", emu.url)
    assert partly.returncode == 1
    report = json.loads(partly.stdout)
    assert report["deleted"] == [keep] and report["failed"][0]["id"] == "no-such-id"
    assert "not deleted no-such-id" in one_line_error(partly)


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_delete_asks_on_a_terminal(emu: Emulator, tmp_path: Path) -> None:
    import pty

    (gone,) = named(emu, "gone")
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pieces_os_client", "conversations", "delete", gone, "--host", emu.url],
            stdin=secondary, stdout=subprocess.PIPE, stderr=secondary, env=cli_env(tmp_path),
        )
        seen = b""
        deadline = time.monotonic() + 30
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 1)
            if ready:
                seen += os.read(primary, 1024)
        assert b"[y/N]" in seen, seen
        os.write(primary, b"y\n")
        out, _ = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        os.close(primary)
        os.close(secondary)
    assert proc.returncode == 0
    assert out.decode().strip() == gone
    assert gone not in emu.conversation_ids()


# ------------------------------------------------------------------ watch
def _read_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "watch printed nothing in time"
    return proc.stdout.readline()


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT and selects on a pipe")
@pytest.mark.parametrize("as_json", [True, False])
def test_watch_prints_changes_and_stops_on_ctrl_c_or_sigterm(emu: Emulator, tmp_path: Path, as_json: bool) -> None:
    (existing,) = named(emu, "before")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pieces_os_client", "conversations", "watch", "--host", emu.url,
         *(["--json"] if as_json else [])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path),
    )
    try:
        first = _read_line(proc)
        created = emu.create_conversation({"type": "COPILOT", "name": "meanwhile"})
        second = _read_line(proc)
        emu.delete_conversation(existing)
        third = _read_line(proc)
        assert emu.drop_websockets() == 1  # the stream reconnects by itself and says so
        fourth = _read_line(proc)
        proc.send_signal(signal.SIGINT if as_json else signal.SIGTERM)  # both end it cleanly
        code = proc.wait(RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None and proc.stdout is not None
    stderr = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert code == 0, stderr
    assert "Traceback" not in stderr and "pieces-os-client: interrupted" not in stderr
    assert "reconnecting" in stderr
    if as_json:
        records = [json.loads(line) for line in (first, second, third, fourth)]
        assert records[3]["event"] == "resync" and records[3]["count"] == 1
        assert records[3]["added"] == [] and records[3]["removed"] == []
        assert records[0]["event"] == "snapshot" and records[0]["ids"] == [existing]
        assert {k: records[1][k] for k in ("event", "id")} == {"event": "created", "id": created}
        assert {k: records[2][k] for k in ("event", "id")} == {"event": "deleted", "id": existing}
    else:
        assert "snapshot  1 conversations" in first
        assert "created" in second and created in second
        assert "deleted" in third and existing in third
        assert "resync    1 conversations after a reconnect (0 new, 0 gone)" in fourth


def test_watch_with_no_server_fails_in_one_line(cli: Any) -> None:
    result = cli("conversations", "watch", "--host", f"http://127.0.0.1:{_closed_port()}")
    assert result.returncode == 1
    one_line_error(result)


# ------------------------------------------------------------------ doctor
def test_doctor_healthy_through_pieces_os_url(cli: Any, emu: Emulator) -> None:
    named(emu, "one", "two")
    result = cli("doctor", "--json", "--timeout", "10", env={ENV_VAR: emu.url})
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["problems"] == []
    (step,) = report["discovery"]["steps"]
    assert (step["source"], step["outcome"], step["chosen"]) == ("env", "pieces_os", True)
    assert report["host"] == emu.url and report["health"]["ok"]
    assert report["version"]["ok"] and report["version"]["text"]
    assert [e["endpoint"] for e in report["endpoints"]] == [
        "GET /conversations/identifiers", "GET /conversations?transferables=false", "GET /conversations"]
    assert all(e["ok"] and e["count"] == 2 and e["median_ms"] >= 0 for e in report["endpoints"])
    assert report["conversations"] == 2
    assert report["stream"]["snapshot"] is True and report["stream"]["count"] == 2
    env = report["environment"]
    assert env["sdk"] and env["python"] and env["platform"] and env["dependencies"]["urllib3"]
    assert emu.request_count("POST") == 0  # doctor writes nothing

    text = cli("doctor", "--timeout", "10", env={ENV_VAR: emu.url})
    assert text.returncode == 0
    assert "Result: ok" in text.stdout and "identifiers stream" in text.stdout
    assert "\x1b" not in text.stdout  # no colour off a terminal


def test_doctor_finds_the_emulator_by_scanning(cli: Any, emu: Emulator) -> None:
    closed = _closed_port()
    result = cli("doctor", "--json", "--timeout", "10", "--ports", f"{closed},{emu.port}")
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    outcomes = [(s["source"], s["outcome"]) for s in report["discovery"]["steps"]]
    assert outcomes[0] == ("env", "unset") and outcomes[-2:] == [("scan", "closed"), ("scan", "pieces_os")]
    assert report["host"] == f"http://localhost:{emu.port}"


def test_doctor_nothing_listening(cli: Any) -> None:
    closed = _closed_port()
    result = cli("doctor", "--json", "--timeout", "1", "--ports", str(closed))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    (problem,) = report["problems"]
    assert problem["cause"] == f"nothing listens on ports {closed}; is Pieces OS running?"
    assert "emulator" in problem["fix"]
    assert report["host"] is None and report["endpoints"] is None

    text = cli("doctor", "--timeout", "1", "--ports", str(closed))
    assert text.returncode == 1 and "is Pieces OS running?" in text.stdout and "what to do:" in text.stdout

    given = cli("doctor", "--json", "--timeout", "1", "--host", f"http://127.0.0.1:{closed}")
    assert given.returncode == 1
    assert "nothing answers" in json.loads(given.stdout)["problems"][0]["cause"]

    named = cli("doctor", "--json", "--timeout", "1", env={ENV_VAR: f"http://127.0.0.1:{closed}"})
    assert named.returncode == 1
    report = json.loads(named.stdout)
    assert [(s["source"], s["outcome"]) for s in report["discovery"]["steps"]] == [("env", "no_answer")]
    (problem,) = report["problems"]
    assert problem["cause"].startswith(f"{ENV_VAR} is http://127.0.0.1:{closed}, but nothing answers")
    assert f"unset {ENV_VAR}" in problem["fix"]


def test_doctor_foreign_server_on_the_port(cli: Any, raw_server: Callable[[Optional[bytes]], int]) -> None:
    port = raw_server(NOT_PIECES)
    result = cli("doctor", "--json", "--timeout", "2", "--ports", str(port))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["discovery"]["steps"][-1]["outcome"] == "not_pieces_os"
    (problem,) = report["problems"]
    assert problem["cause"].startswith(f"port {port} answers but is not Pieces OS")
    assert "404" in problem["cause"]

    wrong_env = cli("doctor", "--json", "--timeout", "2", env={ENV_VAR: f"http://127.0.0.1:{port}"})
    assert wrong_env.returncode == 1
    assert "is not Pieces OS" in json.loads(wrong_env.stdout)["problems"][0]["cause"]


def test_doctor_slow_server_is_bounded(cli: Any, raw_server: Callable[[Optional[bytes]], int]) -> None:
    port = raw_server(None)
    started = time.monotonic()
    result = cli("doctor", "--json", "--timeout", "0.5", "--host", f"http://127.0.0.1:{port}")
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    (problem,) = json.loads(result.stdout)["problems"]
    assert "does not answer" in problem["cause"] and "0.5 s" in problem["cause"]


def test_doctor_port_file_naming_a_dead_port(cli: Any, tmp_path: Path) -> None:
    dead, closed = _closed_port(), _closed_port()
    port_file = tmp_path / "home" / "Documents" / "com.pieces.os" / "production" / "Config" / ".port.txt"
    port_file.parent.mkdir(parents=True)
    port_file.write_text(f"{dead}\n")
    result = cli("doctor", "--json", "--timeout", "1", "--ports", str(closed))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    step = next(s for s in report["discovery"]["steps"] if s["source"] == "port_file" and s["port"] == dead)
    assert step["outcome"] == "no_answer" and step["where"] == str(port_file)
    causes = [p["cause"] for p in report["problems"]]
    assert any(str(port_file) in c and str(dead) in c for c in causes), causes


def test_doctor_masks_credentials(cli: Any, emu: Emulator) -> None:
    secret_url = emu.url.replace("http://", "http://me:s3cr3t@")
    result = cli("doctor", "--json", "--timeout", "10", env={ENV_VAR: secret_url})
    assert "s3cr3t" not in result.stdout and "s3cr3t" not in result.stderr
    assert json.loads(result.stdout)["environment_variables"][ENV_VAR].startswith("http://***@")


# ------------------------------------------------------------------ on a terminal
@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_colour_and_progress_only_on_a_terminal_without_no_color(emu: Emulator, tmp_path: Path) -> None:
    named(emu, "one", "two", "three")
    code, shown = on_terminal(["doctor", "--timeout", "10"], cli_env(tmp_path, **{ENV_VAR: emu.url}))
    assert code == 0 and "\x1b[32mok\x1b[0m" in shown
    code, shown = on_terminal(["doctor", "--timeout", "10"], cli_env(tmp_path, NO_COLOR="1", **{ENV_VAR: emu.url}))
    assert code == 0 and "\x1b[" not in shown and "Result: ok" in shown

    code, shown = on_terminal(["conversations", "export", "--out", str(tmp_path / "a"), "--host", emu.url],
                               cli_env(tmp_path))
    assert code == 0 and "\rexporting 3/3" in shown
    code, shown = on_terminal(["conversations", "export", "--out", str(tmp_path / "b"), "--host", emu.url],
                               cli_env(tmp_path, NO_COLOR="1"))
    assert code == 0 and "exporting" not in shown and "wrote 3 files" in shown


# ------------------------------------------------------------------ discovery, step by step
def test_trace_discovery_is_find_pieces_os_step_by_step(
    emu: Emulator, raw_server: Callable[[Optional[bytes]], int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pieces_os_client.discovery import find_pieces_os, trace_discovery

    monkeypatch.delenv(ENV_VAR, raising=False)
    foreign, closed = raw_server(NOT_PIECES), _closed_port()
    files = [tmp_path / "missing.txt", tmp_path / "garbage.txt", tmp_path / "dead.txt", tmp_path / "again.txt"]
    files[1].write_text("not a port")
    files[2].write_text(str(closed))
    files[3].write_text(str(closed))
    steps, url = trace_discovery([closed, foreign, emu.port], host="127.0.0.1", timeout=2, port_files=files)
    assert [(s.source, s.outcome) for s in steps] == [
        ("env", "unset"), ("port_file", "missing"), ("port_file", "no_port"), ("port_file", "no_answer"),
        ("port_file", "duplicate"), ("scan", "not_pieces_os"), ("scan", "pieces_os"),
    ]
    assert url == emu.url and steps[-1].chosen and not any(s.chosen for s in steps[:-1])
    assert find_pieces_os([closed, foreign, emu.port], host="127.0.0.1", timeout=2, port_files=files) == url

    steps, url = trace_discovery([closed, foreign], host="127.0.0.1", timeout=2, port_files=[])
    assert url is None and [s.outcome for s in steps] == ["unset", "closed", "not_pieces_os"]


def test_doctor_masks_every_credential_setting() -> None:
    from pieces_os_client.cli.doctor import settings_changed
    from pieces_os_client.configuration import Configuration

    config = Configuration(
        host="http://me:pw1@127.0.0.1:1", api_key={"application": "key1"}, access_token="tok1",
        username="me", password="pw2", proxy="http://u:pw3@proxy:3128",
        proxy_headers={"Proxy-Authorization": "Basic pw4", "X-Other": "shown"}, read_timeout=7,
    )
    changed = settings_changed(config)
    shown = json.dumps(changed)
    assert not any(secret in shown for secret in ("pw1", "key1", "tok1", "pw2", "pw3", "pw4")), shown
    assert changed["read_timeout"] == 7 and changed["proxy_headers"]["X-Other"] == "shown"
    assert changed["host"] == "http://***@127.0.0.1:1" and changed["api_key"] == {"application": "***"}
