"""The four SMTPClient classes offer one API: same parameters, same methods.

The async clients differ only where I/O may block: their methods are
coroutines, they are async context managers, and ``close()`` is ``aclose()``.
"""

from __future__ import annotations

import inspect
from typing import Any, Final

import pytest

from transports._client_keywords import ClientKeywords

from .conftest import transport_module

MODULES: Final = ("sync", "asyncio", "trio", "anyio")
ASYNC_MODULES: Final = MODULES[1:]

#: The contract: (name, default); the first two are positional, the rest keywords.
PARAMETERS: Final = (
    ("host", inspect.Parameter.empty),
    ("port", None),
    ("tls", "starttls"),
    ("ssl_context", None),
    ("username", None),
    ("password", None),
    ("oauth_token", None),
    ("local_hostname", None),
    ("timeout", None),
    ("lmtp", False),
    ("source_address", None),
    ("auth_in_clear", False),
    ("chunking", None),
    ("limits", None),
    ("trace", None),
    ("sock", None),
    ("socket_path", None),
)

#: Every client's signature: the keywords are ``ClientKeywords``, declared once.
SIGNATURE: Final = [
    ("host", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
    ("port", inspect.Parameter.POSITIONAL_OR_KEYWORD, None),
    ("options", inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty),
]

#: Methods every client has; the async ones await them.
METHODS: Final = {
    "connect",
    "send_message",
    "sendmail",
    "noop",
    "rset",
    "vrfy",
    "expn",
    "help",
    "etrn",
    "turn",
    "send_old",
    "quit",
}


def client_class(module: str) -> Any:
    return transport_module(module).SMTPClient


def shape(function: Any) -> list[tuple[str, Any, Any]]:
    """Each parameter's name, kind and default; annotations may differ (AsyncIterable)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def public_names(cls: Any) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_sync_client_parameters_follow_the_contract() -> None:
    assert shape(client_class("sync")) == SIGNATURE
    assert set(ClientKeywords.__annotations__) == {name for name, _ in PARAMETERS[2:]}


@pytest.mark.parametrize("module", MODULES)
def test_the_defaults_are_the_contracts(module: str) -> None:
    cls = client_class(module)
    explicit, implicit = cls("mx.example", **dict(PARAMETERS[2:])), cls("mx.example")
    # The blocking client holds the async one (``_client``) and runs it.
    explicit, implicit = (getattr(c, "_client", c) for c in (explicit, implicit))
    assert explicit._options == implicit._options
    assert explicit._connect_options == implicit._connect_options


@pytest.mark.parametrize("module", MODULES)
def test_a_misspelled_keyword_is_a_type_error_naming_it(module: str) -> None:
    with pytest.raises(TypeError, match="'time_out'"):
        client_class(module)("mx.example", time_out=3)
    with pytest.raises(TypeError, match="'timeouts'"):
        client_class(module)("mx.example", timeouts=3)


@pytest.mark.parametrize("module", ASYNC_MODULES)
def test_async_clients_take_the_same_parameters(module: str) -> None:
    assert shape(client_class(module)) == shape(client_class("sync"))


@pytest.mark.parametrize("module", ASYNC_MODULES)
def test_async_clients_have_the_same_public_names(module: str) -> None:
    sync_names = public_names(client_class("sync"))
    async_names = public_names(client_class(module))
    assert sync_names - {"close"} == async_names - {"aclose"}
    assert "close" in sync_names
    assert "aclose" in async_names
    assert "aclose" not in sync_names
    assert "close" not in async_names


@pytest.mark.parametrize("module", MODULES)
def test_every_contract_method_is_there(module: str) -> None:
    cls = client_class(module)
    assert public_names(cls) >= METHODS


@pytest.mark.parametrize("module", ASYNC_MODULES)
def test_async_methods_are_coroutines_with_the_sync_signatures(module: str) -> None:
    sync_cls, async_cls = client_class("sync"), client_class(module)
    for name in sorted(METHODS):
        method = getattr(async_cls, name)
        assert inspect.iscoroutinefunction(method), f"{module}.SMTPClient.{name} is not async"
        assert shape(method) == shape(getattr(sync_cls, name)), name
    assert inspect.iscoroutinefunction(async_cls.aclose)
    assert inspect.iscoroutinefunction(async_cls.__aenter__)
    assert inspect.iscoroutinefunction(async_cls.__aexit__)


def test_sync_methods_are_plain_functions() -> None:
    cls = client_class("sync")
    for name in sorted(METHODS | {"close"}):
        assert not inspect.iscoroutinefunction(getattr(cls, name)), name
    assert hasattr(cls, "__enter__")
    assert hasattr(cls, "__exit__")


@pytest.mark.parametrize("module", MODULES)
def test_one_shot_send_takes_the_client_keywords(module: str) -> None:
    send = transport_module(module).send
    parameters = list(inspect.signature(send).parameters.values())
    assert [(p.name, p.default) for p in parameters[:3]] == [
        ("msg", inspect.Parameter.empty),
        ("host", inspect.Parameter.empty),
        ("port", None),
    ]
    assert shape(send)[1:] == SIGNATURE
    assert inspect.iscoroutinefunction(send) is (module != "sync")
