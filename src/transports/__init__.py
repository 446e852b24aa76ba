"""I/O for smtpcore: the session procedures run over blocking sockets, asyncio, trio or anyio.

Each module (``transports.sync``, ``.asyncio``, ``.trio``, ``.anyio``) offers
the same ``SMTPClient`` and a one-shot ``send``; they differ only in how they
move bytes. All protocol logic lives in ``smtpcore``.
"""
