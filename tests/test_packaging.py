"""What a user gets from the package: one version, the entry points, and a plain
install (no extras) that works and names the extras it lacks."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import smtpcore

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PYPROJECT = (ROOT / "pyproject.toml").read_text(encoding="utf-8")

# Makes ``import trio`` / ``import anyio`` fail as they do where the extra is not
# installed (None in sys.modules raises ModuleNotFoundError on import).
WITHOUT_EXTRAS = "import sys; sys.modules['trio'] = None; sys.modules['anyio'] = None\n"


def python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def test_one_version_in_the_module_and_the_installed_metadata() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", smtpcore.__version__)
    assert metadata.version("smtpcore") == smtpcore.__version__
    assert '\ndynamic = ["version"]\n' in PYPROJECT
    assert '[tool.hatch.version]\npath = "src/smtpcore/__init__.py"\n' in PYPROJECT
    assert "\nversion =" not in PYPROJECT


def test_the_changelog_has_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"\n## {smtpcore.__version__} " in changelog


def test_python_m_smtpcore_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "smtpcore", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ")
    for command in ("demo", "send", "serve", "probe"):
        assert command in done.stdout


@pytest.mark.parametrize("extra", ["trio", "anyio"])
def test_a_transport_without_its_framework_names_the_extra(extra: str) -> None:
    done = python(WITHOUT_EXTRAS + f"import transports.{extra}")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ModuleNotFoundError: transports.{extra} needs {extra} ")
    assert last.endswith(f"pip install 'smtpcore[{extra}]'")


def test_the_demo_without_extras_runs_sync_and_asyncio_and_names_the_rest() -> None:
    done = python(WITHOUT_EXTRAS + "from transports.cli import main; sys.exit(main(['demo']))")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert "\n2 of 2 messages arrived intact.\n" in done.stdout
    assert (
        "Not run, framework not installed: trio, anyio"
        " (pip install 'smtpcore[trio]', pip install 'smtpcore[anyio]').\n"
    ) in done.stdout
    assert "Subject: Hello from the sync client" in done.stdout
    assert "Subject: Hello from the asyncio client" in done.stdout
    assert "Subject: Hello from the trio client" not in done.stdout


def test_the_demo_fails_when_an_installed_transport_is_broken() -> None:
    """A framework that is there but a transport that does not import is not 'skipped'."""
    broken = "import sys; sys.modules['transports._trio_raw'] = None\n"
    done = python(broken + "from transports.cli import main; sys.exit(main(['demo']))")
    assert done.returncode != 0
    assert "skipped" not in done.stdout
    assert "transports._trio_raw" in done.stderr


def _declared() -> dict[str, str]:
    """Each requirement's name and what it is declared for: 'always', a marker, or an extra."""
    declared: dict[str, str] = {}
    deps = re.search(r"^dependencies = \[(.*?)\]$", PYPROJECT, re.M | re.S)
    assert deps is not None
    for spec in re.findall(r'"([^"]+)"', deps.group(1)):
        name, _, marker = spec.partition(";")
        declared[re.split(r"[<>=!\[ ]", name, maxsplit=1)[0]] = marker.strip() or "always"
    for extra in ("trio", "anyio", "uvloop"):
        line = re.search(rf"^{extra} = \[(.*)\]$", PYPROJECT, re.M)
        assert line is not None
        for spec in re.findall(r'"([^"]+)"', line.group(1)):
            declared.setdefault(re.split(r"[<>=!\[ ]", spec, maxsplit=1)[0], f"extra {extra}")
    return declared


def test_every_third_party_import_in_the_package_is_a_declared_dependency() -> None:
    """The wheel's users have only what pyproject declares: an import of anything else,
    even one behind a version check, fails for some of them."""
    declared = _declared()
    own = {"smtpcore", "transports"}
    undeclared: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in sys.stdlib_module_names and top not in own and top not in declared:
                    undeclared.append(f"{path.relative_to(SRC)}:{node.lineno}: {top}")
    assert not undeclared, f"imported but not a dependency: {undeclared}"
    assert declared["exceptiongroup"] == "python_version < '3.11'"


def test_the_core_declares_no_dependency_without_a_marker() -> None:
    assert all(why != "always" for why in _declared().values())
