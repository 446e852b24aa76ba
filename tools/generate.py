"""Write the keyword types derived from the option classes, or check they are current.

Each option is declared once, as a field of a frozen dataclass; the
``TypedDict`` that types the keyword arguments of every server or client
(``**options: Unpack[...]``) is written from those fields (``KEYWORDS``).
A field's ``metadata`` may give ``keyword`` (the argument's name when it
differs from the field's) and ``accepts`` (the argument's type when it is
wider than the field's); ``keyword=False`` leaves a field out.

(The blocking client and server need no derived file: they run the async
drivers themselves, on streams that never suspend; see ``transports._blocking``.)

``python tools/generate.py`` writes them all; ``--check`` writes nothing and
fails, naming each stale file, when one differs from what would be written
(``make lint`` runs it, so CI fails on a stale file).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import re
import subprocess
import sys
import types
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (output module, [(TypedDict name, ["module:Class", ...]), ...]), paths from ROOT.
KEYWORDS: list[tuple[str, list[tuple[str, list[str]]]]] = [
    (
        "src/smtpcore/session/_server_keywords.py",
        [("SettingsKeywords", ["smtpcore.session._server_options:ServerSettings"])],
    ),
    (
        "src/transports/_server_keywords.py",
        [
            (
                "ServerKeywords",
                [
                    "transports._server_settings:TransportSettings",
                    "smtpcore.session._server_options:ServerSettings",
                ],
            )
        ],
    ),
    (
        "src/smtpcore/session/_option_keywords.py",
        [("ClientOptionKeywords", ["smtpcore.session._options:ClientOptions"])],
    ),
    (
        "src/transports/_client_keywords.py",
        [
            (
                "ClientKeywords",
                [
                    "smtpcore.session._options:ClientOptions",
                    "transports._client_options:ConnectOptions",
                ],
            )
        ],
    ),
]

HEADER = "# Written by `make generate` (tools/generate.py) from\n# {source}: edit that, not this.\n"


def _imports(annotation: str, module: types.ModuleType) -> list[str]:
    """The import lines that make the names of ``annotation`` (as written in ``module``) known."""
    found = []
    for name in set(re.findall(r"(?<![.\w])([A-Za-z_]\w*)", annotation)):
        if name in _BUILTIN_NAMES:
            continue
        value = vars(module)[name]
        if isinstance(value, types.ModuleType):
            found.append(f"    import {value.__name__}")
            continue
        home = getattr(value, "__module__", None)
        if (
            home in (None, "typing", "builtins")
            or getattr(sys.modules[home], name, None) is not value
        ):
            home = module.__name__
        found.append(f"    from {_public(home, name, value)} import {name}")
    return found


def _public(home: str, name: str, value: object) -> str:
    """The outermost package of ``home`` that exports ``value`` as ``name`` (a public import)."""
    parts = home.split(".")
    for end in range(1, len(parts)):
        package = ".".join(parts[:end])
        if any(part.startswith("_") for part in parts[:end]):
            break
        exported = getattr(importlib.import_module(package), "__all__", ())
        if name in exported and getattr(sys.modules[package], name, None) is value:
            return package
    return home


_BUILTIN_NAMES = frozenset(
    {"None", "int", "float", "str", "bytes", "bool", "tuple", "list", "dict", "object"}
)


def _keywords(classes: list[tuple[str, list[str]]], source: str) -> str:
    lines = [
        HEADER.format(source=source).rstrip("\n"),
        '"""The keyword arguments of the servers and clients, one per option field."""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import TYPE_CHECKING, TypedDict",
        "",
    ]
    imports: list[str] = []
    bodies: list[str] = []
    for name, dotted in classes:
        body = [f"class {name}(TypedDict, total=False):"]
        body.append('    """Keyword options: the fields of')
        body.extend(f"    {path}" for path in dotted)
        body.append('    """')
        body.append("")
        for path in dotted:
            module_name, _, class_name = path.partition(":")
            module = importlib.import_module(module_name)
            for field in dataclasses.fields(getattr(module, class_name)):
                keyword = field.metadata.get("keyword", field.name)
                if keyword is False:
                    continue
                kind = str(field.metadata.get("accepts", field.type))
                imports.extend(_imports(kind, module))
                body.append(f"    {keyword}: {kind}")
        bodies.append("\n".join(body))
    lines.append("if TYPE_CHECKING:")
    lines.extend(sorted(set(imports)))
    lines.append("")
    return "\n".join(lines) + "\n\n" + "\n\n\n".join(bodies) + "\n"


def _tidy(text: str, target: str) -> str:
    """``text`` as ruff leaves it: imports sorted, unused ones gone, formatted."""
    for command in (["check", "--fix-only", "--quiet", "--select", "I,F401"], ["format"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", target, "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        text = done.stdout
    return text


def outputs() -> dict[str, str]:
    """Every derived file, by path from the repository root, as it should read."""
    sys.path[:0] = [str(ROOT / "src")]
    files: dict[str, str] = {}
    for target, classes in KEYWORDS:
        sources = ",\n# ".join(path for _, dotted in classes for path in dotted)
        files[target] = _keywords(classes, sources)
    return {target: _tidy(text, target) for target, text in files.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a derived file is stale")
    args = parser.parse_args(argv)
    stale = []
    for target, text in outputs().items():
        path = ROOT / target
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(target)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {target}")
    if stale:
        print("stale (run `make generate`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
