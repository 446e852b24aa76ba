"""The ``smtpcore`` command's parser: one-line usage errors that suggest the nearest option."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Final, NoReturn

from ._options import COMMANDS, TOP_EXAMPLES
from ._output import EX_USAGE, Failure

__all__ = ["package_version", "parse", "parser"]


def package_version() -> str:
    """The installed smtpcore's version: ``smtpcore.__version__``, else the package metadata."""
    import smtpcore

    version = getattr(smtpcore, "__version__", None)
    if isinstance(version, str):
        return version
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("smtpcore")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """argparse, with one-line errors (status 64) that suggest the nearest option or choice."""

    commands: dict[str, _Parser]  # the subcommands' parsers, on the top parser

    def error(self, message: str) -> NoReturn:
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            message += _nearest(match.group(1), choices)
        raise Failure(f"{message} (see {self.prog} --help)", EX_USAGE)

    def option_names(self) -> list[str]:
        """Every option string this parser knows: ``--host``, ``-h``..."""
        return [name for action in self._actions for name in action.option_strings]

    def refuse_unknown(self, extras: Sequence[str]) -> NoReturn:
        """One line for arguments nobody took, with the nearest known option."""
        first = extras[0]
        if first.startswith("-"):
            hint = _nearest(first.split("=", 1)[0], self.option_names())
            raise Failure(f"unknown option {first}{hint} (see {self.prog} --help)", EX_USAGE)
        raise Failure(f"unexpected argument {first!r} (see {self.prog} --help)", EX_USAGE)


def _nearest(word: str, known: Sequence[str]) -> str:
    """``"; did you mean --password-env?"``, or "" when nothing is close."""
    import difflib

    found = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if not found:
        found = [name for name in known if name.startswith(word) and len(word) > 2][:1]
    return f"; did you mean {found[0]}?" if found else ""


class _Help(argparse.RawDescriptionHelpFormatter):
    """Examples are printed as written; option columns a little wider than argparse's."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def parser() -> _Parser:
    """The ``smtpcore`` command's argument parser."""
    # No abbreviations: "--password" must not quietly mean "--password-env".
    top = _Parser(
        prog="smtpcore", formatter_class=_Help, allow_abbrev=False, epilog=TOP_EXAMPLES,
        description="The smtpcore command: try a server, send mail, receive mail into a folder.",
    )  # fmt: skip
    top.add_argument("--version", action="version", version=f"smtpcore {package_version()}",
                     help="print the version of smtpcore and exit")  # fmt: skip
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    top.commands = {}
    for name, summary, examples, options in COMMANDS:
        made = sub.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".",
            epilog=examples, formatter_class=_Help, allow_abbrev=False,
        )  # fmt: skip
        assert isinstance(made, _Parser)
        top.commands[name] = made
        groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
        for flag, text, exclusive, keywords in options:
            adds: argparse._ActionsContainer = made
            if exclusive:
                if exclusive not in groups:
                    groups[exclusive] = made.add_mutually_exclusive_group(
                        required=exclusive == "one"
                    )
                adds = groups[exclusive]
            adds.add_argument(flag, help=text, **keywords)
    return top


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The parsed command line; ``Failure`` (usage) with a suggestion for a mistyped option.

    Unknown options are looked for first: argparse would otherwise complain
    about a missing required option before it mentions the misspelt one.
    """
    given = list(sys.argv[1:] if argv is None else argv)
    top = parser()
    chosen = top
    for token in given:
        if token == "--":
            break
        if chosen is top and token in top.commands:
            chosen = top.commands[token]
        elif (
            token.startswith("-")
            and token != "-"
            and not _NUMBER.match(token)
            and token.split("=", 1)[0] not in chosen.option_names()
        ):
            chosen.refuse_unknown([token])
    args, extras = top.parse_known_args(given)
    if extras:
        top.commands.get(args.command, top).refuse_unknown(extras)
    return args


_NUMBER: Final = re.compile(r"-\.?[0-9]")  # a negative number is a value, not an option
