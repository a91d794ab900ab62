"""Our enums under pydantic: unlisted values kept, pydantic's own JSON schema, an application's config applied."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, TypeAdapter

from pieces_os_client.models import Conversation, ConversationTypeEnum


def test_an_applications_use_enum_values_applies_to_our_enums() -> None:
    Conversation.model_rebuild()  # our own first build first

    class Settings(BaseModel):
        model_config = ConfigDict(use_enum_values=True)
        kind: ConversationTypeEnum

    class Plain(BaseModel):
        kind: ConversationTypeEnum

    assert type(Settings(kind="COPILOT").kind) is str
    assert Plain(kind="COPILOT").kind is ConversationTypeEnum.COPILOT
    assert Conversation.model_validate({"id": "c", "created": {"value": "2024-01-01T00:00:00Z"},
                                        "updated": {"value": "2024-01-01T00:00:00Z"},
                                        "messages": {"iterable": []}, "type": "COPILOT"}).type \
        is ConversationTypeEnum.COPILOT


def test_an_enum_keeps_unlisted_values_and_has_pydantics_json_schema() -> None:
    adapter = TypeAdapter(ConversationTypeEnum)
    assert adapter.validate_python("COPILOT") is ConversationTypeEnum.COPILOT
    other = adapter.validate_json('"SOMETHING_NEW"')
    assert other.value == "SOMETHING_NEW" and not other.is_known
    assert adapter.dump_json(other) == b'"SOMETHING_NEW"'
    schema = adapter.json_schema()
    assert schema["title"] == "ConversationTypeEnum" and "COPILOT" in schema["enum"]
    assert schema["description"] == ConversationTypeEnum.__doc__.strip()
