"""Run by test_export.py in a fresh interpreter: Ctrl-C at each file step of ``conversations export``.

    export_interrupt.py HOST ROOT [--force] [--json] [--only WHEN:STEP]

First a whole export into ROOT/full, which records each file-system step the command takes
in its output directory (creating it, opening, writing, flushing, closing, linking, renaming
and removing files; ``open`` covers ``os.open`` and the built-in ``open`` for writing). Then
one export per point, before or after each such step, into ROOT/run-N: at that point the
process sends itself a real SIGINT (``signal.raise_signal``, so the handler in force then
decides what happens, exactly as for a Ctrl-C typed at that moment). ``--only after:open``
keeps the points after each ``open``. With ``--force`` each run's directory first holds an
old version (``old\\n``) of every file the export writes.

Each run is the real command, ``pieces_os_client.cli.main``, with its stdout and stderr
captured. Prints one JSON object: the steps of the whole export, its files, and per run the
point, exit status, stdout, stderr, the files left (name -> text) and whether the SIGINT
handler is Python's default again afterwards.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Set

from pieces_os_client.cli import main as cli_main

HOST, ROOT = sys.argv[1], Path(sys.argv[2])
FORCE = "--force" in sys.argv
AS_JSON = "--json" in sys.argv
ONLY: Optional[str] = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None


class Steps:
    """Counts the steps taken in ``directory``; sends SIGINT at point ``target`` (before or after a step)."""

    def __init__(self) -> None:
        self.directory: Optional[str] = None
        self.target: Optional[int] = None
        self.points = 0
        self.trace: List[str] = []
        self.fds: Set[int] = set()

    def inside(self, value: Any) -> bool:
        if self.directory is None:
            return False
        if isinstance(value, int) and not isinstance(value, bool):
            return value in self.fds
        try:
            path = os.path.abspath(os.fspath(value))
        except TypeError:
            return False
        return path == self.directory or path.startswith(self.directory + os.sep)

    def point(self, when: str, step: str) -> None:
        self.trace.append(f"{when}:{step}")
        self.points += 1
        if self.points - 1 == self.target:
            signal.raise_signal(signal.SIGINT)


steps = Steps()


def _watch(module: Any, name: str, step: str, relevant: Callable[..., bool]) -> None:
    real = getattr(module, name)

    def watched(*args: Any, **kwargs: Any) -> Any:
        hit = relevant(*args, **kwargs)
        if hit:
            steps.point("before", step)
        result = real(*args, **kwargs)
        if hit:
            if name == "open" and module is os:
                steps.fds.add(result)
            if name == "close" and module is os:
                steps.fds.discard(args[0])
            steps.point("after", step)
        return result

    setattr(module, name, watched)


def _first(*args: Any, **kwargs: Any) -> bool:
    return bool(args) and steps.inside(args[0])


def _either(*args: Any, **kwargs: Any) -> bool:
    return any(steps.inside(a) for a in args[:2])


def _writing(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> bool:
    return any(c in mode for c in "wxa+") and steps.inside(file)


for _name in ("open", "write", "fsync", "close", "unlink", "mkdir"):
    _watch(os, _name, _name, _first)
for _name in ("link", "rename", "replace"):
    _watch(os, _name, _name, _either)
_watch(builtins, "open", "open", _writing)


def files_in(directory: Path) -> Dict[str, str]:
    if not directory.is_dir():
        return {}
    return {p.name: p.read_bytes().decode("utf-8", "replace") for p in sorted(directory.iterdir())}


def export(directory: Path, target: Optional[int]) -> Dict[str, Any]:
    argv = ["conversations", "export", "--format", "json", "--out", str(directory), "--host", HOST]
    argv += (["--force"] if FORCE else []) + (["--json"] if AS_JSON else [])
    out, err = io.StringIO(), io.StringIO()
    steps.directory, steps.target, steps.points, steps.trace, steps.fds = (
        os.path.abspath(directory), target, 0, [], set())
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code: Any = cli_main(argv)
    except KeyboardInterrupt:
        code = "KeyboardInterrupt escaped"
    finally:
        steps.directory = None
    return {
        "code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "steps": steps.trace,
        "default_handler_again": signal.getsignal(signal.SIGINT) is signal.default_int_handler,
    }


def main() -> None:
    if FORCE:  # as each run's directory will: then the whole export takes the same steps as the runs
        (ROOT / "full").mkdir()
    full = export(ROOT / "full", None)
    full["files"] = files_in(ROOT / "full")
    points = [i for i, p in enumerate(full["steps"]) if ONLY is None or p == ONLY]
    runs = []
    for number in points:
        directory = ROOT / f"run-{number}"
        if FORCE:
            directory.mkdir()
            for name in full["files"]:
                (directory / name).write_bytes(b"old\n")
        run = export(directory, number)
        run["number"], run["point"], run["directory"] = number, full["steps"][number], str(directory)
        run["files"] = files_in(directory)
        runs.append(run)
    print(json.dumps({"full": full, "runs": runs}))


if __name__ == "__main__":
    main()
