"""A message whose header block would be rewritten by a header value never leaves the client."""

from __future__ import annotations

from email.message import Message
from typing import Any

import pytest

from smtpcore import LocalProtocolError

from .conftest import Smtp, run
from .scripted_server import ScriptedServer

# The client greets and, once the message is refused, quits: no MAIL, no
# DATA, no byte of the message (the script fails at the first other byte).
SCRIPT = """
    S: 220 mx.example ESMTP
    C: EHLO client.example
    S: 250-mx.example
    S: 250 8BITMIME
    C: QUIT
    S: 221 2.0.0 bye
"""


def test_no_byte_of_an_injected_header_is_sent(kind: str, scripted: Any) -> None:
    server: ScriptedServer = scripted(SCRIPT)
    msg = Message()  # compat32, the policy that let it through
    msg["From"] = "a@example.org"
    msg["To"] = "b@example.net"
    msg["Subject"] = "hi\n\nevil line"
    msg.set_payload("body\n")

    async def body() -> None:
        smtp = Smtp(kind, "127.0.0.1", server.port, tls="none",
                    local_hostname="client.example", timeout=5.0)  # fmt: skip
        async with smtp:
            with pytest.raises(LocalProtocolError, match="Subject"):
                await smtp.send_message(msg)
            await smtp.quit()

    run(kind, body)
    server.check()
    assert b"MAIL" not in server.received and b"evil" not in server.received
