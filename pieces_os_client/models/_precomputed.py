"""Precomputed core schemas: a model's first build without pydantic's schema generation.

Building ``Conversations`` for the first time spends most of its time in pydantic's schema
generation (turning ~190 classes' annotations into one core schema). That output is the same
on every run for a given pydantic, so ``tools.codegen`` writes it down once, in the generated
module ``models._schemas``: one function per model and enum, returning that class's own core
schema as a fresh dict literal, with the classes it refers to as ``definition-ref`` schemas
under stable refs of our own (``"<module>.<class>:pieces"``).

:func:`schema_for` (called by ``PiecesModel.__get_pydantic_core_schema__``, a public pydantic
hook that ``models._base`` sets at the first build, only if the table applies) hands pydantic a
``definitions`` schema of the class and everything it refers to, and pydantic then only
finishes it (inlining, validator and serializer), as for a schema it generated itself. Strict terms:

* The table is used only with the exact pydantic and pydantic-core versions it was generated
  with (``PYDANTIC_VERSION``, ``PYDANTIC_CORE_VERSION``); with any other version, or if
  ``PIECES_OS_CLIENT_PRECOMPUTED_SCHEMAS=0`` is set, every model builds natively.
* Only classes of this package are looked up, by exact identity (a subclass an application
  defines builds natively).
* Nothing of pydantic's private modules is used; pydantic may change the dicts it is handed,
  so every call builds new ones.

The tests compare, for every model, the precomputed and the native core schemas and JSON
schemas. Nothing here takes :data:`~pieces_os_client._lazy.BUILD_LOCK`: the functions are pure,
the memo dicts are filled by single assignments (contract rule 1 of ``pieces_os_client._lazy``),
and links still pending are made as a native build would make them (``finish_links``, which
takes only the links' own lock).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any, Callable, Dict, List, Optional, Tuple

from pieces_os_client import _lazy

__all__ = ["ENV", "REF_SUFFIX", "schema_for", "table"]

#: Set to ``0`` to build every model natively (read once, at the first build).
ENV = "PIECES_OS_CLIENT_PRECOMPUTED_SCHEMAS"
#: The id part of the refs in the table (pydantic's own refs end in the class's ``id()``).
REF_SUFFIX = ":pieces"

_PACKAGE = __name__.rpartition(".")[0]  # "pieces_os_client.models"
# "table": the table module, or None when it does not apply. Filled once (a pure memo).
_state: Dict[str, Optional[ModuleType]] = {}
# A class name: the names of its table entries in definition order (a pure memo).
_closures: Dict[str, Tuple[str, ...]] = {}


def _load() -> Optional[ModuleType]:
    if os.environ.get(ENV, "1").strip() in ("0", "false", "no", "off"):
        return None
    import pydantic
    import pydantic_core

    try:
        module = importlib.import_module(f"{_PACKAGE}._schemas")
    except ImportError:
        return None
    if (pydantic.VERSION, pydantic_core.__version__) != (module.PYDANTIC_VERSION, module.PYDANTIC_CORE_VERSION):
        return None
    return module


def table() -> Optional[ModuleType]:
    """The generated table, if it applies to this process (see the module docstring)."""
    try:
        return _state["table"]
    except KeyError:
        return _state.setdefault("table", _load())


class _Classes(Dict[str, Any]):
    """The package's classes by name, looked up on first use (the bundle first, then the module)."""

    def __init__(self, modules: Dict[str, str]) -> None:
        super().__init__()
        self._modules = modules
        self._bundle = _lazy.types_namespace() or {}

    def __missing__(self, name: str) -> Any:
        module = f"{_PACKAGE}.{self._modules[name]}"
        found = self._bundle.get(name)
        if found is None or getattr(found, "__module__", None) != module:
            found = getattr(importlib.import_module(module), name)
        self[name] = found
        return found


def _closure(entries: Dict[str, Tuple[Callable[..., Any], Tuple[str, ...]]], name: str) -> Tuple[str, ...]:
    """``name`` and every entry it reaches, each after those it refers to (depth first, in field
    order): the order in which pydantic's own schema generation finishes them."""
    found = _closures.get(name)
    if found is not None:
        return found
    order: List[str] = []
    seen = {name}
    stack = [(name, iter(entries[name][1]))]
    while stack:
        current, deps = stack[-1]
        for dep in deps:
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, iter(entries[dep][1])))
                break
        else:
            stack.pop()
            order.append(current)
    found = _closures[name] = tuple(order)
    return found


def schema_for(cls: type) -> Optional[Dict[str, Any]]:
    """The core schema of ``cls`` from the table, or ``None`` (build natively)."""
    module = table()
    if module is None:
        return None
    name = cls.__name__
    entries: Dict[str, Tuple[Callable[..., Any], Tuple[str, ...]]] = module.SCHEMAS
    if name not in entries or cls.__module__ != f"{_PACKAGE}.{module.MODULES[name]}":
        return None
    if _lazy._pending_links:
        # as a native build would (``_lazy.link_models``): the links are made by the first schema
        _lazy.finish_links()
    classes = _Classes(module.MODULES)
    try:
        if classes[name] is not cls:
            return None
        definitions = [entries[entry][0](classes) for entry in _closure(entries, name)]
    except (ImportError, AttributeError, KeyError):  # not as generated: pydantic's own schema
        return None
    ref = f"{cls.__module__}.{cls.__qualname__}{REF_SUFFIX}"
    return {"type": "definitions", "schema": {"type": "definition-ref", "schema_ref": ref}, "definitions": definitions}
