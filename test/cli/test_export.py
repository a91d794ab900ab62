"""``conversations export``, run as users run it (a subprocess, against the emulator).

Files are written whole or not at all, also when Ctrl-C lands part-way: the interrupt tests
send a real SIGINT at chosen points, either from outside while the emulator provably holds
the command in the middle of fetching, or from inside the command (``export_interrupt.py``)
before and after each file-system step it takes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT
from testkit.cli import COMMAND, RUN_TIMEOUT, cli_env, named, one_line_error
from testkit.emulator import DEMO_ASSET

from pieces_os_client.cli.export import safe_stem
from pieces_os_client.emulator import Emulator
from pieces_os_client.models.conversation import Conversation


def test_export_json_round_trips_and_markdown_reads(cli: Any, emu: Emulator, tmp_path: Path) -> None:
    emu.create_conversation(from_asset=DEMO_ASSET)
    chat = emu.create_conversation({"type": "COPILOT", "name": "Chat", "messages": [
        {"role": "USER", "fragment": {"string": {"raw": "hello there"}}},
    ]})
    out = tmp_path / "json"
    result = cli("conversations", "export", "--format", "json", "--out", str(out), "--host", emu.url)
    assert result.returncode == 0, result.stderr
    files = sorted(out.iterdir())
    assert len(files) == 2 and all(f.suffix == ".json" for f in files)
    assert sorted(result.stdout.split()) == sorted(str(f) for f in files)
    for path in files:
        conversation = Conversation.from_json(path.read_bytes())
        assert conversation is not None
        assert json.loads(path.read_text(encoding="utf-8")) == emu.conversation(conversation.id)  # as sent

    md = tmp_path / "md"
    result = cli("conversations", "export", chat, "--format", "markdown", "--out", str(md), "--host", emu.url)
    assert result.returncode == 0, result.stderr
    (page,) = md.iterdir()
    text = page.read_text(encoding="utf-8")
    assert page.name.startswith("Chat-") and page.suffix == ".md"
    assert text.startswith("# Chat\n") and f"- id: `{chat}`" in text
    assert "## 1. USER" in text and "\nhello there\n" in text


HOSTILE = [
    "a/b\\c", "..", "../../etc/passwd", "\x00\x1b[31mred\r\nline\t", "CON", "nul.txt", "com1", "x" * 300,
    "dup", "dup", "DUP", "", "   ", ".hidden", "trailing. ", "ü" * 200 + "😀" * 50, 'we<i>rd:"|?*',
]


def test_export_hostile_names(cli: Any, emu: Emulator, tmp_path: Path) -> None:
    ids = [emu.create_conversation({"type": "COPILOT", "name": name}) for name in HOSTILE]
    ids.append(emu.create_conversation({"type": "COPILOT"}))  # no name at all
    ids.append(emu.create_conversation({"type": "COPILOT", "name": "same id start"}, conversation_id="ab" * 20))
    ids.append(emu.create_conversation({"type": "COPILOT", "name": "same id start"}, conversation_id="ab" * 20 + "x"))
    out = tmp_path / "out"
    for fmt in ("json", "markdown"):
        result = cli("conversations", "export", "--format", fmt, "--out", str(out / fmt), "--host", emu.url)
        assert result.returncode == 0, result.stderr
        files = list((out / fmt).iterdir())
        assert len(files) == len(ids)
        names = [f.name for f in files]
        assert len({n.lower() for n in names}) == len(names)  # distinct, even ignoring case
        for name in names:
            stem = name.rsplit(".", 1)[0]
            assert len(name.encode("utf-8")) <= 100, name
            assert name.isprintable() and not any(c in name for c in '<>:"/\\|?*'), name
            assert not name.startswith((".", " ", "-")) and not stem.endswith((".", " "))
            assert stem.split(".")[0].split("-")[0].upper() not in ("CON", "NUL", "COM1", "PRN", "AUX"), name
    exported = {Conversation.from_json(f.read_bytes()).id for f in (out / "json").iterdir()}  # type: ignore[union-attr]
    assert exported == set(ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "out"]  # nothing written elsewhere


def test_safe_stem() -> None:
    assert safe_stem("..") == "conversation"
    assert safe_stem("a/../b") == "a_.._b"
    assert safe_stem("CON") == "_CON" and safe_stem("lpt1.txt") == "_lpt1.txt"
    assert safe_stem("\x1b[0m") == "[0m"
    assert len(safe_stem("é" * 300).encode()) <= 64


def test_export_never_overwrites_without_force(cli: Any, emu: Emulator, tmp_path: Path) -> None:
    named(emu, "one", "two")
    out = tmp_path / "out"
    assert cli("conversations", "export", "--out", str(out), "--host", emu.url).returncode == 0
    victim = sorted(out.iterdir())[0]
    victim.write_text("mine")
    again = cli("conversations", "export", "--out", str(out), "--host", emu.url)
    assert again.returncode == 1
    assert "--force" in one_line_error(again) and "nothing was written" in again.stderr
    assert victim.read_text() == "mine"
    forced = cli("conversations", "export", "--out", str(out), "--force", "--host", emu.url)
    assert forced.returncode == 0, forced.stderr
    assert victim.read_text() != "mine"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def test_export_part_way_says_what_was_and_was_not_written(cli: Any, emu: Emulator, tmp_path: Path) -> None:
    (there,) = named(emu, "there")
    out = tmp_path / "out"
    result = cli("conversations", "export", there, "missing-id", "--json", "--out", str(out), "--host", emu.url)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert [w["id"] for w in report["written"]] == [there]
    assert report["not_written"] == [{"id": "missing-id", "reason": "no conversation with this id"}]
    line = one_line_error(result)
    assert "wrote 1 of 2" in line and "missing-id" in line
    assert len(list(out.iterdir())) == 1




def test_messages_given_as_references_only_are_shown_as_such() -> None:
    from pieces_os_client.cli.conversations import messages_of
    from pieces_os_client.cli.export import markdown

    stamp = {"value": "2026-01-02T03:04:05Z"}
    conversation = Conversation.from_dict({
        "id": "c1", "name": "Refs", "created": stamp, "updated": stamp,
        "messages": {"iterable": [
            {"id": "m2", "reference": {"id": "m2", "created": stamp, "updated": stamp, "role": "ASSISTANT",
                                       "conversation": {"id": "c1"}}},
            {"id": "m1"},
        ], "indices": {"m1": 0, "m2": 1}},
    })
    assert conversation is not None
    first, second = messages_of(conversation)
    assert (first.id, first.reference_only) == ("m1", True)
    assert (second.role, second.text, second.note) == ("ASSISTANT", None, "no text was sent for this message")
    text = markdown(conversation)
    assert "## 1. message `m1`" in text and "*(only its id was sent (no role, time or text))*" in text
    assert "## 2. ASSISTANT · 2026-01-02T03:04:05Z" in text


# ------------------------------------------------------------------ Ctrl-C
PROG = "pieces-os-client"


def _not_written(ids: list[str], reasons: list[str]) -> str:
    return "; not written: " + "; ".join(f"{i} ({r})" for i, r in zip(ids, reasons, strict=True))


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.parametrize("by_id", [False, True])
def test_ctrl_c_while_fetching_writes_nothing_and_says_so(emu: Emulator, tmp_path: Path, by_id: bool) -> None:
    ids = named(emu, "one", "two")
    # The answer stalls after its first byte for far longer than the test waits: until the
    # SIGINT, the command is provably in the middle of fetching the conversations.
    emu.stall_body_next(600, method="GET", path="/conversations", after_bytes=1)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*COMMAND, "conversations", "export", *(ids if by_id else []), "--out", str(out), "--host", emu.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path),
    )
    try:
        deadline = time.monotonic() + 20
        while emu.request_count("GET", "/conversations") == 0:
            assert proc.poll() is None and time.monotonic() < deadline, "the export never asked"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stdout == ""
    line = one_line_error(subprocess.CompletedProcess([], 130, stdout, stderr))
    if by_id:
        reason = "interrupted before the conversations were fetched"
        assert line == f"{PROG}: interrupted: wrote 0 of 2 conversations to {out}" + _not_written(ids, [reason] * 2)
    else:
        assert line == f"{PROG}: interrupted: nothing was written to {out}"
    assert not out.exists()


def _sweep(emu: Emulator, tmp_path: Path, *flags: str) -> dict[str, Any]:
    """export_interrupt.py's results: one export interrupted at each point (see that script)."""
    root = tmp_path / "sweep"
    root.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run(
        [sys.executable, str(ROOT / "test" / "testkit" / "export_interrupt.py"), emu.url, str(root), *flags],
        capture_output=True, text=True, encoding="utf-8", timeout=120, env=cli_env(home),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout))


def _check_interrupted(run: dict[str, Any], full: dict[str, Any], force: bool, as_json: bool) -> None:
    """One interrupted export left whole files only, no temporary file, and said exactly what it wrote."""
    whole: dict[str, str] = full["files"]
    id_of = {name: json.loads(text)["id"] for name, text in whole.items()}
    if as_json:
        order = [w["id"] for w in json.loads(full["stdout"])["written"]]
    else:
        order = [id_of[Path(line).name] for line in full["stdout"].splitlines()]
    where = f"{run['point']} (step {run['number']})"
    assert run["code"] == 130, (where, run["stderr"])
    assert run["default_handler_again"], where
    assert run["steps"][: run["number"] + 1] == full["steps"][: run["number"] + 1], where
    left: dict[str, str] = run["files"]
    assert set(left) <= set(whole), (where, sorted(left))  # no temporary file, nothing else
    for name, text in left.items():
        if text != whole[name]:  # only an old file that --force did not get to may differ
            assert force and text == "old\n", (where, name, text[:80])
    written = [i for i in order if any(id_of[n] == i and left[n] == whole[n] for n in left)]
    count = len(written)
    assert written == order[:count], where  # in order, each one whole
    for name in left:
        if left[name] == whole[name]:
            assert Conversation.from_json(left[name]) is not None, where  # complete and parseable
    expected = f"{PROG}: interrupted: wrote {count} of {len(order)} conversations to {run['directory']}"
    if count < len(order):
        expected += _not_written(order[count:], ["interrupted"] + ["not tried"] * (len(order) - count - 1))
    assert run["stderr"] == expected + "\n", where
    if as_json:
        report = json.loads(run["stdout"])
        assert [w["id"] for w in report["written"]] == written, where
        assert [(n["id"], n["reason"]) for n in report["not_written"]] == [
            (i, "not tried" if k else "interrupted") for k, i in enumerate(order[count:])], where
    else:
        shown = [id_of[Path(line).name] for line in run["stdout"].splitlines()]
        assert shown == written[: len(shown)], where


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.parametrize("force", [False, True])
def test_ctrl_c_at_every_file_step_leaves_whole_files_and_says_what_was_written(
    emu: Emulator, tmp_path: Path, force: bool
) -> None:
    named(emu, "first", "second", "third")
    flags = ["--force", "--json"] if force else []
    result = _sweep(emu, tmp_path, *flags)
    full = result["full"]
    assert full["code"] == 0 and len(full["files"]) == 3, full["stderr"]
    assert len(result["runs"]) == len(full["steps"])
    for run in result["runs"]:
        _check_interrupted(run, full, force, as_json=force)
    kinds = {point.split(":")[1] for point in full["steps"]}  # each step of each file was a point
    assert kinds >= {"open", "write", "fsync", "close", "replace" if force else "link"}, kinds


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_ctrl_c_right_after_a_file_is_created_leaves_nothing(emu: Emulator, tmp_path: Path) -> None:
    """The window between creating a file and the start of its cleanup is closed by design.

    The SIGINT comes the moment the call that created the file returns, before the code that
    called it runs on: the file is already there, and nothing has noted its name yet.
    """
    named(emu, "first", "second")
    result = _sweep(emu, tmp_path, "--only", "after:open")
    assert len(result["runs"]) == 2
    for run in result["runs"]:
        _check_interrupted(run, result["full"], force=False, as_json=False)
        assert "; not written: " in run["stderr"]  # the file under way was not written


# ------------------------------------------------------------------ one file in one step
@pytest.mark.parametrize("hard_links", [True, False])
def test_write_file_never_replaces_a_file_without_force(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    """A file that appears after export's check for existing files is left alone, and named in the error."""
    from pieces_os_client.cli.export import write_file

    if not hard_links:  # as on FAT or exFAT: Linux answers EPERM
        def no_link(*args: object, **kwargs: object) -> None:
            raise PermissionError(errno.EPERM, "Operation not permitted")

        monkeypatch.setattr(os, "link", no_link)
    target = tmp_path / "a.json"
    target.write_text("mine")
    with pytest.raises(FileExistsError) as caught:
        write_file(target, b"new", force=False)
    assert caught.value.filename == str(target)
    assert target.read_text() == "mine" and os.listdir(tmp_path) == ["a.json"]

    fresh = tmp_path / "b.json"
    write_file(fresh, b"new", force=False)
    write_file(target, b"newer", force=True)
    assert (fresh.read_bytes(), target.read_bytes()) == (b"new", b"newer")
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.json"]  # no temporary file left


def test_a_trickled_snapshot_ends_at_the_export_timeout_with_one_line(cli: Any, emu: Emulator, tmp_path: Path) -> None:
    # every attempt's body stalls for 600 s after one byte: only --timeout can end the command
    emu.create_conversation({"type": "COPILOT", "name": "slow"})
    emu.stall_body_next(600, count=None, method="GET", path="/conversations", after_bytes=1)
    out = tmp_path / "out"
    started = time.monotonic()
    result = cli("conversations", "export", "--out", str(out), "--host", emu.url, "--timeout", "0.5",
                 timeout=120)
    took = time.monotonic() - started
    emu.clear_faults()
    assert result.returncode == 1, result.stderr
    line = one_line_error(result)
    assert "within _request_timeout=0.5 s" in line and "body" in line, line
    # the command gave up after its attempts (1 + the default 3 retries), not after the stall
    attempts = emu.request_count("GET", "/conversations")
    assert 1 <= attempts <= 4, attempts
    assert took < 300, took  # separates "the timeout ended it" from "the 600 s stall did"
    assert not out.exists() or list(out.iterdir()) == []
