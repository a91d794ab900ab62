"""Helpers the test suite shares that are not fixtures: raw servers, frame builders, scripts.

Fixtures live in ``conftest.py`` files. This package is importable because pyproject.toml puts
``test/`` on pytest's ``pythonpath``; test modules themselves are imported with
``--import-mode=importlib``, so files of the same name may stand in different folders.
"""

from __future__ import annotations

from pathlib import Path

#: the project's top folder (pyproject.toml, examples/, docs/)
ROOT = Path(__file__).resolve().parents[2]
#: the shared documents beside the checkout (the OpenAPI spec, the user's API page)
SHARED = ROOT.parent / "shared"
