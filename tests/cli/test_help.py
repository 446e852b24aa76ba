"""``--help`` and ``--version``: plain text, every option explained with its default, examples."""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys

import pytest

import smtpcore
from transports import cli

SMTPCORE = [sys.executable, "-m", "transports"]
COMMANDS = ["demo", "send", "serve", "probe"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMTPCORE, *args], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)  # fmt: skip


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)])
def test_help_is_plain_text_with_examples(command: list[str]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for markup in ("``", ":class:", ":func:", ".. "):
        assert markup not in text, markup
    assert not re.search(r"\*\*\w", text)  # **strong**
    assert "\nexamples:\n  smtpcore " in text
    for example in text.split("\nexamples:\n", 1)[1].splitlines():
        assert example.startswith(("  smtpcore ", "      ", "  echo ")), example


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_has_help_with_its_default(command: str) -> None:
    sub = cli.parser().commands[command]
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction) or not action.option_strings:
            continue
        text = action.help or ""
        assert "(default: " in text or "(required)" in text or "(this or --" in text, (
            action.option_strings,
            text,
        )
    formatted = sub.format_help()
    assert "%(default)" not in formatted
    assert "(default: None)" not in formatted


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["send", "--pasword", "x"], "unknown option --pasword; did you mean --password-env? "
                                     "(see smtpcore send --help)"),
        (["send", "--host", "h", "--attachment", "f"], "unknown option --attachment; "
                                                      "did you mean --attach? "
                                                      "(see smtpcore send --help)"),
        (["serve", "--maildr", "x"], "unknown option --maildr; did you mean --maildir? "
                                    "(see smtpcore serve --help)"),
        (["--verison"], "unknown option --verison; did you mean --version? (see smtpcore --help)"),
        (["sned"], "argument COMMAND: invalid choice: 'sned' (choose from 'demo', 'send', "
                   "'serve', 'probe'); did you mean send? (see smtpcore --help)"),
        (["send", "--host", "h", "--tls", "startls"], "argument --tls: invalid choice: "
         "'startls' (choose from 'starttls', 'implicit', 'opportunistic', 'none'); "
         "did you mean starttls? (see smtpcore send --help)"),
        (["send", "--host", "h", "--zzzz"], "unknown option --zzzz (see smtpcore send --help)"),
    ],
)  # fmt: skip
def test_an_unknown_option_suggests_the_nearest(args: list[str], expected: str) -> None:
    done = run(*args)
    assert done.returncode == 64
    assert done.stderr == f"smtpcore: {expected}\n"


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0, done.stderr
    expected = getattr(smtpcore, "__version__", None) or importlib.metadata.version("smtpcore")
    assert done.stdout == f"smtpcore {expected}\n"


def test_version_without_a_module_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(smtpcore, "__version__", raising=False)
    assert cli.package_version() == importlib.metadata.version("smtpcore")
    monkeypatch.setattr(smtpcore, "__version__", "9.8.7", raising=False)
    assert cli.package_version() == "9.8.7"
