"""Running the command line as users run it: ``python -m pieces_os_client ...`` in a subprocess,
with its own ``HOME`` (no port file of a real Pieces OS on this machine) and no
``PIECES_OS_URL`` unless a test sets one."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, NamedTuple, Optional

from testkit import ROOT

__all__ = ["Run", "cli_env", "run_cli"]

#: names the command reads from the environment that a test must not inherit
_INHERITED = ("PIECES_OS_URL", "NO_COLOR", "COLUMNS", "XDG_DATA_HOME")


class Run(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # wall time, the interpreter's start-up included


def cli_env(home: Path, **extra: str) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED}
    env["HOME"] = str(home)
    env["USERPROFILE"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, env: Optional[Dict[str, str]] = None, timeout: float = 60.0) -> Run:
    """Run the command and wait for it, at most ``timeout`` seconds (then it is killed and the
    test fails with ``subprocess.TimeoutExpired``)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pieces_os_client", *args], capture_output=True, text=True, encoding="utf-8",
        timeout=timeout, env=cli_env(home, **(env or {})), cwd=home,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)
