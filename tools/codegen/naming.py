"""Python names for OpenAPI schema, property and enum-value names.

The rules reproduce the public names of the official ``pieces_os_client`` package
(module files, class names, field names and aliases, enum member names), so code
written against it keeps working.  ``compare_official.py`` checks them.
"""

from __future__ import annotations

import keyword
import re

# Property names that would clash with Python keywords or with names the official
# SDK escapes with a ``var_`` prefix (``schema`` collides with pydantic's API).
_VAR_PREFIXED = frozenset(
    set(keyword.kwlist)
    | {
        "schema",
        "field",
        "self",
        "property",
        "json",
        "base64",
        "date",
        "datetime",
        "float",
        "int",
        "str",
        "bool",
        "dict",
        "list",
        "object",
        "print",
        "exec",
    }
)

# Names that would shadow attributes of ``pydantic.BaseModel`` or of our base class;
# the official SDK appends ``_field`` to these.
_FIELD_SUFFIXED = frozenset(
    {
        "copy",
        "construct",
        "validate",
        "parse_obj",
        "parse_raw",
        "parse_file",
        "from_orm",
        "update_forward_refs",
        "fields",
        "to_dict",
        "to_json",
        "to_str",
        "from_dict",
        "from_json",
    }
)

_ACRONYM_BOUNDARY = re.compile(r"([A-Z]+)([A-Z][a-z][a-z]+)")
_WORD_BOUNDARY = re.compile(r"([a-z\d])([A-Z])")


def underscore(name: str) -> str:
    """``QGPTTaskPipeline`` -> ``qgpt_task_pipeline``; ``top5Colors`` -> ``top5_colors``."""
    text = _ACRONYM_BOUNDARY.sub(r"\1_\2", name)
    text = _WORD_BOUNDARY.sub(r"\1_\2", text)
    return text.replace("-", "_").replace(".", "_").lower()


def module_name(schema_name: str) -> str:
    """File stem (without ``.py``) of the module holding a schema's class."""
    return underscore(schema_name)


def class_name(schema_name: str) -> str:
    """Class name for a schema: the schema key itself, which is already CamelCase."""
    if not schema_name.isidentifier() or keyword.iskeyword(schema_name):
        raise ValueError(f"schema name {schema_name!r} is not usable as a class name")
    return schema_name


def field_name(property_name: str) -> str:
    """Python attribute name of a property (its alias stays the property name)."""
    text = re.sub(r"[^0-9A-Za-z_]", "_", property_name)
    text = text.lower() if text.isupper() else underscore(text)
    if text[:1].isdigit():
        text = "var_" + text
    if text in _VAR_PREFIXED:
        return "var_" + text
    if text in _FIELD_SUFFIXED:
        return text + "_field"
    return text


_ENUM_SYMBOLS = {
    "-": "_MINUS_",
    ".": "_DOT_",
    "+": "_PLUS_",
    "#": "_HASH_",
    "/": "_SLASH_",
    " ": "_",
    "@": "_AT_",
    "&": "_AND_",
    "*": "_STAR_",
    ":": "_COLON_",
}


def enum_member_name(value: str) -> str:
    """Member name for an enum value, spelled as the official SDK spells it.

    The rule below was fitted to the official package (``compare_official.py``
    checks it): values with symbols get the symbols named and are split like
    identifiers (``GPT_3.5`` -> ``GPT_3_DOT_5``, ``hs-boot`` -> ``HS_MINUS_BOOT``), as
    are values starting with a capital (``ALPACA_13B`` -> ``ALPACA_13_B``); other values
    are only upper-cased (``tmLanguage`` -> ``TMLANGUAGE``, ``mp2a`` -> ``MP2A``).
    """
    if value == "":
        return "EMPTY"
    if any(ch in _ENUM_SYMBOLS for ch in value) or value[:1].isupper():
        text = "".join(_ENUM_SYMBOLS.get(ch, ch) for ch in value)
        text = _WORD_BOUNDARY.sub(r"\1_\2", _ACRONYM_BOUNDARY.sub(r"\1_\2", text))
    else:
        text = value
    text = re.sub(r"[^0-9A-Za-z_]", "_", text).upper().strip("_") or "EMPTY"
    if text[0].isdigit():
        text = "NUMBER_" + text
    if keyword.iskeyword(text):
        text += "_"
    return text
