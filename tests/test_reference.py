"""The reference is generated from docstrings: every public name must have one.

The check itself is tools/public_docstrings.py; the docs build runs it too
(tools/mkdocs_hooks.py), so ``mkdocs build`` fails as this test does.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from public_docstrings import MODULES, load, undocumented  # noqa: E402


@pytest.fixture(scope="module")
def loaded() -> object:
    return load()


@pytest.mark.parametrize("module", MODULES)
def test_every_public_name_has_a_docstring(loaded: object, module: str) -> None:
    assert undocumented(loaded, module) == []


def test_the_check_finds_a_missing_docstring(tmp_path: Path) -> None:
    package = tmp_path / "probe"
    package.mkdir()
    (package / "__init__.py").write_text(
        '"""A probe."""\n__all__ = ["A", "B", "f", "X"]\n'
        'class A:\n    """Documented."""\n    def go(self): pass\n'
        "class B:\n    pass\n"
        'def f():\n    """Documented."""\n'
        "X = 1\n",
        encoding="utf-8",
    )
    collection = load(tmp_path, ("probe",))
    assert undocumented(collection, "probe") == ["probe.A.go", "probe.B", "probe.X"]


def test_the_reference_pages_cover_every_module() -> None:
    pages = (ROOT / "docs" / "reference").glob("*.md")
    documented = {m for p in pages for m in re.findall(r"^::: (\S+)$", p.read_text(), re.M)}
    assert documented == set(MODULES)


def test_the_docs_build_runs_the_check() -> None:
    assert "\nhooks:\n  - tools/mkdocs_hooks.py\n" in (ROOT / "mkdocs.yml").read_text()
