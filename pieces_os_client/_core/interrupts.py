"""Interrupts pass through: the rule that a Ctrl-C (or an exit) is never reported as an SDK error.

pydantic-core turns an exception raised while it calls back into Python during a build or a
serialization into its own error (``SchemaError``, ``PydanticSerializationError``). Every place
that turns such errors into SDK errors asks :func:`interrupt_within` first and raises what it
returns.

Where pydantic-core keeps the exception (``__cause__``, as ``to_python`` does), it is taken
from there. Where it keeps only the text (building a validator, serializing to JSON: no cause,
no context, no attribute naming the type, in every pydantic-core the package supports), the
text is the only trace, so it is read here, and only here: pydantic-core writes the
exception as ``<type name>: <message>``. ``test/core/test_interrupts_upstream.py`` pins both
behaviours and fails, naming the change, if a pydantic-core release alters either.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["interrupt_within"]

_INTERRUPTS = (KeyboardInterrupt, SystemExit)
_WRAPPERS = frozenset({"SchemaError", "PydanticSerializationError"})


def interrupt_within(exc: BaseException) -> Optional[BaseException]:
    """The interrupt that ``exc`` stands for (found in its chain, or named by pydantic-core), if any."""
    seen: Optional[BaseException] = exc
    for _ in range(8):
        if seen is None:
            break
        if not isinstance(seen, Exception):
            return seen
        seen = seen.__cause__ or seen.__context__
    if type(exc).__name__ in _WRAPPERS:
        text = str(exc)
        for kind in _INTERRUPTS:
            if f"{kind.__name__}:" in text:
                return kind()
    return None
