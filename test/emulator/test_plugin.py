"""How the package meets a new user: its identity next to the official SDK, the pytest plugin,
and the emulator's command line when the emulator extra is missing.

Each check runs in a fresh interpreter (or pytest, or pip) started by the test, the way a user
would meet it: a plugin, an import error or a version answer is only real in a new process.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from testkit import ROOT

import pieces_os_client
from pieces_os_client.emulator import NEEDS_AIOHTTP

BIN = Path(sys.executable).parent


def _env(tmp_path: Path | None = None, *, block_aiohttp: bool = False) -> dict[str, str]:
    """The child's environment: this checkout importable; optionally aiohttp made unimportable."""
    paths = [str(ROOT)]
    if block_aiohttp:
        assert tmp_path is not None
        hidden = tmp_path / "hide_aiohttp"
        hidden.mkdir(exist_ok=True)
        # sitecustomize runs at interpreter start, before any import: aiohttp is then "not installed"
        (hidden / "sitecustomize.py").write_text("import sys\nsys.modules['aiohttp'] = None\n")
        paths.insert(0, str(hidden))
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


# ---------------------------------------------------------------- identity next to the official SDK
def test_the_version_is_below_every_official_release_and_everything_says_the_same() -> None:
    version = pieces_os_client.__version__
    assert re.fullmatch(r"0\.\d+\.\d+", version), version  # the official SDK's releases are 1.2.2 to 5.0.1
    assert importlib.metadata.version("pieces_os_client") == version
    with pieces_os_client.ApiClient(pieces_os_client.Configuration(host="http://127.0.0.1:9")) as client:
        assert client.user_agent == f"pieces-os-client-python/{version}"
    assert f"SDK Package Version: {version}" in pieces_os_client.Configuration().to_debug_report()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {version} " in changelog


def test_pip_does_not_take_this_package_for_the_official_sdk(tmp_path: Path) -> None:
    """In this environment (which holds this package) ``pieces_os_client>=1`` is not satisfied.

    pip runs offline (no index, no configuration files): it must look for a release and find
    none, where a version >= 1 would have answered "Requirement already satisfied".
    """
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    wanted = _run([sys.executable, "-m", "pip", "install", "--dry-run", "pieces_os_client>=1"], env, tmp_path)
    assert "already satisfied" not in wanted.stdout + wanted.stderr
    assert wanted.returncode != 0
    assert "No matching distribution found for pieces_os_client>=1" in wanted.stderr, wanted.stderr
    # the same pip, asked for what is installed, says so: the check above is not vacuous
    installed = _run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "pieces_os_client<1"], env)
    assert installed.returncode == 0, installed.stderr
    assert "Requirement already satisfied: pieces_os_client<1" in installed.stdout


_INDEX_INSTALL = re.compile(r"pip install[^\n`]*?[\"' ](pieces[-_]os[-_]client)(\[[^\]]*\])?(==[\d.]+)?", re.IGNORECASE)


def test_nothing_tells_a_user_to_install_this_package_from_the_index() -> None:
    """A ``pip install`` of the name is only ever the official SDK, pinned, for comparisons."""
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *ROOT.glob("docs/*.md"), *ROOT.glob("benchmarks/*.md")]
    files += [*ROOT.glob("pieces_os_client/**/*.py"), *ROOT.glob("examples/*.py"), ROOT / ".ci" / "run"]
    offenders = []
    for path in files:
        for match in _INDEX_INSTALL.finditer(path.read_text(encoding="utf-8")):
            pinned_official = match.group(3) is not None and int(match.group(3)[2:].split(".")[0]) >= 1
            if not pinned_official or match.group(2):
                offenders.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert offenders == []
    assert _INDEX_INSTALL.search('pip install "pieces_os_client[emulator]"')  # the pattern does catch the old text


# ---------------------------------------------------------------- the pytest plugin
PLUGIN_TESTS = '''
import sys

import pieces_os_client

# as pytest collects this file (before any test has run): what loading the plugin imported
WATCHED = ("pieces_os_client.testing", "aiohttp", "pieces_os_client.emulator")
AT_COLLECTION = {name: name in sys.modules for name in WATCHED}


def test_plugin_loaded_without_the_emulator():
    # registered through the pytest11 entry point, and cheap: no aiohttp, no emulator
    assert AT_COLLECTION == {"pieces_os_client.testing": True, "aiohttp": False, "pieces_os_client.emulator": False}


def test_session_emulator(pieces_emulator_session):
    pieces_emulator_session.reset()
    assert pieces_emulator_session.url.startswith("http://127.0.0.1:")
'''

ASYNC_PLUGIN_TEST = '''
import asyncio

import pytest

import pieces_os_client


@pytest.mark.asyncio
async def test_the_async_emulator_serves_in_the_tests_loop(pieces_emulator_async):
    emulator = pieces_emulator_async
    configuration = pieces_os_client.Configuration(host=emulator.url)
    async with pieces_os_client.AsyncApiClient(configuration) as client:
        api = pieces_os_client.AsyncConversationsApi(client)
        made = await api.conversations_create_specific_conversation(
            seeded_conversation=pieces_os_client.SeededConversation(name="in one loop"))
        ids = await api.conversations_identifiers_snapshot()
    assert [item.id for item in ids.iterable] == [made.id]
    assert emulator._loop is asyncio.get_running_loop()  # it serves in this loop, not a thread of its own
'''


def _docs_fixture_example(fixture: str = "pieces_emulator") -> str:
    """docs/emulator.md's example of a test that uses ``fixture``, as printed there."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "emulator.md").read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if "def test_" in b and f"({fixture})" in b]
    return block


def test_fixtures_work_with_no_conftest(tmp_path: Path) -> None:
    (tmp_path / "test_from_the_docs.py").write_text(_docs_fixture_example())
    (tmp_path / "test_more.py").write_text(PLUGIN_TESTS)
    (tmp_path / "test_async.py").write_text(ASYNC_PLUGIN_TEST)
    (tmp_path / "test_async_from_the_docs.py").write_text(_docs_fixture_example("pieces_emulator_async"))
    # pytest-asyncio (installed with the dev extra) warns when this is unset, whoever's suite it is
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    assert not (tmp_path / "conftest.py").exists()
    done = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"], _env(), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 passed" in done.stdout


def test_a_fixture_without_aiohttp_fails_with_one_line_saying_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "test_needs_it.py").write_text("def test_it(pieces_emulator):\n    pass\n")
    (tmp_path / "test_plain.py").write_text("import pieces_os_client\n\ndef test_plain():\n    pass\n")
    done = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], _env(tmp_path, block_aiohttp=True),
                tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed, 1 error" in done.stdout  # loading the plugin did not need aiohttp; the fixture did
    assert NEEDS_AIOHTTP in done.stdout.splitlines()
    assert "Traceback" not in done.stdout and "raise ImportError" not in done.stdout


def test_the_testing_module_imports_everything_without_pytest() -> None:
    done = _run(
        [sys.executable, "-c",
         "import sys\nsys.modules['pytest'] = None\n"
         "from pieces_os_client.testing import *\n"
         "print(sorted(name for name in dir() if not name.startswith('_') and name != 'sys'))"],
        _env(),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['blackhole_server', 'running_emulator']"


# ---------------------------------------------------------------- the emulator's command line without aiohttp
@pytest.mark.parametrize("command", ["python -m pieces_os_client.emulator", "pieces-os-emulator"])
def test_the_emulator_command_without_aiohttp_prints_one_line(command: str, tmp_path: Path) -> None:
    if command == "pieces-os-emulator":
        args = [str(BIN / ("pieces-os-emulator.exe" if sys.platform == "win32" else "pieces-os-emulator"))]
    else:
        args = [sys.executable, "-m", "pieces_os_client.emulator"]
    done = _run(args, _env(tmp_path, block_aiohttp=True))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"pieces-os-emulator: {NEEDS_AIOHTTP}\n"
    assert 'pip install ".[emulator]"' in done.stderr and "clone" in done.stderr


# ---------------------------------------------------------------- the emulator's default port
def test_the_emulator_takes_the_first_free_port_of_its_range(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pieces_os_client.emulator import Emulator
    from pieces_os_client.emulator import __main__ as cli

    assert list(cli.DEFAULT_PORTS) == list(range(39300, 39334))
    with Emulator() as busy, Emulator() as also_busy:
        free = also_busy.port
        also_busy.stop()  # its port is free again
        started = cli.start_on_first_free(lambda port: Emulator(port=port), [busy.port, free])
        try:
            assert started.port == free
        finally:
            started.stop()
        # every port of the range taken: one line, status 1
        monkeypatch.setattr(cli, "DEFAULT_PORTS", [busy.port])
        assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert err.startswith("pieces-os-emulator: cannot listen on 127.0.0.1, any port in 39300-39333: ")
    assert len(err.splitlines()) == 1
