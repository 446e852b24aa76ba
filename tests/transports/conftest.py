"""Fixtures for the client tests: certificates, servers, and one facade for five clients.

A test body is written once, as an async function that drives a ``Smtp``
facade; ``run(kind, body)`` runs it for one of the five kinds of client:
"sync" (the facade calls the blocking client directly and the coroutine never
really suspends), "asyncio", "trio", "anyio-asyncio" and "anyio-trio".

The transports are imported lazily, so a missing or broken transport fails
its own tests, not the collection of the whole suite.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib
import ssl
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final, TypeVar

import anyio
import pytest
import trio
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, Session

from .scripted_server import ScriptedServer, Step

T = TypeVar("T")

KINDS: Final = ("sync", "asyncio", "trio", "anyio-asyncio", "anyio-trio")
ASYNC_KINDS: Final = KINDS[1:]

USER: Final = "test"
PASSWORD: Final = "secret"


def transport_module(kind: str) -> ModuleType:
    """The transports module that implements ``kind`` (anyio for both anyio kinds)."""
    return importlib.import_module(f"transports.{kind.split('-')[0]}")


# -- running one body under each kind --------------------------------------------------


def run(kind: str, body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the async test body with the event loop (or none) that ``kind`` needs."""
    if kind == "sync":
        coro = body()
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        coro.close()
        raise AssertionError("a sync test body suspended: it awaited a real awaitable")
    if kind == "asyncio":
        return asyncio.run(body())
    if kind == "trio":
        return trio.run(body)
    backend = kind.split("-")[1]
    return anyio.run(body, backend=backend)


async def sleep(kind: str, seconds: float) -> None:
    """Sleep the way ``kind`` sleeps (a blocking sleep for sync)."""
    if kind == "sync":
        time.sleep(seconds)
    elif kind == "asyncio":
        await asyncio.sleep(seconds)
    elif kind == "trio":
        await trio.sleep(seconds)
    else:
        await anyio.sleep(seconds)


class Smtp:
    """The same calls for every kind: awaits the async clients, calls the sync one."""

    def __init__(self, kind: str, host: str, port: int | None, **options: Any) -> None:
        self.kind = kind
        self.client: Any = transport_module(kind).SMTPClient(host, port, **options)

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.client, name)(*args, **kwargs)
        if self.kind != "sync":
            result = await result
        return result

    async def __aenter__(self) -> Smtp:
        if self.kind == "sync":
            self.client.__enter__()
        else:
            await self.client.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self.kind == "sync":
            self.client.__exit__(*exc_info)
        else:
            await self.client.__aexit__(*exc_info)

    @property
    def extensions(self) -> Any:
        return self.client.extensions

    async def connect(self) -> None:
        await self._call("connect")

    async def sendmail(self, sender: str, recipients: Any, content: Any, **kw: Any) -> Any:
        return await self._call("sendmail", sender, recipients, content, **kw)

    async def send_message(self, msg: Any, *args: Any, **kw: Any) -> Any:
        return await self._call("send_message", msg, *args, **kw)

    async def send_many(self, messages: Any) -> list[Any]:
        """Every outcome of ``send_many``, in a list."""
        outcomes = self.client.send_many(messages)
        if self.kind == "sync":
            return list(outcomes)
        return [outcome async for outcome in outcomes]

    async def noop(self) -> Any:
        return await self._call("noop")

    async def rset(self) -> Any:
        return await self._call("rset")

    async def vrfy(self, address: str) -> Any:
        return await self._call("vrfy", address)

    async def expn(self, name: str) -> Any:
        return await self._call("expn", name)

    async def help(self, topic: str = "") -> Any:
        return await self._call("help", topic)

    async def etrn(self, node: str) -> Any:
        return await self._call("etrn", node)

    async def turn(self) -> Any:
        return await self._call("turn")

    async def send_old(self, verb: str, sender: str, recipients: Any, content: Any) -> Any:
        return await self._call("send_old", verb, sender, recipients, content)

    async def quit(self) -> Any:
        return await self._call("quit")

    async def close(self) -> None:
        await self._call("close" if self.kind == "sync" else "aclose")


# -- certificates ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """The test CA the clients trust."""
    return trustme.CA()


def server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    """A server-side SSLContext that presents ``cert``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


@pytest.fixture(scope="session")
def tls_server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A good server certificate: issued by ``ca`` for localhost and 127.0.0.1."""
    return server_context(ca.issue_cert("localhost", "127.0.0.1"))


@pytest.fixture
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """What a client passes as ssl_context: the defaults, trusting ``ca``.

    A fresh one per test: a client that loosened it (check_hostname=False)
    must not pass the bad-certificate tests by another test's doing.
    """
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def bad_server_contexts(ca: trustme.CA) -> dict[str, ssl.SSLContext]:
    """Server certificates a verifying client must refuse, by reason."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "wrong-name": server_context(ca.issue_cert("other.example")),
        "expired": server_context(
            ca.issue_cert(
                "localhost",
                "127.0.0.1",
                not_before=now - datetime.timedelta(days=30),
                not_after=now - datetime.timedelta(days=1),
            )
        ),
        "untrusted-ca": server_context(trustme.CA().issue_cert("localhost", "127.0.0.1")),
    }


# -- the scripted server ---------------------------------------------------------------


@pytest.fixture
def scripted(
    tls_server_context: ssl.SSLContext,
) -> Iterator[Callable[..., ScriptedServer]]:
    """Start scripted servers: ``scripted(script, tls_context=..., timeout=...)``.

    ``timeout`` bounds every socket operation of the server (3 s); a client
    that stalls inside a ``C:`` block fails the script after 1 s.

    The test must call ``server.check()``; teardown only stops what still runs.
    """
    servers: list[ScriptedServer] = []

    def start(
        script: str | list[Step],
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = 3.0,
    ) -> ScriptedServer:
        server = ScriptedServer(
            script, tls_context=tls_context or tls_server_context, timeout=timeout
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """One of the five kinds of client."""
    return str(request.param)


@pytest.fixture(params=ASYNC_KINDS)
def async_kind(request: pytest.FixtureRequest) -> str:
    """One of the four async kinds of client."""
    return str(request.param)


# -- aiosmtpd, an independent peer -----------------------------------------------------


@dataclass
class Received:
    """One message as aiosmtpd's handler saw it."""

    mail_from: str
    mail_options: list[str]
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    login: bytes | None


@dataclass
class StoringHandler:
    """Stores each envelope; refuses the recipients in ``refuse`` with 550.

    No attribute may be named ``auth_*``: aiosmtpd takes handler attributes of
    that name for SASL mechanisms and would advertise them.
    """

    refuse: set[str] = field(default_factory=set)
    messages: list[Received] = field(default_factory=list)
    mechanisms_used: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: Any,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        assert isinstance(content, bytes)
        login = session.auth_data.login if session.auth_data is not None else None
        self.messages.append(
            Received(
                mail_from=str(envelope.mail_from),
                mail_options=list(envelope.mail_options),
                rcpt_tos=list(envelope.rcpt_tos),
                content=content,
                tls=session.ssl is not None,
                login=login,
            )
        )
        return "250 2.0.0 stored"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        self.mechanisms_used.append(mechanism)
        ok = data.login == USER.encode() and data.password == PASSWORD.encode()
        # handled=False: aiosmtpd itself answers 535 (handled=True would mean no reply at all).
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


class _Controller(Controller):
    """aiosmtpd's Controller on port 0: learn the port before its self-test connects."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass
class Aiosmtpd:
    """A running aiosmtpd: where it listens and what it stored."""

    port: int
    handler: StoringHandler


@pytest.fixture
def aiosmtpd_server(
    tls_server_context: ssl.SSLContext,
) -> Iterator[Callable[..., Aiosmtpd]]:
    """Start aiosmtpd on 127.0.0.1: ``aiosmtpd_server(data_size_limit=..., refuse=...)``.

    STARTTLS with the trustme certificate (required before MAIL), AUTH
    PLAIN/LOGIN for test/secret offered only over TLS, SMTPUTF8 on.
    """
    controllers: list[Controller] = []

    def start(
        *,
        data_size_limit: int = 33554432,
        refuse: set[str] | None = None,
        exclude_auth: list[str] | None = None,
    ) -> Aiosmtpd:
        handler = StoringHandler(refuse=refuse or set())
        controller = _Controller(
            handler,
            hostname="127.0.0.1",
            port=0,
            tls_context=tls_server_context,
            require_starttls=True,
            authenticator=handler.authenticate,
            auth_require_tls=True,
            auth_exclude_mechanism=exclude_auth or [],
            enable_SMTPUTF8=True,
            data_size_limit=data_size_limit,
        )
        controller.start()
        controllers.append(controller)
        return Aiosmtpd(port=controller.port, handler=handler)

    yield start
    for controller in controllers:
        controller.stop()


async def wait_until(kind: str, condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` for up to ``seconds``, sleeping the way ``kind`` sleeps."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await sleep(kind, 0.01)
    return True
