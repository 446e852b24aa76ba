"""Real SMTP/LMTP peers for the interoperability tests.

Each server peer is a session fixture: started once per run on its own
loopback port (the port map of scripts/peers.sh), ready when its ``220``
banner arrives, stopped at the end by the PID we started (or by its own stop
command, Postfix), never by name. ``scripts/peers.sh`` (``make peers``)
installs and configures them under ``$PEERS`` (default /opt/smtpcore-peers).

A peer that is missing fails its tests when ``CI`` is set, and skips them
otherwise (a developer without root can still run everything else).
"""

from __future__ import annotations

import contextlib
import fcntl
import mailbox
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NoReturn

import pytest
import trustme

PEERS: Final = Path(os.environ.get("PEERS", "/opt/smtpcore-peers"))
IN_CI: Final = bool(os.environ.get("CI"))
HOST: Final = "127.0.0.1"
USER: Final = "test"
PASSWORD: Final = "secret"
# One port per peer (scripts/peers.sh writes the same numbers into the configs).
PORTS: Final = {
    "postfix": 2525,
    "exim": 2526,
    "opensmtpd": 2527,
    "aiosmtpd": 2528,
    "smtp-sink": 2530,
    "smtp-server": 2532,
    "dovecot-lmtp": 2424,
}
# nodemailer and smtp-server, installed from npm by scripts/peers.sh.
NODE_MODULES: Final = PEERS / "node" / "node_modules"
# Our servers as Postfix's next hop (transport map in scripts/peers.sh).
RELAY_SMTP_PORT: Final = 2540
RELAY_LMTP_PORT: Final = 2541
BANNER_TIMEOUT: Final = 15.0
# The peers listen on fixed ports and share $PEERS: one interop run at a time on a
# machine. A second run (another checkout's `make test`, say) waits for the first.
RUN_LOCK: Final = Path("/tmp/smtpcore-interop.lock")
RUN_LOCK_WAIT: Final = 1200.0


def missing(what: str) -> NoReturn:
    """A peer cannot run here: fail under CI (it must be there), skip elsewhere."""
    message = f"{what} (run `make peers` as root to install the peers)"
    if IN_CI:
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


def need_root() -> None:
    if os.geteuid() != 0:
        missing("the system peers need root")


def need_file(path: Path) -> None:
    if not path.exists():
        missing(f"{path} is missing")


def need_command(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        missing(f"the command {name!r} is missing")
    return found


@dataclass
class Peer:
    """A running server peer: where it listens, what it is, where its mail lands."""

    name: str
    port: int
    version: str
    cafile: str
    maildir: Path | None = None
    lmtp: bool = False
    banner: bytes = b""
    seen: set[str] = field(default_factory=set)

    def tls_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts this peer's certificate."""
        return ssl.create_default_context(cafile=self.cafile)

    def new_files(self, maildir: Path | None = None) -> list[Path]:
        """Files in ``new/`` (and ``cur/``) of the Maildir not returned before."""
        base = maildir or self.maildir
        assert base is not None, f"{self.name} keeps no Maildir"
        found: list[Path] = []
        for sub in ("new", "cur"):
            folder = base / sub
            if folder.is_dir():
                found += sorted(p for p in folder.iterdir() if str(p) not in self.seen)
        return found

    def find(self, marker: bytes, count: int = 1, maildir: Path | None = None) -> list[bytes]:
        """Wait (up to 30 s: delivery is queued) for ``count`` messages containing ``marker``."""
        deadline = time.monotonic() + 30
        hits: list[bytes] = []
        while True:
            for path in self.new_files(maildir):
                with contextlib.suppress(FileNotFoundError):
                    data = path.read_bytes()
                    if marker in data:
                        self.seen.add(str(path))
                        hits.append(data)
            if len(hits) >= count or time.monotonic() > deadline:
                return hits
            time.sleep(0.05)


def banner(port: int, host: str = HOST, timeout: float = BANNER_TIMEOUT) -> bytes:
    """Connect every 0.1 s until the first line starts with 220; say QUIT; return it."""
    deadline = time.monotonic() + timeout
    last: Exception | bytes = b""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                line = sock.makefile("rb").readline()
                if line.startswith(b"220"):
                    with contextlib.suppress(OSError):
                        sock.sendall(b"QUIT\r\n")
                    return line
                last = line
        except OSError as error:
            last = error
        time.sleep(0.1)
    raise RuntimeError(f"no 220 banner on {host}:{port} within {timeout} s (last: {last!r})")


def port_free(port: int) -> None:
    """Refuse to start when something else (not ours) already listens on ``port``."""
    with socket.socket() as sock:
        if sock.connect_ex((HOST, port)) == 0:
            pytest.fail(f"{HOST}:{port} is already taken by a process this run did not start")


def log_file(name: str) -> Path:
    folder = PEERS / "log" if os.access(PEERS / "log", os.W_OK) else Path("/tmp")
    return folder / f"pytest-{name}.log"


class Process:
    """A daemon we started in the foreground: stopped by its PID only."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.log = log_file(name).open("ab")
        self.popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env
        )

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with {self.popen.returncode}: see {self.log.name}"
            )

    def stop(self) -> None:
        """SIGTERM our PID, wait; SIGKILL after 10 s."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.log.close()


def wait_ready(process: Process, port: int) -> bytes:
    try:
        return banner(port)
    except RuntimeError:
        process.check_alive()
        raise


def maildir_at(path: Path) -> Path:
    """Where the peer delivers (it creates the folders itself, as its own user)."""
    return path


def _version(argv: list[str], default: str = "?") -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return default
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else default


# -- one run at a time ------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def one_interop_run() -> Iterator[None]:
    """Hold the machine's interop lock for the whole run (waiting for another run first)."""
    with RUN_LOCK.open("a+") as lock:
        deadline = time.monotonic() + RUN_LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    lock.seek(0)
                    holder = lock.read().strip() or "?"
                    pytest.fail(f"another interop run ({holder}) held {RUN_LOCK} "
                                f"for over {RUN_LOCK_WAIT:.0f} s")  # fmt: skip
                time.sleep(1)
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}, {os.getcwd()}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- the certificate --------------------------------------------------------------------


@pytest.fixture(scope="session")
def peers_cafile() -> str:
    """The certificate every system peer presents (self-signed: also the trust anchor)."""
    cert = PEERS / "tls" / "cert.pem"
    need_file(cert)
    return str(cert)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A CA for the peers that need no root (aiosmtpd) and for our own servers."""
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    """(CA cert, leaf cert chain, leaf key) as files, the leaf for localhost/127.0.0.1/::1."""
    folder = tmp_path_factory.mktemp("tls")
    leaf = ca.issue_cert("localhost", "127.0.0.1", "::1")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(folder / "leaf.pem"))
    for extra in leaf.cert_chain_pems[1:]:
        extra.write_to_path(str(folder / "leaf.pem"), append=True)
    leaf.private_key_pem.write_to_path(str(folder / "key.pem"))
    return str(folder / "ca.pem"), str(folder / "leaf.pem"), str(folder / "key.pem")


# -- server peers -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def postfix(peers_cafile: str) -> Iterator[Peer]:
    """Postfix 3.7 smtpd on 2525 with AUTH through a Dovecot auth instance."""
    need_root()
    postfix_cmd = need_command("postfix")
    dovecot = need_command("dovecot")
    need_file(PEERS / "dovecot" / "auth.conf")
    if subprocess.run([postfix_cmd, "status"], capture_output=True, check=False).returncode == 0:
        pytest.fail("a Postfix this run did not start is running: stop it first")
    port_free(PORTS["postfix"])
    auth = Process("dovecot-auth", [dovecot, "-F", "-c", str(PEERS / "dovecot" / "auth.conf")])
    master: Process | None = None
    try:
        deadline = time.monotonic() + BANNER_TIMEOUT
        while not Path("/var/spool/postfix/private/auth").exists():
            auth.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("Dovecot's auth socket never appeared")
            time.sleep(0.05)
        subprocess.run(["postsuper", "-d", "ALL"], capture_output=True, check=False)
        master = Process("postfix", [postfix_cmd, "start-fg"])
        greeting = wait_ready(master, PORTS["postfix"])
        version = "Postfix " + _version(["postconf", "-h", "mail_version"])
        yield Peer("postfix", PORTS["postfix"], version, peers_cafile,
                   maildir_at(PEERS / "postfix-mail" / "sink"), banner=greeting)  # fmt: skip
    finally:
        if master is not None:
            subprocess.run([postfix_cmd, "stop"], capture_output=True, check=False)
            try:
                master.popen.wait(20)
            finally:
                master.stop()
        auth.stop()


@pytest.fixture(scope="session")
def exim(peers_cafile: str) -> Iterator[Peer]:
    """Exim 4.96 (extracted exim4-daemon-light) on 2526, delivering to a Maildir."""
    need_root()
    binary = PEERS / "exim" / "usr" / "sbin" / "exim4"
    conf = PEERS / "exim-run" / "exim.conf"
    need_file(binary)
    need_file(conf)
    port_free(PORTS["exim"])
    process = Process("exim", [str(binary), "-C", str(conf), "-bdf", "-oX", str(PORTS["exim"])])
    try:
        greeting = wait_ready(process, PORTS["exim"])
        version = _version([str(binary), "-C", str(conf), "-bV"]).split(" #")[0]
        yield Peer("exim", PORTS["exim"], version, peers_cafile,
                   maildir_at(PEERS / "exim-run" / "Maildir"), banner=greeting)  # fmt: skip
    finally:
        process.stop()


@pytest.fixture(scope="session")
def opensmtpd(peers_cafile: str) -> Iterator[Peer]:
    """OpenSMTPD 7.4 (bookworm-backports, extracted) on 2527: no PIPELINING, no SMTPUTF8."""
    need_root()
    binary = PEERS / "opensmtpd" / "usr" / "sbin" / "smtpd"
    conf = PEERS / "opensmtpd-run" / "smtpd.conf"
    need_file(binary)
    need_file(conf)
    port_free(PORTS["opensmtpd"])
    process = Process("opensmtpd", [str(binary), "-d", "-f", str(conf)])
    try:
        greeting = wait_ready(process, PORTS["opensmtpd"])
        debs = sorted((PEERS / "debs").glob("opensmtpd_*.deb"))
        version = "OpenSMTPD " + (debs[-1].name.split("_")[1] if debs else "7.4")
        yield Peer("opensmtpd", PORTS["opensmtpd"], version, peers_cafile,
                   maildir_at(PEERS / "opensmtpd-run" / "Maildir"), banner=greeting)  # fmt: skip
    finally:
        process.stop()


@pytest.fixture(scope="session")
def dovecot_lmtp(peers_cafile: str) -> Iterator[Peer]:
    """Dovecot 2.3 LMTP on 2424; broken@example.test always fails with 451."""
    need_root()
    dovecot = need_command("dovecot")
    conf = PEERS / "dovecot" / "lmtp.conf"
    need_file(conf)
    port_free(PORTS["dovecot-lmtp"])
    process = Process("dovecot-lmtp", [dovecot, "-F", "-c", str(conf)])
    try:
        greeting = wait_ready(process, PORTS["dovecot-lmtp"])
        version = "Dovecot " + _version([dovecot, "--version"]).split(" ")[0]
        yield Peer("dovecot-lmtp", PORTS["dovecot-lmtp"], version, peers_cafile,
                   PEERS / "lmtp-mail" / "example.test", lmtp=True, banner=greeting)  # fmt: skip
    finally:
        process.stop()


@pytest.fixture(scope="session")
def aiosmtpd_peer(
    ca_files: tuple[str, str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Peer]:
    """aiosmtpd in its own process on 2528 (needs no root: trustme certificate)."""
    import aiosmtpd

    port_free(PORTS["aiosmtpd"])
    cafile, cert, key = ca_files
    maildir = tmp_path_factory.mktemp("aiosmtpd") / "Maildir"
    script = Path(__file__).with_name("aiosmtpd_peer.py")
    argv = [sys.executable, str(script), str(PORTS["aiosmtpd"]), cert, key, str(maildir)]
    process = Process("aiosmtpd", argv)
    try:
        greeting = wait_ready(process, PORTS["aiosmtpd"])
        version = f"aiosmtpd {aiosmtpd.__version__}"
        yield Peer("aiosmtpd", PORTS["aiosmtpd"], version, cafile, maildir_at(maildir),
                   banner=greeting)  # fmt: skip
    finally:
        process.stop()


@pytest.fixture(scope="session")
def smtp_sink(peers_cafile: str) -> Iterator[Peer]:
    """smtp-sink (Postfix's load tool) on 2530: discards; no STARTTLS, BDAT nor 8BITMIME (-8)."""
    need_root()
    sink = need_command("smtp-sink")
    port_free(PORTS["smtp-sink"])
    process = Process(
        "smtp-sink", [sink, "-8", "-u", "nobody", f"{HOST}:{PORTS['smtp-sink']}", "256"]
    )
    try:
        greeting = wait_ready(process, PORTS["smtp-sink"])
        version = "smtp-sink (Postfix " + _version(["postconf", "-h", "mail_version"]) + ")"
        yield Peer("smtp-sink", PORTS["smtp-sink"], version, peers_cafile, banner=greeting)
    finally:
        process.stop()


def node_env() -> dict[str, str]:
    """The environment for a node script that requires nodemailer or smtp-server."""
    need_command("node")
    for package in ("nodemailer", "smtp-server"):
        need_file(NODE_MODULES / package / "package.json")
    return {**os.environ, "NODE_PATH": str(NODE_MODULES)}


def node_package_version(package: str) -> str:
    """The installed version of an npm package under $PEERS/node ("?" when unreadable)."""
    import json

    try:
        meta = json.loads((NODE_MODULES / package / "package.json").read_text())
    except (OSError, ValueError):
        return "?"
    return str(meta.get("version", "?"))


@pytest.fixture(scope="session")
def smtp_server_peer(peers_cafile: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    """nodemailer's smtp-server (npm) on 2532: STARTTLS, AUTH PLAIN/LOGIN, a Maildir."""
    env = node_env()
    need_root()  # the shared key under $PEERS/tls is root's
    port_free(PORTS["smtp-server"])
    maildir = tmp_path_factory.mktemp("smtp-server") / "Maildir"
    script = Path(__file__).with_name("smtp_server_peer.js")
    key = str(PEERS / "tls" / "key.pem")
    argv = ["node", str(script), str(PORTS["smtp-server"]), peers_cafile, key, str(maildir)]
    process = Process("smtp-server", argv, env=env)
    try:
        greeting = wait_ready(process, PORTS["smtp-server"])
        version = f"smtp-server {node_package_version('smtp-server')} (Node.js)"
        yield Peer("smtp-server", PORTS["smtp-server"], version, peers_cafile, maildir,
                   banner=greeting)  # fmt: skip
    finally:
        process.stop()


SERVER_FIXTURES: Final = {
    "postfix": "postfix",
    "exim": "exim",
    "opensmtpd": "opensmtpd",
    "aiosmtpd": "aiosmtpd_peer",
    "smtp-sink": "smtp_sink",
    "smtp-server": "smtp_server_peer",
    "dovecot-lmtp": "dovecot_lmtp",
}


def peer_by_name(request: pytest.FixtureRequest, name: str) -> Peer:
    """The running peer called ``name`` (started on first use, once per session)."""
    peer = request.getfixturevalue(SERVER_FIXTURES[name])
    assert isinstance(peer, Peer)
    return peer


def read_maildir_messages(path: Path) -> list[bytes]:
    """Every message in the Maildir at ``path``, as bytes, in no particular order."""
    box = mailbox.Maildir(str(path), create=False)
    return [box.get_bytes(key) for key in box.iterkeys()]
