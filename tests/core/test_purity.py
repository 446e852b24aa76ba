"""The core stays pure: no module of smtpcore imports or calls anything that does I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "src" / "smtpcore"
FORBIDDEN_MODULES = {
    "socket", "ssl", "asyncio", "trio", "anyio", "selectors", "threading",
    "subprocess", "multiprocessing", "time", "os", "io", "pathlib", "shutil",
    "tempfile", "select", "signal", "urllib", "http", "smtplib", "random",
    "secrets", "transports",
}  # fmt: skip
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval", "__import__"}
# The email package imports socket (email.utils); only message preparation may
# use it, and it generates into memory (io.BytesIO comes with the generator).
# ``python -m smtpcore`` hands over to the command line in transports; that module
# runs only as a program, never by ``import smtpcore`` (the test below checks it).
ALLOWED = {("_message.py", "io"), ("__main__.py", "transports")}


def core_files() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def violations(source: str, filename: str) -> list[str]:
    """The I/O imports and calls in ``source``."""
    tree = ast.parse(source)
    bad: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            if top in FORBIDDEN_MODULES and (filename, top) not in ALLOWED:
                assert isinstance(node, (ast.Import, ast.ImportFrom))
                bad.append(f"line {node.lineno}: import {name}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            bad.append(f"line {node.lineno}: call {node.func.id}()")
    return bad


@pytest.mark.parametrize("path", core_files(), ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_imports_and_calls_no_io(path: Path) -> None:
    bad = violations(path.read_text(encoding="utf-8"), path.name)
    assert not bad, f"{path.name} is not pure: {bad}"


def test_importing_smtpcore_loads_no_io_module() -> None:
    code = (
        "import sys, smtpcore, smtpcore.sasl, smtpcore.codes\n"
        "bad = sorted({'socket', 'ssl', 'asyncio', 'trio', 'anyio', 'selectors', 'threading'}"
        " & set(sys.modules))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_purity_check_catches_io() -> None:
    """The scanner itself must be able to fail."""
    source = "import socket\nfrom time import sleep\nimport os.path\nopen('x')\n"
    assert violations(source, "probe.py") == [
        "line 1: import socket",
        "line 2: import time",
        "line 3: import os.path",
        "line 4: call open()",
    ]
