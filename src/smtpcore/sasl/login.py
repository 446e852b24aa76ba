"""LOGIN (draft-murchison-sasl-login): the username, then the password, each on request.

Servers prompt with "Username:" and "Password:", but the text varies; the
client answers by order, not by text.
"""

from __future__ import annotations

from typing import ClassVar

from .._errors import LocalProtocolError, RemoteProtocolError
from ._base import (
    Challenge,
    ClientMechanism,
    Failure,
    Refused,
    ServerMechanism,
    ServerStep,
    Success,
    VerifyPassword,
    text_of,
)

__all__ = ["LoginClient", "LoginServer"]


class LoginClient(ClientMechanism):
    """LOGIN, client side: no initial response; answers two challenges in order.

    Raises LocalProtocolError for an empty username or a NUL in either field.
    """

    name: ClassVar[str] = "LOGIN"

    def __init__(self, username: str, password: str) -> None:
        if not username:
            raise LocalProtocolError("LOGIN username is empty")
        if "\0" in username or "\0" in password:
            raise LocalProtocolError("LOGIN username or password contains NUL")
        self._answers = (username.encode(), password.encode())
        self._answered = 0

    def initial_response(self) -> bytes | None:
        return None  # the server speaks first

    def respond(self, challenge: bytes) -> bytes:
        if self._answered >= len(self._answers):
            raise RemoteProtocolError("LOGIN: server sent a third challenge")
        answer = self._answers[self._answered]
        self._answered += 1
        return answer

    @property
    def is_complete(self) -> bool:
        return self._answered == len(self._answers)


USERNAME_PROMPT = b"Username:"
PASSWORD_PROMPT = b"Password:"


class LoginServer(ServerMechanism):
    """LOGIN, server side: prompts for the username and password, then ``VerifyPassword``.

    An initial response, if the client sent one, is taken as the username.
    """

    name: ClassVar[str] = "LOGIN"

    def __init__(self) -> None:
        super().__init__()
        self._username: str | None = None

    def _on_start(self, initial_response: bytes | None) -> ServerStep:
        if initial_response is None:
            return Challenge(USERNAME_PROMPT)
        return self._on_response(initial_response)

    def _on_response(self, response: bytes) -> ServerStep:
        if self._username is None:
            username = text_of(response, "LOGIN username")
            if not username:
                raise Refused("LOGIN username is empty")
            self._username = username
            return Challenge(PASSWORD_PROMPT)
        return VerifyPassword(self._username, text_of(response, "LOGIN password"))

    def _on_password_checked(self, ok: bool) -> ServerStep:
        assert self._username is not None  # the _Expect table guarantees it
        if not ok:
            return Failure("invalid credentials")
        return Success(self._username)
