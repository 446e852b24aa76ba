# Written by `make generate` (tools/generate.py) from
# smtpcore.session._server_options:ServerSettings: edit that, not this.
"""The keyword arguments of the servers and clients, one per option field."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

if TYPE_CHECKING:
    from smtpcore import Limits, ServerConfig


class SettingsKeywords(TypedDict, total=False):
    """Keyword options: the fields of
    smtpcore.session._server_options:ServerSettings
    """

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
