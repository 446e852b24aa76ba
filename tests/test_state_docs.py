"""docs/state-machines.md shows exactly what the tables in the code say."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import state_tables  # noqa: E402


def test_state_machine_page_matches_the_tables() -> None:
    page = (ROOT / "docs" / "state-machines.md").read_text(encoding="utf-8")
    assert state_tables.render() in page, "run: python tools/state_tables.py"
