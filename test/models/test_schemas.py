"""The precomputed core schemas (``models._schemas``, ``models._precomputed``).

With the pydantic the table was generated with, every model builds from it, and the result
must be what pydantic itself makes: for every model, the core schema of each class it reaches
(modulo the refs' ids, which are ``id()`` numbers in pydantic's and stable in the table, and
the JSON-schema function pydantic's enum schemas carry, which the table leaves to the enum's
own hook) and both JSON schemas. A
precomputed build must not run pydantic's schema generation at all. With any other pydantic
version the table is ignored and models build natively (CI's run at the lowest versions).

Each side runs in a fresh interpreter. The child may look at pydantic's internals to count
schema generation (observing only); the package itself never touches them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, Tuple

import pydantic
import pydantic_core
import pytest
from testkit import ROOT

from pieces_os_client.models import _precomputed, _schemas

TABLE_APPLIES = (pydantic.VERSION, pydantic_core.__version__) == (
    _schemas.PYDANTIC_VERSION,
    _schemas.PYDANTIC_CORE_VERSION,
)
needs_table = pytest.mark.skipif(
    not TABLE_APPLIES,
    reason=f"the table is for pydantic {_schemas.PYDANTIC_VERSION}; this is {pydantic.VERSION} (native builds)",
)

# Counts pydantic's schema generation (GenerateSchema's per-type entry point and its model
# schema) and the package's own public hooks that only a native build calls.
_SPY = textwrap.dedent(
    """
    import enum, inspect, json, re, sys
    from pydantic._internal import _generate_schema as _gs

    COUNTS = {"generate": 0, "model": 0, "extra_hook": 0}

    def _counting(name, key):
        original = getattr(_gs.GenerateSchema, name)
        def spy(self, *args, **kwargs):
            COUNTS[key] += 1
            return original(self, *args, **kwargs)
        setattr(_gs.GenerateSchema, name, spy)

    _counting("_generate_schema_inner", "generate")
    _counting("_model_schema", "model")

    import pieces_os_client.models as package
    from pieces_os_client.models import _base, _precomputed

    def _counting_hook(cls, key):
        original = cls.__dict__["__get_pydantic_core_schema__"].__func__
        def hook(inner, source, handler):
            COUNTS[key] += 1
            return original(inner, source, handler)
        cls.__get_pydantic_core_schema__ = classmethod(hook)

    _counting_hook(_base._KeepNull, "extra_hook")

    REF = re.compile(r":(\\d+|pieces)$")

    def norm(value, key=None):
        if key == "pydantic_js_functions":
            # pydantic's enum schema carries a function defined inside its generator, which the
            # table leaves out: the class's own __get_pydantic_json_schema__ adds the same
            # (the JSON schemas, compared as they are, show it)
            value = [f for f in value if not getattr(f, "__module__", "").startswith("pydantic.")]
        if isinstance(value, dict):
            return {k: norm(v, k) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [norm(v) for v in value]
        if isinstance(value, str) and key in ("ref", "schema_ref"):
            return REF.sub("", value)
        if value is None or type(value) in (bool, int, float, str):
            return value
        if isinstance(value, enum.Enum):
            return "member:%s.%s" % (type(value).__qualname__, value.name)
        if isinstance(value, type):
            return "class:%s.%s" % (value.__module__, value.__qualname__)
        if inspect.ismethod(value):
            return "method:%s.%s" % (value.__self__.__qualname__, value.__func__.__qualname__)
        if inspect.isfunction(value):
            return "function:%s.%s" % (value.__module__, value.__qualname__)
        return "other:%r" % (value,)

    CLASSES = {}  # every class's own schema, by ref (ids dropped), the classes in it as refs

    def flatten(schema):
        # The schema as the classes it holds, each one's own schema noted in CLASSES (the same
        # every time it occurs): the same however pydantic placed the definitions (inlined
        # where used once, or kept; an already built model's schema is reused as it was
        # finished, so the placement depends on build order).
        found = CLASSES
        refs = set()
        def cut(node):
            if isinstance(node, list):
                return [cut(item) for item in node]
            if not isinstance(node, dict):
                return node
            if node.get("type") == "definitions":
                for definition in node["definitions"]:
                    cut(definition)
                return cut(node["schema"])
            if "ref" in node:
                refs.add(node["ref"])
                entry = {key: cut(value) for key, value in node.items()}
                previous = found.setdefault(node["ref"], entry)
                assert previous == entry, node["ref"]
                return {"type": "definition-ref", "schema_ref": node["ref"]}
            return {key: cut(value) for key, value in node.items()}
        root = cut(norm(schema))
        return {"root": root, "classes": sorted(refs)}

    def models():
        names = sorted(n for n, m in package._MODULES.items() if m != "_base")
        classes = [getattr(package, n) for n in names]
        return [c for c in classes if issubclass(c, _base.PiecesModel)]
    """
)


# Ten conversations would do as well; one, with an undeclared property holding null.
DOC = json.dumps(
    {
        "iterable": [
            {
                "id": "c1",
                "type": "COPILOT",
                "created": {"value": "2024-01-01T00:00:00Z"},
                "updated": {"value": "2024-01-01T00:00:00Z"},
                "messages": {"iterable": [], "indices": {"m1": 0}},
                "extra": None,
            }
        ]
    }
)


def _start(code: str, env: Dict[str, str] | None = None) -> subprocess.Popen[str]:
    import os

    full_env = dict(os.environ)
    full_env.pop(_precomputed.ENV, None)
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-c", f"DOC = {DOC!r}\n" + _SPY + textwrap.dedent(code)],
        cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _finish(child: subprocess.Popen[str]) -> str:
    try:
        out, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err[-3000:]
    return out


def _run(code: str, env: Dict[str, str] | None = None) -> str:
    return _finish(_start(code, env))


_DUMP = """
    assert (_precomputed.table() is not None) == EXPECT_TABLE
    out = {}
    # Conversations first: its build is the one that matters most, and in a fresh process
    for cls in sorted(models(), key=lambda cls: cls.__name__ != "Conversations"):
        before = dict(COUNTS)
        cls.model_rebuild()
        generated = {k: COUNTS[k] - before[k] for k in COUNTS}
        out[cls.__name__] = {
            "flat": flatten(cls.__pydantic_core_schema__),
            "json": {mode: cls.model_json_schema(mode=mode) for mode in ("validation", "serialization")},
            "generated": generated,
        }
    with open(OUT, "w") as handle:
        json.dump({"models": out, "classes": CLASSES}, handle)
"""


def _dumps(tmp_path: Path) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """What a native build and a precomputed build made, from two fresh interpreters run side by side."""
    children, outs = [], []
    for table in (False, True):
        out = tmp_path / ("table.json" if table else "native.json")
        code = f"EXPECT_TABLE = {table!r}\nOUT = {str(out)!r}\n" + textwrap.dedent(_DUMP)
        children.append(_start(code, {} if table else {_precomputed.ENV: "0"}))
        outs.append(out)
    for child in children:
        _finish(child)
    loaded = []
    for out in outs:
        with open(out, encoding="utf-8") as handle:
            loaded.append(json.load(handle))
    return loaded[0], loaded[1]


@needs_table
def test_every_model_precomputed_matches_native(tmp_path: Path) -> None:
    native_dump, table_dump = _dumps(tmp_path)
    assert len(native_dump["classes"]) == len(table_dump["classes"]) == len(_schemas.SCHEMAS)
    for ref, schema in native_dump["classes"].items():
        assert table_dump["classes"][ref] == schema, f"{ref}: core schema differs from pydantic's"
    native, table = native_dump["models"], table_dump["models"]
    assert len(native) == len(table) > 200
    assert set(native) == set(table)
    for name in native:
        # Core schemas (refs without their ids), as each class's own schema and the classes it
        # reaches: where pydantic places a shared schema (inline at each use, or once among
        # the definitions) differs between the two builds and changes nothing it does.
        assert table[name]["flat"] == native[name]["flat"], f"{name}: core schema differs from pydantic's"
        assert table[name]["json"] == native[name]["json"], f"{name}: JSON schema differs from pydantic's"
        # a precomputed build generates nothing; a native one does
        assert table[name]["generated"] == {"generate": 0, "model": 0, "extra_hook": 0}, name
        assert native[name]["generated"]["extra_hook"] >= 1 or native[name]["generated"]["generate"] >= 1, name


@needs_table
def test_the_table_covers_every_generated_class() -> None:
    import pieces_os_client.models as package

    names = {name for name, module in package._MODULES.items() if module != "_base"}
    assert set(_schemas.SCHEMAS) == names
    assert {name: package._MODULES[name] for name in names} == _schemas.MODULES


@needs_table
def test_each_build_gets_fresh_dicts() -> None:
    from pieces_os_client.models import Conversations

    def containers(value: Any, found: Dict[int, Any]) -> Dict[int, Any]:
        if isinstance(value, (dict, list)):
            found[id(value)] = value  # kept alive, so ids are not reused
            for item in value.values() if isinstance(value, dict) else value:
                containers(item, found)
        return found

    first = _precomputed.schema_for(Conversations)
    second = _precomputed.schema_for(Conversations)
    assert first is not None and first == second
    one, two = containers(first, {}), containers(second, {})
    assert len(one) > 1000
    assert not set(one) & set(two)


@needs_table
def test_first_typed_result_and_foreign_schema_use_the_table() -> None:
    out = _run(
        """
        from typing import List
        from pydantic import BaseModel, TypeAdapter
        from pieces_os_client.models import Conversation, Conversations
        doc = DOC
        result = Conversations.from_json(doc)
        assert json.loads(result.to_json()) == json.loads(doc), result.to_json()
        assert COUNTS == {"generate": 0, "model": 0, "extra_hook": 0}, COUNTS

        class Outer(BaseModel):  # an application's model with ours as a field
            items: List[Conversation]

        item = dict(json.loads(DOC)["iterable"][0], type="NEW_TYPE")
        outer = Outer.model_validate({"items": [item]})
        assert outer.items[0].type.value == "NEW_TYPE" and not outer.items[0].type.is_known
        assert COUNTS["model"] == 1, COUNTS  # Outer's own, none of ours
        assert TypeAdapter(List[Conversation]).validate_python([outer.items[0]])[0] is outer.items[0]
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_other_pydantic_version_builds_natively() -> None:
    """A table made with another pydantic is never used: the models build as pydantic makes them."""
    out = _run(
        """
        from pieces_os_client.models import _schemas
        _schemas.PYDANTIC_VERSION = "2.0.0"  # as if pydantic were upgraded since generation
        from pieces_os_client.models import Conversations
        assert _precomputed.table() is None
        result = Conversations.from_json(DOC.replace("COPILOT", "UNLISTED"))
        assert result.iterable[0].type.value == "UNLISTED" and not result.iterable[0].type.is_known
        assert json.loads(result.to_json()) == json.loads(DOC.replace("COPILOT", "UNLISTED"))
        assert COUNTS["model"] > 100, COUNTS
        print("ok")
        """
    )
    assert out.strip() == "ok"


def test_switched_off_by_the_environment() -> None:
    out = _run(
        """
        from pieces_os_client.models import Conversation
        Conversation.model_rebuild()
        assert _precomputed.table() is None and COUNTS["model"] > 50, COUNTS
        print("ok")
        """,
        {_precomputed.ENV: "0"},
    )
    assert out.strip() == "ok"


@pytest.mark.parametrize("table", [True, False], ids=["table", "native"])
def test_an_applications_use_enum_values_applies_to_our_enums(table: bool) -> None:
    """Our enums' core schema is pydantic's own: an application's model config still applies to it."""
    out = _run(
        """
        from pydantic import BaseModel, ConfigDict
        from pieces_os_client.models import Conversation, ConversationTypeEnum
        Conversation.model_rebuild()  # our own first build first (from the table, where it applies)

        class Settings(BaseModel):
            model_config = ConfigDict(use_enum_values=True)
            kind: ConversationTypeEnum

        class Plain(BaseModel):
            kind: ConversationTypeEnum

        assert type(Settings(kind="COPILOT").kind) is str
        assert Plain(kind="COPILOT").kind is ConversationTypeEnum.COPILOT
        assert Conversation.model_validate_json(json.dumps(json.loads(DOC)["iterable"][0])).type \
            is ConversationTypeEnum.COPILOT
        print("ok")
        """,
        {} if table else {_precomputed.ENV: "0"},
    )
    assert out.strip() == "ok"


def test_enum_schema_keeps_unlisted_values_natively() -> None:
    """``PiecesEnum``'s core schema (pydantic's own) keeps unknown values."""
    from pydantic import TypeAdapter

    from pieces_os_client.models import ConversationTypeEnum

    adapter = TypeAdapter(ConversationTypeEnum)
    assert adapter.validate_python("COPILOT") is ConversationTypeEnum.COPILOT
    other = adapter.validate_json('"SOMETHING_NEW"')
    assert other.value == "SOMETHING_NEW" and not other.is_known
    assert adapter.dump_json(other) == b'"SOMETHING_NEW"'
    schema = adapter.json_schema()
    assert schema["title"] == "ConversationTypeEnum" and "COPILOT" in schema["enum"]
