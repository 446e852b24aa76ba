"""Server handler hooks; ``Handler``, the typed form whose hooks know their session.

A handler is any object. Its hooks are found by name (``HOOKS``) once, when
the server starts; each is optional and may be a plain function or a
coroutine function. A plain object's hooks get the arguments of the event
alone (``on_rcpt(recipient, params)``). A subclass of ``Handler`` declares the
same hooks with a ``SessionContext`` first (``on_rcpt(session, recipient,
params)``), so one handler object serving many connections at once can tell
them apart, and mypy checks each hook against the base class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Final, TypeAlias

from .._events import Reply
from ..sasl import ScramCredentials
from ._server_values import ServerEnvelope, SessionContext

__all__ = [
    "HOOKS",
    "Handler",
    "HookReply",
    "MessageReply",
    "contextual",
    "hooks_of",
    "unknown_hooks",
]

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

_Answer: TypeAlias = Reply | Mapping[str, Reply | None]
HookReply: TypeAlias = Reply | Awaitable[Reply | None] | None
"""What a hook returns: the ``Reply`` to send, or None for the default (or an awaitable of one)."""
MessageReply: TypeAlias = _Answer | Awaitable[_Answer | None] | None
"""What ``on_message`` returns: a ``HookReply``, or a reply per recipient."""
Secret: TypeAlias = str | ScramCredentials | None


class Handler:
    """A handler whose every hook receives the session it serves, first.

    Subclass it and define the hooks you need; the ones you leave out keep
    the server's default (a hook counts only where a subclass defines it, so
    leaving out ``on_data_chunk`` keeps the content collected, and leaving
    out ``authenticate`` and ``lookup_secret`` offers no AUTH). A hook may be
    ``async def``. Each returns None for the default reply, or the ``Reply``
    to send; raising makes the server answer 451 4.3.0. Calling the base
    class's hook gives None, the default.

    Every hook gets a ``SessionContext``: the peer, TLS state and client
    certificate, EHLO name, authenticated identity, the envelope so far, the
    session id and the message id. A plain object (not a ``Handler``) is
    served too, its hooks called without the context.
    """

    def on_connect(self, session: SessionContext) -> HookReply:
        """A new connection: a 554 refuses it (RFC 5321 3.1); default 220."""
        return None

    def on_ehlo(self, session: SessionContext, domain: str) -> HookReply:
        """EHLO, HELO or LHLO ``domain``; default: the reply with our extensions."""
        return None

    def on_mail(
        self, session: SessionContext, sender: str, params: Mapping[str, str | None]
    ) -> HookReply:
        """MAIL FROM ``sender`` (``""`` for ``<>``); default 250 2.1.0."""
        return None

    def on_rcpt(
        self, session: SessionContext, recipient: str, params: Mapping[str, str | None]
    ) -> HookReply:
        """RCPT TO ``recipient`` (``session.sender`` is known); default 250 2.1.5."""
        return None

    def on_data_chunk(self, session: SessionContext, data: bytes) -> HookReply:
        """A piece of content, the ``Received:`` header first; a Reply refuses the message."""
        return None

    def on_message(self, session: SessionContext, envelope: ServerEnvelope) -> MessageReply:
        """The message's end: return once it is stored; default 250 2.0.0.

        A ``{recipient: Reply | None}`` mapping answers per recipient (LMTP).
        """
        return None

    def authenticate(
        self, session: SessionContext, username: str, password: str
    ) -> bool | Awaitable[bool]:
        """PLAIN and LOGIN: True when ``password`` is ``username``'s."""
        return False

    def lookup_secret(
        self, session: SessionContext, mechanism: str, username: str
    ) -> Secret | Awaitable[Secret]:
        """The password (or SCRAM credentials) of ``username``, None when unknown."""
        return None

    def on_vrfy(self, session: SessionContext, argument: str) -> HookReply:
        """VRFY ``argument``; default 252 2.5.0."""
        return None

    def on_expn(self, session: SessionContext, argument: str) -> HookReply:
        """EXPN ``argument`` (when offered); default 502 5.5.1."""
        return None


_BASE: Final = {name: vars(Handler)[name] for name in HOOKS}


def hooks_of(handler: object) -> frozenset[str]:
    """The names in ``HOOKS`` that ``handler`` defines as callables.

    For a ``Handler``, only those its class (or the object itself) defines:
    the base class's own count as absent.
    """
    hooks = []
    for name in HOOKS:
        hook = getattr(handler, name, None)
        if callable(hook) and getattr(hook, "__func__", None) is not _BASE[name]:
            hooks.append(name)
    return frozenset(hooks)


def contextual(handler: object) -> bool:
    """Whether ``handler``'s hooks take a ``SessionContext`` first (it is a ``Handler``)."""
    return isinstance(handler, Handler)


def unknown_hooks(handler: object) -> list[str]:
    """The callable ``on_*`` attributes of ``handler`` that are no hook: misspellings, likely."""
    names = []
    for name in dir(handler):
        if name.startswith("on_") and name not in HOOKS and callable(getattr(handler, name, None)):
            names.append(name)
    return names
