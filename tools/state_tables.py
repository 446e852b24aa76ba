"""Render the state machines' table as Markdown, for docs/state-machines.md.

Run ``python tools/state_tables.py`` to print it; a test checks that the
page holds exactly what ``smtpcore._state`` says, so the docs cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable

from smtpcore import _state
from smtpcore._events import AuthCancel, AuthResponse, EndOfChunk, EndOfData, InvalidCommand

_NAMES: dict[object, str] = {
    AuthResponse: "AUTH response",
    AuthCancel: "AUTH cancel (`*`)",
    EndOfData: "end of data",
    EndOfChunk: "end of a BDAT chunk",
    InvalidCommand: "a refusal",
}


def _name(trigger: object) -> str:
    if isinstance(trigger, type):
        return _NAMES.get(trigger, trigger.__name__.upper())
    return str(trigger)


def _list(items: Iterable[str]) -> str:
    return ", ".join(items)


def allowed_table(role: str) -> str:
    rows = ["| phase | commands allowed |", "|---|---|"]
    for phase, commands in _state.ALLOWED[role].items():
        rows.append(f"| {phase} | {_list(sorted(_name(c) for c in commands))} |")
    return "\n".join(rows)


def rules_table() -> str:
    rows = ["| role | in phase | on | reply | leads to |", "|---|---|---|---|---|"]
    for roles, phases, triggers, outcomes, to in _state.RULES:
        role = "both" if len(roles) > 1 else roles[0]
        where = "any" if phases == _state.ANY else _list(phases)
        what = _list("a reply to any command" if t == _state.ANY else _name(t) for t in triggers)
        replies = _list(str(o) for o in outcomes if o is not None) or "-"
        rows.append(f"| {role} | {where} | {what} | {replies} | {to} |")
    return "\n".join(rows)


def render() -> str:
    return "\n\n".join(
        [
            "### What each phase allows: client\n\n" + allowed_table("client"),
            "### What each phase accepts: server\n\n" + allowed_table("server"),
            "### Every change of phase, both roles (later rows override earlier ones)\n\n"
            + rules_table(),
        ]
    )


if __name__ == "__main__":
    print(render())
