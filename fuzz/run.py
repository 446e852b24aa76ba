"""Run every fuzz target under atheris for a set time: ``python -m fuzz.run``.

    python -m fuzz.run                  every target, 600 s each
    python -m fuzz.run --time 60 replies server
    python -m fuzz.run --smoke          CI: each target a short run with a fixed seed

Each target starts from fuzz/corpus/<target>/ (never written to); what the
fuzzer learns goes to fuzz/work/corpus/<target>/, crashes to
fuzz/work/crashes/<target>-*. Without atheris, ``--smoke`` runs every target
over its seeds in this process instead, so CI exercises the targets anyway.
Exit status: 0 when every target finished without a finding.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
import sys
import time
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent
TARGETS = sorted(p.stem.removeprefix("fuzz_") for p in FUZZ.glob("fuzz_*.py"))

SMOKE_SECONDS = 7  # 11 targets: under two minutes in all, start-up included
SMOKE_RUNS = 20000
SMOKE_SEED = 1


def run_seeds(name: str) -> bool:
    """Run ``name`` over its seed corpus in this process (no atheris)."""
    test = importlib.import_module(f"fuzz.fuzz_{name}").test_one_input
    for seed in sorted((FUZZ / "corpus" / name).iterdir()):
        try:
            test(seed.read_bytes())
        except Exception as exc:
            print(f"{name}: seed {seed.name} fails: {type(exc).__name__}: {exc}")
            return False
    return True


def run_atheris(name: str, seconds: int, smoke: bool) -> bool:
    """Run ``name`` under atheris (libFuzzer) for ``seconds``; True when nothing was found."""
    work = FUZZ / "work"
    learned = work / "corpus" / name
    crashes = work / "crashes"
    learned.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "fuzz.run",
        "--child",
        name,
        str(learned),  # libFuzzer writes new inputs into the first folder only
        str(FUZZ / "corpus" / name),
        f"-max_total_time={seconds}",
        "-max_len=4096",
        "-timeout=20",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={crashes}/{name}-",
        "-print_final_stats=1",
    ]
    if smoke:
        command += [f"-seed={SMOKE_SEED}", f"-runs={SMOKE_RUNS}"]
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    stats = [
        line
        for line in result.stderr.splitlines()
        if line.startswith("stat::number_of_executed_units")
    ]
    runs = stats[-1].split(":")[-1].strip() if stats else "?"
    verdict = "ok" if result.returncode == 0 else f"FINDING (exit {result.returncode})"
    print(f"{name:14} {elapsed:7.1f} s {runs:>9} runs  {verdict}", flush=True)
    if result.returncode != 0:
        print(result.stderr[-4000:])
    return result.returncode == 0


def child(name: str) -> None:
    """The fuzzing process: instrument smtpcore and the target at import, then fuzz."""
    import atheris

    with atheris.instrument_imports(include=["smtpcore", "fuzz"]):
        from . import _harness

        module = importlib.import_module(f"fuzz.fuzz_{name}")
    _harness.run_atheris.instrumented = True  # type: ignore[attr-defined]
    sys.argv = [sys.argv[0], *sys.argv[3:]]  # the libFuzzer options only
    module.main()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the targets; the exit status."""
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", choices=[*TARGETS, []], help="default: all")
    parser.add_argument("--time", type=int, default=600, help="seconds per target (600)")
    parser.add_argument("--smoke", action="store_true", help="short fixed-seed runs for CI")
    args = parser.parse_args(argv)
    targets = args.targets or TARGETS
    have_atheris = importlib.util.find_spec("atheris") is not None
    ok = True
    for name in targets:
        if have_atheris:
            ok &= run_atheris(name, SMOKE_SECONDS if args.smoke else args.time, args.smoke)
        elif args.smoke:
            ok &= run_seeds(name)
            print(f"{name:14} seeds only (atheris is not installed)")
        else:
            print("atheris is not installed: pip install atheris (or use --smoke)")
            return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
