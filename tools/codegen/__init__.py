"""Generator for ``pieces_os_client.models`` and ``docs/models``.

Reads the (cut-down) Pieces OpenAPI document and writes one module per schema,
the lazy package ``__init__`` and one Markdown page per schema.  The output is
committed; ``python -m tools.codegen --check`` verifies it is current.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from tools.codegen import render_docs, render_models, spec

DEFAULT_SPEC = Path("../shared/spec/conversations.openapi.yaml")
MODELS_DIR = "pieces_os_client/models"
DOCS_DIR = "docs/models"


def generate(spec_path: Path) -> Dict[str, str]:
    """Every generated file, as ``{path relative to the repo root: text}``."""
    info = spec.load(spec_path)
    files: Dict[str, str] = {}
    for model in info.models.values():
        files[f"{MODELS_DIR}/{model.module}.py"] = render_models.render_module(info, model)
        files[f"{DOCS_DIR}/{model.name}.md"] = render_docs.render_doc(info, model)
    files[f"{MODELS_DIR}/__init__.py"] = render_models.render_init(info)
    bundle = render_models.render_bundle(info)
    if bundle is not None:
        files[f"{MODELS_DIR}/{render_models.BUNDLE}.py"] = bundle
    files[f"{DOCS_DIR}/README.md"] = render_docs.render_index(info)
    return files
