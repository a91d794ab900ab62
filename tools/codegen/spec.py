"""Read the OpenAPI document into a small intermediate form the renderers use.

Only the subset of OpenAPI used by the Pieces document is supported: object
schemas with ``properties`` (values are ``$ref``, primitive types, arrays with
``items`` and maps via ``additionalProperties``) and string enums.  Anything else
raises ``UnsupportedSchema`` so a change in the document is noticed, not guessed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

import yaml

from tools.codegen import naming


class UnsupportedSchema(ValueError):
    """The document uses a construct the generator does not handle."""


@dataclasses.dataclass
class TypeInfo:
    """A property's type, as Python source and as text for the docs."""

    annotation: str
    doc: str
    model_refs: Set[str] = dataclasses.field(default_factory=set)
    enum_refs: Set[str] = dataclasses.field(default_factory=set)
    typing_names: Set[str] = dataclasses.field(default_factory=set)
    base_names: Set[str] = dataclasses.field(default_factory=set)
    needs_datetime: bool = False


@dataclasses.dataclass
class FieldSpec:
    wire_name: str
    py_name: str
    type: TypeInfo
    required: bool
    nullable: bool
    description: Optional[str]
    default_member: Optional[str] = None  # enum member used as default, by name
    notes: List[str] = dataclasses.field(default_factory=list)

    @property
    def alias(self) -> Optional[str]:
        return self.wire_name if self.wire_name != self.py_name else None


@dataclasses.dataclass
class ModelSpec:
    name: str
    module: str
    kind: str  # "object" or "enum"
    description: Optional[str]
    fields: List[FieldSpec] = dataclasses.field(default_factory=list)
    members: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (name, value)
    declared_values: List[str] = dataclasses.field(default_factory=list)
    ignored_required: List[str] = dataclasses.field(default_factory=list)

    @property
    def has_nullable(self) -> bool:
        return any(f.nullable for f in self.fields)


@dataclasses.dataclass
class SpecInfo:
    title: str
    version: str
    models: Dict[str, ModelSpec]
    raw: Dict[str, Any]

    @property
    def schemas(self) -> Dict[str, Any]:
        schemas: Dict[str, Any] = self.raw["components"]["schemas"]
        return schemas


_REF_PREFIX = "#/components/schemas/"
_PRIMITIVE_KEYS = {
    "type",
    "description",
    "example",
    "x-stoplight",
    "format",
    "nullable",
    "default",
    "maxLength",
    "minLength",
    "pattern",
    "title",
    "x-tags",
    "deprecated",
    "enum",
    "readOnly",
}


def ref_name(ref: str) -> str:
    if not ref.startswith(_REF_PREFIX):
        raise UnsupportedSchema(f"external or non-schema $ref {ref!r}")
    return ref[len(_REF_PREFIX) :]


def load(path: Path) -> SpecInfo:
    with path.open("rb") as fh:
        raw = yaml.safe_load(fh)
    schemas: Dict[str, Any] = raw["components"]["schemas"]
    enums = {name for name, schema in schemas.items() if "enum" in schema}
    models: Dict[str, ModelSpec] = {}
    for name in sorted(schemas):
        models[name] = _build_model(name, schemas[name], schemas, enums)
    _check_unique(models)
    info = raw.get("info", {})
    return SpecInfo(title=info.get("title", ""), version=str(info.get("version", "")), models=models, raw=raw)


def _check_unique(models: Dict[str, ModelSpec]) -> None:
    seen: Dict[str, str] = {}
    for model in models.values():
        if model.module in seen or model.module.startswith("_"):
            raise UnsupportedSchema(f"module name clash: {model.name} and {seen.get(model.module)}")
        seen[model.module] = model.name


def real_enum_values(schema: Dict[str, Any]) -> List[str]:
    """Declared values of an enum, without the catch-all ``UNKNOWN``."""
    return [value for value in schema["enum"] if value != "UNKNOWN"]


def _build_model(name: str, schema: Dict[str, Any], schemas: Dict[str, Any], enums: Set[str]) -> ModelSpec:
    cls = naming.class_name(name)
    module = naming.module_name(name)
    description = schema.get("description")
    if "enum" in schema:
        if schema.get("type") != "string":
            raise UnsupportedSchema(f"{name}: only string enums are supported")
        values = [str(v) for v in schema["enum"]]
        ordered = ["UNKNOWN", *[v for v in values if v != "UNKNOWN"]]
        members: List[Tuple[str, str]] = []
        used: Set[str] = set()
        for value in ordered:
            member = naming.enum_member_name(value)
            if member in used:
                raise UnsupportedSchema(f"{name}: enum member name clash for {value!r}")
            used.add(member)
            members.append((member, value))
        return ModelSpec(cls, module, "enum", description, members=members, declared_values=values)

    if schema.get("type") != "object" or "properties" not in schema:
        raise UnsupportedSchema(f"{name}: expected an object with properties or a string enum")
    required = set(schema.get("required", []))
    # A few schemas list required names that have no property (a slip in the
    # document); such a name cannot be typed, so it is ignored, as the official
    # SDK does, and mentioned in the docs.
    model = ModelSpec(cls, module, "object", description)
    model.ignored_required = sorted(required - set(schema["properties"]))
    py_names: Set[str] = set()
    for prop, prop_schema in schema["properties"].items():
        py_name = naming.field_name(prop)
        if py_name in py_names:
            raise UnsupportedSchema(f"{name}: two properties map to the Python name {py_name!r}")
        py_names.add(py_name)
        typ = python_type(f"{name}.{prop}", prop_schema, enums)
        is_required = prop in required
        nullable = bool(prop_schema.get("nullable", False))
        field = FieldSpec(
            wire_name=prop,
            py_name=py_name,
            type=typ,
            required=is_required,
            nullable=nullable,
            description=prop_schema.get("description"),
        )
        target = ref_name(prop_schema["$ref"]) if "$ref" in prop_schema else None
        if target in enums and is_required and not nullable:
            values = real_enum_values(schemas[target])
            if len(values) == 1:
                field.default_member = naming.enum_member_name(values[0])
                field.notes.append(f"defaults to `{values[0]}`, the only value the schema lists")
        if "enum" in prop_schema:
            listed = ", ".join(f"`{v}`" for v in prop_schema["enum"])
            field.notes.append(f"expected value(s): {listed} (other strings are accepted)")
        if prop_schema.get("deprecated"):
            field.notes.append("deprecated")
        if "default" in prop_schema and "$ref" not in prop_schema:
            field.notes.append(f"server-side default `{prop_schema['default']}` (not filled in by the client)")
        if "pattern" in prop_schema or "minLength" in prop_schema or "maxLength" in prop_schema:
            field.notes.append("the schema constrains its format; the client does not enforce it")
        model.fields.append(field)
    return model


def python_type(where: str, schema: Dict[str, Any], enums: Set[str]) -> TypeInfo:
    """Translate a property schema into a Python annotation (without ``Optional``)."""
    if "$ref" in schema:
        if set(schema) - {"$ref", "description"}:
            raise UnsupportedSchema(f"{where}: $ref with siblings {sorted(set(schema) - {'$ref'})}")
        target = ref_name(schema["$ref"])
        if target in enums:
            return TypeInfo(target, f"[{target}]({target}.md)", enum_refs={target})
        # Quoted: model classes are imported at the bottom of the module (cycles).
        return TypeInfo(f'"{target}"', f"[{target}]({target}.md)", model_refs={target})
    kind = schema.get("type")
    if kind == "array":
        inner = python_type(where + "[]", schema["items"], enums)
        return _wrap(inner, "List[{}]", "List[{}]", {"List"})
    if kind == "object":
        extra = set(schema) - {"type", "additionalProperties", "description", "x-stoplight", "title"}
        if extra:
            raise UnsupportedSchema(f"{where}: inline object with {sorted(extra)}")
        values = schema.get("additionalProperties", True)
        if values is True or values == {}:
            return TypeInfo("Dict[str, Any]", "Dict[str, Any]", typing_names={"Dict", "Any"})
        inner = python_type(where + "{}", values, enums)
        return _wrap(inner, "Dict[str, {}]", "Dict[str, {}]", {"Dict"})
    unknown = set(schema) - _PRIMITIVE_KEYS
    if unknown:
        raise UnsupportedSchema(f"{where}: unsupported keys {sorted(unknown)}")
    fmt = schema.get("format")
    if kind == "string":
        if fmt == "date-time":
            return TypeInfo("datetime", "datetime", needs_datetime=True)
        if fmt == "uuid":
            return TypeInfo("UuidStr", "str (uuid)", base_names={"UuidStr"})
        return TypeInfo("str", f"str ({fmt})" if fmt else "str")
    if kind == "integer":
        return TypeInfo("int", "int")
    if kind == "number":
        return TypeInfo("Union[int, float]", "float", typing_names={"Union"})
    if kind == "boolean":
        return TypeInfo("bool", "bool")
    raise UnsupportedSchema(f"{where}: unsupported type {kind!r}")


def _wrap(inner: TypeInfo, code: str, doc: str, names: Set[str]) -> TypeInfo:
    return TypeInfo(
        code.format(inner.annotation),
        doc.format(inner.doc),
        model_refs=set(inner.model_refs),
        enum_refs=set(inner.enum_refs),
        typing_names=inner.typing_names | names,
        base_names=set(inner.base_names),
        needs_datetime=inner.needs_datetime,
    )
