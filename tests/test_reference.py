"""The reference is generated from docstrings: every public name must have one.

Public means listed in the ``__all__`` of a module the reference documents.
The check reads the code as the site generator (mkdocstrings, through griffe)
does, statically: a docstring assigned at run time (``__doc__ = ...``) or a
``#:`` comment above a constant does not reach the site, so it does not count.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

griffe = pytest.importorskip("griffe")

ROOT = Path(__file__).resolve().parents[1]
MODULES = (
    "smtpcore",
    "smtpcore.session",
    "smtpcore.sasl",
    "smtpcore.codes",
    "transports.sync",
    "transports.asyncio",
    "transports.trio",
    "transports.anyio",
    "transports.mailboxes",
)


@pytest.fixture(scope="module")
def loaded() -> Any:
    loader = griffe.GriffeLoader(search_paths=[str(ROOT / "src")])
    for package in ("smtpcore", "transports"):
        loader.load(package)
    loader.resolve_aliases(implicit=True, external=False)
    return loader.modules_collection


def _target(obj: Any) -> Any:
    return obj.final_target if obj.is_alias else obj


def _inherited_docstring(cls: Any, name: str) -> bool:
    """True when a base class documents the method ``name`` that ``cls`` overrides."""
    for base in cls.mro():
        member = base.members.get(name)
        if member is not None and _target(member).docstring:
            return True
    return False


def undocumented(collection: Any, module: str) -> list[str]:
    """The public names of ``module`` without a docstring, and their public methods."""
    mod = collection[module]
    assert mod.exports, f"{module} has no __all__"
    missing: list[str] = []
    for name in mod.exports:
        obj = _target(mod[name])
        if not obj.docstring:
            missing.append(f"{module}.{name}")
        if obj.is_class:
            for member_name, member in obj.members.items():
                method = _target(member)
                if (
                    not member_name.startswith("_")
                    and method.is_function
                    and not method.docstring
                    and not _inherited_docstring(obj, member_name)
                ):
                    missing.append(f"{module}.{name}.{member_name}")
    return missing


@pytest.mark.parametrize("module", MODULES)
def test_every_public_name_has_a_docstring(loaded: Any, module: str) -> None:
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
    loader = griffe.GriffeLoader(search_paths=[str(tmp_path)])
    loader.load("probe")
    assert undocumented(loader.modules_collection, "probe") == ["probe.A.go", "probe.B", "probe.X"]


def test_the_reference_pages_cover_every_module() -> None:
    pages = (ROOT / "docs" / "reference").glob("*.md")
    documented = {m for p in pages for m in re.findall(r"^::: (\S+)$", p.read_text(), re.M)}
    assert documented == set(MODULES)
