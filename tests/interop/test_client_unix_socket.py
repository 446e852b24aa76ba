"""Our clients against a real server on a unix socket: Dovecot's LMTP (``socket_path=``).

Dovecot listens for LMTP on a unix socket in its base directory as well as
on 2424; the clients connect there by path. The message is read back from
the recipient's Maildir and must equal what was sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

from tests.transports.conftest import KINDS

from .conftest import peer_by_name
from .test_client_peers import assert_intact, deliver, find_one

#: Dovecot's own LMTP socket, in the base_dir scripts/peers.sh gives it.
DOVECOT_SOCKET: Final = Path("/run/smtpcore-dovecot-lmtp/lmtp")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["dovecot-lmtp"])
def test_unix_socket(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    assert DOVECOT_SOCKET.is_socket(), f"{DOVECOT_SOCKET} is not there"
    result, trace, content, marker = deliver(
        peer, kind, socket_path=DOVECOT_SOCKET, host="localhost", local_hostname="client.example"
    )
    assert trace.lines(b"LHLO ") == [b"LHLO client.example"]
    assert list(result.accepted) == ["b@example.test"]
    assert result.reply.code == 250
    assert_intact(find_one(peer, marker), content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["dovecot-lmtp"])
def test_unix_socket_starttls(request: pytest.FixtureRequest, name: str, kind: str) -> None:
    peer = peer_by_name(request, name)
    result, trace, content, marker = deliver(
        peer, kind, socket_path=DOVECOT_SOCKET, host="localhost", tls="starttls",
        ssl_context=peer.tls_context(),
    )  # fmt: skip
    assert trace.lines(b"STARTTLS") == [b"STARTTLS"]
    assert list(result.accepted) == ["b@example.test"]
    assert_intact(find_one(peer, marker), content)
