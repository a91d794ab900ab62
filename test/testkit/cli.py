"""Running the command line as users run it (``python -m pieces_os_client ...`` in a subprocess),
on a pipe or on a pseudo-terminal.

Every run gets its own ``HOME`` (no port file from a real Pieces OS on this machine) and no
``PIECES_OS_URL``, ``NO_COLOR``, ``COLUMNS`` or ``XDG_DATA_HOME`` from the outer shell, unless
a test sets one.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple, Optional

from pieces_os_client.discovery import ENV_VAR
from pieces_os_client.emulator import Emulator
from testkit import ROOT

#: the longest any one run of the command may take before a test calls it hung
RUN_TIMEOUT = 60.0
#: the command, as users run it
COMMAND = [sys.executable, "-m", "pieces_os_client"]


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "NO_COLOR", "COLUMNS", "XDG_DATA_HOME")}
    env["HOME"] = str(home)
    env["USERPROFILE"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # wall time, the interpreter's start-up included


def run_cli(home: Path, *args: str, env: Optional[dict[str, str]] = None, timeout: float = RUN_TIMEOUT) -> Run:
    """Run the command and wait for it, at most ``timeout`` seconds (then it is killed and the
    test fails with ``subprocess.TimeoutExpired``)."""
    started = time.monotonic()
    done = subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, encoding="utf-8",
        timeout=timeout, env=cli_env(home, **(env or {})), cwd=home,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The only line on stderr (asserting there is one, and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def named(emu: Emulator, *names: str) -> list[str]:
    """One conversation per name, created in order with distinct creation times; their ids."""
    ids = []
    for name in names:
        ids.append(emu.create_conversation({"type": "COPILOT", "name": name}))
        time.sleep(0.01)  # distinct creation times, so "newest first" is well defined
    return ids


def on_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; the exit status and all it printed."""
    import pty

    primary, secondary = pty.openpty()
    output = b""
    try:
        proc = subprocess.Popen([*COMMAND, *argv], stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
                                env=env)
        os.close(secondary)
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the child closed the terminal (Linux reports EIO)
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(RUN_TIMEOUT)
    finally:
        os.close(primary)
    return code, output.decode("utf-8", "replace")
