"""aiosmtpd as a peer: ``python aiosmtpd_peer.py PORT CERT KEY MAILDIR``.

Runs in its own process (the tests start it once per session and stop it by
PID). Every message is stored in MAILDIR exactly as received (aiosmtpd adds
no header); ``refused@example.test`` is refused at RCPT; AUTH accepts
test/secret after STARTTLS; SIZE is 10 MiB like the other peers.
"""

from __future__ import annotations

import mailbox
import signal
import ssl
import sys
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Store:
    """Keep each message in a Maildir, refuse one recipient."""

    def __init__(self, path: str) -> None:
        self.box = mailbox.Maildir(path, create=True)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.lower() == "refused@example.test":
            return "550 5.1.1 refused by the interop configuration"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.box.add(envelope.original_content)
        return "250 OK stored"


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    # handled=False: aiosmtpd answers the failure itself (535); its default (True) means
    # "the hook already replied", and the client would wait for a reply forever.
    ok = auth_data.login == b"test" and auth_data.password == b"secret"
    return AuthResult(success=ok, handled=False)


def main() -> None:
    port, cert, key, maildir = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    controller = Controller(
        Store(maildir),
        hostname="127.0.0.1",
        port=int(port),
        enable_SMTPUTF8=True,
        data_size_limit=10 * 1024 * 1024,
        tls_context=context,
        require_starttls=False,
        authenticator=authenticator,
        auth_require_tls=True,
    )
    controller.start()
    signal.signal(signal.SIGTERM, lambda *_: controller.stop())
    print("ready", flush=True)
    signal.pause()


if __name__ == "__main__":
    main()
