"""Behaviour of the model base classes: forward compatibility, official-SDK compatibility,
what users may pass, and the wire format."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import subprocess
import sys
import uuid
from typing import Any, Dict

import pydantic
import pytest
from testkit import ROOT

import pieces_os_client.models as models
from pieces_os_client.models import _base
from pieces_os_client.models._base import JSON_NULL, PiecesEnum
from pieces_os_client.models.auth0_user_metadata import Auth0UserMetadata
from pieces_os_client.models.classification_specific_enum import ClassificationSpecificEnum
from pieces_os_client.models.code_analysis import CodeAnalysis
from pieces_os_client.models.conversation import Conversation
from pieces_os_client.models.conversation_type_enum import ConversationTypeEnum
from pieces_os_client.models.embedded_model_schema import EmbeddedModelSchema
from pieces_os_client.models.flattened_format import FlattenedFormat
from pieces_os_client.models.grouped_timestamp import GroupedTimestamp
from pieces_os_client.models.model import Model
from pieces_os_client.models.model_foundation_enum import ModelFoundationEnum
from pieces_os_client.models.model_max_tokens import ModelMaxTokens
from pieces_os_client.models.seeded_conversation import SeededConversation
from pieces_os_client.models.streamed_identifier import StreamedIdentifier
from pieces_os_client.models.workstream_event_trigger import WorkstreamEventTrigger

SCHEMA = {"migration": 0, "semantic": "MAJOR_0_MINOR_0_PATCH_1"}


def conversation_doc() -> Dict[str, Any]:
    stamp = {"value": "2024-05-01T12:00:00.000Z", "readable": "now"}
    return {
        "schema": dict(SCHEMA),
        "id": "c0ffee00-0000-4000-8000-000000000001",
        "name": "Reading files",
        "created": stamp,
        "updated": stamp,
        "type": "COPILOT",
        "messages": {
            "iterable": [
                {
                    "id": "m1",
                    "reference": {
                        "id": "m1",
                        "created": stamp,
                        "updated": stamp,
                        "role": "USER",
                        "conversation": {"id": "c0ffee00-0000-4000-8000-000000000001"},
                        "fragment": {"string": {"raw": "hello"}},
                    },
                }
            ],
            "indices": {"m1": 0},
        },
    }


# ------------------------------------------------------------------ forward compatibility


def test_unknown_properties_survive_top_level_and_nested() -> None:
    doc = conversation_doc()
    doc["futureFlag"] = True
    doc["futureNull"] = None
    doc["futureObject"] = {"a": [1, 2.5, None, {"b": "c"}], "d": None}
    doc["created"]["futureStamp"] = "x"
    doc["messages"]["iterable"][0]["reference"]["futureList"] = [{"deep": None}]
    doc["schema"]["futureVersion"] = 7
    conv = Conversation.from_json(json.dumps(doc))
    assert conv is not None
    assert json.loads(conv.to_json()) == _with_normalised_stamps(doc)
    dumped = conv.to_dict()
    assert dumped["futureNull"] is None
    assert dumped["futureObject"] == doc["futureObject"]
    assert dumped["messages"]["iterable"][0]["reference"]["futureList"] == [{"deep": None}]
    # Unknown properties are readable as attributes; a null one is JSON_NULL (== None, falsy).
    assert conv.futureFlag is True  # type: ignore[attr-defined]
    assert conv.futureNull == None and not conv.futureNull  # type: ignore[attr-defined]  # noqa: E711
    assert conv.futureNull is JSON_NULL  # type: ignore[attr-defined]


def _with_normalised_stamps(doc: Dict[str, Any]) -> Dict[str, Any]:
    """``doc`` with its date-times spelled as pydantic writes them (``.000Z`` -> ``Z``)."""
    text = json.dumps(doc).replace("12:00:00.000Z", "12:00:00Z")
    out: Dict[str, Any] = json.loads(text)
    return out


def test_unknown_property_set_from_python_to_none_is_written_as_null() -> None:
    ts = GroupedTimestamp(value=dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), newThing=None)
    assert json.loads(ts.to_json()) == {"value": "2024-01-01T00:00:00Z", "newThing": None}
    assert pickle.loads(pickle.dumps(JSON_NULL)) is JSON_NULL


def test_unknown_enum_value_python_mode() -> None:
    value = ConversationTypeEnum("SOMETHING_NEW")
    assert value.value == "SOMETHING_NEW"
    assert value == "SOMETHING_NEW"
    assert isinstance(value, ConversationTypeEnum) and isinstance(value, str)
    assert value is not ConversationTypeEnum.UNKNOWN
    assert not value.is_known and ConversationTypeEnum.COPILOT.is_known
    assert ConversationTypeEnum("SOMETHING_NEW") is value  # cached, so identity holds for repeats
    assert json.dumps(value) == '"SOMETHING_NEW"'
    assert pickle.loads(pickle.dumps(value)) == value
    assert "SOMETHING_NEW" not in ConversationTypeEnum.__members__
    with pytest.raises(ValueError):
        ConversationTypeEnum(42)


def test_unknown_enum_value_in_a_model_python_and_json_mode() -> None:
    seeded = SeededConversation(type="SOMETHING_NEW")
    assert isinstance(seeded.type, ConversationTypeEnum)
    assert seeded.type.value == "SOMETHING_NEW"
    assert seeded.to_json() == '{"type":"SOMETHING_NEW"}'
    assert seeded.to_dict() == {"type": "SOMETHING_NEW"}
    from_json = SeededConversation.from_json(b'{"type":"NEWER","schema":{"migration":1,"semantic":"MAJOR_9"}}')
    assert from_json is not None
    assert from_json.type.value == "NEWER"
    assert from_json.var_schema is not None and from_json.var_schema.semantic == "MAJOR_9"
    assert json.loads(from_json.to_json()) == {"type": "NEWER", "schema": {"migration": 1, "semantic": "MAJOR_9"}}
    seeded.type = "ASSIGNED_LATER"  # type: ignore[assignment]
    assert seeded.to_json() == '{"type":"ASSIGNED_LATER"}'


def test_unknown_enum_values_in_lists_and_maps_round_trip() -> None:
    stamp = {"value": "2024-05-01T12:00:00Z"}
    doc = {
        "id": "h",
        "created": stamp,
        "updated": stamp,
        "type": "NEW_HINT_KIND",
        "text": "t",
        "mechanisms": {"a": "MANUAL", "b": "BRAND_NEW"},
    }
    hint = models.FlattenedHint.from_dict(doc)
    assert hint is not None
    assert hint.mechanisms is not None and hint.mechanisms["b"].value == "BRAND_NEW"
    assert json.loads(hint.to_json()) == doc
    message = {"id": "1", "created": stamp, "updated": stamp, "conversation": {"id": "c"}, "role": "FUTURE_ROLE"}
    role_doc = {"iterable": [{"id": "1", "reference": message}]}
    messages = models.FlattenedConversationMessages.model_validate(role_doc)
    assert json.loads(messages.to_json()) == role_doc


def test_unknown_enum_cache_is_bounded() -> None:
    for i in range(_base._UNKNOWN_CACHE_SIZE * 4):
        assert ModelFoundationEnum(f"HOSTILE_{i}").value == f"HOSTILE_{i}"
    assert len(_base._unknown_cache[ModelFoundationEnum]) <= _base._UNKNOWN_CACHE_SIZE
    # Values pushed out of the cache still work; they are just new objects.
    assert ModelFoundationEnum("HOSTILE_0") == "HOSTILE_0"


def test_every_enum_has_unknown_and_from_json() -> None:
    enums = [getattr(models, n) for n in models.__all__ if n.endswith("Enum") and n != "PiecesEnum"]
    enums.append(models.Role)
    assert len(enums) == 30
    for enum_cls in enums:
        assert issubclass(enum_cls, PiecesEnum)
        assert enum_cls.UNKNOWN.value == "UNKNOWN"
        first = next(m for m in enum_cls if m.name != "UNKNOWN")
        assert enum_cls.from_json(json.dumps(first.value)) is first


# ---------------------------------------------------------------- official compatibility


def test_schema_field_by_python_name_and_by_alias() -> None:
    schema = EmbeddedModelSchema(migration=0, semantic="MAJOR_0_MINOR_0_PATCH_1")
    by_name = SeededConversation(var_schema=schema)
    by_alias = SeededConversation(schema=schema)
    by_dict = SeededConversation(schema=SCHEMA)
    assert by_name == by_alias == by_dict
    assert by_name.var_schema == schema
    assert json.loads(by_alias.to_json()) == {"schema": SCHEMA, "type": "COPILOT"}
    assert "var_schema" not in by_alias.to_dict()


def test_seeded_conversation_needs_no_arguments() -> None:
    seeded = SeededConversation()
    assert seeded.type is ConversationTypeEnum.COPILOT
    assert seeded.to_json() == '{"type":"COPILOT"}'
    assert seeded.to_dict() == {"type": ConversationTypeEnum.COPILOT}
    assert EmbeddedModelSchema(migration=0).to_json() == '{"migration":0,"semantic":"MAJOR_0_MINOR_0_PATCH_1"}'


def test_required_properties_are_required() -> None:
    with pytest.raises(pydantic.ValidationError):
        GroupedTimestamp()  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        Conversation.from_json('{"id": "x"}')


def test_known_official_names() -> None:
    # module path, class, python field -> alias: names code written for the official SDK uses
    assert CodeAnalysis.model_fields["top5_colors"].alias == "top5Colors"
    assert WorkstreamEventTrigger.model_fields["copy_field"].alias == "copy"
    assert StreamedIdentifier.model_fields["anchor_point"].alias == "anchorPoint"
    assert Auth0UserMetadata.model_fields["open_ai"].alias == "open_AI"
    assert models.AnonymousTemporalRange.model_fields["var_from"].alias == "from"
    assert Model.model_fields["max_tokens"].alias == "maxTokens"
    assert "bytes" in FlattenedFormat.model_fields
    assert ModelFoundationEnum.GPT_3_DOT_5.value == "GPT_3.5"
    assert ModelFoundationEnum.DOLLY_1_DOT_4_B.value == "DOLLY_1.4B"
    assert ModelFoundationEnum.ALPACA_13_B.value == "ALPACA_13B"
    assert ClassificationSpecificEnum.HS_MINUS_BOOT.value == "hs-boot"
    assert ClassificationSpecificEnum.TMLANGUAGE.value == "tmLanguage"
    assert ClassificationSpecificEnum.MP2A.value == "mp2a"
    assert models.ExternalProviderTypeEnum.GOOGLE_MINUS_OAUTH2.value == "google-oauth2"
    assert models.QGPTConversationMessageRoleEnum.__module__ == (
        "pieces_os_client.models.qgpt_conversation_message_role_enum"
    )
    assert models.IDESelections.__module__ == "pieces_os_client.models.ide_selections"


def test_official_methods() -> None:
    conv = Conversation.from_json(json.dumps(conversation_doc()))
    assert conv is not None
    assert isinstance(conv.created.value, dt.datetime)
    assert Conversation.from_dict(conv) is conv
    assert Conversation.from_dict(conv.to_dict()) == conv
    assert Conversation.from_dict(None) is None
    assert Conversation.from_json("null") is None
    assert Conversation.from_json(b" null ") is None
    text = conv.to_str()
    assert "'schema':" in text and "'messages':" in text
    assert conv._to_json_bytes() == conv.to_json().encode()


# -------------------------------------------------------------------- what users pass


def test_to_json_with_datetimes() -> None:
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    stamp = GroupedTimestamp(value=when)
    assert stamp.to_json() == '{"value":"2024-05-01T12:30:00+02:00"}'
    assert stamp.to_dict() == {"value": when}  # Python objects stay Python objects
    naive = GroupedTimestamp(value=dt.datetime(2024, 5, 1))
    assert naive.to_json() == '{"value":"2024-05-01T00:00:00"}'


def test_dicts_accepted_where_models_are_expected() -> None:
    stamp = {"value": "2024-05-01T12:00:00Z"}
    msgs: Dict[str, Any] = {"iterable": []}
    conv = Conversation(id="c", created=stamp, updated=stamp, messages=msgs)
    assert isinstance(conv.created, GroupedTimestamp)
    conv.updated = {"value": "2025-01-01T00:00:00Z"}  # type: ignore[assignment]
    assert isinstance(conv.updated, GroupedTimestamp)
    assert conv.updated.value.year == 2025
    with pytest.raises(pydantic.ValidationError):
        conv.updated = {"readable": "no value"}  # type: ignore[assignment]


def test_uuid_objects_accepted_for_uuid_strings() -> None:
    ident = uuid.UUID("6a2f41a3-c54c-fce8-32d2-0324e1c32e22")
    meta = Auth0UserMetadata(global_id=ident)
    assert meta.global_id == str(ident)
    assert json.loads(meta.to_json()) == {"global_id": str(ident)}
    fmt = FlattenedFormat.model_construct(asset="0")  # type: ignore[call-arg]
    fmt.asset = uuid.UUID(int=1)  # type: ignore[assignment]
    assert fmt.asset == "00000000-0000-0000-0000-000000000001"
    with pytest.raises(pydantic.ValidationError):
        fmt.asset = 1  # type: ignore[assignment]


# ------------------------------------------------------------------------ nullable


def test_nullable_explicit_none_is_sent_as_null() -> None:
    assert ModelMaxTokens(total=None).to_json() == '{"total":null}'
    assert ModelMaxTokens(total=4096, input=None).to_json() == '{"total":4096,"input":null}'
    assert ModelMaxTokens(total=4096).to_json() == '{"total":4096}'
    parsed = ModelMaxTokens.from_json('{"output":null,"total":null,"input":1.5}')
    assert parsed is not None
    assert json.loads(parsed.to_json()) == {"output": None, "total": None, "input": 1.5}
    assert parsed.to_dict() == {"total": None, "input": 1.5, "output": None}
    # ... also when nested, and not for non-nullable properties.
    model = Model.model_validate(
        {
            "id": "m",
            "version": "1",
            "created": {"value": "2024-05-01T12:00:00Z"},
            "name": "gpt",
            "cloud": True,
            "type": "SPEED",
            "usage": "CODE_CONVERSATION",
            "parameters": None,
            "maxTokens": {"total": None},
            "description": None,
        }
    )
    out = json.loads(model.to_json())
    assert out["parameters"] is None and out["maxTokens"] == {"total": None}
    assert "description" not in out


def test_mutable_models_are_validated_on_assignment() -> None:
    stamp = GroupedTimestamp(value="2024-05-01T12:00:00Z")
    with pytest.raises(pydantic.ValidationError):
        stamp.value = "not a date"  # type: ignore[assignment]


# -------------------------------------------------------------------------- imports


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_package_import_loads_no_model_module() -> None:
    out = _run(
        "import sys, pieces_os_client.models as m\n"
        "print(sorted(k for k in sys.modules if k.startswith('pieces_os_client.models.')))\n"
        "from pieces_os_client.models import Conversation\n"
        "assert m.Conversation is Conversation\n"
        "assert Conversation.__module__ == 'pieces_os_client.models.conversation'\n"
        "assert 'SeededConversation' in dir(m)\n"
        "try:\n    m.NoSuchModel\nexcept AttributeError:\n    print('ok')\n"
    )
    assert out.splitlines() == ["[]", "ok"]


@pytest.mark.parametrize("module", ["conversation", "referenced_asset", "flattened_conversation_message", "node"])
def test_any_model_module_can_be_imported_first(module: str) -> None:
    out = _run(
        f"import importlib, json, re\n"
        f"mod = importlib.import_module('pieces_os_client.models.{module}')\n"
        "cls = next(v for v in vars(mod).values() if getattr(v, '__module__', None) == mod.__name__)\n"
        "cls.model_rebuild(force=True)\n"
        "schema = cls.model_json_schema(by_alias=True)\n"
        "refs = set(re.findall(r'\"#/[$]defs/([^\"]+)\"', json.dumps(schema)))\n"
        "top = schema['$defs'][schema['$ref'].rsplit('/', 1)[1]] if '$ref' in schema else schema\n"
        "print(json.dumps({'class': cls.__name__, 'title': top['title'], 'properties': sorted(top['properties']),\n"
        "                  'fields': sorted(f.alias or n for n, f in cls.model_fields.items()),\n"
        "                  'unresolved': sorted(refs - set(schema.get('$defs', {})))}))\n"
    )
    report = json.loads(out)
    # the schema is the whole class (a self-referring one is a $ref to its own definition): every
    # field, and every model it refers to defined in it
    assert report["title"] == report["class"] and report["properties"] == report["fields"] != []
    assert report["unresolved"] == []
    if module == "conversation":
        _run(
            "import json\n"
            "from pieces_os_client.models.conversation import Conversation\n"
            f"doc = {json.dumps(conversation_doc())!r}\n"
            "c = Conversation.model_validate_json(doc)\n"
            "assert c.messages.iterable[0].reference.role.value == 'USER'\n"
        )


def test_json_bytes_before_any_validation() -> None:
    _run(
        "from pieces_os_client.models.score import Score\n"
        "s = Score.model_construct(manual=1, automatic=2)\n"
        'assert s._to_json_bytes() == b\'{"manual":1,"automatic":2}\', s._to_json_bytes()\n'
    )


def test_enum_from_a_member_of_another_enum() -> None:
    other = ModelFoundationEnum("MY_NEW_VALUE")
    converted = ConversationTypeEnum(other)
    assert type(converted) is ConversationTypeEnum
    assert converted.value == "MY_NEW_VALUE"
    assert ConversationTypeEnum(ClassificationSpecificEnum.TMLANGUAGE).value == "tmLanguage"
