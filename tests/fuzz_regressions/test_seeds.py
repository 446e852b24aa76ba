"""Every fuzz target's function over every file of its seed corpus, without atheris.

CI runs this where atheris is missing; the fuzz targets' own assertions
(events or RemoteProtocolError, every way of feeding agrees, buffers within
Limits, round trips) are what is checked.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = sorted(path.name for path in (FUZZ / "corpus").iterdir() if path.is_dir())


def target(name: str) -> Callable[[bytes], None]:
    module = importlib.import_module(f"fuzz.fuzz_{name}")
    function: Callable[[bytes], None] = module.test_one_input
    return function


def test_every_target_has_a_corpus_and_every_corpus_a_target() -> None:
    modules = sorted(p.stem.removeprefix("fuzz_") for p in FUZZ.glob("fuzz_*.py"))
    assert modules == TARGETS
    assert len(TARGETS) == 11


@pytest.mark.parametrize("name", TARGETS)
def test_target_passes_on_its_seeds(name: str) -> None:
    run = target(name)
    seeds = sorted((FUZZ / "corpus" / name).iterdir())
    assert seeds, f"no seed for {name}"
    for seed in seeds:
        run(seed.read_bytes())


@pytest.mark.parametrize("name", TARGETS)
def test_target_survives_empty_and_tiny_inputs(name: str) -> None:
    run = target(name)
    for data in (b"", b"\x00", b"\xff" * 64, bytes(range(256))):
        run(data)
