"""The benchmark harness: ``python benchmarks/run.py`` (``make bench``).

Measures, side by side in one run on this machine, the figures the performance targets name:
client throughput against Postfix's smtp-sink, server throughput under
smtp-source, one large message each way (seconds and peak RSS from
``/usr/bin/time -v``) and the parsers alone. Every server it needs is
started on 127.0.0.1 on a free port and stopped by its PID. Prints the table
with the ratios the targets name and writes docs/performance.md; raw
py-spy profiles go to benchmarks/profiles/.

Each throughput figure is the best of ``--repeat`` runs: the machine is
shared, and the best run is the one least disturbed by others.

    python benchmarks/run.py [--quick] [--repeat N] [--no-profile] [--no-large]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    HELO,
    HOST,
    PROFILES,
    PYTHON,
    RECIPIENT,
    ROOT,
    SENDER,
    SRC,
    big_file,
    free_port,
    message,
    wait_ready,
)

OURS = (
    "smtpcore-sync",
    "smtpcore-asyncio",
    "smtpcore-asyncio-uvloop",
    "smtpcore-trio",
    "smtpcore-anyio",
)
OURS_ASYNC = OURS[1:]
#: The clients: uvloop is a server row only (the clients run on the caller's loop).
CLIENTS = tuple(kind for kind in OURS if kind != "smtpcore-asyncio-uvloop")
CLIENTS_ASYNC = CLIENTS[1:]
#: ``send_many`` on one connection (pipelined across messages) and ``Pool`` with 20.
MANY = ("smtpcore-sync-many", "smtpcore-asyncio-many", "smtpcore-trio-many", "smtpcore-anyio-many")
POOLS = ("smtpcore-asyncio-pool", "smtpcore-trio-pool", "smtpcore-anyio-pool")
SERVERS = (*OURS, "aiosmtpd")
#: A reference row, not a competitor: asyncio answering with canned replies, no SMTP.
FLOOR = "asyncio-floor"
#: Reference rows of the client table: canned bytes on a bare socket, one or two
#: round trips per message (benchmarks/client_worker.py).
CLIENT_FLOORS = ("floor-sync-1rt", "floor-sync-2rt", "floor-asyncio-1rt", "floor-asyncio-2rt")
PY_PACKAGES = {
    "aiosmtpd": "aiosmtpd",
    "aiosmtplib": "aiosmtplib",
    "smtpproto": "smtpproto",
    "trio": "trio",
    "anyio": "anyio",
}
APT_LOCK = "/tmp/smtpcore-apt.lock"
PY_SPY = Path(PYTHON).parent / "py-spy"


# == prerequisites =====================================================================


def _apt(*packages: str) -> None:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(
        ["flock", APT_LOCK, "apt-get", "update", "-q"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        ["flock", APT_LOCK, "apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def ensure_prerequisites(profile: bool) -> None:
    """Install what is missing (postfix's tools, GNU time, the peers from PyPI) or fail loudly."""
    missing_py = [pkg for mod, pkg in PY_PACKAGES.items() if importlib.util.find_spec(mod) is None]
    if profile and not PY_SPY.exists():
        missing_py.append("py-spy")
    if missing_py:
        command = [PYTHON, "-m", "pip", "install", "--quiet", *missing_py]
        print(f"installing {' '.join(missing_py)}: {' '.join(command)}", flush=True)
        if subprocess.run(command).returncode != 0:
            sys.exit(f"benchmarks: could not install; run: {' '.join(command)}")
    need_postfix = not (shutil.which("smtp-sink") and shutil.which("smtp-source"))
    need_time = not Path("/usr/bin/time").exists()
    if not (need_postfix or need_time):
        return
    hint = (
        'echo "postfix postfix/main_mailer_type select No configuration" | '
        "debconf-set-selections; [ -e /usr/sbin/policy-rc.d ] || "
        "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && "
        "chmod +x /usr/sbin/policy-rc.d; "
        f"flock {APT_LOCK} apt-get update && DEBIAN_FRONTEND=noninteractive flock {APT_LOCK} "
        "apt-get install -y --no-install-recommends postfix time"
    )
    if os.geteuid() != 0:
        sys.exit(
            f"benchmarks: smtp-sink/smtp-source or /usr/bin/time missing; as root run:\n  {hint}"
        )
    print("installing postfix (for smtp-sink, smtp-source) and time", flush=True)
    try:
        if need_postfix:
            subprocess.run(
                ["debconf-set-selections"],
                check=True,
                text=True,
                input="postfix postfix/main_mailer_type select No configuration\n",
            )
            rc = Path("/usr/sbin/policy-rc.d")
            if not rc.exists():  # so that installing starts no daemon
                rc.write_text("#!/bin/sh\nexit 101\n")
                rc.chmod(0o755)
        _apt(*(["postfix"] if need_postfix else []), *(["time"] if need_time else []))
    except (subprocess.CalledProcessError, OSError) as exc:
        sys.exit(f"benchmarks: install failed ({exc}); run:\n  {hint}")
    if not (shutil.which("smtp-sink") and Path("/usr/bin/time").exists()):
        sys.exit(f"benchmarks: still missing after install; run:\n  {hint}")


# == processes ==========================================================================


def _stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], pid: int | None = None) -> None:
    """SIGTERM by PID, wait; SIGKILL after 10 s."""
    target = pid if pid is not None else process.pid
    try:
        os.kill(target, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        try:
            os.kill(target, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(5)


def _child_of(pid: int) -> int:
    """The one child of ``pid`` (what /usr/bin/time runs)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise RuntimeError(f"process {pid} started no child")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and all its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def smtp_sink(timed: bool = False) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """Postfix's smtp-sink on a free loopback port (under /usr/bin/time -v when ``timed``)."""
    port = free_port()
    command = [
        "smtp-sink",
        *(["-u", "nobody"] if os.geteuid() == 0 else []),
        f"{HOST}:{port}",
        "1024",
    ]
    if timed:
        command = ["/usr/bin/time", "-v", *command]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_ready(port)
        yield port, process
    finally:
        _stop(process, _child_of(process.pid) if timed else None)


@contextmanager
def our_server(kind: str, timed: bool = False) -> Iterator[tuple[int, subprocess.Popen[str], int]]:
    """A server of server_worker.py on a free port; yields (port, process, server PID)."""
    port = free_port()
    command = [PYTHON, str(BENCH / "server_worker.py"), kind, str(port)]
    if timed:
        command = ["/usr/bin/time", "-v", *command]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    pid = _child_of(process.pid) if timed else process.pid
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"server {kind} did not start: {process.stderr.read()}")  # type: ignore[union-attr]
        wait_ready(port)
        yield port, process, pid
    finally:
        _stop(process, pid)


def _peak_rss_mib(time_output: str) -> float:
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_output)
    if found is None:
        raise RuntimeError(f"no peak RSS in /usr/bin/time output: {time_output[-500:]}")
    return int(found.group(1)) / 1024


def _source_command(port: int, sessions: int, count: int, path: Path) -> list[str]:
    return [
        "smtp-source",
        "-d",
        "-s",
        str(sessions),
        "-m",
        str(count),
        "-F",
        str(path),
        "-f",
        SENDER,
        "-t",
        RECIPIENT,
        "-M",
        HELO,
        f"{HOST}:{port}",
    ]


def smtp_source(port: int, sessions: int, count: int, path: Path) -> tuple[float, float]:
    """Run smtp-source; (wall seconds, its CPU seconds)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        _source_command(port, sessions, count, path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        assert process.stderr is not None
        raise RuntimeError(f"smtp-source failed: {process.stderr.read().decode()[-300:]}")
    return wall, usage.ru_utime + usage.ru_stime


def _py_spy(output: Path, *target: str) -> list[str]:
    """A py-spy command recording raw stacks at 250 Hz into ``output``, then ``target``."""
    record = [str(PY_SPY), "record", "--format", "raw", "--rate", "250", "--nonblocking"]
    return [*record, "--output", str(output), *target]


def client(
    kind: str,
    port: int,
    count: int,
    conns: int,
    path: Path | None = None,
    profile: Path | None = None,
    timed: bool = False,
) -> dict[str, float]:
    """Run client_worker.py; its JSON figures (plus peak RSS when ``timed``)."""
    command = [PYTHON, str(BENCH / "client_worker.py"), kind, str(port), str(count), str(conns)]
    if path is not None:
        command += ["--file", str(path)]
    if profile is not None:
        command = _py_spy(profile, "--", *command)
    if timed:
        command = ["/usr/bin/time", "-v", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed: {done.stderr[-800:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines and profile is not None:
        # A profiled run is for its stacks; py-spy has been seen to lose the
        # worker's output. Its figures are never used.
        print(f"  ({kind}: no figures from the profiled run: {done.stderr[-300:]!r})")
        return {}
    figures: dict[str, float] = json.loads(lines[-1])
    if timed:
        figures["rss"] = _peak_rss_mib(done.stderr)
    return figures


# == the table ==========================================================================


@dataclass
class Results:
    rows: list[tuple[str, ...]] = field(default_factory=list)
    sections: list[tuple[str, list[str], list[tuple[str, ...]]]] = field(default_factory=list)
    targets: list[tuple[str, str, str, bool, Bound | None]] = field(default_factory=list)
    profiles: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    #: Our own Python per message, no sockets (inprocess.py, inprocess_server.py), in µs.
    python: dict[str, float] = field(default_factory=dict)

    def section(self, title: str, header: list[str]) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        self.sections.append((title, header, rows))
        return rows

    def target(
        self, what: str, ratio: float, goal: float, unit: str = "x", bound: Bound | None = None
    ) -> None:
        if unit == "x":  # a ratio, larger is better
            self.targets.append((what, f"{ratio:.2f}x", f">= {goal:g}x", ratio >= goal, bound))
        elif unit == "x at most":  # a ratio, smaller is better
            self.targets.append((what, f"{ratio:.2f}x", f"<= {goal:g}x", ratio <= goal, bound))
        else:  # a difference in MiB, smaller is better
            met = ratio <= goal
            self.targets.append((what, f"{ratio:+.1f} MiB", f"<= {goal:g} MiB", met, bound))

    def budget(self, bound: Bound | None) -> str:
        """A target's bound in words: what our Python may cost per message, and what it costs."""
        if bound is None:
            return "—"
        ours = self.python.get(bound.python)
        measured = "not measured" if ours is None else f"{ours:.0f} µs"
        if bound.budget <= 0:
            return f"nothing: the bare floor alone misses it (ours {measured})"
        return f"<= {bound.budget:.0f} µs (ours {measured})"


@dataclass(frozen=True)
class Bound:
    """What a speed target leaves, in this run's figures, for our own Python per message.

    ``budget`` (µs) is the goal's time per message less what the matching
    bare-socket floor spends without any SMTP work; ``python`` names the
    in-process figure (``Results.python``) to set against it.
    """

    budget: float
    python: str


def paced(goal_rate: float, floor_rate: float, python: str) -> Bound:
    """One connection or session waits on its peer: the goal's time less the floor's, in µs."""
    return Bound((1 / goal_rate - 1 / floor_rate) * 1e6, python)


def cpu_bound(goal_rate: float, floor_cpu: float, python: str) -> Bound:
    """One busy process: the goal's time is all its CPU, less the floor's CPU (µs) for the I/O."""
    return Bound(1e6 / goal_rate - floor_cpu, python)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _best(results: list[dict[str, float]]) -> dict[str, float]:
    """The run with the highest messages/s."""
    return max(results, key=lambda r: r["messages"] / r["seconds"])


def _round_robin(
    repeat: int, jobs: dict[tuple[str, int], Callable[[], dict[str, float]]]
) -> dict[tuple[str, int], dict[str, float]]:
    """Every job once per round, ``repeat`` rounds; the best run of each.

    Interleaved rather than back to back, so that a burst of load from
    someone else on the machine hurts every contender alike.
    """
    samples: dict[tuple[str, int], list[dict[str, float]]] = {key: [] for key in jobs}
    for _ in range(repeat):
        for key, job in jobs.items():
            samples[key].append(job())
    return {key: _best(runs) for key, runs in samples.items()}


def _client_job(kind: str, port: int, count: int, conns: int) -> Callable[[], dict[str, float]]:
    return lambda: client(kind, port, count, conns)


def _source_job(port: int, sessions: int, count: int, path: Path) -> Callable[[], dict[str, float]]:
    def run() -> dict[str, float]:
        wall, cpu = smtp_source(port, sessions, count, path)
        return {"messages": count, "seconds": wall, "cpu": cpu}

    return run


def _server_job(
    pid: int, port: int, sessions: int, count: int, path: Path
) -> Callable[[], dict[str, float]]:
    def run() -> dict[str, float]:
        before = _cpu_seconds(pid)
        wall, _ = smtp_source(port, sessions, count, path)
        return {"messages": count, "seconds": wall, "cpu": _cpu_seconds(pid) - before}

    return run


# == the measurements ===================================================================


def _floor_of(kind: str, conns: int) -> tuple[str, int]:
    """The bare-socket floor a client row is measured against: same I/O style, same connections."""
    blocking = kind in ("smtpcore-sync", "smtpcore-sync-many", "smtplib", "smtp-source") or (
        kind.startswith("floor-sync")
    )
    return ("floor-sync-1rt", 1) if blocking and conns == 1 else ("floor-asyncio-1rt", conns)


def client_throughput(res: Results, args: argparse.Namespace, msg: Path) -> None:
    rows = res.section(
        "Client throughput: 1 KB messages, one recipient, to smtp-sink",
        ["client", "connections", "messages/s", "client CPU µs/message", "CPU vs floor"],
    )
    n1, n20, n_src = (600, 1000, 2000) if args.quick else (3000, 4000, 10000)
    runs: list[tuple[str, int, int]] = [(kind, 1, n1) for kind in CLIENTS]
    runs += [(kind, 20, n20) for kind in CLIENTS_ASYNC]
    runs += [(kind, 1, n1) for kind in MANY]
    runs += [(kind, 20, n20) for kind in POOLS]
    runs += [
        ("smtplib", 1, n1),
        ("aiosmtplib", 1, n1),
        ("aiosmtplib", 20, n20),
        ("smtpproto-asyncio", 1, n1 // 2),
        ("smtpproto-trio", 1, n1 // 2),
    ]
    runs += [(kind, 1, n1) for kind in CLIENT_FLOORS]
    runs += [("floor-asyncio-1rt", 20, n20)]
    lf = msg.with_suffix(".lf")
    with smtp_sink() as (port, _):
        jobs = {(kind, conns): _client_job(kind, port, count, conns) for kind, conns, count in runs}
        for sessions in (1, 20):
            count = n_src * 2 if sessions > 1 else n_src
            jobs["smtp-source", sessions] = _source_job(port, sessions, count, lf)
        best = _round_robin(args.repeat, jobs)
        rate = {key: r["messages"] / r["seconds"] for key, r in best.items()}
        cpu = {key: r["cpu"] / r["messages"] * 1e6 for key, r in best.items()}
        for kind, conns in best:
            name = "smtp-source (C)" if kind == "smtp-source" else kind
            versus = cpu[kind, conns] / cpu[_floor_of(kind, conns)]
            rows.append(
                (
                    name,
                    str(conns),
                    f"{rate[kind, conns]:,.0f}",
                    f"{cpu[kind, conns]:,.0f}",
                    f"{versus:.1f}x",
                )
            )
            print(
                f"  {kind} x{conns}: {rate[kind, conns]:,.0f} msg/s, "
                f"{cpu[kind, conns]:,.0f} µs CPU/msg ({versus:.1f}x the floor)",
                flush=True,
            )
        if args.profile:
            for kind in CLIENTS:
                out = PROFILES / f"client-{kind}-1.txt"
                if client(kind, port, n1, 1, profile=out):
                    res.profiles[f"client {kind}, 1 connection"] = top_entries(out)
            for kind in ("smtpcore-sync-many", "smtpcore-asyncio-many"):
                out = PROFILES / f"client-{kind}-1.txt"
                if client(kind, port, n1, 1, profile=out):
                    res.profiles[f"client {kind}, 1 connection"] = top_entries(out)
            for kind in (*CLIENTS_ASYNC, "smtpcore-asyncio-pool", "smtpcore-trio-pool"):
                out = PROFILES / f"client-{kind}-20.txt"
                if client(kind, port, n20, 20, profile=out):
                    res.profiles[f"client {kind}, 20 connections"] = top_entries(out)

    def one_at_a_time(kind: str, goal_rate: float) -> Bound:
        # Two round trips per message, as the 2-round-trip floor of the same style.
        if kind == "smtpcore-sync":
            return paced(goal_rate, rate["floor-sync-2rt", 1], "client sync")
        return paced(goal_rate, rate["floor-asyncio-2rt", 1], "client core")

    def busy(goal_rate: float, python: str) -> Bound:
        # 20 connections keep one client process busy: its CPU is the bound.
        return cpu_bound(goal_rate, cpu["floor-asyncio-1rt", 20], python)

    for kind in CLIENTS:
        for peer, goal in (("smtplib", 2.0), ("smtp-source", 1.3)):
            peer_rate = rate[peer, 1]
            res.target(
                f"{kind}, 1 connection vs {peer}" + (" 1 session" if peer != "smtplib" else ""),
                rate[kind, 1] / peer_rate,
                goal,
                bound=one_at_a_time(kind, goal * peer_rate),
            )
    for kind in CLIENTS_ASYNC:
        goal_rate = 3 * rate["aiosmtplib", 1]
        res.target(
            f"{kind}, 1 connection vs aiosmtplib",
            rate[kind, 1] / rate["aiosmtplib", 1],
            3,
            bound=one_at_a_time(kind, goal_rate),
        )
    for kind in CLIENTS_ASYNC:
        res.target(
            f"{kind}, 20 connections vs smtp-source 20 sessions",
            rate[kind, 20] / rate["smtp-source", 20],
            0.5,
            bound=busy(0.5 * rate["smtp-source", 20], "client core"),
        )
        res.target(
            f"{kind}, 20 connections vs aiosmtplib 20",
            rate[kind, 20] / rate["aiosmtplib", 20],
            3,
            bound=busy(3 * rate["aiosmtplib", 20], "client core"),
        )

    # Many messages per connection: send_many pipelines across them; the pool shares 20.
    res.target(
        "smtpcore-sync-many, 1 connection vs smtplib",
        rate["smtpcore-sync-many", 1] / rate["smtplib", 1],
        3,
        bound=paced(3 * rate["smtplib", 1], rate["floor-sync-1rt", 1], "client many"),
    )
    res.target(
        "smtpcore-asyncio-many, 1 connection vs aiosmtplib",
        rate["smtpcore-asyncio-many", 1] / rate["aiosmtplib", 1],
        4,
        bound=paced(4 * rate["aiosmtplib", 1], rate["floor-asyncio-1rt", 1], "client many"),
    )
    for kind in ("smtpcore-sync-many", "smtpcore-asyncio-many"):
        floor_cpu = cpu[_floor_of(kind, 1)]
        res.target(
            f"{kind}: client CPU per message vs the 1-round-trip floor's",
            cpu[kind, 1] / floor_cpu,
            2.5,
            "x at most",
            bound=Bound((2.5 - 1) * floor_cpu, "client many"),
        )
    for kind in POOLS:
        if kind != "smtpcore-trio-pool":
            res.target(
                f"{kind}, 20 connections vs aiosmtplib 20",
                rate[kind, 20] / rate["aiosmtplib", 20],
                4,
                bound=busy(4 * rate["aiosmtplib", 20], "client many"),
            )
        goal = 0.5 if kind == "smtpcore-trio-pool" else 0.8
        res.target(
            f"{kind}, 20 connections vs smtp-source 20 sessions",
            rate[kind, 20] / rate["smtp-source", 20],
            goal,
            bound=busy(goal * rate["smtp-source", 20], "client many"),
        )


def server_throughput(res: Results, args: argparse.Namespace, msg: Path) -> None:
    rows = res.section(
        "Server throughput: smtp-source sending 1 KB messages, discarding handler",
        ["server", "sessions", "messages/s", "server CPU µs/message"],
    )
    count = 1000 if args.quick else 4000
    lf = msg.with_suffix(".lf")
    with contextlib.ExitStack() as stack:
        # All servers run at once (idle but one), so that rounds can interleave.
        started: dict[str, tuple[int, int]] = {}
        for kind in (*SERVERS, FLOOR):
            port, _, pid = stack.enter_context(our_server(kind))
            started[kind] = (port, pid)
        port, sink = stack.enter_context(smtp_sink())
        started["smtp-sink"] = (port, sink.pid)
        jobs = {
            (kind, sessions): _server_job(pid, port, sessions, count, lf)
            for kind, (port, pid) in started.items()
            for sessions in (1, 20)
        }
        best = _round_robin(args.repeat, jobs)
        rate = {key: r["messages"] / r["seconds"] for key, r in best.items()}
        for (kind, sessions), figures in best.items():
            cpu = figures["cpu"] / figures["messages"] * 1e6
            rows.append((kind, str(sessions), f"{rate[kind, sessions]:,.0f}", f"{cpu:,.0f}"))
            print(f"  server {kind} x{sessions}: {rate[kind, sessions]:,.0f} msg/s", flush=True)
        if args.profile:
            for kind in OURS:
                port, pid = started[kind]
                out = PROFILES / f"server-{kind}.txt"
                spy = subprocess.Popen(
                    _py_spy(out, "--threads", "--pid", str(pid)),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
                smtp_source(port, 1, count, lf)
                smtp_source(port, 20, count, lf)
                os.kill(spy.pid, signal.SIGINT)
                spy.wait(30)
                res.profiles[f"server {kind}, smtp-source 1 and 20 sessions"] = top_entries(out)
    floor_cpu = best[FLOOR, 20]["cpu"] / best[FLOOR, 20]["messages"] * 1e6

    def bound(goal_rate: float, sessions: int) -> Bound:
        # One smtp-source session paces every server (see asyncio-floor); with 20, one
        # server process is busy and its CPU is the bound.
        if sessions == 1:
            return paced(goal_rate, rate[FLOOR, 1], "server core + session")
        return cpu_bound(goal_rate, floor_cpu, "server core + session")

    for kind in OURS_ASYNC:
        for sessions in (1, 20):
            res.target(
                f"server {kind}, {sessions} session(s) vs aiosmtpd",
                rate[kind, sessions] / rate["aiosmtpd", sessions],
                3,
                bound=bound(3 * rate["aiosmtpd", sessions], sessions),
            )
    # The steps asked of the servers with 20 sessions, where they are CPU-bound.
    res.target(
        "server smtpcore-asyncio-uvloop, 20 sessions vs aiosmtpd",
        rate["smtpcore-asyncio-uvloop", 20] / rate["aiosmtpd", 20],
        4,
        bound=bound(4 * rate["aiosmtpd", 20], 20),
    )
    res.target(
        "server smtpcore-trio, 20 sessions vs aiosmtpd (the next step)",
        rate["smtpcore-trio", 20] / rate["aiosmtpd", 20],
        2,
        bound=bound(2 * rate["aiosmtpd", 20], 20),
    )
    for kind in OURS_ASYNC:
        cpu = best[kind, 20]["cpu"] / best[kind, 20]["messages"] * 1e6
        res.target(
            f"server {kind}, 20 sessions: CPU per message vs the asyncio floor's",
            cpu / floor_cpu,
            2.5,
            "x at most",
            bound=Bound((2.5 - 1) * floor_cpu, "server core + session"),
        )


def large_messages(res: Results, args: argparse.Namespace) -> None:
    sizes = (50,) if args.quick else (50, 500)
    files = {mb: big_file(mb) for mb in sizes}
    lf_files = {mb: _lf_copy(path) for mb, path in files.items()}
    rows = res.section(
        "Large messages: one message from a file; seconds and peak RSS (/usr/bin/time -v)",
        ["role", "program", *(f"{mb} MB: s / peak MiB" for mb in sizes)],
    )
    sent: dict[tuple[str, int], dict[str, float]] = {}
    with smtp_sink() as (port, _):
        for kind in (*CLIENTS, "smtplib", "aiosmtplib"):
            cells = []
            for mb in sizes:
                if kind in ("smtplib", "aiosmtplib") and mb > 50:
                    cells.append("not run (holds the message whole)")
                    continue
                figures = client(kind, port, 1, 1, path=files[mb], timed=True)
                sent[kind, mb] = figures
                cells.append(f"{figures['seconds']:.2f} / {figures['rss']:.0f}")
                print(f"  send {mb} MB {kind}: {cells[-1]}", flush=True)
            rows.append(("client → smtp-sink", kind, *cells))
        cells = []
        for mb in sizes:
            start = time.perf_counter()
            done = subprocess.run(
                ["/usr/bin/time", "-v", *_source_command(port, 1, 1, lf_files[mb])],
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - start
            if done.returncode != 0:
                raise RuntimeError(f"smtp-source failed: {done.stderr[-300:]}")
            sent["smtp-source", mb] = {"seconds": wall, "rss": _peak_rss_mib(done.stderr)}
            cells.append(f"{wall:.2f} / {sent['smtp-source', mb]['rss']:.0f}")
            print(f"  send {mb} MB smtp-source: {cells[-1]}", flush=True)
        rows.append(("client → smtp-sink", "smtp-source (C)", *cells))
    received: dict[tuple[str, int], tuple[float, float]] = {}
    for kind in (*SERVERS, "smtp-sink"):
        cells = []
        for mb in sizes:
            # A fresh server per message: its peak RSS is this message's.
            if kind == "smtp-sink":
                with smtp_sink(timed=True) as (port, process):
                    wall, _ = smtp_source(port, 1, 1, lf_files[mb])
                stderr = process.stderr.read() if process.stderr else ""
            else:
                with our_server(kind, timed=True) as (port, process, _pid):
                    wall, _ = smtp_source(port, 1, 1, lf_files[mb])
                stderr = process.stderr.read() if process.stderr else ""
            received[kind, mb] = (wall, _peak_rss_mib(stderr))
            cells.append(f"{wall:.2f} / {received[kind, mb][1]:.0f}")
            print(f"  receive {mb} MB {kind}: {cells[-1]}", flush=True)
        rows.append(("smtp-source → server", kind, *cells))
    for kind in CLIENTS:
        res.target(
            f"{kind}: time to send 50 MB / smtp-source's",
            sent[kind, 50]["seconds"] / sent["smtp-source", 50]["seconds"],
            1.5,
            unit="x at most",
        )
    if 500 in sizes:
        for kind in CLIENTS:
            res.target(
                f"{kind} sending: peak RSS 500 MB - 50 MB",
                sent[kind, 500]["rss"] - sent[kind, 50]["rss"],
                32,
                unit="MiB",
            )
        for kind in OURS:
            res.target(
                f"server {kind} receiving: peak RSS 500 MB - 50 MB",
                received[kind, 500][1] - received[kind, 50][1],
                32,
                unit="MiB",
            )


def _lf_copy(path: Path) -> Path:
    """The same message with LF line ends: smtp-source -F appends CRLF to each line itself."""
    out = path.with_suffix(".lf")
    if out.exists() and out.stat().st_mtime >= path.stat().st_mtime and out.stat().st_size:
        return out
    carry = b""
    with open(path, "rb") as src, open(out, "wb") as dst:
        while piece := src.read(1 << 20):
            piece = carry + piece
            # A CRLF may be cut between two reads: hold a final CR back.
            carry = b"\r" if piece.endswith(b"\r") else b""
            dst.write(piece[: len(piece) - len(carry)].replace(b"\r\n", b"\n"))
        dst.write(carry)
    return out


def parsers(res: Results) -> None:
    done = subprocess.run(
        [PYTHON, str(BENCH / "parsers.py")], capture_output=True, text=True, cwd=ROOT, check=True
    )
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    rows = res.section(
        "Parsers alone, in-process (best of 5 rounds)",
        ["what", "smtpcore", "smtplib", "aiosmtplib"],
    )
    for what in ("replies/s", "command lines/s", "stuffing MB/s", "unstuffing MB/s"):
        cells = []
        for who in ("smtpcore", "smtplib", "aiosmtplib"):
            value = figures.get(f"{what} {who}")
            cells.append("—" if value is None else f"{value:,.0f}")
        rows.append((what, *cells))
        print(f"  {what}: {cells}", flush=True)


def own_python(res: Results) -> None:
    """What the in-process benchmarks measure: our Python per message, with no system call."""
    runs = (
        [str(BENCH / "inprocess.py"), "--mode", "all", "--messages", "5000"],
        [str(BENCH / "inprocess_server.py"), "--messages", "5000"],
    )
    for command in runs:
        done = subprocess.run(
            [PYTHON, *command], capture_output=True, text=True, cwd=BENCH, check=True
        )
        for found in re.finditer(r"^(.+): ([0-9.]+) µs/message", done.stdout, re.M):
            res.python[found[1]] = float(found[2])
            print(f"  {found[1]}: {found[2]} µs/message", flush=True)
    rows = res.section(
        "Our Python alone, in-process: µs per message, no sockets (best of 5 rounds)",
        ["what", "µs/message"],
    )
    rows += [(what, f"{value:.1f}") for what, value in res.python.items()]


# == profiles ===========================================================================


def top_entries(path: Path, count: int = 8) -> list[tuple[str, float]]:
    """The functions with the most samples on top of the stack (self time), as % of samples.

    Stacks inside the import machinery (start-up) are left out; line numbers
    are dropped so that a function's lines add up.
    """
    own: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        text = path.read_text()
    except OSError:
        return []
    for line in text.splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit() or "importlib._bootstrap" in stack:
            continue
        samples = int(number)
        total += samples
        frame = stack.rsplit(";", 1)[-1]
        frame = re.sub(r":\d+\)$", ")", frame)  # the function, not the line
        frame = re.sub(r"\((?:[^()]*/)?([^()/]+/[^()/]+)\)$", r"(\1)", frame)  # dir/file.py
        own[frame] += samples
    if not total:
        return []
    return [(frame, 100 * n / total) for frame, n in own.most_common(count)]


# == main ===============================================================================


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    versions = []
    for name in ("aiosmtplib", "aiosmtpd", "smtpproto", "trio", "anyio"):
        try:
            from importlib.metadata import version

            versions.append(f"{name} {version(name)}")
        except Exception:
            pass
    sink = subprocess.run(["postconf", "-d", "mail_version"], capture_output=True, text=True)
    postfix = sink.stdout.split("=")[-1].strip() or "?"
    code = "" if SRC == ROOT / "src" else f"; code under test from {SRC}"
    return (
        f"{platform.node()}: {cpu}, {os.cpu_count()} cores, {mem:.0f} GiB; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}; "
        f"Postfix {postfix}; {', '.join(versions)}; load average at the end {load}{code}"
    )


def _python(res: Results, what: str) -> str:
    """An in-process figure of this run, in words ("not measured" when it was not run)."""
    value = res.python.get(what)
    return "not measured in this run" if value is None else f"{value:.0f} µs"


def render(res: Results, started: float, note: str) -> str:
    parts = [
        "# Performance",
        "",
        "Generated by `make bench` (`python benchmarks/run.py`); do not edit by hand.",
        "",
        f"Machine: {note}",
        "",
        f"Run took {time.time() - started:.0f} s. Throughput figures are the best of "
        "several runs; the machine's 2 cores are shared, so figures drift by 10-30 % "
        "from run to run and only ratios within one run mean much.",
        "",
    ]
    for title, header, rows in res.sections:
        parts += [f"## {title}", "", markdown_table(header, rows), ""]
    parts += [
        "## Reading the figures",
        "",
        "- Every figure keeps all checks on: address and parameter validation, line and "
        "reply limits, the smuggling defences (a server refuses bare CR/LF; smtp-source's "
        "`-F` file therefore has LF line ends, which it sends as CRLF), and the servers' "
        "size limit (1 GiB here, so that the 500 MB message fits).",
        "- CPU µs/message is the CPU time of the client process (from its first connect "
        "to its last QUIT, imports excluded) or of the whole server process, divided by "
        "the messages. When the load generator is the bottleneck (one smtp-source "
        "session), the servers' messages/s only repeat smtp-source's own pace; their CPU "
        "per message is then the figure that tells them apart.",
        "- smtp-source speaks HELO without pipelining and makes about 30 system calls per "
        "message (strace: poll, sigprocmask, read, write, epoll per command); our clients "
        "pipeline MAIL/RCPT/DATA and make 4 (sync) or 8 (async) per message, in two round "
        "trips where smtplib needs four. On this virtual machine the cost of a system "
        "call swings with the host: the same smtp-source session measured 10,900 msg/s "
        "and 2,800 msg/s half an hour apart, so every ratio against its single session "
        "swings with it.",
        "- The smtpcore servers run with `hook_threads=0`: the benchmark's discarding "
        "handler has synchronous hooks that never block, which by default (8 hook threads) "
        "would each be handed to a worker thread; with 0 they run on the event loop, so "
        "the rows measure each server's own work per message. `smtpcore-asyncio-uvloop` "
        "is the asyncio server on uvloop's event loop (the `uvloop` extra).",
        "- `asyncio-floor` is not an SMTP server: asyncio answering smtp-source with canned "
        "replies and no parsing at all (benchmarks/server_worker.py). It is the most any "
        "asyncio server can do here. With one smtp-source session every server waits on "
        "smtp-source, which answers one command at a time: the floor's rate divided by "
        "aiosmtpd's is then the highest ratio any server could show, below the 3x target "
        "in every run so far.",
        "- The `floor-*` rows of the client table are not SMTP clients either: a bare "
        "socket (blocking, or an asyncio Protocol) sending canned bytes and counting the "
        "replies, with one round trip per message (`1rt`: the end of one message and the "
        "next envelope in one write, as RFC 2920 3.1 allows) or two (`2rt`: waiting for "
        "the 354, as our clients do). `CPU vs floor` divides a row's CPU per message by "
        "the 1-round-trip floor of the same style (blocking or asyncio) and connection "
        "count: what the client's own work costs beyond moving the bytes.",
        "- aiosmtpd and smtplib/aiosmtplib hold a message whole (peak RSS grows with the "
        "message); smtplib and aiosmtplib are therefore not run with 500 MB.",
        "",
        "## What limits the targets still missed",
        "",
        "- One connection against smtplib (2x): per message we make two round trips to "
        "smtplib's four and 4 system calls (sync) to its 8, but a loopback round trip here "
        "is mostly kernel work in both processes (a send runs the receiver's TCP path and "
        f"wakes it). Our Python is {_python(res, 'client sync')} per message with the "
        "blocking transport and no system call (`benchmarks/inprocess.py`, table above); "
        "the rest of the client CPU column is that kernel time, which smtplib pays too. "
        "At this machine's system-call cost the round trips alone bound the ratio near "
        "2x, and smtplib's own figure swings by 20 % from run to run.",
        "- Async clients against aiosmtplib (3x): the same round trips, plus one event-loop "
        "turn per reply in every framework.",
        "- Servers against aiosmtpd (3x): with one smtp-source session, smtp-source sets "
        "the pace (see `asyncio-floor`). With 20, a server is CPU-bound: the core and "
        f"session cost {_python(res, 'server core + session')} per message "
        "(`benchmarks/inprocess_server.py`: four command lines parsed and checked, four "
        "replies, the unstuffer, the Received header, the envelope, three hook calls), "
        "asyncio itself at least the floor's CPU column, and 3x aiosmtpd's rate leaves a "
        "third of aiosmtpd's CPU per message for all of it. trio adds a scheduler "
        "round, a cancel scope (the read's deadline) and an epoll registration and "
        "removal per read. uvloop cuts the event loop's share (its row against "
        "`smtpcore-asyncio`), not the core's.",
        "- Server CPU per message against the asyncio floor (2.5x): the floor does no SMTP "
        "at all; profiled (cProfile of the asyncio server under 20 smtp-source sessions) "
        "the transport's own code is a few percent of a message, the sends of the four "
        "replies (kernel loopback work) and the core and session take the rest.",
        "- The last column of the targets: what the goal leaves, in this run's figures, "
        "for our own Python per message, against what that Python costs in-process (table "
        "above). On one connection or one smtp-source session the peer paces us, so the "
        "goal's time per message less the bare floor's time (same round trips, no SMTP "
        "work) is what our work may add. With 20 connections or sessions one process of "
        "ours is busy, so the goal's time per message is all its CPU, less the floor's "
        "CPU for the same I/O. 'client core' stands for the async clients (their event "
        "loop comes on top, so theirs is a lower bound); 'client many' for `send_many` "
        "and the pools. Where our Python costs more than the goal leaves, no transport "
        "work can meet the target: only less work in the core and session can. Where it "
        "costs less and the target is still missed, the rest is the transport's and the "
        "event loop's own work beyond the floor's (trio's scheduler, for one).",
        "- More than one core: `transports.serving.serve_forever(..., workers=N)` and "
        "`smtpcore serve --workers N` run N servers on one port (SO_REUSEPORT); these rows "
        "are one process each.",
        "",
    ]
    if res.targets:
        met = sum(1 for t in res.targets if t[3])
        parts += [
            f"## Targets ({met} of {len(res.targets)} met)",
            "",
            markdown_table(
                ["target", "measured", "goal", "met", "our Python per message: may cost"],
                [
                    (what, measured, goal, "yes" if ok else "**no**", res.budget(bound))
                    for what, measured, goal, ok, bound in res.targets
                ],
            ),
            "",
        ]
    if res.profiles:
        parts += [
            "## Where the time goes (py-spy, self time, top entries)",
            "",
            "Raw profiles (collapsed stacks) are in `benchmarks/profiles/`.",
            "",
        ]
        for name, entries in res.profiles.items():
            parts += [f"**{name}**", ""]
            parts += [f"- {pct:4.1f} % {frame}" for frame, pct in entries] or ["- (no samples)"]
            parts.append("")
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small counts, 50 MB only")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best kept)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--no-large", dest="large", action="store_false")
    parser.add_argument("--only", choices=("clients", "servers", "large", "parsers", "python"))
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "performance.md")
    args = parser.parse_args()
    started = time.time()
    ensure_prerequisites(args.profile)
    PROFILES.mkdir(parents=True, exist_ok=True)
    msg = big_file_1k()
    res = Results()
    steps: list[tuple[str, Callable[[], None]]] = [
        ("clients", lambda: client_throughput(res, args, msg)),
        ("servers", lambda: server_throughput(res, args, msg)),
        ("large", lambda: large_messages(res, args) if args.large else None),
        ("parsers", lambda: parsers(res)),
        ("python", lambda: own_python(res)),
    ]
    for name, step in steps:
        if args.only in (None, name):
            print(f"{name}:", flush=True)
            step()
    note = machine()
    text = render(res, started, note)
    print()
    print(text)
    args.output.write_text(text + "\n")
    print(f"\nwritten to {args.output}")


def big_file_1k() -> Path:
    """The 1 KB test message as a file (CRLF) and its LF twin for smtp-source -F."""
    from _common import DATA

    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / "message-1k.eml"
    path.write_bytes(message())
    path.with_suffix(".lf").write_bytes(message().replace(b"\r\n", b"\n"))
    return path


if __name__ == "__main__":
    main()
