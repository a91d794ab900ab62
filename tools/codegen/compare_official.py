"""Compare generated public names with an installed official ``pieces_os_client``.

Usage (from the repo root)::

    python -m tools.codegen.compare_official PATH/TO/site-packages/pieces_os_client/models

Both sides are read as source with ``ast`` (nothing is imported), so the official
package may live in any environment.  For every module this project generates it
reports: a missing official module, a different class name, fields whose Python
name or alias differ, fields only one side has, and enum members that differ.
Exit status 1 when a name the official SDK has is missing or spelled differently
here (fields or members only we have are listed but are not an error).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

# python name -> wire name (alias or the name itself); for enums, member -> value
Names = Dict[str, str]


def _read(path: Path) -> Dict[str, Tuple[str, Names]]:
    """Classes in a module: ``{class name: (kind, names)}``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: Dict[str, Tuple[str, Names]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = {ast.unparse(b) for b in node.bases}
        is_enum = bool(bases & {"Enum", "PiecesEnum", "str, Enum"}) or any("Enum" in b for b in bases)
        names: Names = {}
        for stmt in node.body:
            if is_enum and isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                value = stmt.value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    names[stmt.targets[0].id] = value.value
            elif not is_enum and isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                name = stmt.target.id
                if name.startswith("_") or "ClassVar" in ast.unparse(stmt.annotation):
                    continue
                names[name] = _alias(stmt.value) or name
        out[node.name] = ("enum" if is_enum else "model", names)
    return out


def _alias(value: Optional[ast.expr]) -> Optional[str]:
    if isinstance(value, ast.Call) and ast.unparse(value.func).endswith("Field"):
        for kw in value.keywords:
            if kw.arg == "alias" and isinstance(kw.value, ast.Constant):
                return str(kw.value.value)
    return None


def compare(official_dir: Path, ours_dir: Path) -> Tuple[List[str], List[str]]:
    """Return (differences that break official names, additions of ours)."""
    problems: List[str] = []
    extras: List[str] = []
    for ours_path in sorted(ours_dir.glob("*.py")):
        if ours_path.name.startswith("_"):
            continue
        official_path = official_dir / ours_path.name
        ours = _read(ours_path)
        if not official_path.is_file():
            extras.append(f"{ours_path.name}: not in the official package (classes {sorted(ours)})")
            continue
        theirs = _read(official_path)
        for cls, (kind, our_names) in ours.items():
            if cls not in theirs:
                problems.append(f"{ours_path.name}: class {cls} not in official module (has {sorted(theirs)})")
                continue
            their_kind, their_names = theirs[cls]
            if kind != their_kind:
                problems.append(f"{cls}: {kind} here, {their_kind} in official")
            by_wire_ours = {wire: py for py, wire in our_names.items()}
            by_wire_theirs = {wire: py for py, wire in their_names.items()}
            label = "member" if kind == "enum" else "field"
            for wire, py in sorted(by_wire_theirs.items()):
                if wire not in by_wire_ours:
                    extras.append(f"{cls}: official-only {label} {py} ({wire!r}) (newer document)")
                elif by_wire_ours[wire] != py:
                    problems.append(f"{cls}: {label} for {wire!r} is {by_wire_ours[wire]} here, {py} in official")
            for wire, py in sorted(by_wire_ours.items()):
                if wire not in by_wire_theirs:
                    extras.append(f"{cls}: {label} {py} ({wire!r}) only here")
    return problems, extras


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    official = Path(argv[0])
    if (official / "models").is_dir():
        official = official / "models"
    ours = Path(__file__).resolve().parents[2] / "pieces_os_client" / "models"
    problems, extras = compare(official, ours)
    for line in extras:
        print("note:", line)
    for line in problems:
        print("DIFF:", line)
    print(f"{len(problems)} naming differences, {len(extras)} notes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
