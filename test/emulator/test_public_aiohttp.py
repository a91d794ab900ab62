"""The emulator uses aiohttp's public API only, so an aiohttp upgrade cannot break it from inside.

Read from the source: every aiohttp name the emulator uses comes from ``aiohttp`` or
``aiohttp.web``, the namespaces aiohttp documents, and no emulator class derives from an aiohttp
class (an override of an undocumented method would depend on how aiohttp calls it).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, Tuple

from testkit import ROOT

EMULATOR = ROOT / "pieces_os_client" / "emulator"
PUBLIC = {"aiohttp", "aiohttp.web"}


def _trees() -> Iterator[Tuple[Path, ast.Module]]:
    for path in sorted(EMULATOR.glob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _aiohttp_names(tree: ast.Module) -> set[str]:
    """The local names bound to aiohttp or to something imported from it."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names
                         if alias.name.split(".")[0] == "aiohttp")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiohttp":
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def test_the_emulator_imports_only_aiohttps_public_namespaces() -> None:
    found = []
    for path, tree in _trees():
        for node in ast.walk(tree):
            modules = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            found += [f"{path.name}:{node.lineno} {module}" for module in modules
                      if module.split(".")[0] == "aiohttp" and module not in PUBLIC]
    assert found == []


def test_no_emulator_class_derives_from_an_aiohttp_class() -> None:
    found = []
    for path, tree in _trees():
        aiohttp_names = _aiohttp_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    root = base
                    while isinstance(root, ast.Attribute):
                        root = root.value
                    if isinstance(root, ast.Name) and root.id in aiohttp_names:
                        found.append(f"{path.name}:{node.lineno} {node.name}({ast.unparse(base)})")
    assert found == []


def test_no_underscore_name_is_read_from_an_aiohttp_object() -> None:
    """``web.X._y`` or ``aiohttp.X._y``, and any ``._name`` on a value aiohttp's own objects give
    (a request, a response, a server): only the emulator's own objects have underscore names here."""
    found = []
    own = {"self", "cls", "emulator", "emu", "entry"}
    for path, tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                root = node.value
                while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
                    root = root.func if isinstance(root, ast.Call) else root.value
                if not (isinstance(root, ast.Name) and root.id in own):
                    found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
    # NamedTuple's public _asdict (records of the emulator's own request log)
    assert [entry for entry in found if not entry.endswith("._asdict")] == []
