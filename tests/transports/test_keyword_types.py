"""The client keywords are typed: mypy --strict names a misspelled one at the call site.

Each client takes ``host, port=None, **options: Unpack[ClientKeywords]``;
the ``TypedDict`` is written from the option classes, so a keyword that is
not an option is a type error, found before the code runs (and a
``TypeError`` naming it when it runs).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
MODULES: Final = ("sync", "asyncio", "trio", "anyio")

#: Line by line: (code, the keyword mypy must name there or None when it must say nothing).
LINES: Final = [
    ("from transports import anyio, asyncio, sync, trio", None),
    ("from transports.sync import send", None),
    ('sync.SMTPClient("localhost", 2525, tls="none", timeout=5.0)', None),
    ('sync.SMTPClient("localhost", socket_path="/run/smtp.sock", trace=print)', None),
    *[(f'{m}.SMTPClient("localhost", 2525, timout=5.0)', "timout") for m in MODULES],
    *[(f'{m}.Pool("localhost", conections=2)', "conections") for m in MODULES if m != "sync"],
    ('send(None, "localhost", ssl_contxt=None)  # type: ignore[arg-type]', "ssl_contxt"),
    ('sync.SMTPClient("localhost", sock="/run/smtp.sock")', "sock"),
]


def test_mypy_names_each_misspelled_keyword(tmp_path: Path) -> None:
    snippet = tmp_path / "calls.py"
    snippet.write_text("\n".join(code for code, _ in LINES) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--python-version", "3.10",
         "--no-incremental", "--follow-imports", "silent", str(snippet)],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=600,
        env={**os.environ, "MYPYPATH": str(ROOT / "src")},
    )  # fmt: skip
    errors: dict[int, str] = {}
    for found in re.finditer(r"calls\.py:(\d+): error: (.*)", done.stdout):
        errors[int(found[1])] = errors.get(int(found[1]), "") + found[2]
    for number, (code, keyword) in enumerate(LINES, start=1):
        if keyword is None:
            assert number not in errors, (code, errors.get(number), done.stdout)
        else:
            assert f'"{keyword}"' in errors.get(number, ""), (code, done.stdout)
