"""The ``cli`` fixture: the command run as users run it, in a subprocess with its own HOME."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Optional

import pytest
from testkit.cli import COMMAND, RUN_TIMEOUT, cli_env


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    home = tmp_path / "home"
    home.mkdir()

    def run(*args: str, env: Optional[dict[str, str]] = None, input: Optional[str] = None,
            timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*COMMAND, *args],
            capture_output=True, text=True, encoding="utf-8", timeout=timeout, input=input,
            env=cli_env(home, **(env or {})), cwd=tmp_path,
        )

    return run
