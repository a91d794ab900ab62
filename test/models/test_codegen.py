"""The model generator: naming rules, output shape, determinism, drift, docs snippets."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict

import pytest

pytest.importorskip("yaml")

from testkit import ROOT, SHARED

if str(ROOT) not in sys.path:  # the generator lives in tools/, outside the package
    sys.path.insert(0, str(ROOT))

from tools.codegen import generate, naming, spec

SPEC = SHARED / "spec" / "conversations.openapi.yaml"
needs_spec = pytest.mark.skipif(not SPEC.is_file(), reason="OpenAPI document not reachable")


@pytest.mark.parametrize(
    ("schema", "module"),
    [
        ("QGPTTaskPipelineForCodeCompletion", "qgpt_task_pipeline_for_code_completion"),
        ("IDESelections", "ide_selections"),
        ("Auth0UserMetadata", "auth0_user_metadata"),
        ("GraphicalOCRDescriptiveStatistics_confidence", "graphical_ocr_descriptive_statistics_confidence"),
        ("SeededTrackedAssetsEvent_metadata", "seeded_tracked_assets_event_metadata"),
    ],
)
def test_module_names(schema: str, module: str) -> None:
    assert naming.module_name(schema) == module


@pytest.mark.parametrize(
    ("prop", "field"),
    [
        ("schema", "var_schema"),
        ("from", "var_from"),
        ("field", "var_field"),
        ("copy", "copy_field"),
        ("anchorPoint", "anchor_point"),
        ("top5Colors", "top5_colors"),
        ("open_AI", "open_ai"),
        ("ADDITIONAL_PARAMETERS", "additional_parameters"),
        ("bytes", "bytes"),
        ("global_id", "global_id"),
        ("type", "type"),
    ],
)
def test_field_names(prop: str, field: str) -> None:
    assert naming.field_name(prop) == field


@pytest.mark.parametrize(
    ("value", "member"),
    [
        ("GPT_3.5", "GPT_3_DOT_5"),
        ("DOLLY_1.4B", "DOLLY_1_DOT_4_B"),
        ("ALPACA_13B", "ALPACA_13_B"),
        ("MIXTRAL_8_x_7B", "MIXTRAL_8_X_7_B"),
        ("COMMAND_R+", "COMMAND_R_PLUS"),
        ("hs-boot", "HS_MINUS_BOOT"),
        ("hljs-1c", "HLJS_MINUS_1C"),
        ("google-oauth2", "GOOGLE_MINUS_OAUTH2"),
        ("tmLanguage", "TMLANGUAGE"),
        ("mp2a", "MP2A"),
        ("Appfile", "APPFILE"),
        ("COPILOT", "COPILOT"),
    ],
)
def test_enum_member_names(value: str, member: str) -> None:
    assert naming.enum_member_name(value) == member


def _tiny_spec(tmp_path: Path, schemas: Dict[str, Any]) -> Path:
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"info": {"title": "Tiny", "version": "0"}, "components": {"schemas": schemas}}))
    return path


def test_unsupported_constructs_are_refused(tmp_path: Path) -> None:
    one_of = {"Thing": {"type": "object", "properties": {"x": {"oneOf": [{"type": "string"}]}}}}
    with pytest.raises(spec.UnsupportedSchema):
        generate(_tiny_spec(tmp_path, one_of))
    int_enum = {"Level": {"type": "integer", "enum": [1, 2]}}
    with pytest.raises(spec.UnsupportedSchema):
        generate(_tiny_spec(tmp_path, int_enum))


def test_tiny_spec_generates_working_cyclic_models(tmp_path: Path) -> None:
    schemas = {
        "Tree": {
            "type": "object",
            "required": ["kind"],
            "properties": {
                "kind": {"$ref": "#/components/schemas/KindEnum"},
                "children": {"type": "array", "items": {"$ref": "#/components/schemas/Leaf"}},
                "from": {"type": "string", "format": "date-time"},
                "weight": {"type": "number", "nullable": True},
            },
        },
        "Leaf": {"type": "object", "properties": {"tree": {"$ref": "#/components/schemas/Tree"}}},
        "KindEnum": {"type": "string", "enum": ["OAK"]},
    }
    files = generate(_tiny_spec(tmp_path, schemas))
    assert set(files) == {
        "pieces_os_client/models/tree.py",
        "pieces_os_client/models/leaf.py",
        "pieces_os_client/models/kind_enum.py",
        "pieces_os_client/models/__init__.py",
        "docs/models/Tree.md",
        "docs/models/Leaf.md",
        "docs/models/KindEnum.md",
        "docs/models/README.md",
    }
    tree = files["pieces_os_client/models/tree.py"]
    assert "class Tree(PiecesNullableModel):" in tree
    assert "kind: KindEnum = KindEnum.OAK" in tree
    assert 'var_from: Optional[datetime] = Field(default=None, alias="from")' in tree
    assert "weight: Optional[Union[int, float]] = Field(default=None, json_schema_extra=NULLABLE)" in tree
    # The generated package really works: cycles, defaults, nullable, aliases.
    package = _tiny_package(files, tmp_path)
    code = textwrap.dedent(
        """
        import json
        from tinymodels.leaf import Leaf
        from tinymodels import Tree
        t = Tree.from_json('{"children": [{"tree": {"kind": "PINE"}}], "from": "2024-01-01T00:00:00Z"}')
        assert t.kind.value == "OAK" and t.children[0].tree.kind.value == "PINE"
        assert json.loads(t.to_json()) == {
            "kind": "OAK", "children": [{"tree": {"kind": "PINE"}}], "from": "2024-01-01T00:00:00Z"}
        assert Tree(weight=None).to_json() == '{"kind":"OAK","weight":null}'
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=package, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


@needs_spec
def test_generated_files_are_current_and_deterministic() -> None:
    first = generate(SPEC)
    assert generate(SPEC) == first
    stale = [rel for rel, text in first.items() if (ROOT / rel).read_text(encoding="utf-8") != text]
    assert stale == [], "run `python -m tools.codegen`"
    check = subprocess.run(
        [sys.executable, "-m", "tools.codegen", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_check_mode_reports_drift(tmp_path: Path) -> None:
    schemas = {"Only": {"type": "object", "properties": {"a": {"type": "string"}}}}
    spec_path = _tiny_spec(tmp_path, schemas)
    root = tmp_path / "repo"
    cmd = [sys.executable, "-m", "tools.codegen", "--spec", str(spec_path), "--root", str(root)]
    written = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    assert written.returncode == 0, written.stderr
    assert subprocess.run([*cmd, "--check"], cwd=ROOT, capture_output=True, check=False).returncode == 0
    (root / "pieces_os_client/models/only.py").write_text("# edited by hand\n")
    drift = subprocess.run([*cmd, "--check"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert drift.returncode == 1
    assert "pieces_os_client/models/only.py" in drift.stdout


def _quoted_names(cls: ast.ClassDef) -> set[str]:
    return {
        node.value for stmt in cls.body[1:] if isinstance(stmt, ast.AnnAssign)
        for node in ast.walk(stmt.annotation) if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def _bundle() -> tuple[list[str], dict[str, str], list[str], dict[str, set[str]]]:
    """The bundle's classes in order, {class: public module}, the classes noted as quoting, their quotes."""
    tree = ast.parse((ROOT / "pieces_os_client/models/_bundle.py").read_text(encoding="utf-8"))
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    call = tree.body[-1]
    assert isinstance(call, ast.Expr) and isinstance(call.value, ast.Call)
    assert ast.unparse(call.value.func) == "bundle_models"
    modules = ast.literal_eval(call.value.args[1])
    incomplete = ast.literal_eval(call.value.args[2])
    others = [n for n in tree.body[:-1] if not isinstance(n, (ast.ClassDef, ast.Import, ast.ImportFrom))]
    assert len(others) == 1 and isinstance(others[0], ast.Expr)  # the module docstring
    for cls in classes:
        doc = ast.get_docstring(cls)
        assert doc is not None and "\n" not in doc, cls.name
        for stmt in cls.body[1:]:
            assert isinstance(stmt, (ast.AnnAssign, ast.Assign)), f"{cls.name}: {ast.dump(stmt)[:80]}"
    return [c.name for c in classes], modules, incomplete, {c.name: _quoted_names(c) for c in classes}


def test_model_modules_hold_declarations_only() -> None:
    """Each generated module: imports and one class with a one-line docstring and fields, or
    (a model of the bundle) a re-export of its class from the bundle."""
    modules = [p for p in (ROOT / "pieces_os_client/models").glob("*.py") if not p.name.startswith("_")]
    assert len(modules) == 256
    order, bundled, incomplete, quotes = _bundle()
    assert sorted(order) == sorted(bundled)
    # quotes only name the class itself or models defined after it; exactly the noted classes quote
    for index, name in enumerate(order):
        assert quotes[name] <= set(order[index:]), name
    assert incomplete == [name for name in order if quotes[name]]
    for path in modules:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# Generated by tools/codegen"), path.name
        assert "published by Pieces under the MIT licence" in text
        tree = ast.parse(text)
        classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
        if path.stem in bundled.values():
            name = next(n for n, m in bundled.items() if m == path.stem)
            assert classes == [], path.name
            imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
            assert [i.module for i in imports] == ["pieces_os_client.models._bundle"], path.name
            assert {a.name for a in imports[0].names} == {name} | quotes[name], path.name
            assert ast.unparse(tree.body[-1]) == f"__all__ = [{name!r}]", path.name
            assert len(tree.body) == 2, path.name
            continue
        assert len(classes) == 1, path.name
        others = [n for n in tree.body if not isinstance(n, (ast.ClassDef, ast.Import, ast.ImportFrom))]
        # besides: the imports for type checkers, and the run-time link of the models named in quotes
        if others and isinstance(others[0], ast.If):
            assert ast.unparse(others[0].test) == "TYPE_CHECKING", path.name
            assert all(isinstance(n, ast.ImportFrom) for n in others[0].body), path.name
            assert ast.unparse(others[1]).startswith("link_models(globals(), {"), path.name
            others = others[2:]
        assert others == [], path.name
        body = classes[0].body
        doc = ast.get_docstring(classes[0])
        assert doc is not None and "\n" not in doc, path.name
        for stmt in body[1:]:
            assert isinstance(stmt, (ast.AnnAssign, ast.Assign)), f"{path.name}: {ast.dump(stmt)[:80]}"
        # Models are named in quotes exactly when they are linked after the class (their cycle):
        # the others are imported up front and named as they are. Bundled ones link to the bundle.
        links = dict(re.findall(r'^        "(\w+)": "(\w+)",$', text, flags=re.M))
        assert _quoted_names(classes[0]) - {classes[0].name} == set(links), path.name
        for linked, module in links.items():
            assert module == ("_bundle" if linked in bundled else bundled.get(linked, module)), path.name


_BUNDLE_CHILD = r"""
import json, pickle, sys
from pieces_os_client.models import Conversations, SeededConversation
from pieces_os_client.models.conversation import Conversation
doc = sys.stdin.read()
result = Conversations.from_json(doc)
message = result.iterable[0].messages.iterable[0]
loaded = sorted(m for m in sys.modules if m.startswith("pieces_os_client.models."))
from pieces_os_client.models import _bundle
from pieces_os_client.models.referenced_conversation_message import ReferencedConversationMessage as Public
from pieces_os_client.models.qgpt_conversation_message_role_enum import QGPTConversationMessageRoleEnum
print(json.dumps({
    "entry_modules_loaded": [m for m in loaded if m.rpartition(".")[2] in _BUNDLE_MODULES],
    "bundle_loaded": "pieces_os_client.models._bundle" in loaded,
    "message_class": [type(message).__module__, type(message).__qualname__],
    "same_class": Public is _bundle.ReferencedConversationMessage is type(message),
    "pickled": pickle.loads(pickle.dumps(result)) == result,
    "pickled_message": type(pickle.loads(pickle.dumps(message))) is Public,
    "enum_module": QGPTConversationMessageRoleEnum.__module__,
    "round_trip": json.loads(result.to_json()) == json.loads(doc),
}))
"""


@needs_spec
def test_bundled_models_keep_their_public_modules_and_load_as_one() -> None:
    """The first build loads the bundle and, of the bundled models' public modules, only those
    of the classes that quote a later one (pydantic finds the quoted names there); each
    bundled class still says (and pickles by) its public module, which gives the same class."""
    order, bundled, incomplete, _ = _bundle()
    doc = json.dumps({"iterable": [{
        "id": "c1", "created": {"value": "2024-01-01T00:00:00Z"}, "updated": {"value": "2024-01-01T00:00:00Z"},
        "type": "COPILOT", "messages": {"iterable": [{"id": "m1", "later": None}]},
    }]})
    code = _BUNDLE_CHILD.replace("_BUNDLE_MODULES", repr(set(bundled.values())))
    done = subprocess.run([sys.executable, "-c", code], input=doc, cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "entry_modules_loaded": sorted(f"pieces_os_client.models.{bundled[name]}" for name in incomplete),
        "bundle_loaded": True,
        "message_class": ["pieces_os_client.models.referenced_conversation_message", "ReferencedConversationMessage"],
        "same_class": True,
        "pickled": True,
        "pickled_message": True,
        "enum_module": "pieces_os_client.models.qgpt_conversation_message_role_enum",
        "round_trip": True,
    }
    assert "ReferencedConversationMessage" in order


def test_docs_snippets_run() -> None:
    pages = sorted((ROOT / "docs/models").glob("*.md"))
    assert len(pages) == 257  # one per schema and the index
    ran = 0
    for page in pages:
        for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), flags=re.S):
            exec(compile(block, str(page), "exec"), {})
            ran += 1
    assert ran == 256


_FOREIGN_BUNDLED_CHILD = r"""
import json
from pydantic import TypeAdapter
from pieces_os_client import _lazy
from pieces_os_client.models import _bundle
from pieces_os_client.models.flattened_anchor_point import FlattenedAnchorPoint
hooked = "__get_pydantic_core_schema__" in FlattenedAnchorPoint.__dict__
moment = {"value": "2024-01-01T00:00:00Z"}
point = TypeAdapter(FlattenedAnchorPoint).validate_python(
    {"id": "p", "fullpath": "/x", "created": moment, "updated": moment, "anchor": {"id": "a"}})
print(json.dumps({
    "hooked": hooked,
    "hook_left": [name for name, cls in vars(_bundle).items() if isinstance(cls, type)
                  and cls.__dict__.get("__get_pydantic_core_schema__") in (_lazy._LINK_FIRST, _lazy._BUNDLE_FIRST)],
    "anchor": type(point.anchor).__name__,
    "complete": FlattenedAnchorPoint.__pydantic_complete__,
}))
"""


@needs_spec
def test_a_schema_built_outside_the_package_finds_the_names_a_bundled_class_quotes() -> None:
    """A ``TypeAdapter`` of a bundled class that quotes a later one, before any build of ours:
    pydantic resolves the quotes in the class's public module, which the class's hook imports."""
    _, _, incomplete, _ = _bundle()
    assert "FlattenedAnchorPoint" in incomplete
    done = subprocess.run([sys.executable, "-c", _FOREIGN_BUNDLED_CHILD], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"hooked": True, "hook_left": [], "anchor": "ReferencedAnchor", "complete": False}


def test_tiny_spec_bundles_what_the_first_build_adds(tmp_path: Path) -> None:
    """``Conversations`` and ``Conversation`` keep their own modules; the rest of their cycle (and
    what only it uses) goes into the bundle, in an order that quotes only later classes."""
    ref = "#/components/schemas/"
    schemas = {
        "Conversations": {"type": "object", "properties": {
            "iterable": {"type": "array", "items": {"$ref": ref + "Conversation"}}}},
        "Conversation": {"type": "object", "properties": {
            "messages": {"type": "array", "items": {"$ref": ref + "Message"}}}},
        "Message": {"type": "object", "required": ["role"], "properties": {
            "conversation": {"$ref": ref + "Conversation"},
            "attachment": {"$ref": ref + "Attachment"},
            "role": {"$ref": ref + "RoleEnum"}}},
        "Attachment": {"type": "object", "properties": {"message": {"$ref": ref + "Message"}}},
        "RoleEnum": {"type": "string", "enum": ["USER"]},
    }
    files = generate(_tiny_spec(tmp_path, schemas))
    bundle = files["pieces_os_client/models/_bundle.py"]
    assert re.findall(r"^class (\w+)", bundle, flags=re.M) == ["Attachment", "RoleEnum", "Message"]
    assert 'message: Optional["Message"] = None' in bundle  # defined later: quoted
    assert "attachment: Optional[Attachment] = None" in bundle  # defined earlier: not quoted
    assert "from pieces_os_client.models.conversation import Conversation" in bundle
    assert '"Message": "_bundle"' in files["pieces_os_client/models/conversation.py"]
    assert "from pieces_os_client.models._bundle import Attachment, Message" in files[
        "pieces_os_client/models/attachment.py"]
    package = _tiny_package(files, tmp_path)
    parse = textwrap.dedent(
        """
        import json, pickle, sys
        from tinymodels import Conversations
        doc = '{"iterable": [{"messages": [{"role": "USER", "attachment": {"message": {"role": "NEW"}}}]}]}'
        result = Conversations.from_json(doc)
        message = result.iterable[0].messages[0]
        assert type(message).__module__ == "tinymodels.message", type(message).__module__
        assert "tinymodels.message" not in sys.modules and "tinymodels._bundle" in sys.modules
        assert json.loads(result.to_json()) == json.loads(doc)
        assert pickle.loads(pickle.dumps(result)) == result
        """
    )
    foreign = textwrap.dedent(
        """
        from pydantic import TypeAdapter
        from tinymodels.attachment import Attachment
        value = TypeAdapter(Attachment).validate_python({"message": {"role": "USER", "attachment": {}}})
        assert type(value.message.attachment) is Attachment
        """
    )
    for code in (parse, foreign):
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=package, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr


def _tiny_package(files: Dict[str, str], tmp_path: Path) -> Path:
    """The generated model modules written as an importable package ``tinymodels`` (with the real
    ``_base``) under a new folder; returns that folder, for ``PYTHONPATH``."""
    package = tmp_path / "pkg"
    for rel, text in files.items():
        if rel.startswith("pieces_os_client/models/"):
            target = package / "tinymodels" / Path(rel).name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text.replace("pieces_os_client.models", "tinymodels"))
    (package / "tinymodels" / "_base.py").write_text((ROOT / "pieces_os_client/models/_base.py").read_text())
    return package
