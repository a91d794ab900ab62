"""Render ``docs/models/*.md`` from the intermediate form."""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List

from tools.codegen.spec import FieldSpec, ModelSpec, SpecInfo


def _cell(text: str) -> str:
    """Make ``text`` safe inside one Markdown table cell."""
    text = re.sub(r"\s+", " ", text).strip()
    return text.replace("|", "\\|")


def _notes(field: FieldSpec) -> str:
    notes = ["required" if field.required else "optional"]
    if field.nullable:
        notes.append("nullable: an explicit `None` is sent as `null`")
    if field.alias:
        notes.append(f"Python name `{field.py_name}`")
    notes.extend(field.notes)
    return "; ".join(notes)


def render_doc(spec: SpecInfo, model: ModelSpec) -> str:
    if model.kind == "enum":
        return _render_enum_doc(spec, model)
    return _render_object_doc(spec, model)


def _source_note(spec: SpecInfo) -> List[str]:
    return [
        "",
        f"_Generated from the {spec.title} document ({spec.version}), published by Pieces under the MIT "
        "licence. Regenerate with `python -m tools.codegen`; do not edit._",
    ]


def _quote(description: str) -> List[str]:
    lines = ["Description given by the OpenAPI document:", ""]
    for line in description.strip().splitlines():
        lines.append(f"> {line.rstrip()}".rstrip())
    return lines


def _render_enum_doc(spec: SpecInfo, model: ModelSpec) -> str:
    schema = spec.schemas[model.name]
    lines = [
        f"# {model.name}",
        "",
        f"String enum (`pieces_os_client.models.{model.module}.{model.name}`, a `str` subclass).",
        "",
    ]
    if model.description:
        lines += [*_quote(model.description), ""]
    lines += ["| Member | Value | Listed in the schema |", "| --- | --- | --- |"]
    for member, value in model.members:
        listed = "yes" if value in model.declared_values else "no (client-side catch-all)"
        lines.append(f"| `{member}` | `{_cell(value)}` | {listed} |")
    example = model.members[1][1] if len(model.members) > 1 else model.members[0][1]
    lines += [
        "",
        "A value the list does not contain (sent by a newer Pieces OS) is not an error: it becomes a",
        "pseudo-member whose `.value` is that string, and it is written back unchanged. `UNKNOWN` exists",
        "for compatibility with the official SDK; unlisted values are *not* turned into it.",
    ]
    if schema.get("default") is not None:
        lines += ["", f"The schema names `{schema['default']}` as its default value."]
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        f"from pieces_os_client.models.{model.module} import {model.name}",
        "",
        f"value = {model.name}.from_json({json.dumps(json.dumps(example))})",
        f"assert value == {model.name}({json.dumps(example)})",
        f'newer = {model.name}("SOME_FUTURE_VALUE")  # kept verbatim',
        'assert newer.value == "SOME_FUTURE_VALUE" and not newer.is_known',
        "```",
        *_source_note(spec),
    ]
    return "\n".join(lines) + "\n"


def minimal_example(spec: SpecInfo, name: str, depth: int = 0) -> Any:
    """The smallest valid wire value of a schema: its required properties only."""
    model = spec.models[name]
    if model.kind == "enum":
        return model.declared_values[0]
    if depth > 20:
        raise ValueError(f"required properties of {name} nest too deep")
    out: Dict[str, Any] = {}
    for field in model.fields:
        if field.required and field.default_member is None:
            out[field.wire_name] = _example_value(spec, field, depth)
    return out


def _example_value(spec: SpecInfo, field: FieldSpec, depth: int) -> Any:
    annotation = field.type.annotation
    simple: Dict[str, Any] = {
        "str": "text",
        "UuidStr": "6a2f41a3-c54c-fce8-32d2-0324e1c32e22",
        "int": 1,
        "Union[int, float]": 1.5,
        "bool": True,
        "datetime": "2024-01-01T00:00:00Z",
    }
    if annotation in simple:
        return simple[annotation]
    if annotation.startswith("List["):
        return []
    if annotation.startswith("Dict["):
        return {}
    return minimal_example(spec, annotation.strip('"'), depth + 1)


def _render_object_doc(spec: SpecInfo, model: ModelSpec) -> str:
    lines = [
        f"# {model.name}",
        "",
        f"Model class `pieces_os_client.models.{model.module}.{model.name}` (a `PiecesModel`, i.e. a pydantic model).",
        "",
    ]
    if model.description:
        lines += [*_quote(model.description), ""]
    lines += [
        "## Properties",
        "",
        "| Name | Type | Description | Notes |",
        "| --- | --- | --- | --- |",
    ]
    for field in model.fields:
        lines.append(
            f"| `{field.wire_name}` | {_cell(field.type.doc)} | {_cell(field.description or '')} | "
            f"{_cell(_notes(field))} |"
        )
    if model.ignored_required:
        names = ", ".join(f"`{n}`" for n in model.ignored_required)
        lines += [
            "",
            f"The schema also lists {names} as required but defines no such property; the client ignores that entry.",
        ]
    example = minimal_example(spec, model.name)
    lines += [
        "",
        "Properties not listed above are kept when parsing and written back when serialising.",
        "Python code may use either the property name or the Python name as a keyword argument.",
        "",
        "## Usage",
        "",
        "```python",
        f"from pieces_os_client.models.{model.module} import {model.name}",
        "",
        f"text = {json.dumps(json.dumps(example, separators=(',', ':')))}",
        f"obj = {model.name}.from_json(text)  # validate JSON (str or bytes)",
        "data = obj.to_dict()  # dict keyed by property name; unset fields left out",
        "wire = obj.to_json()  # JSON text, same rules",
        f"copy = {model.name}.from_dict(data)",
        "```",
    ]
    if any(f.type.model_refs for f in model.fields):
        lines += [
            "",
            "Nested objects may be given as model instances or as plain dicts.",
        ]
    lines += _source_note(spec)
    return "\n".join(lines) + "\n"


def render_index(spec: SpecInfo) -> str:
    objects = [m for m in spec.models.values() if m.kind == "object"]
    enums = [m for m in spec.models.values() if m.kind == "enum"]
    lines = [
        "# Models",
        "",
        f"{len(objects)} object models and {len(enums)} string enums, generated from the OpenAPI document.",
        "Shared behaviour (parsing, serialising, forward compatibility) is described in",
        "`pieces_os_client/models/_base.py`.",
        "",
        "## Objects",
        "",
    ]
    lines += [f"- [{m.name}]({m.name}.md)" for m in objects]
    lines += ["", "## Enums", ""]
    lines += [f"- [{m.name}]({m.name}.md)" for m in enums]
    lines += _source_note(spec)
    return "\n".join(lines) + "\n"
