"""The benchmark scripts still run: each one, briefly, against its own emulator on 127.0.0.1.

They are not part of the package, so nothing else imports them; a rename inside the SDK or the
emulator would break them silently. These runs check that they finish, print their tables and
report no lost or duplicated stream message. No timing is asserted.
"""

from __future__ import annotations

import subprocess
import sys

from testkit import ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          check=False)


def test_the_stream_soak_runs_every_consumer_and_loses_nothing() -> None:
    done = _run("benchmarks/stream_soak.py", "--streams", "2", "--changes", "40", "--asyncio", "--floor")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 2 streams | 2 streams (asyncio) | 2 streams (floor) |" in done.stdout
    assert "| lost / duplicated | 0 / 0 | 0 / 0 | 0 / 0 |" in done.stdout
    assert "| mirrors equal to server | 2 of 2 | 2 of 2 | 2 of 2 |" in done.stdout


def test_the_async_http_benchmark_runs() -> None:
    done = _run("benchmarks/aio_http.py", "--quick")
    assert done.returncode == 0, done.stdout + done.stderr
    for heading in ("### 100 concurrent identifiers calls", "### Sequential identifiers calls",
                    "### Snapshot of 1000 conversations"):
        assert heading in done.stdout


def test_the_websocket_protocol_benchmark_runs() -> None:
    done = _run("benchmarks/ws_protocol.py", "--quick")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "### Import, in a fresh process" in done.stdout
    assert "| ours: pieces_os_client._core.websocket |" in done.stdout
    for frame in ("| ~100-byte text frame |", "| 70 KB text frame |"):
        assert frame in done.stdout
