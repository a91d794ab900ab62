"""Objects that must act in a process forked from the one that made them (POSIX ``fork``).

Both streams register here: right after a fork, before any other code of the child runs, each
live object's ``_after_fork_in_child()`` is called, in the child's only thread.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["reset_in_forked_child"]


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_LIVE: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def reset_in_forked_child(obj: _ForkAware) -> None:
    """Have ``obj._after_fork_in_child()`` run in every child forked while ``obj`` lives.

    It runs right after the fork, before any other code of the child, in its only thread.
    """
    _LIVE.add(obj)


def _run_fork_hooks() -> None:
    for obj in list(_LIVE):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_run_fork_hooks)
