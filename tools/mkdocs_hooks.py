"""MkDocs hooks (``hooks:`` in mkdocs.yml): the build fails while a public name has no docstring."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from public_docstrings import all_undocumented


def on_config(config: Any) -> Any:
    """Refuse to build a reference with holes in it."""
    missing = all_undocumented()
    if missing:
        raise PluginError(f"public names without a docstring: {', '.join(missing)}")
    return config
