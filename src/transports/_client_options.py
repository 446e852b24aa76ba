"""The client options only a transport knows, declared once, and the split of the keywords.

Every client takes ``host, port=None, **options``: the options of the
session are the fields of ``smtpcore.session.ClientOptions``, those of the
connection the fields of ``ConnectOptions`` below. ``ClientKeywords``
(written from both by ``make generate``) types them for every client.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Final

from smtpcore import InvalidArgument
from smtpcore.session import ClientOptions

if TYPE_CHECKING:  # for the signatures: ``**options: Unpack[ClientKeywords]``
    from ._client_keywords import ClientKeywords as ClientKeywords

    if sys.version_info >= (3, 11):
        from typing import Unpack as Unpack
    else:
        from typing_extensions import Unpack as Unpack

__all__ = ["ConnectOptions", "Trace", "split_options"]

Trace = Callable[[str, bytes], None]


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How a client reaches its server, and what it tells the caller about the conversation.

    ``ssl_context``: for STARTTLS and implicit TLS (default: the system's
    trust store, the host name checked). ``source_address``: the local
    ``(host, port)`` to connect from. ``trace``: called with ``">"`` and the
    bytes sent, ``"<"`` and the bytes received. ``sock``: an already
    connected socket to talk over instead of connecting (the client owns it
    from then on and closes it); ``socket_path``: a unix socket to connect
    to instead of ``host`` and ``port``. With either, ``host`` still names
    the server for TLS (its certificate's name) and for the messages.
    """

    ssl_context: ssl.SSLContext | None = None
    source_address: tuple[str, int] | None = None
    trace: Trace | None = None
    sock: socket.socket | None = None
    socket_path: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if self.sock is not None and self.socket_path is not None:
            raise InvalidArgument("give sock or socket_path, not both")
        if self.source_address is not None and (
            self.sock is not None or self.socket_path is not None
        ):
            raise InvalidArgument(
                "source_address is for connecting over TCP, not sock or socket_path"
            )
        if self.sock is not None and not isinstance(self.sock, socket.socket):
            raise InvalidArgument(f"sock must be a socket.socket, not {type(self.sock).__name__}")
        if self.sock is not None and self.sock.type != socket.SOCK_STREAM:
            raise InvalidArgument("sock must be a stream socket (SOCK_STREAM)")

    def where(self, host: str, port: int) -> str:
        """The server as the error messages name it."""
        if self.socket_path is not None:
            return f"{host} (unix socket {os.fspath(self.socket_path)!r})"
        if self.sock is not None:
            return f"{host} (given socket)"
        return f"{host}:{port}"


_CONNECT_FIELDS: Final = frozenset(item.name for item in fields(ConnectOptions))


def split_options(
    host: str, port: int | None, options: Mapping[str, object]
) -> tuple[ClientOptions, ConnectOptions]:
    """The session's options and the connection's, from one client's keywords (checked)."""
    session = {name: value for name, value in options.items() if name not in _CONNECT_FIELDS}
    connect = {name: value for name, value in options.items() if name in _CONNECT_FIELDS}
    return ClientOptions.build(host, port, **session), ConnectOptions(**connect)  # type: ignore[arg-type]
