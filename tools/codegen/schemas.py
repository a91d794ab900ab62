"""Write ``pieces_os_client/models/_schemas.py``: every model's core schema, precomputed.

pydantic builds each generated model natively here (in a fresh interpreter, the table switched
off), and its finished core schemas are cut into one entry per class: the class's own schema,
with each model or enum it refers to replaced by a ``definition-ref`` under a stable ref. Each
entry becomes a function returning a dict literal (pydantic may change what it is handed, so
every build gets new dicts); the objects in a schema (classes, enum members, the package's
validator functions, bound ``__get_pydantic_json_schema__`` methods) are written as
expressions, and anything else stops the generator. The output is checked before it is
returned: each function must give back exactly the entry it was written from.

The table records the pydantic and pydantic-core versions it was made with; at run time it is
used only with those (``pieces_os_client.models._precomputed``). Regenerate after changing
pydantic: the drift check (``--check``) fails until then.
"""

from __future__ import annotations

import enum
import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tools.codegen.pysource import literal

TABLE = "pieces_os_client/models/_schemas.py"
WIDTH = 120
# the environment variable of pieces_os_client.models._precomputed (not imported here: the
# generator runs without the package)
_ENV = "PIECES_OS_CLIENT_PRECOMPUTED_SCHEMAS"


def render(root: Path) -> Optional[str]:
    """The table for the package under ``root``, or ``None`` if there is no package to build."""
    if not (root / "pieces_os_client" / "models" / "_base.py").is_file():
        return None
    env = dict(os.environ)
    env[_ENV] = "0"
    tools_root = Path(__file__).resolve().parents[2]  # where ``tools`` is importable from
    env["PYTHONPATH"] = os.pathsep.join([str(root.resolve()), str(tools_root)])
    result = subprocess.run(
        [sys.executable, "-m", "tools.codegen.schemas"],
        cwd=str(root), env=env, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"precomputing the core schemas failed:\n{result.stderr}")
    return result.stdout


# --------------------------------------------------------------------- in the child process


class _Cutter:
    """Cuts finished core schemas into one entry per class."""

    def __init__(self, classes: Dict[str, type], suffix: str) -> None:
        self.classes = classes
        self.by_id = {id(cls): name for name, cls in classes.items()}
        self.suffix = suffix
        self.entries: Dict[str, Dict[str, Any]] = {}
        self.deps: Dict[str, List[str]] = {}

    def name_of(self, ref: str) -> str:
        head, _, ident = ref.rpartition(":")
        name = self.by_id.get(int(ident)) if ident.isdigit() else None
        if name is None or head != f"{self.classes[name].__module__}.{self.classes[name].__qualname__}":
            raise ValueError(f"a ref not of a class of the package: {ref!r}")
        return name

    def stable(self, name: str) -> str:
        cls = self.classes[name]
        return f"{cls.__module__}.{cls.__qualname__}{self.suffix}"

    def cut(self, node: Any, owner: Optional[List[str]]) -> Any:
        if isinstance(node, list):
            return [self.cut(item, owner) for item in node]
        if isinstance(node, tuple):
            return tuple(self.cut(item, owner) for item in node)
        if not isinstance(node, dict):
            return node
        kind = node.get("type")
        if kind == "definitions":
            for definition in node["definitions"]:
                self.cut(definition, None)
            return self.cut(node["schema"], owner)
        if kind == "definition-ref":
            name = self.name_of(node["schema_ref"])
            if owner is not None and name not in owner:
                owner.append(name)
            return {**node, "schema_ref": self.stable(name)}
        if kind == "enum":
            node = _without_pydantic_functions(node)
        if "ref" in node:
            name = self.name_of(node["ref"])
            deps: List[str] = []
            entry = {key: self.cut(value, deps) for key, value in node.items()}
            entry["ref"] = self.stable(name)
            if name in self.entries:
                if self.entries[name] != entry or self.deps[name] != deps:
                    raise ValueError(f"two different core schemas of {name}")
            else:
                self.entries[name] = entry
                self.deps[name] = deps
            if owner is not None and name not in owner:
                owner.append(name)
            return {"type": "definition-ref", "schema_ref": entry["ref"]}
        return {key: self.cut(value, owner) for key, value in node.items()}


def _without_pydantic_functions(node: Dict[str, Any]) -> Dict[str, Any]:
    """An enum schema without the JSON-schema function pydantic defines inside its generator.

    It adds the enum's title and description, which ``PiecesEnum.__get_pydantic_json_schema__``
    (bound to the class, in the same list) adds as well; the table cannot name it.
    """
    functions = node.get("metadata", {}).get("pydantic_js_functions", [])
    kept = [f for f in functions if not getattr(f, "__module__", "").startswith("pydantic.")]
    if not any(getattr(f, "__name__", "") == "__get_pydantic_json_schema__" for f in kept):
        raise ValueError(f"the enum schema {node.get('ref')!r} has no __get_pydantic_json_schema__ of its class")
    return {**node, "metadata": {**node["metadata"], "pydantic_js_functions": kept}}


class _Writer:
    """Python source for schema values."""

    def __init__(self, classes: Dict[str, type], base: Any) -> None:
        self.classes = classes
        self.names = {id(cls): name for name, cls in classes.items()}
        self.functions: Dict[int, str] = {}
        for attr, value in vars(base).items():
            if inspect.isfunction(value) and value.__module__ == base.__name__:
                self.functions[id(value)] = f"B.{attr}"
            elif isinstance(value, type) and value.__module__ == base.__name__:
                for inner, member in vars(value).items():
                    if inspect.isfunction(member):
                        self.functions.setdefault(id(member), f"B.{attr}.{inner}")

    def atom(self, value: Any) -> str:
        if isinstance(value, _Raw):
            return str(value)
        if type(value) is str:
            return literal(value)
        if value is None or type(value) in (bool, int, float):
            return repr(value)
        if isinstance(value, type) and id(value) in self.names:
            return f'c["{self.names[id(value)]}"]'
        if isinstance(value, enum.Enum) and id(type(value)) in self.names:
            if type(value).__members__.get(value.name) is not value or not value.name.isidentifier():
                raise ValueError(f"not a declared member: {value!r}")
            return f'c["{self.names[id(type(value))]}"].{value.name}'
        if inspect.ismethod(value) and id(value.__self__) in self.names:
            attr = value.__func__.__name__
            if getattr(value.__self__, attr) != value:
                raise ValueError(f"a method not reachable by its name: {value!r}")
            return f'c["{self.names[id(value.__self__)]}"].{attr}'
        if id(value) in self.functions:
            return self.functions[id(value)]
        raise ValueError(f"cannot write {value!r} ({type(value).__name__}) into the table")

    def value(self, value: Any, indent: int, used: int, tail: int) -> str:
        """``value`` at ``indent``, after ``used`` characters of its line and before ``tail``
        more: on that line if it fits, else one item a line (as ``ruff format`` would)."""
        flat = self.flat(value)
        if used + len(flat) + tail <= WIDTH or not isinstance(value, (dict, list, tuple)) or not value:
            return flat
        pad = " " * (indent + 4)
        if isinstance(value, dict):
            items = []
            for key, item in value.items():
                head = f"{pad}{literal(key)}: "
                items.append(f"{head}{self.value(item, indent + 4, len(head), 1)},")
            opening, closing = "{", "}"
        else:
            items = [f"{pad}{self.value(item, indent + 4, len(pad), 1)}," for item in value]
            opening, closing = ("[", "]") if isinstance(value, list) else ("(", ")")
        return opening + "\n" + "\n".join(items) + "\n" + " " * indent + closing

    def flat(self, value: Any) -> str:
        if isinstance(value, dict):
            return "{" + ", ".join(f"{literal(key)}: {self.flat(item)}" for key, item in value.items()) + "}"
        if isinstance(value, list):
            return "[" + ", ".join(self.flat(item) for item in value) + "]"
        if isinstance(value, tuple):
            if len(value) == 1:
                return f"({self.flat(value[0])},)"
            return "(" + ", ".join(self.flat(item) for item in value) + ")"
        return self.atom(value)


class _Raw(str):
    """Source text the writer copies as it is (a function's name)."""


def _dump() -> str:
    import pydantic
    import pydantic_core

    import pieces_os_client.models as package
    from pieces_os_client.models import _base, _precomputed

    assert os.environ.get(_precomputed.ENV) == "0" and _precomputed.table() is None
    modules: Dict[str, str] = {name: module for name, module in package._MODULES.items() if module != "_base"}
    classes: Dict[str, type] = {name: getattr(package, name) for name in sorted(modules)}
    cutter = _Cutter(classes, _precomputed.REF_SUFFIX)
    for cls in classes.values():
        if issubclass(cls, _base.PiecesModel):
            cls.model_rebuild()
            cutter.cut(cls.__pydantic_core_schema__, None)
    writer = _Writer(classes, _base)
    lines = [
        "# Generated by tools/codegen; do not edit by hand (change the generator instead).",
        "# ruff: noqa: E501",
        '"""Every generated model\'s core schema, as pydantic makes it; see ``models._precomputed``.',
        "",
        "Used only with the exact pydantic and pydantic-core versions below.",
        '"""',
        "",
        "from typing import Any, Callable, Dict, Tuple",
        "",
        "from pieces_os_client.models import _base as B",
        "",
        f"PYDANTIC_VERSION = {literal(pydantic.VERSION)}",
        f"PYDANTIC_CORE_VERSION = {literal(pydantic_core.__version__)}",
        "",
    ]
    functions: Dict[str, str] = {}
    for name in sorted(cutter.entries):
        function = f"_{name}"
        functions[name] = function
        body = writer.value(cutter.entries[name], 4, len("    return "), 0)
        lines += ["", f"def {function}(c: Dict[str, Any]) -> Dict[str, Any]:", f"    return {body}", ""]
    table = {name: (_Raw(functions[name]), tuple(cutter.deps[name])) for name in sorted(cutter.entries)}
    annotation = "Dict[str, Tuple[Callable[[Dict[str, Any]], Dict[str, Any]], Tuple[str, ...]]]"
    lines += ["", "#: Class name: (its schema, the classes it refers to)."]
    lines.append(f"SCHEMAS: {annotation} = {writer.value(table, 0, len('SCHEMAS: ') + len(annotation) + 3, 0)}")
    modules_of = {name: modules[name] for name in sorted(cutter.entries)}
    lines += ["", "#: Class name: its module in ``pieces_os_client.models``."]
    lines += [f"MODULES: Dict[str, str] = {writer.value(modules_of, 0, len('MODULES: Dict[str, str] = '), 0)}", ""]
    source = "\n".join(lines)
    _verify(source, cutter, classes)
    return source


def _verify(source: str, cutter: _Cutter, classes: Dict[str, type]) -> None:
    namespace: Dict[str, Any] = {}
    exec(compile(source, "<table>", "exec"), namespace)
    lookup: Dict[str, Any] = dict(classes)
    for name, entry in cutter.entries.items():
        made = namespace["SCHEMAS"][name][0](lookup)
        if made != entry:
            raise ValueError(f"the table's entry for {name} does not give back its core schema")
        if made is namespace["SCHEMAS"][name][0](lookup):
            raise ValueError("an entry must build a new dict each call")


def _main() -> Tuple[int, str]:
    return 0, _dump()


if __name__ == "__main__":
    code, text = _main()
    sys.stdout.write(text)
    sys.exit(code)
