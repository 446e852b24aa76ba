"""Check what ``pip install smtpcore`` gives a user, not what the checkout has.

Builds the wheel and the sdist into a temporary folder, reads the wheel's
metadata (name, version, licence, Python versions, classifiers, project URLs,
the dependencies and their markers, the entry point), then installs the wheel
with no extras into a fresh virtual environment outside the tree and runs,
from a folder that is not the checkout:

- ``python -c 'import smtpcore; print(smtpcore.__version__)'``
- ``python -m smtpcore --help`` and ``smtpcore --version`` (when the command has it)
- ``smtpcore demo``: the sync and asyncio clients deliver, trio and anyio are
  named with their extras
- ``import transports.trio`` / ``transports.anyio``: an ImportError naming the extra
- ``import transports.serving``: the ``smtpcore serve`` module imports (on 3.10
  it needs the exceptiongroup backport, a conditional dependency)

The same install runs again under Python 3.10 when an interpreter for it is
found (``python3.10`` on PATH or under pyenv), since that is the oldest
version the package claims. Any failed check prints what differs and exits 1.

Usage: ``python tools/check_wheel.py [--python PATH ...] [--keep]``
"""

from __future__ import annotations

import argparse
import ast
import glob
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PYTHONS_CLAIMED = ("3.10", "3.11", "3.12", "3.13")


class CheckFailed(Exception):
    """One check did not hold; the message says what was expected and what was found."""


def say(text: str) -> None:
    print(f"check_wheel: {text}", flush=True)


def run(
    command: list[str], *, cwd: Path, env: dict[str, str] | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; when ``ok``, a non-zero exit is a failed check with its output."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if ok and done.returncode != 0:
        raise CheckFailed(
            f"{' '.join(command)} exited {done.returncode}\n"
            f"--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
        )
    return done


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)
    say(f"ok: {what}")


def source_version() -> str:
    """The literal ``__version__`` in src/smtpcore/__init__.py, the single source."""
    tree = ast.parse((ROOT / "src/smtpcore/__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise CheckFailed("src/smtpcore/__init__.py has no literal __version__")


def build(out: Path) -> tuple[Path, Path]:
    say(f"building the sdist and the wheel into {out}")
    run([sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out)], cwd=ROOT)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    expect(
        len(wheels) == 1 and len(sdists) == 1, f"one wheel and one sdist built: {wheels + sdists}"
    )
    return wheels[0], sdists[0]


def check_metadata(wheel: Path, version: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = f"smtpcore-{version}.dist-info"
        meta: Message = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    expect(meta["Name"] == "smtpcore", f"Name is smtpcore (found {meta['Name']!r})")
    expect(meta["Version"] == version, f"Version is {version} (found {meta['Version']!r})")
    expect(
        meta["Requires-Python"] == ">=3.10",
        f"Requires-Python is >=3.10 (found {meta['Requires-Python']!r})",
    )
    expect(
        meta["License-Expression"] == "MIT",
        f"License-Expression is MIT (found {meta['License-Expression']!r})",
    )
    expect(
        meta.get_all("License-File") == ["LICENSE"] and f"{dist_info}/licenses/LICENSE" in names,
        f"the LICENSE file is in the wheel (License-File: {meta.get_all('License-File')})",
    )
    classifiers = set(meta.get_all("Classifier") or [])
    wanted = {f"Programming Language :: Python :: {v}" for v in PYTHONS_CLAIMED} | {
        "Programming Language :: Python :: 3 :: Only",
        "License :: OSI Approved :: MIT License",
        "Typing :: Typed",
        "Topic :: Communications :: Email",
    }
    expect(wanted <= classifiers, f"classifiers include {sorted(wanted - classifiers) or 'all'}")
    claimed = {c.rsplit(" :: ", 1)[1] for c in classifiers if c.count("::") == 2 and "3." in c}
    expect(
        claimed == set(PYTHONS_CLAIMED),
        f"the Python versions claimed are {PYTHONS_CLAIMED} (found {sorted(claimed)})",
    )
    # The project has no public home yet: no address is declared rather than an
    # invented one. Whatever is declared later must be an https address.
    urls = [entry.split(",", 1) for entry in meta.get_all("Project-URL") or []]
    expect(
        all(len(u) == 2 and u[1].strip().startswith("https://") for u in urls),
        f"project URLs are https addresses ({[u[0] for u in urls] or 'none declared yet'})",
    )
    requires = [Requirement(line) for line in meta.get_all("Requires-Dist") or []]
    by_name = {(r.name, str(r.marker)): r for r in requires}
    for name, marker in (
        ("exceptiongroup", 'python_version < "3.11"'),
        ("trio", 'extra == "trio"'),
        ("anyio", 'extra == "anyio"'),
        ("uvloop", 'sys_platform != "win32" and extra == "uvloop"'),
    ):
        expect((name, marker) in by_name, f"Requires-Dist {name}; {marker}")
    unconditional = [str(r) for r in requires if r.marker is None]
    expect(not unconditional, f"no dependency without a marker (found {unconditional})")
    extras = set(meta.get_all("Provides-Extra") or [])
    expect(
        {"trio", "anyio", "uvloop"} <= extras,
        f"extras trio, anyio and uvloop offered (found {sorted(extras)})",
    )
    expect(
        "smtpcore = transports.cli:main" in entry_points,
        "the smtpcore command is transports.cli:main",
    )
    for path in ("smtpcore/py.typed", "transports/py.typed", "smtpcore/__main__.py"):
        expect(path in names, f"the wheel holds {path}")
    strays = sorted({n.split("/", 1)[0] for n in names} - {"smtpcore", "transports", dist_info})
    expect(not strays, f"nothing else at the top of the wheel (found {strays})")


def check_sdist(sdist: Path, version: str) -> None:
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for path in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "PKG-INFO"):
        expect(path in names, f"the sdist holds {path}")
    expect(sdist.name == f"smtpcore-{version}.tar.gz", f"the sdist is smtpcore-{version}.tar.gz")


def other_pythons() -> list[str]:
    """An interpreter for the oldest version claimed, if this machine has one that runs."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(glob.glob(f"{pyenv}/versions/3.10*/bin/python3.10"), reverse=True)
    on_path = shutil.which("python3.10")
    for python in [*candidates, *([on_path] if on_path else [])]:
        # A pyenv shim is on PATH even when no 3.10 is selected: try it.
        probe = subprocess.run([python, "-c", "pass"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [python]
    say("note: no Python 3.10 here; the wheel is installed with this interpreter only")
    return []


def check_install(python: str, wheel: Path, version: str, home: Path) -> None:
    """Install ``wheel`` with no extras into a new venv under ``home`` and use it."""
    venv = home / "venv"
    say(f"--- installing the wheel, no extras, with {python} into {venv}")
    run([python, "-m", "venv", str(venv)], cwd=home)
    bin_dir = venv / "bin"
    run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], cwd=home)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    py = str(bin_dir / "python")

    done = run([py, "-c", "import sys; print(sys.version.split()[0])"], cwd=home, env=env)
    say(f"Python {done.stdout.strip()}")
    done = run(
        [py, "-c", "import smtpcore; print(smtpcore.__version__); print(smtpcore.__file__)"],
        cwd=home,
        env=env,
    )
    got, where = done.stdout.split()
    expect(got == version, f"smtpcore.__version__ is {version} (found {got!r})")
    expect(where.startswith(str(venv)), f"smtpcore is imported from the venv ({where})")
    done = run([py, "-m", "smtpcore", "--help"], cwd=home, env=env)
    expect("demo" in done.stdout, "python -m smtpcore --help lists the subcommands")
    done = run(["smtpcore", "--version"], cwd=home, env=env, ok=False)
    if done.returncode == 0:
        expect(version in done.stdout, f"smtpcore --version says {version} ({done.stdout.strip()})")
    else:
        say(f"note: smtpcore --version is not there yet: {done.stderr.strip().splitlines()[-1]}")
    demo = run(["smtpcore", "demo"], cwd=home, env=env).stdout
    shown = (line for line in demo.splitlines() if not line.startswith(("  |", ">", "<")))
    print("\n".join(shown), flush=True)
    expect("2 of 2 messages arrived intact." in demo, "smtpcore demo: sync and asyncio deliver")
    for extra in ("trio", "anyio"):
        expect(
            f"pip install 'smtpcore[{extra}]'" in demo,
            f"smtpcore demo names the {extra} extra",
        )
        done = run([py, "-c", f"import transports.{extra}"], cwd=home, env=env, ok=False)
        expect(
            done.returncode == 1
            and f"ModuleNotFoundError: transports.{extra} needs {extra}" in done.stderr
            and f"pip install 'smtpcore[{extra}]'" in done.stderr,
            f"import transports.{extra} says to install smtpcore[{extra}]"
            f" (stderr ends {done.stderr.strip().splitlines()[-1:]})",
        )
    done = run(
        ["smtpcore", "serve", "--port", "0", "--maildir", str(home / "Maildir"), "--loop",
         "uvloop"],
        cwd=home, env=env, ok=False,
    )  # fmt: skip
    expect(
        done.returncode == 69 and "pip install 'smtpcore[uvloop]'" in done.stderr,
        f"smtpcore serve --loop uvloop names the uvloop extra ({done.stderr.strip()!r})",
    )
    run(
        [py, "-c", "import transports.serving, transports.sync, transports.asyncio"],
        cwd=home,
        env=env,
    )
    say("ok: transports.serving (smtpcore serve), sync and asyncio import with no extras")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--python",
        action="append",
        help="interpreters to install the wheel with (default: this one and a 3.10 if found)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    pythons: list[str] = args.python or [sys.executable, *other_pythons()]
    version = source_version()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    work = Path(tempfile.mkdtemp(prefix="smtpcore-wheel-"))
    try:
        expect(
            '\ndynamic = ["version"]\n' in pyproject
            and '[tool.hatch.version]\npath = "src/smtpcore/__init__.py"\n' in pyproject,
            "pyproject takes its version from smtpcore.__version__",
        )
        wheel, sdist = build(work / "dist")
        check_metadata(wheel, version)
        check_sdist(sdist, version)
        for number, python in enumerate(pythons):
            home = work / f"home{number}"
            home.mkdir()
            check_install(python, wheel, version, home)
    except CheckFailed as failure:
        print(f"check_wheel: FAILED: {failure}", file=sys.stderr, flush=True)
        return 1
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    say(f"passed: smtpcore {version}, installed with {len(pythons)} interpreter(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
