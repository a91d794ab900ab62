"""The examples in README.md, docs/*.md and the user's API page run as pasted.

Doc examples: every ```python block of README.md and of every page in docs/ (new pages are
picked up by the glob) runs on its own, unedited, in a fresh interpreter, the way a reader
pastes it. The blocks find the server by discovery; here ``PIECES_OS_URL`` (which discovery
honours first) points them at an emulator this test started, so concurrent test runs on one
machine never meet. Blocks run two at a time, each worker with its own emulator, emptied
before every block.

A separate test shows the other half of "as pasted": an emulator started with no arguments is
found by ``Configuration()`` with no environment variable at all.

API page examples (the user's page, kept outside the repository in ../shared/seed): each runs
verbatim in its own interpreter with only the host changed, and must print its result and no
exception.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import pytest
from testkit import ROOT

import pieces_os_client
from pieces_os_client.discovery import CANDIDATE_PORTS, ENV_VAR, find_pieces_os, is_pieces_os
from pieces_os_client.emulator import Emulator

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SEED_PAGE = ROOT.parent / "shared" / "seed" / "ConversationsApi.txt"
WORKERS = 2  # blocks run in parallel, two at a time (the CI machine has two cores)
BLOCK_TIMEOUT = 60.0


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


DOC_BLOCKS = {
    f"{page.name}[{index}]": block for page in PAGES for index, block in enumerate(python_blocks(page.read_text()))
}


def _child_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != ENV_VAR}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env.update(extra)
    return env


class Job(NamedTuple):
    code: str
    # sets the emulator up for the code; returns the host written in the code, which the run
    # replaces by the emulator's URL ("" for code that finds the server by discovery)
    prepare: Callable[[Emulator], str] = lambda emulator: ""


class Outcome(NamedTuple):
    result: subprocess.CompletedProcess[str]
    conversation_ids: list[str]  # the emulator's conversations right after the run


def run_in_parallel(jobs: dict[str, Job]) -> dict[str, Outcome]:
    """Run each job's code in its own interpreter, ``WORKERS`` at a time, each worker with its
    own emulator (emptied before every job), ``PIECES_OS_URL`` pointing at it."""
    with contextlib.ExitStack() as stack:
        emulators: queue.Queue[Emulator] = queue.Queue()
        for _ in range(WORKERS):
            emulators.put(stack.enter_context(Emulator()))
        workdir = stack.enter_context(tempfile.TemporaryDirectory())
        # Bytecode compiled by the first jobs is reused by the rest (kept outside the checkout).
        cache = {"PYTHONPYCACHEPREFIX": os.path.join(workdir, "pycache"), "PYTHONDONTWRITEBYTECODE": ""}

        def run(job: Job) -> Outcome:
            emulator = emulators.get()
            try:
                emulator.reset()
                host = job.prepare(emulator)
                result = subprocess.run(
                    [sys.executable, "-c", job.code.replace(host, emulator.url) if host else job.code],
                    capture_output=True,
                    text=True,
                    timeout=BLOCK_TIMEOUT,
                    cwd=workdir,  # a block that writes files writes them here
                    env=_child_env(**cache, **{ENV_VAR: emulator.url}),
                )
                return Outcome(result, emulator.conversation_ids())
            finally:
                emulators.put(emulator)

        with ThreadPoolExecutor(WORKERS) as pool:
            futures = {name: pool.submit(run, job) for name, job in jobs.items()}
            return {name: future.result() for name, future in futures.items()}


def test_every_page_is_covered() -> None:
    names = {page.name for page in PAGES}
    assert {"README.md", "ConversationsApi.md", "configuration.md", "emulator.md", "streaming.md"} <= names
    assert len(DOC_BLOCKS) >= 29


def test_the_docs_index_links_every_page() -> None:
    index = (ROOT / "docs" / "README.md").read_text()
    linked = set(re.findall(r"\]\(([^)#]+)", index))
    pages = {page.name for page in PAGES if page.parent.name == "docs" and page.name != "README.md"}
    assert pages - linked == set()
    assert {"models/README.md", "threads-processes-limits.md", "../CHANGELOG.md"} <= linked


@pytest.mark.parametrize("name", list(DOC_BLOCKS))
def test_doc_example_runs_alone(name: str, outcomes: dict[str, Outcome]) -> None:
    result = outcomes[name].result
    assert result.returncode == 0, f"{name} failed when run on its own:\n{result.stderr}"
    assert result.stderr == "", result.stderr
    assert "Exception when calling" not in result.stdout and "refused" not in result.stdout, result.stdout
    assert "localhost:1000" not in DOC_BLOCKS[name], "examples rely on discovery, not a hard-coded host"


# ---------------------------------------------------------------- started with no arguments, found with none
@contextlib.contextmanager
def _one_default_emulator_at_a_time() -> Iterator[None]:
    """Serialize this test across concurrent runs on one machine: each takes the lowest free port."""
    lock_path = Path(tempfile.gettempdir()) / "pieces_os_client-default-port-test.lock"
    with open(lock_path, "a+") as handle:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _names_at(host: str) -> list[str]:
    with pieces_os_client.ApiClient(pieces_os_client.Configuration(host=host)) as client:
        return [c.name for c in pieces_os_client.ConversationsApi(client).conversations_snapshot().iterable]


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGTERM and select on a pipe")
def test_an_emulator_started_with_no_arguments_is_found_with_no_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The emulator takes the first free port of 39300-39333 and ``Configuration()`` finds it.

    Every port of the range below the emulator's was taken when it started: by a server that
    is not Pieces OS (the scan must pass over it), or by one that answers like Pieces OS (Pieces
    OS itself, or another emulator). Discovery rightly answers the first of the latter, as it
    would for any user on this machine, and the test then checks that instead: that the server
    found answers like Pieces OS, is not ours, and that nothing before it in the range does; and
    that the scan finds ours once it starts at ours. With no such server, the whole story is
    checked: ``Configuration()`` with no host goes to the emulator just started.
    """
    # No port file (an empty home, no XDG data dir) and no PIECES_OS_URL: only the scan can find it.
    for name in ("HOME", "USERPROFILE"):
        monkeypatch.setenv(name, str(tmp_path))
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv(ENV_VAR, raising=False)
    with _one_default_emulator_at_a_time():
        env = _child_env(HOME=str(tmp_path), USERPROFILE=str(tmp_path))
        env.pop("XDG_DATA_HOME", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pieces_os_client.emulator"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 20)
            assert ready, "the emulator printed nothing in time"
            line = proc.stdout.readline()
            match = re.fullmatch(r"Pieces OS emulator listening on http://127\.0\.0\.1:(\d+) \(Ctrl-C to stop\)\n",
                                 line)
            assert match, line
            port = int(match.group(1))
            assert 39300 <= port <= 39333

            marker = f"made by the test at {time.time()}"
            with pieces_os_client.ApiClient(pieces_os_client.Configuration(host=f"http://127.0.0.1:{port}")) as client:
                pieces_os_client.ConversationsApi(client).conversations_create_specific_conversation(
                    seeded_conversation={"name": marker}
                )
            config = pieces_os_client.Configuration()
            with pieces_os_client.ApiClient(config) as client:
                names = [c.name for c in pieces_os_client.ConversationsApi(client).conversations_snapshot().iterable]
            found = urlsplit(config.host).port
            assert config.host == f"http://localhost:{found}"
            assert found is not None and 39300 <= found <= port, (found, port)
            # Discovery answered the first port of the range that answers like Pieces OS.
            lower = [p for p in range(39300, found) if is_pieces_os(f"http://localhost:{p}")]
            assert lower == [], f"port {lower[0]} answers like Pieces OS, yet discovery chose {found}"
            if found == port:
                assert marker in names  # the emulator just started, found with no configuration
            else:
                # Shadowed by a Pieces OS (or another emulator) on a lower port of the range.
                assert is_pieces_os(f"http://localhost:{found}")
                assert marker not in names, "discovery found our emulator under another port"
                ours = find_pieces_os(ports=CANDIDATE_PORTS[CANDIDATE_PORTS.index(port) :])
                assert ours == f"http://localhost:{port}"
                assert marker in _names_at(ours)
        finally:
            proc.terminate()
            assert proc.wait(10) == 0
            assert proc.stdout is not None and proc.stderr is not None
            proc.stdout.close()
            assert proc.stderr.read() == ""
            proc.stderr.close()


# ---------------------------------------------------------------- the user's API page
def seed_examples() -> list[tuple[str, str]]:
    """(method name, code) for each example on the API page, indentation restored.

    The page as given lost its indentation; the examples all share one shape (imports,
    a configuration, a ``with`` block holding a ``try``/``except``), which fixes it.
    """
    if not SEED_PAGE.exists():
        return []
    text = SEED_PAGE.read_text()
    examples = []
    for match in re.finditer(r"\nExample\n\n(.*?)\n(?:Parameters|Return type)\n", text, flags=re.DOTALL):
        code_lines, level = [], 0
        for line in match.group(1).splitlines():
            stripped = line.strip()
            if stripped.startswith("except"):
                level -= 1
            code_lines.append("    " * level + stripped if stripped else "")
            if stripped.endswith(":") and stripped.split()[0] in ("with", "try:", "try", "except"):
                level += 1
        code = "\n".join(code_lines)
        name = re.search(r"api_instance\.(\w+)\(", code)
        assert name is not None
        examples.append((name.group(1), code))
    return examples


SEED_EXAMPLES = seed_examples()
SEED_HOST = 'host="http://localhost:1000"'


def _seed_job(method: str, code: str) -> Job:
    def prepare(emulator: Emulator) -> str:
        if method == "conversations_delete_specific_conversation":
            # the page deletes the conversation 'conversation_example': make it exist first
            emulator.create_conversation({"name": "example"}, conversation_id="conversation_example")
        return "http://localhost:1000"  # the page's host, replaced by the emulator's

    assert SEED_HOST in code
    return Job(code, prepare)


@pytest.fixture(scope="module")
def outcomes() -> dict[str, Outcome]:
    """Every doc block and every API page example, run once each, two at a time."""
    jobs = {name: Job(code) for name, code in DOC_BLOCKS.items()}
    jobs.update({f"seed:{method}": _seed_job(method, code) for method, code in SEED_EXAMPLES})
    return run_in_parallel(jobs)


def test_the_api_page_is_available_to_ci() -> None:
    # CI runs next to ../shared; a checkout without it has no page to test against.
    if not SEED_PAGE.parent.parent.exists():
        pytest.skip("the shared folder with the user's API page is not beside this checkout")
    assert len(SEED_EXAMPLES) == 6


@pytest.mark.parametrize(("method", "code"), SEED_EXAMPLES, ids=[m for m, _ in SEED_EXAMPLES])
def test_api_page_example_runs_verbatim(method: str, code: str, outcomes: dict[str, Outcome]) -> None:
    result, conversation_ids = outcomes[f"seed:{method}"]
    assert result.returncode == 0, result.stderr
    assert "Exception when calling" not in result.stdout, result.stdout
    assert result.stderr == ""
    if "pprint(api_response)" in code:
        assert f"The response of ConversationsApi->{method}:" in result.stdout
        assert len(result.stdout.splitlines()) > 2  # the pretty-printed model follows
    if method == "conversations_delete_specific_conversation":
        assert "conversation_example" not in conversation_ids
