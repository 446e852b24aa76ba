"""Which public names have no docstring, read as the site's reference generator reads them.

Public means listed in the ``__all__`` of a module the reference documents;
for a public class, its public methods too (an override may rely on the
docstring of the method it overrides). The code is read statically, through
griffe, as mkdocstrings does: a docstring assigned at run time
(``__doc__ = ...``) or a ``#:`` comment above a constant never reaches the
site, so it does not count.

Used by ``tests/test_reference.py`` and by the docs build (``mkdocs_hooks.py``),
which fails while any name is missing one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import griffe

SRC = Path(__file__).resolve().parents[1] / "src"
MODULES = (
    "smtpcore",
    "smtpcore.session",
    "smtpcore.driver",
    "smtpcore.sasl",
    "smtpcore.codes",
    "transports.sync",
    "transports.asyncio",
    "transports.trio",
    "transports.anyio",
    "transports.mailboxes",
    "transports.serving",
)


def load(search_path: Path = SRC, packages: tuple[str, ...] = ("smtpcore", "transports")) -> Any:
    """The modules of ``packages`` under ``search_path``, with their aliases resolved."""
    loader = griffe.GriffeLoader(search_paths=[str(search_path)])
    for package in packages:
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
    if not mod.exports:
        return [f"{module} has no __all__"]
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


def all_undocumented() -> list[str]:
    """Every public name of every documented module that lacks a docstring."""
    collection = load()
    return [name for module in MODULES for name in undocumented(collection, module)]
