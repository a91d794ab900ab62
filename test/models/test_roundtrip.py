"""Round trip of every schema: JSON made from the OpenAPI document -> model -> JSON.

Documents are drawn by hypothesis strategies built from the OpenAPI schemas
themselves (not from the generated classes), so the test checks the generator's
reading of the document as well as the base class.  Every drawn document also
carries properties and enum values the document does not list, the way a newer
Pieces OS would send them; they must come back unchanged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any, Callable, Dict, List, Optional

import pytest

yaml = pytest.importorskip("yaml")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from testkit import SHARED  # noqa: E402

import pieces_os_client.models as models  # noqa: E402

SPEC = SHARED / "spec" / "conversations.openapi.yaml"
if not SPEC.is_file():
    pytest.skip(f"OpenAPI document not reachable ({SPEC.name})", allow_module_level=True)

with SPEC.open("rb") as _fh:
    SCHEMAS: Dict[str, Any] = yaml.safe_load(_fh)["components"]["schemas"]

MAX_DEPTH = 2  # beyond this, only required properties are drawn
EXTRA_PREFIX = "zz_future_"  # names of properties the document does not declare
UNLISTED_ENUM = "ZZ_FUTURE_VALUE"

# --------------------------------------------------------------------------- drawing

_json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_extras = st.dictionaries(st.text(max_size=6).map(lambda s: EXTRA_PREFIX + s), _json_values, max_size=2)

_tz: st.SearchStrategy[Any] = st.sampled_from(
    [None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]
)


@st.composite
def _datetime_text(draw: st.DrawFn) -> str:
    """Date-times in the spellings servers use: ``Z`` or offsets, none/milli/micro seconds."""
    moment = draw(st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=_tz))
    digits = draw(st.sampled_from(["seconds", "milliseconds", "microseconds"]))
    text = moment.isoformat(timespec=digits)
    if moment.tzinfo is dt.timezone.utc and draw(st.booleans()):
        text = text.replace("+00:00", "Z")
    return text


_cache: Dict[tuple[str, int], st.SearchStrategy[Any]] = {}


def object_strategy(name: str, depth: int = 0) -> st.SearchStrategy[Any]:
    key = (name, min(depth, MAX_DEPTH + 1))
    if key not in _cache:
        _cache[key] = st.deferred(lambda: _build_object(name, key[1]))
    return _cache[key]


def _build_object(name: str, depth: int) -> st.SearchStrategy[Any]:
    schema = SCHEMAS[name]
    if "enum" in schema:
        return _enum_strategy(schema["enum"])
    required = set(schema.get("required", [])) & set(schema["properties"])
    fixed: Dict[str, st.SearchStrategy[Any]] = {}
    optional: Dict[str, st.SearchStrategy[Any]] = {}
    for prop, prop_schema in schema["properties"].items():
        if prop in required:
            fixed[prop] = value_strategy(prop_schema, depth)
        elif depth <= MAX_DEPTH or "$ref" not in prop_schema:
            optional[prop] = value_strategy(prop_schema, depth)
    body = st.fixed_dictionaries(fixed, optional=optional)
    return st.tuples(body, _extras).map(lambda pair: {**pair[0], **pair[1]})


def _enum_strategy(values: List[str]) -> st.SearchStrategy[Any]:
    return st.sampled_from(values) | st.just(UNLISTED_ENUM)


def value_strategy(schema: Dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    base = _value_strategy(schema, depth)
    if schema.get("nullable"):
        return st.none() | base
    return base


def _value_strategy(schema: Dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if "$ref" in schema:
        return object_strategy(schema["$ref"].rsplit("/", 1)[-1], depth + 1)
    if "enum" in schema:
        return _enum_strategy(schema["enum"])
    kind = schema["type"]
    size = 2 if depth <= MAX_DEPTH else 0
    if kind == "array":
        return st.lists(value_strategy(schema["items"], depth), max_size=size)
    if kind == "object":
        return st.dictionaries(
            st.text(max_size=6), value_strategy(schema["additionalProperties"], depth), max_size=size
        )
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return _datetime_text()
        if fmt == "uuid":
            return st.uuids().map(str)
        return st.text(max_size=12)
    if kind == "integer":
        return st.integers(-(2**63), 2**63 - 1)
    if kind == "number":
        return st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    raise AssertionError(f"strategy for {schema!r} missing")


# ----------------------------------------------------------------------- comparing


def _parse_datetime(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_same(schema: Optional[Dict[str, Any]], sent: Any, got: Any, where: str = "$") -> None:
    """JSON equality with exact types (1 is not 1.0, True is not 1).

    The one tolerance: at positions the schema types ``format: date-time``, the
    text may be spelled differently (``.000Z`` vs ``Z``) but must denote the same
    instant with the same UTC offset (or the same naive time).
    """
    if schema is not None and "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    if schema is not None and schema.get("format") == "date-time" and isinstance(sent, str):
        assert isinstance(got, str), where
        before, after = _parse_datetime(sent), _parse_datetime(got)
        assert (before, before.utcoffset()) == (after, after.utcoffset()), f"{where}: {sent!r} came back as {got!r}"
        return
    assert type(got) is type(sent), f"{where}: {sent!r} came back as {got!r}"
    if isinstance(sent, dict):
        assert set(got) == set(sent), f"{where}: keys {sorted(sent)} came back as {sorted(got)}"
        props = schema.get("properties", {}) if schema else {}
        values = schema.get("additionalProperties") if schema and "properties" not in schema else None
        for key, value in sent.items():
            sub = props.get(key) if props else (values if isinstance(values, dict) else None)
            assert_same(sub, value, got[key], f"{where}.{key}")
    elif isinstance(sent, list):
        assert len(got) == len(sent), where
        items = schema.get("items") if schema else None
        for i, (a, b) in enumerate(zip(sent, got, strict=True)):
            assert_same(items, a, b, f"{where}[{i}]")
    else:
        assert got == sent, f"{where}: {sent!r} came back as {got!r}"


# --------------------------------------------------------------------------- tests

_SETTINGS = settings(
    max_examples=int(os.environ.get("PIECES_MODEL_EXAMPLES", "6")),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def _check(name: str, doc: Dict[str, Any]) -> None:
    cls = getattr(models, name)
    text = json.dumps(doc)
    obj = cls.from_json(text)
    assert obj is not None
    schema = SCHEMAS[name]
    assert_same(schema, doc, json.loads(obj.to_json()))
    assert_same(schema, doc, json.loads(obj._to_json_bytes()))
    # to_dict keeps Python objects (datetime, enum members); JSON-encode them the same way.
    assert_same(schema, doc, json.loads(json.dumps(obj.to_dict(), default=_encode)))
    # And from a dict, as the official from_dict is used.
    again = cls.from_dict(json.loads(text))
    assert again == obj


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(type(value))


OBJECTS = sorted(name for name, schema in SCHEMAS.items() if "properties" in schema)
ENUMS = sorted(name for name, schema in SCHEMAS.items() if "enum" in schema)


def test_schema_set_is_the_generated_set() -> None:
    assert set(OBJECTS) | set(ENUMS) == {n for n in models.__all__ if n[:1].isupper()} - {
        "JSON_NULL",
        "PiecesEnum",
        "PiecesModel",
        "PiecesNullableModel",
        "UuidStr",
    }
    assert len(OBJECTS) + len(ENUMS) == len(SCHEMAS)


def _roundtrip_test(name: str) -> Callable[[], None]:
    @_SETTINGS
    @given(doc=object_strategy(name))
    def run(doc: Dict[str, Any]) -> None:
        _check(name, doc)

    return run


@pytest.mark.parametrize("name", OBJECTS)
def test_roundtrip(name: str) -> None:
    _roundtrip_test(name)()


@pytest.mark.parametrize("name", ENUMS)
def test_enum_roundtrip(name: str) -> None:
    cls = getattr(models, name)
    for value in [*SCHEMAS[name]["enum"], UNLISTED_ENUM, "lower-case.and+symbols"]:
        member = cls.from_json(json.dumps(value))
        assert member.value == value
        assert json.dumps(member) == json.dumps(value)
        assert member.is_known == (value in SCHEMAS[name]["enum"] or value == "UNKNOWN")
