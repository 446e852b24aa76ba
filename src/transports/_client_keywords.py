# Written by `make generate` (tools/generate.py) from
# smtpcore.session._options:ClientOptions,
# transports._client_options:ConnectOptions: edit that, not this.
"""The keyword arguments of the servers and clients, one per option field."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    import os
    import socket
    import ssl

    from smtpcore import Limits
    from smtpcore.session import Timeouts, TLSMode
    from transports._client_options import Trace


class ClientKeywords(TypedDict, total=False):
    """Keyword options: the fields of
    smtpcore.session._options:ClientOptions
    transports._client_options:ConnectOptions
    """

    tls: TLSMode
    username: str | None
    password: str | None
    oauth_token: str | None
    local_hostname: str | None
    timeout: float | Timeouts | None
    lmtp: bool
    auth_in_clear: bool
    chunking: bool | None
    limits: Limits | None
    ssl_context: ssl.SSLContext | None
    source_address: tuple[str, int] | None
    trace: Trace | None
    sock: socket.socket | None
    socket_path: str | os.PathLike[str] | None
