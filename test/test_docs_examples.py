"""The examples in README.md, docs/*.md and the user's API page run against the emulator.

Doc examples: every ```python block of a page runs, in order, in one namespace, with the
documented hosts pointed at a fresh emulator. API page examples (the user's page, kept
outside the repository in ../shared/seed): each runs verbatim in its own interpreter with
only the host changed, and must print its result and no exception.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pieces_os_client.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent
DOC_HOSTS = ("http://localhost:1000", "http://localhost:39300")
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SEED_PAGE = ROOT.parent / "shared" / "seed" / "ConversationsApi.txt"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(port=0) as emulator:
        yield emulator


def _point_at(code: str, url: str) -> str:
    for host in DOC_HOSTS:
        code = code.replace(host, url)
    return code


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p.read_text())], ids=lambda p: p.name)
def test_page_examples_run(page: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for index, block in enumerate(python_blocks(page.read_text())):
        code = compile(_point_at(block, emu.url), f"{page.name}[block {index}]", "exec")
        exec(code, namespace)  # the documentation's own code, against the local emulator
    out = capsys.readouterr().out
    assert "Exception when calling" not in out and "refused" not in out


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


def test_the_api_page_is_available_to_ci() -> None:
    # CI runs next to ../shared; a checkout without it has no page to test against.
    if not SEED_PAGE.parent.parent.exists():
        pytest.skip("the shared folder with the user's API page is not beside this checkout")
    assert len(SEED_EXAMPLES) == 6


@pytest.mark.parametrize(("method", "code"), SEED_EXAMPLES, ids=[m for m, _ in SEED_EXAMPLES])
def test_api_page_example_runs_verbatim(method: str, code: str, emu: Emulator) -> None:
    if method == "conversations_delete_specific_conversation":
        # the page deletes the conversation 'conversation_example': make it exist first
        emu.create_conversation({"name": "example"}, conversation_id="conversation_example")
    code = code.replace('host="http://localhost:1000"', f'host="{emu.url}"')
    assert emu.url in code
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Exception when calling" not in result.stdout, result.stdout
    assert result.stderr == ""
    if "pprint(api_response)" in code:
        assert f"The response of ConversationsApi->{method}:" in result.stdout
        assert len(result.stdout.splitlines()) > 2  # the pretty-printed model follows
    if method == "conversations_delete_specific_conversation":
        assert "conversation_example" not in emu.conversation_ids()
