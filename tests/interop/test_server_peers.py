"""Real clients against our servers: smtplib, aiosmtplib, swaks, msmtp, smtp-source, curl,
s-nail, Perl's Net::SMTP, nodemailer, Postfix.

Every client runs against each of our server kinds (sync, asyncio, trio,
anyio on asyncio and on trio) where that is cheap. Our server stores into a
Maildir (MaildirHandler, LF line ends) and keeps each envelope; every
message the peer sent must be found there once, intact after our
``Received:`` header.

Test names are ``test_<client>_<feature>[<kind>]``: tools/interop_matrix.py
reads them into docs/interop.md.
"""

from __future__ import annotations

import asyncio
import email.policy
import mailbox
import re
import smtplib
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.from_thread
import pytest
import trio

from smtpcore import ServerConfig
from smtpcore.session._server import ServerEnvelope
from transports.mailboxes import MaildirHandler

from .conftest import (
    HOST,
    PASSWORD,
    RELAY_LMTP_PORT,
    RELAY_SMTP_PORT,
    USER,
    Peer,
    need_command,
    node_env,
)

KINDS: Final = ("sync", "asyncio", "trio", "anyio-asyncio", "anyio-trio")
HEADER_LINE: Final = re.compile(rb"^([!-9;-~]+:|[ \t])")


class Store(MaildirHandler):
    """Our Maildir handler, plus the envelopes (for Bcc checks) and test/secret AUTH."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.envelopes: list[ServerEnvelope] = []

    def on_message(self, envelope: ServerEnvelope) -> None:
        super().on_message(envelope)
        self.envelopes.append(envelope)

    def authenticate(self, username: str, password: str) -> bool:
        return (username, password) == (USER, PASSWORD)

    def lookup_secret(self, mechanism: str, username: str) -> str | None:
        return PASSWORD if username == USER else None

    def stored(self) -> list[bytes]:
        box = mailbox.Maildir(self.path, create=False)
        return [box.get_bytes(key) for key in box.iterkeys()]


@dataclass
class Ours:
    """One of our servers, running."""

    kind: str
    port: int
    store: Store
    cafile: str

    def one(self, marker: bytes) -> bytes:
        hits = [m for m in self.store.stored() if marker in m]
        assert len(hits) == 1, f"{len(hits)} stored copies of {marker!r}, expected 1"
        return hits[0]


def assert_intact(stored: bytes, sent: bytes) -> None:
    """``stored`` is our Received: header (and nothing else) then ``sent``, LF line ends."""
    expected = sent.replace(b"\r\n", b"\n")
    assert stored.startswith(b"Received: "), stored[:200]
    assert stored.endswith(expected), f"not intact:\n{stored[-300:]!r}\n{expected[-300:]!r}"
    for line in stored[: len(stored) - len(expected)].splitlines():
        assert HEADER_LINE.match(line), line


def _start(kind: str, handler: object, port: int, options: dict[str, Any]) -> tuple[int, Any]:
    """Start our server of ``kind``; return (port, stop)."""
    if kind == "sync":
        from transports.sync import SMTPServer

        server = SMTPServer(handler, HOST, port, **options).start()
        return server.port, partial(server.close, 1.0)
    backend = "trio" if kind in ("trio", "anyio-trio") else "asyncio"
    stack = ExitStack()
    portal = stack.enter_context(anyio.from_thread.start_blocking_portal(backend))
    if kind == "asyncio":
        from transports._serve_asyncio import start_server

        async def run_asyncio(event: asyncio.Event, *, task_status: Any) -> int:
            server = await start_server(handler, HOST, port, **options)
            task_status.started(server.port)
            await event.wait()
            return await server.aclose(1.0)

        event: Any = portal.call(asyncio.Event)
        future, bound = portal.start_task(partial(run_asyncio, event))
    elif kind == "trio":
        from transports._serve_trio import serve as trio_serve

        event = portal.call(trio.Event)
        job = partial(trio_serve, handler, HOST, port, shutdown=event, grace=1.0, **options)
        future, bound = portal.start_task(job)
    else:
        from transports._serve_anyio import serve as anyio_serve

        event = portal.call(anyio.Event)
        job = partial(anyio_serve, handler, HOST, port, shutdown=event, grace=1.0, **options)
        future, bound = portal.start_task(job)

    def stop() -> None:
        portal.call(event.set)
        future.result(timeout=15)
        stack.close()

    return bound, stop


@pytest.fixture(scope="module")
def server_tls(ca_files: tuple[str, str, str]) -> ssl.SSLContext:
    _, cert, key = ca_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


CONFIG: Final = ServerConfig(
    hostname="ours.example.test",
    smtputf8=True,
    chunking=True,
    dsn=True,
    size=50 * 2**20,
    auth_mechanisms=("SCRAM-SHA-256", "CRAM-MD5", "PLAIN", "LOGIN"),
)


@pytest.fixture(params=KINDS)
def ours(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    ca_files: tuple[str, str, str],
    server_tls: ssl.SSLContext,
) -> Iterator[Ours]:
    """Our server of each kind on a free port: STARTTLS (trustme CA), AUTH, SMTPUTF8, BDAT."""
    store = Store(tmp_path / "Maildir")
    port, stop = _start(request.param, store, 0, {"tls_context": server_tls, "config": CONFIG})
    try:
        yield Ours(request.param, port, store, ca_files[0])
    finally:
        stop()


def marker() -> str:
    return "m" + uuid.uuid4().hex


def message(mark: str, extra: str = "") -> bytes:
    return (
        "From: a@example.org\r\nTo: b@example.test\r\n"
        f"Subject: {mark}\r\nMessage-ID: <{mark}@example.org>\r\n"
        f"Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n{extra}\r\n"
        "body line\r\n.leading dot\r\n..two\r\n.\r\nend\r\n"
    ).encode()


# -- smtplib --------------------------------------------------------------------------------


def test_smtplib_plain(ours: Ours) -> None:
    mark = marker()
    with smtplib.SMTP(HOST, ours.port, local_hostname="client.example", timeout=20) as s:
        refused = s.sendmail("a@example.org", ["b@example.test"], message(mark))
    assert refused == {}
    assert_intact(ours.one(mark.encode()), message(mark))


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtplib_starttls_auth(ours: Ours, mechanism: str) -> None:
    mark = marker()
    context = ssl.create_default_context(cafile=ours.cafile)
    with smtplib.SMTP(HOST, ours.port, local_hostname="client.example", timeout=20) as s:
        s.starttls(context=context)
        s.ehlo()
        s.user, s.password = USER, PASSWORD
        method = s.auth_plain if mechanism == "PLAIN" else s.auth_login
        code, _ = s.auth(mechanism, method, initial_response_ok=mechanism == "PLAIN")
        assert code == 235
        s.sendmail("a@example.org", ["b@example.test"], message(mark))
    assert_intact(ours.one(mark.encode()), message(mark))
    [envelope] = ours.store.envelopes
    assert envelope.is_tls


def test_smtplib_send_message_bcc_smtputf8(ours: Ours) -> None:
    mark = marker()
    msg = EmailMessage(policy=email.policy.SMTPUTF8)
    msg["From"], msg["To"], msg["Bcc"] = "älice@example.org", "bøb@example.test", "c@example.test"
    msg["Subject"], msg["Message-ID"] = mark, f"<{mark}@example.org>"
    msg.set_content("Grüße\n")
    with smtplib.SMTP(HOST, ours.port, local_hostname="client.example", timeout=20) as s:
        s.send_message(msg)
    [envelope] = ours.store.envelopes
    assert envelope.sender == "älice@example.org"
    assert envelope.recipients == ("bøb@example.test", "c@example.test")
    stored = ours.one(mark.encode())
    assert b"\nBcc:" not in stored
    assert "To: bøb@example.test".encode() in stored


# -- aiosmtplib -------------------------------------------------------------------------


def test_aiosmtplib_starttls_auth_smtputf8(ours: Ours) -> None:
    import aiosmtplib

    mark = marker()
    context = ssl.create_default_context(cafile=ours.cafile)

    async def main() -> None:
        smtp = aiosmtplib.SMTP(hostname=HOST, port=ours.port, local_hostname="client.example",
                               start_tls=True, tls_context=context, timeout=20)  # fmt: skip
        await smtp.connect()
        await smtp.login(USER, PASSWORD)
        await smtp.sendmail("älice@example.org", ["bøb@example.test"], message(mark),
                            mail_options=["SMTPUTF8"])  # fmt: skip
        await smtp.sendmail("a@example.org", ["b@example.test"], message(mark + "x"))
        await smtp.quit()

    asyncio.run(main())
    assert_intact(ours.one(mark.encode() + b"@"), message(mark))
    assert_intact(ours.one(mark.encode() + b"x"), message(mark + "x"))
    assert [e.sender for e in ours.store.envelopes] == ["älice@example.org", "a@example.org"]


# -- swaks ------------------------------------------------------------------------------


def swaks(port: int, *args: str) -> str:
    command = need_command("swaks")
    done = subprocess.run(
        [command, "--server", HOST, "--port", str(port), "--helo", "client.example",
         "--from", "a@example.org", "--to", "b@example.test", "--timeout", "20", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


SWAKS_VARIANTS: Final = {
    "plain": [],
    "tls": ["--tls"],
    "auth_plain": ["--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD],
    "auth_login": ["--tls", "--auth", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD],
    "pipeline": ["--pipeline"],
}


@pytest.mark.parametrize("variant", list(SWAKS_VARIANTS))
def test_swaks(ours: Ours, variant: str) -> None:
    mark = marker()
    body = "line one\n.leading dot\n..two dots\n.\nlast"
    out = swaks(ours.port, "--header", f"Subject: {mark}", "--body", body,
                *SWAKS_VARIANTS[variant])  # fmt: skip
    if variant != "plain":
        assert ("<~ " in out) == (variant != "pipeline")
    stored = ours.one(mark.encode())
    assert b"\n.leading dot\n..two dots\n.\nlast\n" in stored


def test_swaks_large_attachment(ours: Ours, tmp_path: Path) -> None:
    mark = marker()
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * (8 * 4096))  # 8 MiB
    swaks(ours.port, "--header", f"Subject: {mark}", "--attach", f"@{blob}")
    stored = ours.one(mark.encode())
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    parts = [
        p for p in parsed.walk() if p.get_filename() or p.get_content_maintype() == "application"
    ]
    assert parts, "no attachment in the stored message"
    assert parts[-1].get_payload(decode=True) == blob.read_bytes()


# -- msmtp ------------------------------------------------------------------------------


def test_msmtp_tls_auth_pipelining(ours: Ours) -> None:
    command = need_command("msmtp")
    mark = marker()
    done = subprocess.run(
        [command, "-v", f"--host={HOST}", f"--port={ours.port}", "--domain=client.example",
         "--tls=on", "--tls-starttls=on", f"--tls-trust-file={ours.cafile}", "--auth=plain",
         f"--user={USER}", f"--passwordeval=echo {PASSWORD}", "-f", "a@example.org",
         "b@example.test", "c@example.test"],
        input=message(mark), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    log = (done.stdout + done.stderr).decode(errors="replace")  # -v writes to stdout
    # msmtp -v shows "--> " for what it sends and "<-- " for replies; with PIPELINING it
    # sends MAIL, the RCPTs and DATA before reading the first of their replies.
    order = [line[:8] for line in log.splitlines() if line.startswith(("<-- ", "--> "))]
    assert "--> AUTH" in order
    assert any(line.startswith("--> AUTH PLAIN") for line in log.splitlines())
    mail_at = order.index("--> MAIL")
    assert order[mail_at : mail_at + 5] == [
        "--> MAIL",
        "--> RCPT",
        "--> RCPT",
        "--> DATA",
        "<-- 250 ",
    ]
    assert_intact(ours.one(mark.encode()), message(mark))
    assert ours.store.envelopes[0].recipients == ("b@example.test", "c@example.test")


# -- smtp-source: many sessions --------------------------------------------------------------


def test_smtp_source_many_sessions(ours: Ours) -> None:
    command = need_command("smtp-source")
    total = 300
    done = subprocess.run(
        [command, "-d", "-s", "20", "-m", str(total), "-l", "1000", "-f", "a@example.org",
         "-t", "b@example.test", "-M", "client.example", f"{HOST}:{ours.port}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    stored = ours.store.stored()
    assert len(stored) == total, f"{len(stored)} stored of {total} sent"
    ids = [re.search(rb"(?im)^Message-Id: (.*)$", m) for m in stored]
    assert all(ids)
    assert len({m.group(1) for m in ids if m}) == total, "a message stored twice"


# -- Postfix relaying to our server -----------------------------------------------------


@pytest.fixture
def relay(request: pytest.FixtureRequest, tmp_path: Path, ca_files: tuple[str, str, str]) -> Any:
    """``relay(kind, lmtp)``: our server of ``kind`` on Postfix's next-hop port."""
    stops: list[Any] = []

    def start(kind: str, lmtp: bool) -> Ours:
        store = Store(tmp_path / f"Maildir-{kind}-{lmtp}")
        config = ServerConfig(hostname="ours.example.test", lmtp=lmtp)
        port = RELAY_LMTP_PORT if lmtp else RELAY_SMTP_PORT
        bound, stop = _start(kind, store, port, {"config": config})
        stops.append(stop)
        return Ours(kind, bound, store, ca_files[0])

    yield start
    for stop in stops:
        stop()


@pytest.mark.parametrize("protocol", ["smtp", "lmtp"])
@pytest.mark.parametrize("kind", KINDS)
def test_postfix_relays_to_us(
    request: pytest.FixtureRequest, relay: Any, kind: str, protocol: str
) -> None:
    postfix: Peer = request.getfixturevalue("postfix")
    ours = relay(kind, protocol == "lmtp")
    mark = marker()
    content = message(mark)
    domain = f"relay-{protocol}.test"
    with smtplib.SMTP(HOST, postfix.port, local_hostname="client.example", timeout=20) as s:
        s.sendmail("a@example.org", [f"r1@{domain}", f"r2@{domain}"], content)
    end = time.monotonic() + 45
    while time.monotonic() < end and sum(len(e.recipients) for e in ours.store.envelopes) < 2:
        time.sleep(0.1)
    if not ours.store.envelopes:
        missing_log = subprocess.run(["postqueue", "-p"], capture_output=True, text=True).stdout
        pytest.fail(f"Postfix did not deliver to our {protocol} server: {missing_log}")
    recipients = sorted(r for e in ours.store.envelopes for r in e.recipients)
    assert recipients == [f"r1@{domain}", f"r2@{domain}"]
    for stored in ours.store.stored():
        # Postfix added its own Received: (and Return-Path-free) headers before ours.
        assert stored.replace(b"\r\n", b"\n").endswith(content.replace(b"\r\n", b"\n"))
        assert mark.encode() in stored


def exited(tool: str, returncode: int, log: str, lines: int = 4) -> str:
    """Why a client failed, first: its exit code and the last lines of its transcript."""
    tail = [line for line in log.splitlines() if line.strip()][-lines:]
    return f"{tool} exited {returncode}: " + " | ".join(tail) + "\n\n" + log[-3000:]


# -- curl --------------------------------------------------------------------------------

# curl sends the file as it is: without --crlf a file with LF line ends goes out with bare
# LFs (the long-standing tolerance most servers keep: each line end is taken as CRLF);
# with --crlf curl turns them into CRLF. It always doubles a leading dot.
CURL_VARIANTS: Final = {
    "lf": [],
    "crlf": ["--crlf"],
    "starttls": ["--crlf", "--ssl-reqd"],
    "auth": ["--crlf", "--ssl-reqd", "--user", f"{USER}:{PASSWORD}"],
    "auth_plain": ["--crlf", "--ssl-reqd", "--user", f"{USER}:{PASSWORD}",
                   "--login-options", "AUTH=PLAIN"],
    "auth_login": ["--crlf", "--ssl-reqd", "--user", f"{USER}:{PASSWORD}",
                   "--login-options", "AUTH=LOGIN"],
}  # fmt: skip
# The mechanism curl 7.88 chooses among ours (it has no SCRAM): CRAM-MD5.
CURL_AUTH: Final = {"auth": "CRAM-MD5", "auth_plain": "PLAIN", "auth_login": "LOGIN"}


def lf_message(mark: str) -> bytes:
    """A message with LF line ends only (as a file on disk), with dot-led lines."""
    return (
        "From: a@example.org\nTo: b@example.test\n"
        f"Subject: {mark}\nMessage-ID: <{mark}@example.org>\n"
        "Date: Thu, 01 Jan 2026 00:00:00 +0000\n\n"
        "body line\n.leading dot\n..two dots\n\nlast line\n"
    ).encode()


@pytest.mark.parametrize("variant", list(CURL_VARIANTS))
def test_curl(ours: Ours, tmp_path: Path, variant: str) -> None:
    command = need_command("curl")
    mark = marker()
    content = lf_message(mark)
    upload = tmp_path / "message.eml"
    upload.write_bytes(content)
    tls = ["--cacert", ours.cafile] if "--ssl-reqd" in CURL_VARIANTS[variant] else []
    done = subprocess.run(
        [command, "-sS", "-v", "--max-time", "60", f"smtp://{HOST}:{ours.port}/client.example",
         "--mail-from", "a@example.org", "--mail-rcpt", "b@example.test",
         "--upload-file", str(upload), *CURL_VARIANTS[variant], *tls],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    log = done.stderr.decode(errors="replace")  # -v: "> " sent, "< " received
    assert done.returncode == 0, exited("curl", done.returncode, log, 3)
    sent = [line[2:] for line in log.splitlines() if line.startswith("> ")]
    assert sent[0] == "EHLO client.example"
    assert ("STARTTLS" in sent) == bool(tls)
    if variant in CURL_AUTH:
        assert any(line.startswith(f"AUTH {CURL_AUTH[variant]}") for line in sent), sent
        assert "< 235 " in log
    [envelope] = ours.store.envelopes
    assert (envelope.sender, envelope.recipients) == ("a@example.org", ("b@example.test",))
    assert envelope.is_tls == bool(tls)
    # A file that does not end in CRLF gets "\r\n.\r\n" after it: without --crlf its
    # last line ends in a bare LF, so the CRLF before the dot adds one empty line.
    expected = content + b"\n" if variant == "lf" else content
    assert_intact(ours.one(mark.encode()), expected)


# -- s-nail ------------------------------------------------------------------------------


def s_nail(ours: Ours, home: Path, *settings: str, subject: str, body: str) -> str:
    """Send one message with s-nail's built-in SMTP client; return its -vv transcript.

    s-nail matches the certificate's DNS names only (not IP addresses), so it connects
    to ``localhost`` (our test certificate names it).
    """
    command = need_command("s-nail")
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [command, "-:/", "-#", "-vv", "-S", "v15-compat", "-S", "ttycharset=utf-8",
         "-S", "hostname=client.example", "-S", "nosave", "-S", f"tls-ca-file={ours.cafile}",
         "-S", "tls-ca-no-defaults", "-S", "tls-verify=strict", *settings,
         "-r", "a@example.org", "-s", subject, "b@example.test"],
        input=body.encode(), capture_output=True, timeout=120, check=False,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    )  # fmt: skip
    log = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, exited("s-nail", done.returncode, log, 3)
    return log


S_NAIL_VARIANTS: Final = {
    "plain": ["-S", "smtp-auth=none"],
    "starttls": ["-S", "smtp-use-starttls", "-S", "smtp-auth=none"],
    # s-nail's default mechanism: AUTH PLAIN without an initial response, so it waits for
    # the server's empty challenge, "334 " (RFC 4954 4).
    "auth_plain": ["-S", "smtp-use-starttls", "-S", "smtp-auth=plain"],
    "auth_login": ["-S", "smtp-use-starttls", "-S", "smtp-auth=login"],
}


@pytest.mark.parametrize("variant", list(S_NAIL_VARIANTS))
def test_s_nail(ours: Ours, tmp_path: Path, variant: str) -> None:
    mark = marker()
    user = f"{USER}:{PASSWORD}@" if variant.startswith("auth") else ""
    body = "body line\n.leading dot\n..two dots\nlast line\n"
    log = s_nail(ours, tmp_path / "home", "-S", f"mta=smtp://{user}localhost:{ours.port}",
                 *S_NAIL_VARIANTS[variant], subject=mark, body=body)  # fmt: skip
    said = [line.split(">>> ", 1)[1] for line in log.splitlines() if ">>> " in line]
    sent = [line for line in said if not line.startswith("SERVER: ")]
    # s-nail says EHLO only when it needs an extension (STARTTLS, AUTH).
    assert sent[0] == ("HELO" if variant == "plain" else "EHLO") + " client.example"
    if variant.startswith("auth"):
        mechanism = variant.removeprefix("auth_").upper()
        assert f"AUTH {mechanism}" in sent, sent
    [envelope] = ours.store.envelopes
    assert (envelope.sender, envelope.recipients) == ("a@example.org", ("b@example.test",))
    assert envelope.is_tls == (variant != "plain")
    stored = ours.one(mark.encode())
    assert stored.startswith(b"Received: ")
    assert stored.endswith(b"\n\n" + body.encode()), stored[-200:]


# -- msmtp with SCRAM-SHA-256 ------------------------------------------------------------


def test_msmtp_scram_sha256(ours: Ours) -> None:
    """SCRAM-SHA-256 (RFC 7677): msmtp starts without an initial response, so the first
    challenge is the empty one, "334 " (RFC 4954 4)."""
    command = need_command("msmtp")
    mark = marker()
    done = subprocess.run(
        [command, "-v", f"--host={HOST}", f"--port={ours.port}", "--domain=client.example",
         "--tls=on", "--tls-starttls=on", f"--tls-trust-file={ours.cafile}",
         "--auth=scram-sha-256", f"--user={USER}", f"--passwordeval=echo {PASSWORD}",
         "-f", "a@example.org", "b@example.test"],
        input=message(mark), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    log = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, exited("msmtp", done.returncode, done.stderr.decode(), 2)
    lines = log.splitlines()
    assert "--> AUTH SCRAM-SHA-256" in lines
    assert any(line.startswith("<-- 235 ") for line in lines)
    assert_intact(ours.one(mark.encode()), message(mark))
    [envelope] = ours.store.envelopes
    assert envelope.is_tls


# -- Perl's Net::SMTP ----------------------------------------------------------------------

NET_SMTP_VARIANTS: Final = {
    "plain": [],
    "starttls": ["tls"],
    "auth": ["tls", USER, PASSWORD],  # Authen::SASL's choice among ours: PLAIN
    "auth_login": ["tls", USER, PASSWORD, "LOGIN"],
}


@pytest.mark.parametrize("variant", list(NET_SMTP_VARIANTS))
def test_net_smtp(ours: Ours, tmp_path: Path, variant: str) -> None:
    perl = need_command("perl")
    mark = marker()
    content = lf_message(mark)  # datasend turns LF into CRLF
    upload = tmp_path / "message.eml"
    upload.write_bytes(content)
    extra = [ours.cafile if a == "tls" else a for a in NET_SMTP_VARIANTS[variant]]
    script = Path(__file__).with_name("net_smtp_client.pl")
    done = subprocess.run(
        [perl, str(script), str(ours.port), "a@example.org", "b@example.test", str(upload),
         *extra],
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    log = (done.stdout + done.stderr).decode(errors="replace")  # Debug: ">>> " sent
    assert done.returncode == 0, exited("Net::SMTP", done.returncode, log)
    # Debug lines: "Net::SMTP=GLOB(0x...)>>> EHLO ..." (sent), "<<< ..." (received); the
    # ones without a GLOB name show module versions.
    sent = re.findall(r"=GLOB\(0x[0-9a-f]+\)>>> ([^\r\n]*)", log)
    assert sent[0] == "EHLO client.example"
    if variant.startswith("auth"):
        mechanism = "LOGIN" if variant == "auth_login" else "PLAIN"
        assert any(line.startswith(f"AUTH {mechanism}") for line in sent), sent
    [envelope] = ours.store.envelopes
    assert envelope.is_tls == (variant != "plain")
    assert_intact(ours.one(mark.encode()), content)


# -- nodemailer ----------------------------------------------------------------------------

NODEMAILER_VARIANTS: Final = {
    "plain": [],
    "auth": ["tls", USER, PASSWORD],  # nodemailer's choice among ours: PLAIN
    "auth_login": ["tls", USER, PASSWORD, "LOGIN"],
    "auth_cram_md5": ["tls", USER, PASSWORD, "CRAM-MD5"],
}


@pytest.mark.parametrize("variant", list(NODEMAILER_VARIANTS))
def test_nodemailer(ours: Ours, tmp_path: Path, variant: str) -> None:
    env = node_env()
    mark = marker()
    upload = tmp_path / "message.eml"
    upload.write_bytes(message(mark))
    extra = [ours.cafile if a == "tls" else a for a in NODEMAILER_VARIANTS[variant]]
    script = Path(__file__).with_name("nodemailer_client.js")
    done = subprocess.run(
        ["node", str(script), str(ours.port), "a@example.org", "b@example.test,c@example.test",
         str(upload), *extra],
        capture_output=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    log = done.stderr.decode(errors="replace")  # the dialogue, one line per line
    assert done.returncode == 0, exited("nodemailer", done.returncode,
                                        log + done.stdout.decode(errors="replace"))  # fmt: skip
    lines = log.splitlines()
    # nodemailer pipelines when PIPELINING is offered: MAIL, both RCPTs and DATA first.
    mail_at = lines.index("MAIL FROM:<a@example.org>")
    assert lines[mail_at : mail_at + 5] == [
        "MAIL FROM:<a@example.org>",
        "RCPT TO:<b@example.test>",
        "RCPT TO:<c@example.test>",
        "DATA",
        "250 2.1.0 Sender OK",
    ], lines[mail_at : mail_at + 5]
    if variant.startswith("auth"):
        mechanism = {"auth": "PLAIN", "auth_login": "LOGIN", "auth_cram_md5": "CRAM-MD5"}[variant]
        assert any(line.startswith(f"AUTH {mechanism}") for line in lines), lines
        assert any(line.startswith("235 ") for line in lines)
    [envelope] = ours.store.envelopes
    assert envelope.recipients == ("b@example.test", "c@example.test")
    assert envelope.is_tls == (variant != "plain")
    assert_intact(ours.one(mark.encode()), message(mark))
