# Written by `make generate` (tools/generate.py) from
# transports._server_settings:TransportSettings,
# smtpcore.session._server_options:ServerSettings: edit that, not this.
"""The keyword arguments of the servers and clients, one per option field."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    import ssl

    from smtpcore import Limits, ServerConfig


class ServerKeywords(TypedDict, total=False):
    """Keyword options: the fields of
    transports._server_settings:TransportSettings
    smtpcore.session._server_options:ServerSettings
    """

    tls_context: ssl.SSLContext | None
    implicit_tls: bool
    hook_threads: int
    reuse_port: bool
    config: ServerConfig | None
    limits: Limits | None
    hostname: str | None
    idle_timeout: float
    max_connections: int | None
    greeting_delay: float
    min_data_rate: float
    spool_threshold: int | None
    data_timeout: float
    auth_failure_delay: float
    auth_failures_per_address: int | None
    max_connections_per_client: int | None
