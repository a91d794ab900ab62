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
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from typing import Any, Dict, List, Mapping, Tuple

__all__ = ["BUILD_LOCK", "finish_links", "link_models", "load", "settle_imports"]

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
            for package in list(_model_packages):
                settle_imports(package + ".")
            with _pending_lock:
                if not _pending_links:
                    return
                entry = _pending_links[0]
            # An entry leaves the list only once it is linked, so an interrupt (Ctrl-C) anywhere
            # in here leaves it for the next attempt; linking one twice is harmless.
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
