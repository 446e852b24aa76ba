"""One root for every exception the library raises on purpose.

The table below is the error model: each class the package defines, with its
exact bases. A new exception class fails this test until it is placed in the
model, so none can escape ``except smtpcore.SMTPError`` by accident.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Final

import pytest

import smtpcore
import smtpcore.session

#: Every exception class defined under ``smtpcore``: its exact bases, by name.
MODEL: Final = {
    "SMTPError": ("Exception",),
    "InvalidArgument": ("SMTPError", "ValueError"),
    "ProtocolError": ("SMTPError",),
    "LocalProtocolError": ("ProtocolError",),
    "RemoteProtocolError": ("ProtocolError",),
    "SaslprepError": ("LocalProtocolError",),
    "ReplyError": ("SMTPError",),
    "TransientError": ("ReplyError",),
    "PermanentError": ("ReplyError",),
    "AuthenticationError": ("ReplyError",),
    "RecipientsRefused": ("ReplyError",),
    "ConnectionLost": ("SMTPError", "ConnectionError"),
    "SMTPTimeout": ("SMTPError", "TimeoutError"),
    "TLSError": ("SMTPError",),
    "NotSupported": ("SMTPError",),
}

#: Raised and caught inside one module; never reaches a caller.
INTERNAL: Final = {"smtpcore.sasl._base.Refused"}


def defined_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class a module of the ``smtpcore`` package defines, by dotted name."""
    found: dict[str, type[BaseException]] = {}
    modules = [smtpcore.__name__]
    modules += [
        m.name
        for m in pkgutil.walk_packages(smtpcore.__path__, "smtpcore.")
        if m.name != "smtpcore.__main__"  # running it runs the command line
    ]
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_every_exception_class_has_the_bases_of_the_model() -> None:
    found = defined_exceptions()
    public = {name: cls for name, cls in found.items() if name not in INTERNAL}
    assert sorted(cls.__name__ for cls in public.values()) == sorted(MODEL)
    for cls in public.values():
        assert tuple(base.__name__ for base in cls.__bases__) == MODEL[cls.__name__], cls
        assert issubclass(cls, smtpcore.SMTPError), cls


def test_the_internal_exceptions_are_caught_where_they_are_raised() -> None:
    assert set(defined_exceptions()) >= INTERNAL


@pytest.mark.parametrize("name", sorted(MODEL))
def test_every_error_is_exported_where_users_look(name: str) -> None:
    if name == "SaslprepError":
        pytest.skip("raised by smtpcore.sasl.saslprep; a LocalProtocolError to catch")
    assert getattr(smtpcore, name).__name__ == name
    assert name in smtpcore.__all__


def test_the_session_errors_are_the_same_classes_as_the_top_level_ones() -> None:
    for name in smtpcore.session.__all__:
        value = getattr(smtpcore.session, name)
        if inspect.isclass(value) and issubclass(value, BaseException):
            assert getattr(smtpcore, name) is value


def test_the_standard_families_catch_ours() -> None:
    lost = smtpcore.ConnectionLost("the server closed the connection")
    assert isinstance(lost, ConnectionError) and isinstance(lost, OSError)
    assert str(lost) == "the server closed the connection"  # no "[Errno ...]" prefix
    assert isinstance(smtpcore.SMTPTimeout("x"), TimeoutError)
    assert isinstance(smtpcore.InvalidArgument("x"), ValueError)


@pytest.mark.parametrize(
    "call",
    [
        lambda: smtpcore.Limits(command_line=4),
        lambda: smtpcore.Limits(message_size=-1),
        lambda: smtpcore.session.ClientOptions.build("", None),
        lambda: smtpcore.session.ClientOptions.build("mx.example", 70000),
        lambda: smtpcore.session.ClientOptions.build("mx.example", None, tls="sometimes"),  # type: ignore[arg-type]
        lambda: smtpcore.session.ClientOptions.build("mx.example", None, password="secret"),
        lambda: smtpcore.ServerConfig(size=-1),
        lambda: smtpcore.xtext_decode("a+"),
    ],
    ids=[
        "limits-line",
        "limits-size",
        "no-host",
        "bad-port",
        "tls-mode",
        "password-alone",
        "server-size",
        "xtext",
    ],
)
def test_a_bad_argument_is_an_invalid_argument(call: object) -> None:
    assert callable(call)
    with pytest.raises(smtpcore.InvalidArgument) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, smtpcore.SMTPError)


def test_a_bad_address_is_caught_by_the_root() -> None:
    conn = smtpcore.ClientConnection()
    with pytest.raises(smtpcore.SMTPError):
        conn.send(smtpcore.Mail("not an address"))
