"""The one lock behind everything the package builds on first use.

Importing ``pieces_os_client`` is cheap because almost nothing is built up front: public names
are imported on first access (PEP 562 ``__getattr__`` in ``pieces_os_client`` and
``pieces_os_client.models``) and each model builds its pydantic validator and serializer the
first time it is used (``defer_build=True``). Any thread may be the first to touch any of
these, and many may do so at once, so every such build goes through :data:`BUILD_LOCK`.

Locking contract
----------------
These rules keep "first use from many threads at once" safe; code that builds anything lazily,
or builds it early to speed up a cold start, must keep them.

1. **One lock.** Whatever is built once and then shared (a lazily imported public name, a
   model's validator/serializer, the default ``Configuration``, any future cache of that kind)
   is built while holding :data:`BUILD_LOCK`, a process-wide re-entrant lock. The check "is it
   built yet?" may run without the lock (a module global, ``__pydantic_complete__``); the
   build itself re-checks under the lock, so it happens once. Pure, idempotent memo caches
   (same input, same value, one atomic assignment) may skip the lock. Whatever needs network
   or file I/O to build (host discovery) uses a lock of its own, never this one.
2. **Models are built through ``model_rebuild``.** ``PiecesModel.model_rebuild`` takes the
   lock; pydantic's placeholder validator calls it on first use. Building models ahead of time
   (a warm-up thread, say) must call ``Model.model_rebuild()`` as well, never pydantic
   internals directly.
3. **A build may wait for imports.** Model modules refer to each other in cycles; a module of
   a cycle names its neighbours with :func:`link_models` after its class, which only notes
   them. The first build makes every noted link (:func:`finish_links`, importing the rest of
   the cycle), waiting with the lock held until no model module is half-imported by another
   thread. A schema pydantic generates outside our builds (a ``TypeAdapter``, an
   application's model with one of ours as a field) makes the links first too, through the
   class's ``__get_pydantic_core_schema__``, without taking this lock. Hence:
   **no module of this package may take the lock while it is being imported** (no model use
   and no lazy package attribute at module level), or a build waiting for that import would
   wait forever.
4. **Lock order.** :data:`BUILD_LOCK` is taken before pydantic's own rebuild lock, never
   after it; the links' own lock (held by :func:`finish_links`) after either, and nothing
   that waits for a build is done while it is held. No I/O happens under :data:`BUILD_LOCK`
   (beyond importing the package's own modules), so a first use waits on another thread at
   most for the builds in progress (a fraction of a second for the largest models).
5. **Errors.** A build that still fails raises an SDK error (``OpenApiException``) with
   pydantic's error as ``__cause__``; a raw pydantic error never reaches the caller.
6. **Fork.** A child process gets a fresh, unheld lock (a thread that held it in the parent
   does not exist in the child); a build cut short by the fork is simply done again.

The bundle
----------
The models the first build of ``Conversations`` needs beyond the few an application imports
itself are defined in one generated module, ``models._bundle`` (one module loads much faster
than a hundred and fifty). Each such class keeps its public module: :func:`bundle_models`, at
the bottom of the bundle, sets ``__module__`` to it, and that module re-exports the class, so
imports, pickling and ``repr`` are as before. The bundle imports nothing that could import
it back (only ``_base`` and the modules of models loaded before it) and takes no lock.

A bundled class that names a later one in quotes (a reference cycle) is resolved by pydantic
in the namespace of its ``__module__``, the public module, which imports those names from the
bundle. Those few modules (the classes :func:`bundle_models` notes) are imported before any
schema of a bundled class is made: by ``PiecesModel.model_rebuild`` for the package's own
builds, and by the class's ``__get_pydantic_core_schema__`` for a schema pydantic generates
outside them (removed once they are imported, as for :func:`link_models`). Names are never
handed to pydantic any other way: its ``model_rebuild`` gets only its public arguments.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from typing import Any, Dict, Iterable, List, Mapping, Tuple

__all__ = [
    "BUILD_LOCK",
    "bundle_models",
    "finish_links",
    "import_public_modules",
    "link_models",
    "load",
    "settle_imports",
]

#: Held while anything in the package is built on first use (see the module docstring).
BUILD_LOCK = threading.RLock()


def _fresh_lock_in_child() -> None:
    global BUILD_LOCK
    BUILD_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_fresh_lock_in_child)


def load(module_name: str, name: str) -> Any:
    """Import ``module_name`` and return its attribute ``name``, under :data:`BUILD_LOCK`."""
    with BUILD_LOCK:
        return getattr(importlib.import_module(module_name), name)


def settle_imports(prefix: str) -> None:
    """Return once no module whose name starts with ``prefix`` is half-imported by another thread.

    ``import_module`` on a module another thread is still executing waits for that import to
    finish (Python's per-module import lock) and then returns the whole module; on one that is
    already complete it is a dictionary lookup. A failed import is ignored here: the caller's
    retry reports what is missing.
    """
    for name in [name for name in list(sys.modules) if name.startswith(prefix)]:
        try:
            importlib.import_module(name)
        except Exception:  # reported by the caller's next attempt
            continue


# Links ``link_models`` left for later: (module namespace, {class: module}, classes hooked).
_pending_links: List[Tuple[Dict[str, Any], Dict[str, str], List[type]]] = []
# Packages whose modules call link_models ("pieces_os_client.models").
_model_packages: Dict[str, None] = {}
# A leaf lock: nothing else is taken while it is held. Reentrant, so that an interrupt in
# the main thread that leaves it held (between acquire and the with block) cannot lock out
# the main thread itself.
_pending_lock = threading.RLock()
# Held while finish_links imports and links; taken after BUILD_LOCK (never before it) and
# never while a build is waited for, so any thread may take it from inside pydantic.
_link_lock = threading.RLock()


def link_models(namespace: Dict[str, Any], refs: Mapping[str, str]) -> None:
    """Note the model classes a generated module refers to; :func:`finish_links` brings them in.

    Called at the bottom of a generated model module, after its class, with
    ``{class name: module name}`` of the models of its reference cycle, which its
    annotations name in quotes (pydantic resolves them in the module's namespace when the
    model is built). Nothing is imported here: a module of a cycle would otherwise import
    the whole cycle (77 models for the conversation path) before anything is used, and two
    threads importing the same cycle from different ends would trip Python's import
    deadlock detection. The first build (``PiecesModel.model_rebuild``) or the first
    schema pydantic generates for the class elsewhere (a ``TypeAdapter``, a field of the
    application's own model) makes the links first: the class gets a
    ``__get_pydantic_core_schema__`` that does so, removed again once linked. Runs at
    import time, so it never takes :data:`BUILD_LOCK` (contract rule 3).
    """
    module_name = namespace["__name__"]
    package = module_name.rpartition(".")[0]
    _model_packages[package] = None
    classes = [
        value for value in list(namespace.values())
        if isinstance(value, type) and value.__module__ == module_name and hasattr(value, "model_rebuild")
    ]
    for cls in classes:
        cls.__get_pydantic_core_schema__ = _LINK_FIRST  # type: ignore[attr-defined]
    with _pending_lock:
        _pending_links.append((namespace, {name: f"{package}.{module}" for name, module in refs.items()}, classes))


def _link_first(cls: type, source: Any, handler: Any) -> Any:
    finish_links()
    return _inherited_schema(cls, source, handler)


def _inherited_schema(cls: type, source: Any, handler: Any) -> Any:
    """What the class's own ``__get_pydantic_core_schema__`` gives, once a hook set here is done.

    The hook of a base class (one an application's subclass defines); ``handler(source)`` if
    there is none but pydantic's own ``BaseModel`` one (which pydantic does not call either).
    Hooks set here on a base class (an application's subclass of a linked class) are skipped.
    """
    for base in cls.__mro__[1:]:
        hook = base.__dict__.get("__get_pydantic_core_schema__")
        if hook is None or hook is _LINK_FIRST or hook is _BUNDLE_FIRST:
            continue
        if getattr(base, "__module__", "").startswith("pydantic."):
            break
        return hook.__get__(None, cls)(source, handler)
    return handler(source)


_LINK_FIRST: classmethod[Any, Any, Any] = classmethod(_link_first)


def finish_links() -> None:
    """Make every link :func:`link_models` left, importing the modules named (and theirs).

    First waits for the model imports other threads are still running (their links are
    noted at their end), then imports what is named, until nothing is left. Safe from any
    thread, with or without :data:`BUILD_LOCK` (which, if held, is taken before this).
    """
    with _link_lock:
        while True:
            # Once per pass, not once per entry: the entries noted while this pass imports are
            # those of modules this thread imported whole (or waited for). It returns only
            # when a settle finds nothing pending.
            for package in list(_model_packages):
                settle_imports(package + ".")
            with _pending_lock:
                if not _pending_links:
                    return
            while True:
                with _pending_lock:
                    if not _pending_links:
                        break
                    entry = _pending_links[0]
                # An entry leaves the list only once it is linked, so an interrupt (Ctrl-C)
                # anywhere in here leaves it for the next attempt; linking one twice is harmless.
                namespace, links, classes = entry
                for name, module in links.items():
                    namespace[name] = getattr(importlib.import_module(module), name)
                for cls in classes:
                    if cls.__dict__.get("__get_pydantic_core_schema__") is _LINK_FIRST:
                        delattr(cls, "__get_pydantic_core_schema__")
                with _pending_lock:
                    if _pending_links and _pending_links[0] is entry:
                        del _pending_links[0]
                    else:
                        with contextlib.suppress(ValueError):
                            _pending_links.remove(entry)


# ------------------------------------------------------------------ the bundle

# Bundles loaded: (namespace, public modules of its classes named in quotes, those classes).
_bundles: List[Tuple[Dict[str, Any], Tuple[str, ...], List[type]]] = []


def bundle_models(namespace: Dict[str, Any], modules: Mapping[str, str], incomplete: Iterable[str] = ()) -> None:
    """Give each class of a bundle its public module; note the classes that name others in quotes.

    Called at the bottom of the generated bundle with ``{class name: public module}`` and the
    classes whose annotations name a model defined after them. Runs at import time: imports
    nothing and takes no lock but the leaf ``_pending_lock`` (contract rule 3).
    """
    package = namespace["__name__"].rpartition(".")[0]
    _model_packages[package] = None
    for name, module in modules.items():
        namespace[name].__module__ = f"{package}.{module}"
    classes = [namespace[name] for name in incomplete]
    publics = tuple(f"{package}.{modules[name]}" for name in incomplete)
    for cls in classes:
        cls.__get_pydantic_core_schema__ = _BUNDLE_FIRST
    with _pending_lock:
        _bundles.append((namespace, publics, classes))


def _bundle_first(cls: type, source: Any, handler: Any) -> Any:
    import_public_modules()  # where the names the class quotes are found
    return _inherited_schema(cls, source, handler)


_BUNDLE_FIRST: classmethod[Any, Any, Any] = classmethod(_bundle_first)


def import_public_modules() -> None:
    """Import the public modules of the bundled classes that name others in quotes; unhook them.

    The hooks go only once every module is imported, so an interrupt leaves them for the next
    attempt. Safe from any thread, inside pydantic or not (takes only the links' own lock).
    """
    with _link_lock:
        with _pending_lock:
            bundles = list(_bundles)
        for _, publics, classes in bundles:
            if not any(cls.__dict__.get("__get_pydantic_core_schema__") is _BUNDLE_FIRST for cls in classes):
                continue
            for module in publics:
                importlib.import_module(module)
            for cls in classes:
                if cls.__dict__.get("__get_pydantic_core_schema__") is _BUNDLE_FIRST:
                    delattr(cls, "__get_pydantic_core_schema__")
