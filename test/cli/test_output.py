"""Nothing a server sends reaches a terminal as a control sequence, in any output mode.

Conversation names and message text hold C0 and C1 controls and bidi controls; the command
runs against the emulator on a pseudo-terminal, into a pipe, and into export files.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit.cli import COMMAND, RUN_TIMEOUT, cli_env, on_terminal

from pieces_os_client.emulator import Emulator

#: C0 (ESC, BEL, CR), DEL, C1 (CSI U+009B, NEL U+0085) and every bidi control
CONTROLS = (
    "\x1b[2J\x07\r\x7f\x9b31m\x85"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
NAME = "evil" + CONTROLS + "name"
TEXT = "first line\x9b2J\u202eelif.exe\r\n\tindented\x1b]0;title\x07\nlast\u2066line"


def _seed(emu: Emulator) -> str:
    return emu.create_conversation({"type": "COPILOT", "name": NAME, "messages": [
        {"role": "USER", "fragment": {"string": {"raw": TEXT}}},
    ]})


def _raw_controls(text: str, allowed: str = "\n") -> list[str]:
    """The characters in ``text`` that are not printable (and not in ``allowed``)."""
    return sorted({c for c in text if not c.isprintable() and c not in allowed})


def _json_commands(conversation_id: str, url: str) -> list[list[str]]:
    return [
        ["conversations", "list", "--json", "--host", url],
        ["conversations", "show", conversation_id, "--json", "--host", url],
        ["conversations", "create", "--name", NAME, "--json", "--host", url],
    ]


def _check_json(text: str, conversation_id: str, argv: list[str]) -> None:
    assert _raw_controls(text) == [], argv
    value = json.loads(text)
    if argv[1] == "list":
        assert [row["name"] for row in value] == [NAME]
    else:
        assert value["name"] == NAME
    if argv[1] == "show":
        assert value["messages"]["iterable"][0]["reference"]["fragment"]["string"]["raw"] == TEXT


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_json_on_a_terminal_escapes_every_control(emu: Emulator, tmp_path: Path) -> None:
    conversation_id = _seed(emu)
    for argv in _json_commands(conversation_id, emu.url):
        code, shown = on_terminal(argv, cli_env(tmp_path))
        assert code == 0, shown
        shown = shown.replace("\r\n", "\n")  # the terminal's own line ends
        _check_json(shown, conversation_id, argv)
        if argv[1] != "create":
            assert "\\u009b" in shown and "\\u202e" in shown and "\\u061c" in shown and "\\u007f" in shown


def test_json_into_a_pipe_is_the_same_as_on_a_terminal(cli: Any, emu: Emulator, tmp_path: Path) -> None:
    """The choice documented in docs/cli.md: --json escapes wherever it goes."""
    conversation_id = _seed(emu)
    for argv in _json_commands(conversation_id, emu.url)[:2]:
        result = cli(*argv)
        assert result.returncode == 0, result.stderr
        _check_json(result.stdout, conversation_id, argv)
        if sys.platform != "win32":
            code, shown = on_terminal(argv, cli_env(tmp_path))
            assert code == 0
            assert shown.replace("\r\n", "\n") == result.stdout


def test_json_export_files_escape_every_control_and_read_back_as_sent(
    cli: Any, emu: Emulator, tmp_path: Path
) -> None:
    conversation_id = _seed(emu)
    out = tmp_path / "out"
    result = cli("conversations", "export", "--json", "--out", str(out), "--host", emu.url)
    assert result.returncode == 0, result.stderr
    assert _raw_controls(result.stdout) == []
    (path,) = out.iterdir()
    text = path.read_text(encoding="utf-8")
    assert _raw_controls(text) == []
    assert json.loads(text) == emu.conversation(conversation_id)  # the same document


def test_markdown_export_shows_controls_as_text_mode_does(cli: Any, emu: Emulator, tmp_path: Path) -> None:
    conversation_id = _seed(emu)
    out = tmp_path / "out"
    result = cli("conversations", "export", conversation_id, "--format", "markdown", "--out", str(out),
                 "--host", emu.url)
    assert result.returncode == 0, result.stderr
    (path,) = out.iterdir()
    text = path.read_text(encoding="utf-8")
    assert _raw_controls(text, allowed="\n\t") == []
    shown = r"\x1b[2J\x07\r\x7f\x9b31m\x85\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
    assert text.startswith(f"# evil{shown}name\n")
    # the message: its lines and its tab kept (a Windows line end is a line end), the rest visible
    assert "\nfirst line\\x9b2J\\u202eelif.exe\n\tindented\\x1b]0;title\\x07\nlast\\u2066line\n" in text
    text_mode = cli("conversations", "show", conversation_id, "--host", emu.url)
    assert text_mode.stdout.startswith(f"evil{shown}name\n")  # the same escapes as text mode


def test_json_text_escapes_what_printable_escapes_and_reads_back() -> None:
    from pieces_os_client.cli._output import json_text, printable

    value = {"k\u202e": ["\x00\x1f\x7f\x80\x9f\u00a0\u2028\u2029\ufeff", "\ud800 lone", "\U000e0001 tag",
                         "kept: é 中 😀 \\ \""], "n": 1}
    for indent in (None, 2):
        text = json_text(value, indent)
        assert _raw_controls(text) == [] and json.loads(text) == value
    assert "\\udb40\\udc01 tag" in json_text(value)  # beyond the first plane: a surrogate pair
    assert "é 中 😀" in json_text(value)  # printable characters stay as they are
    assert printable("a\tb\x1bc", keep="\t") == "a\tb\\x1bc" and printable("a\tb") == "a\\tb"


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT and selects on a pipe")
def test_watch_json_escapes_ids_from_the_server(emu: Emulator, tmp_path: Path) -> None:
    hostile = "id\x9b2J\u202e\u2066\x1b[31mend"
    emu.create_conversation({"type": "COPILOT", "name": "x"}, conversation_id=hostile)
    proc = subprocess.Popen(
        [*COMMAND, "conversations", "watch", "--json", "--host", emu.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=cli_env(tmp_path),
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], RUN_TIMEOUT)
        assert ready, "watch printed nothing in time"
        line = proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(RUN_TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert _raw_controls(line) == [], line
    assert json.loads(line)["ids"] == [hostile]
