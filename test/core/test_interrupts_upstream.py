"""Ctrl-C inside pydantic-core: what pydantic-core keeps of it, and how the SDK finds it again.

pydantic-core turns an exception raised in a Python callback while it builds a validator, or
while it serializes to JSON, into its own error (``SchemaError``, ``PydanticSerializationError``)
and keeps nothing of the original but its text: no ``__cause__``, no ``__context__``, no
attribute naming the type. So a Ctrl-C there can be recognised only from that text, which
``pieces_os_client._core.interrupts`` reads, in that one module. These tests pin the
upstream behaviour: each fails with a message naming the change if pydantic-core starts to
keep the exception (then the text reading can go) or writes its text differently (then it
must follow).
"""

from __future__ import annotations

import enum
from typing import Callable

import pytest
from pydantic_core import PydanticSerializationError, SchemaError, SchemaSerializer, SchemaValidator, core_schema

from pieces_os_client._core.interrupts import interrupt_within

KEPT = "pydantic-core now keeps the callback's exception ({where}): recognise the interrupt from it, not from the text"
REWORDED = "pydantic-core no longer writes '<type>: <message>' of the callback's exception ({where}): {text!r}"


class _Hit(enum.Enum):
    A = "a"

    @property
    def value(self) -> str:  # type: ignore[override]  # pydantic-core reads it while it builds
        raise KeyboardInterrupt("pressed")


def _raise(kind: type) -> Callable[[object], object]:
    def callback(value: object) -> object:
        raise kind("pressed")

    return callback


def _build_error() -> SchemaError:
    with pytest.raises(SchemaError) as info:
        SchemaValidator(core_schema.enum_schema(_Hit, list(_Hit.__members__.values())))
    return info.value


def _json_error(kind: type) -> PydanticSerializationError:
    serializer = SchemaSerializer(
        core_schema.any_schema(serialization=core_schema.plain_serializer_function_ser_schema(_raise(kind)))
    )
    with pytest.raises(PydanticSerializationError) as info:
        serializer.to_json(1)
    return info.value


def test_an_interrupt_while_a_validator_is_built_leaves_only_text() -> None:
    error = _build_error()
    assert error.__cause__ is None and error.__context__ is None, KEPT.format(where="SchemaError")
    text = str(error)
    assert "KeyboardInterrupt: pressed" in text, REWORDED.format(where="SchemaError", text=text)
    assert isinstance(interrupt_within(error), KeyboardInterrupt)


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_while_serializing_to_json_leaves_only_text(kind: type) -> None:
    error = _json_error(kind)
    where = "PydanticSerializationError from to_json"
    assert error.__cause__ is None and error.__context__ is None, KEPT.format(where=where)
    text = str(error)
    assert f"{kind.__name__}: pressed" in text, REWORDED.format(where=where, text=text)
    assert isinstance(interrupt_within(error), kind)


def test_an_interrupt_while_serializing_to_python_is_kept_as_the_cause() -> None:
    serializer = SchemaSerializer(
        core_schema.any_schema(serialization=core_schema.plain_serializer_function_ser_schema(_raise(KeyboardInterrupt)))
    )
    with pytest.raises(PydanticSerializationError) as info:
        serializer.to_python(1)
    assert isinstance(info.value.__cause__, KeyboardInterrupt)
    assert interrupt_within(info.value) is info.value.__cause__


def test_other_errors_of_pydantic_core_are_not_taken_for_an_interrupt() -> None:
    assert interrupt_within(_json_error(ValueError)) is None
    assert interrupt_within(SchemaError("Invalid Schema: unknown type")) is None
    assert interrupt_within(ValueError("KeyboardInterrupt: a value's text")) is None  # not pydantic-core's
