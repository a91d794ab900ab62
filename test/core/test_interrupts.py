"""``_core.interrupts``: a Ctrl-C or an exit found inside what would become an SDK error is
raised as itself (docs/threads-processes-limits.md, "Interrupts"). The pydantic-core errors
are real ones, made by a serializer that raises."""

from __future__ import annotations

from typing import Callable

import pydantic
import pytest

from pieces_os_client._core.interrupts import interrupt_within


def serialization_error(raise_it: Callable[[], None]) -> Exception:
    """What pydantic-core raises when a serializer it calls raises ``raise_it()``."""

    class Model(pydantic.BaseModel):
        x: int

        @pydantic.field_serializer("x")
        def show(self, value: int) -> int:
            raise_it()
            return value

    try:
        Model(x=1).model_dump_json()
    except Exception as exc:
        return exc
    raise AssertionError("the serializer did not raise")


def interrupt() -> None:
    raise KeyboardInterrupt("stop")


def leave() -> None:
    raise SystemExit(3)


def fail() -> None:
    raise RuntimeError("KeyboardInterrupt is only mentioned here")


def test_an_ordinary_error_holds_no_interrupt() -> None:
    assert interrupt_within(ValueError("bad")) is None


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_is_itself(kind: type) -> None:
    exc = kind()
    assert interrupt_within(exc) is exc


def test_an_interrupt_in_the_chain_of_causes_is_found() -> None:
    ctrl_c = KeyboardInterrupt()
    inner = OSError("while reading")
    inner.__context__ = ctrl_c
    outer = RuntimeError("wrapped")
    outer.__cause__ = inner
    assert interrupt_within(outer) is ctrl_c


def test_a_chain_that_loops_ends() -> None:
    first, second = ValueError("a"), ValueError("b")
    first.__context__, second.__context__ = second, first
    assert interrupt_within(first) is None


def test_pydantic_core_reports_an_interrupt_as_its_own_error_by_text_only() -> None:
    wrapped = serialization_error(interrupt)
    assert type(wrapped).__name__ == "PydanticSerializationError"
    assert wrapped.__cause__ is None and wrapped.__context__ is None  # the interrupt itself is gone


def test_an_interrupt_named_by_pydantic_core_is_raised_again() -> None:
    assert type(interrupt_within(serialization_error(interrupt))) is KeyboardInterrupt
    assert type(interrupt_within(serialization_error(leave))) is SystemExit


def test_a_pydantic_core_error_from_an_ordinary_failure_holds_no_interrupt() -> None:
    assert interrupt_within(serialization_error(fail)) is None


def test_only_pydantic_cores_wrappers_are_read_for_an_interrupt() -> None:
    assert interrupt_within(ValueError("KeyboardInterrupt: stop")) is None
