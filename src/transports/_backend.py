"""Which framework anyio runs on, for the anyio client and server that borrow its I/O."""

from __future__ import annotations

import sys

__all__ = ["missing_extra", "running_on_trio"]


def running_on_trio() -> bool:
    """True inside a trio run (anyio on trio); False on asyncio.

    Without sniffio (no longer an anyio requirement): trio is imported
    already if it runs, and knows whether a task of its own is current.
    """
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def missing_extra(framework: str, exc: ModuleNotFoundError) -> ModuleNotFoundError:
    """The error for ``transports.<framework>`` when its optional framework is not installed."""
    return ModuleNotFoundError(
        f"transports.{framework} needs {framework} ({exc}): pip install 'smtpcore[{framework}]'",
        name=exc.name,
    )
