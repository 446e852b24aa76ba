"""The hooks a server handler may define."""

from __future__ import annotations

from typing import Final

__all__ = ["HOOKS", "hooks_of"]

#: Every hook a handler may define; all are optional.
HOOKS: Final = (
    "on_connect",
    "on_ehlo",
    "on_mail",
    "on_rcpt",
    "on_data_chunk",
    "on_message",
    "authenticate",
    "lookup_secret",
    "on_vrfy",
    "on_expn",
)
"""Every hook a handler may define, by name; all are optional."""


def hooks_of(handler: object) -> frozenset[str]:
    """The names in ``HOOKS`` that ``handler`` defines as callables."""
    return frozenset(name for name in HOOKS if callable(getattr(handler, name, None)))
