"""AUTH on the server side (RFC 4954): the SASL exchange, password checks, guessing limits."""

from __future__ import annotations

import base64
import hmac
from typing import Final

from .._events import Auth, AuthCancel, AuthResponse, InvalidCommand, Reply
from .._server import ServerConnection
from ..sasl import (
    MOCK_ITERATIONS,
    Challenge,
    Failure,
    NeedSecret,
    ScramCredentials,
    ServerStep,
    Success,
    VerifyPassword,
    derive_scram_credentials,
    scram_salt,
    server_mechanism,
)
from ._server_effects import HookFailed, Interrupted, Notice, Pause, ServerProcedure
from ._server_session import _Expired, _farewell, _reply, _Session
from ._server_values import Peer

#: Seconds a failed AUTH waits before its reply (Postfix smtpd_error_sleep_time: 1 s).
AUTH_FAILURE_DELAY: Final = 1.0
#: PBKDF2 rounds for SCRAM credentials derived from a password lookup (RFC 7677 4: 4096 at
#: least); the same count an unknown user is shown, so the two look alike (RFC 5802 9).
SCRAM_ITERATIONS: Final = MOCK_ITERATIONS


def auth(session: _Session, command: Auth) -> ServerProcedure[None]:
    conn = session.conn
    limits = conn.limits
    budget = session.auth_budget
    if budget is not None and budget.exhausted(session.peer.host, (yield from session.clock())):
        session.send(_address_refused(conn, session.peer))
        return
    nonce = yield from session.fresh_id()
    mechanism = server_mechanism(
        command.mechanism, nonce=nonce, hostname=conn.config.hostname, secret=session.scram_secret
    )
    step: ServerStep = mechanism.start(command.initial_response)
    challenges = 0
    while True:
        if isinstance(step, Challenge):
            challenges += 1
            if challenges > limits.sasl_rounds:
                step = Failure(f"more than Limits.sasl_rounds ({limits.sasl_rounds}) challenges")
                continue
            text = base64.b64encode(step.data).decode("ascii")
            session.send(Reply(334, (text,)))
            event = yield from session.next_event()
            if isinstance(event, AuthResponse):
                step = mechanism.receive(event.data)
            elif isinstance(event, AuthCancel):
                # RFC 4954 4: "*" ends the exchange with 501. It counts like a
                # failure, or AUTH LOGIN / "*" could loop for free forever.
                session.auth_failures += 1
                if session.auth_failures >= limits.auth_failures:
                    session.send(_too_many_auth_failures(conn))
                else:
                    session.send(_reply(conn, 501, "5.7.0", "Authentication cancelled"))
                return
            elif isinstance(event, InvalidCommand):
                session.send(event.reply)  # bad base64 or too long: the exchange is over
                return
            else:  # closed, timed out or shut down: nothing left to answer
                if isinstance(event, (Interrupted, _Expired)):
                    session.send(_farewell(conn, event))
                return
        elif isinstance(step, VerifyPassword):
            ok = yield from _check_password(session, step)
            if ok is None:
                session.send(_reply(conn, 454, "4.7.0", "Temporary authentication failure"))
                return
            step = mechanism.password_checked(ok)
        elif isinstance(step, NeedSecret):
            secret = yield from _lookup_secret(session, step)
            if isinstance(secret, HookFailed):
                session.send(_reply(conn, 454, "4.7.0", "Temporary authentication failure"))
                return
            step = mechanism.supply_secret(secret)
        elif isinstance(step, Success):
            if step.authzid and step.authzid != step.authcid:
                # Acting as someone else needs a policy we do not have (RFC 4422 3.4.1).
                step = Failure(f"{step.authcid!r} may not act as {step.authzid!r}")
                continue
            conn.authenticated(step.authcid)
            session.send(_reply(conn, 235, "2.7.0", "Authentication successful"))
            return
        else:
            session.auth_failures += 1
            if budget is not None:
                host = session.peer.host
                if budget.fail(host, (yield from session.clock())):
                    yield Notice(
                        f"AUTH refused to {budget.key(host)} for up to {budget.window:g} s: "
                        f"{budget.failures} failed attempts within {budget.window:g} s"
                    )
                    session.send(_address_refused(conn, session.peer))
                    return
            if session.auth_failure_delay > 0:
                # Postfix smtpd_error_sleep_time: a wrong guess costs time.
                yield from session.flush()
                yield Pause(session.auth_failure_delay)
            if session.auth_failures >= limits.auth_failures:
                session.send(_too_many_auth_failures(conn))
            elif step.malformed:
                session.send(_reply(conn, 501, "5.5.2", "Malformed authentication data"))
            else:
                session.send(_reply(conn, 535, "5.7.8", "Authentication credentials invalid"))
            return


def _too_many_auth_failures(conn: ServerConnection) -> Reply:
    # Limits.auth_failures failed or cancelled exchanges: 421 and close (RFC 5321 3.8).
    text = "4.7.0 Too many failed authentication attempts, closing"
    return Reply(421, (f"{conn.config.hostname} {text}",))


def _address_refused(conn: ServerConnection, peer: Peer) -> Reply:
    # The client address used up its AuthBudget: 421 and close (RFC 5321 3.8).
    text = f"4.7.0 Too many failed authentication attempts from {peer.host}, try again later"
    return Reply(421, (f"{conn.config.hostname} {text}",))


def _check_password(session: _Session, step: VerifyPassword) -> ServerProcedure[bool | None]:
    """The handler's verdict on a password: True, False, or None when it failed.

    With only ``lookup_secret``, the password is compared with the secret it
    gives, in constant time.
    """
    if step.authzid and step.authzid != step.username:
        return False
    if "authenticate" in session.hooks:
        result = yield from session.hook("authenticate", step.username, step.password)
        return None if isinstance(result, HookFailed) else result is True
    secret = yield from session.hook("lookup_secret", "PLAIN", step.username)
    if isinstance(secret, HookFailed):
        return None
    if not isinstance(secret, str):
        return False
    return hmac.compare_digest(secret.encode("utf-8"), step.password.encode("utf-8"))


def _lookup_secret(
    session: _Session, step: NeedSecret
) -> ServerProcedure[str | ScramCredentials | HookFailed | None]:
    """The secret CRAM-MD5 or SCRAM needs, from ``lookup_secret(mechanism, username)``.

    A password (str) given for SCRAM is turned into credentials, with the
    salt ``scram_salt`` derives from the server's secret (the one an unknown
    user is shown too, RFC 5802 9), or a fresh one without a secret.
    """
    result = yield from session.hook("lookup_secret", step.mechanism, step.username)
    if isinstance(result, HookFailed):
        return result
    scram = step.mechanism.startswith("SCRAM-")
    if isinstance(result, str) and scram:
        if session.scram_secret is not None:
            salt = scram_salt(session.scram_secret, step.username)
        else:
            salt = (yield from session.fresh_id()).encode()
        hash_name = "sha256" if step.mechanism == "SCRAM-SHA-256" else "sha1"
        return derive_scram_credentials(result, salt, SCRAM_ITERATIONS, hash_name)
    if isinstance(result, ScramCredentials) and scram:
        return result
    if isinstance(result, str) and not scram:
        return result
    return None
