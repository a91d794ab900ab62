"""The package uses pydantic's public API only: no private module and no private keyword.

Read from the source. pydantic's own first-use call hands ``model_rebuild`` private keywords
(``_parent_namespace_depth``, ``_types_namespace``); ``PiecesModel.model_rebuild`` takes them
and never passes any on, so how pydantic uses them can change without breaking a build.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from typing import Iterator, Tuple

from testkit import ROOT

PACKAGE = ROOT / "pieces_os_client"
REBUILDS = {"model_rebuild", "rebuild"}  # BaseModel.model_rebuild, TypeAdapter.rebuild


def _trees() -> Iterator[Tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield str(path.relative_to(ROOT)), ast.parse(path.read_text(encoding="utf-8"), str(path))


def test_no_private_module_of_pydantic_is_imported() -> None:
    found = []
    for name, tree in _trees():
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules = [node.module]
            found += [f"{name}:{node.lineno} {module}" for module in modules
                      if module.split(".")[0] in ("pydantic", "pydantic_core")
                      and any(part.startswith("_") for part in module.split(".")[1:])]
    assert found == []


def test_model_rebuild_is_called_with_public_keywords_only() -> None:
    found = []
    for name, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in REBUILDS:
                private = [kw.arg for kw in node.keywords if kw.arg is None or kw.arg.startswith("_")]
                if private:
                    found.append(f"{name}:{node.lineno} {ast.unparse(node)[:100]}")
    assert found == []


_APPLICATION = r"""
import json
from typing import Optional
from pieces_os_client.models import Conversation, PiecesModel

class Tree(PiecesModel):
    leaf: "Leaf"  # made below: found in this module when the class is first used
    conversation: Optional[Conversation] = None

class Leaf(PiecesModel):
    size: int

moment = {"value": "2024-01-01T00:00:00Z"}
tree = Tree.model_validate({"leaf": {"size": 3}, "conversation": {
    "id": "c", "created": moment, "updated": moment, "messages": {"iterable": [{"id": "m"}]}}})
print(json.dumps([tree.leaf.size, type(tree.conversation.messages.iterable[0]).__name__]))
"""


def test_an_applications_subclass_built_first_finds_every_name_it_quotes() -> None:
    """An application's model built before any of ours: its own quoted names come from its
    module, and those of our cycle (which it reaches through ``Conversation``) from ours."""
    done = subprocess.run([sys.executable, "-c", _APPLICATION], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [3, "ReferencedConversationMessage"]
