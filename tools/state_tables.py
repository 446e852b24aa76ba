"""Render the state machines' tables as Markdown, for docs/state-machines.md.

Run ``python tools/state_tables.py`` to print them; a test checks that the
page holds exactly what the tables say, so the docs cannot drift.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import TypeVar

from smtpcore import _client, _server

Phase = TypeVar("Phase", bound=enum.Enum)


def _names(types: Iterable[type]) -> str:
    return ", ".join(sorted(t.__name__.upper() for t in types))


def allowed_table(table: Mapping[Phase, frozenset[type]]) -> str:
    rows = ["| phase | commands allowed |", "|---|---|"]
    for phase, commands in table.items():
        rows.append(f"| {phase.name} | {_names(commands)} |")
    return "\n".join(rows)


def after_table(table: Mapping[type, enum.Enum]) -> str:
    rows = ["| positive reply to | moves to |", "|---|---|"]
    for command, phase in table.items():
        rows.append(f"| {command.__name__.upper()} | {phase.name} |")
    return "\n".join(rows)


def render() -> str:
    return "\n\n".join(
        [
            "### Client: what each phase allows\n\n" + allowed_table(_client._ALLOWED),
            "### Client: where a positive reply leads\n\n" + after_table(_client._AFTER_POSITIVE),
            "### Server: what each phase accepts\n\n" + allowed_table(_server._ALLOWED),
            "### Server: where a positive reply leads\n\n" + after_table(_server._AFTER_POSITIVE),
        ]
    )


if __name__ == "__main__":
    print(render())
