# Written by `make generate` (tools/generate.py) from
# smtpcore.session._options:ClientOptions: edit that, not this.
"""The keyword arguments of the servers and clients, one per option field."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from smtpcore import Limits
    from smtpcore.session import Timeouts, TLSMode


class ClientOptionKeywords(TypedDict, total=False):
    """Keyword options: the fields of
    smtpcore.session._options:ClientOptions
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
