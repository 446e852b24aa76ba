"""Write docs/interop.md: the interoperability matrix (peer x feature x transport).

Usage::

    python tools/interop_matrix.py                 # run tests/interop, then write the page
    python tools/interop_matrix.py --junit r.xml   # read an existing pytest JUnit report

Test names carry the cells: ``test_<feature>[<peer>-<kind>]`` (our client
against a server peer, tests/interop/test_client_peers.py) and
``test_<client>_<feature>[<kind>...]`` (a real client against our server,
tests/interop/test_server_peers.py). Each cell is pass, FAIL, known (a
strict xfail: a library limitation with its note), skip or "-" (not run).
The peers' versions are asked from the installed programs.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ("postfix", "exim", "opensmtpd", "aiosmtpd", "smtp-sink", "smtp-server", "dovecot-lmtp")
KINDS = ("sync", "asyncio", "trio", "anyio-asyncio", "anyio-trio")
CLIENT_MODULE = "test_client_peers"
SERVER_MODULE = "test_server_peers"
SYMBOL = {"passed": "pass", "failed": "**FAIL**", "xfailed": "known", "skipped": "skip"}


@dataclass(frozen=True)
class Outcome:
    """One test's result: its module, name, parameters, verdict and message."""

    module: str
    feature: str
    params: tuple[str, ...]
    verdict: str  # passed, failed, xfailed, skipped
    message: str


def split_params(raw: str) -> tuple[str, ...]:
    """``postfix-anyio-asyncio`` -> (postfix, anyio-asyncio): known names win over dashes."""
    names = sorted({*PEERS, *KINDS}, key=len, reverse=True)
    parts: list[str] = []
    rest = raw
    while rest:
        for name in names:
            if rest == name or rest.startswith(name + "-"):
                parts.append(name)
                rest = rest[len(name) + 1 :]
                break
        else:
            head, _, rest = rest.partition("-")
            parts.append(head)
    return tuple(parts)


def read_junit(path: Path) -> list[Outcome]:
    """The outcomes in a pytest JUnit XML report."""
    outcomes: list[Outcome] = []
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        match = re.fullmatch(r"test_(\w+?)(?:\[(.*)\])?", case.get("name", ""))
        if match is None:
            continue
        verdict, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                verdict, message = "failed", child.get("message", "")
            elif child.tag == "skipped":
                kind = child.get("type", "")
                verdict = "xfailed" if "xfail" in kind else "skipped"
                message = child.get("message", "")
        params = split_params(match.group(2) or "")
        outcomes.append(Outcome(module, match.group(1), params, verdict, message))
    return outcomes


def run_pytest(report: Path) -> None:
    """Run the interop tests into ``report`` (JUnit XML); their failures are the matrix's."""
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/interop",
         f"--junitxml={report}"],
        cwd=ROOT, check=False,
    )  # fmt: skip


def first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not installed"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "not installed"


def npm_version(peers: Path, package: str) -> str:
    """The version of an npm package installed under $PEERS/node by scripts/peers.sh."""
    import json

    try:
        meta = json.loads((peers / "node" / "node_modules" / package / "package.json").read_text())
    except (OSError, ValueError):
        return "not installed"
    return f"{package} {meta.get('version', '?')} (Node.js {first_line(['node', '--version'])})"


def versions() -> dict[str, str]:
    """Each peer's version, asked from what is installed here."""
    import os

    peers = Path(os.environ.get("PEERS", "/opt/smtpcore-peers"))
    exim = peers / "exim" / "usr" / "sbin" / "exim4"
    exim_conf = peers / "exim-run" / "exim.conf"
    debs = sorted((peers / "debs").glob("opensmtpd_*.deb"))
    postfix = first_line(["postconf", "-h", "mail_version"])
    found = {
        "postfix": f"Postfix {postfix}",
        "exim": first_line([str(exim), "-C", str(exim_conf), "-bV"]).split(" #")[0],
        "opensmtpd": f"OpenSMTPD {debs[-1].name.split('_')[1]}" if debs else "not installed",
        "dovecot-lmtp": "Dovecot " + first_line(["dovecot", "--version"]).split(" ")[0],
        "smtp-sink": f"smtp-sink (Postfix {postfix})",
        "swaks": first_line(["swaks", "--version"]),
        "msmtp": first_line(["msmtp", "--version"]),
        "smtp-source": f"smtp-source (Postfix {postfix})",
        "smtplib": f"Python {sys.version.split()[0]} smtplib",
        "smtp-server": npm_version(peers, "smtp-server"),
        "nodemailer": npm_version(peers, "nodemailer"),
        "curl": " ".join(first_line(["curl", "--version"]).split()[:2]),
        "s-nail": first_line(["s-nail", "-V"]).split(",")[0],
        "Net::SMTP": "Perl Net::SMTP "
        + first_line(["perl", "-MNet::SMTP", "-e", "print $Net::SMTP::VERSION"]),
    }
    for module in ("aiosmtpd", "aiosmtplib"):
        try:
            found[module] = f"{module} {__import__(module).__version__}"
        except (ImportError, AttributeError):
            found[module] = "not installed"
    return found


def table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def cell(results: list[Outcome]) -> str:
    if not results:
        return "-"
    order = ("failed", "xfailed", "passed", "skipped")
    worst = min((r.verdict for r in results), key=order.index)
    return SYMBOL[worst]


def rows_by(outcomes: list[Outcome], columns: list[str]) -> list[list[str]]:
    """One row per feature and variant (the parameters that are not a column)."""
    keys: dict[tuple[str, tuple[str, ...]], None] = {}
    for o in outcomes:
        keys[(o.feature, tuple(p for p in o.params if p not in columns))] = None
    rows = []
    for feature, variant in sorted(keys, key=lambda k: (k[0] != "plain", k)):
        label = f"{feature} ({', '.join(variant)})" if variant else feature
        chosen = [o for o in outcomes if o.feature == feature and
                  tuple(p for p in o.params if p not in columns) == variant]  # fmt: skip
        rows.append([label, *(cell([o for o in chosen if c in o.params]) for c in columns)])
    return rows


def render(outcomes: list[Outcome], found: dict[str, str]) -> str:
    """The Markdown page."""
    client = [o for o in outcomes if o.module == CLIENT_MODULE]
    server = [o for o in outcomes if o.module == SERVER_MODULE]
    total: defaultdict[str, int] = defaultdict(int)
    for o in outcomes:
        total[o.verdict] += 1
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Interoperability matrix",
        "",
        "Generated by `python tools/interop_matrix.py` from the tests in `tests/interop/`",
        f"({when}; {', '.join(f'{n} {v}' for v, n in sorted(total.items()))}).",
        "Peers are installed by `scripts/peers.sh` (`make peers`) and started once per run",
        "on loopback. **pass**: passed; **FAIL**: failed; **known**: a known library",
        "limitation, kept as a strict xfail with its note below; **skip**: not applicable",
        "(reason below); **-**: not run. A feature the peer does not offer passes when our",
        "side behaves as it must without it: SMTPUTF8 refused before MAIL (NotSupported),",
        "DSN parameters left out, BDAT replaced by DATA, 8-bit content converted to 7 bit,",
        "no pipelining.",
        "",
        "## Versions",
        "",
        *table(["peer", "version"], ([k, v] for k, v in found.items())),
        "",
        "## Our clients against each server",
        "",
        "Every feature over each client kind (the variant in brackets): sync, asyncio, trio,",
        "and anyio on both of its backends. `reply_then_close` is Exim's `drop` ACL: it",
        "answers 550 to the sender dropped@example.org (mail) or the recipient",
        "dropped@example.test (rcpt) and closes the connection; the client must report",
        "that refusal, not a lost connection.",
        "",
    ]
    peers = [p for p in PEERS if any(p in o.params for o in client)]
    out += table(["feature (variant)", *peers], rows_by(client, peers))
    out += ["", "## Real clients against our servers", ""]
    out += table(["client feature (variant)", *(f"our {k} server" for k in KINDS)],
                 rows_by(server, list(KINDS)))  # fmt: skip
    notes = [o for o in outcomes if o.verdict in ("failed", "xfailed", "skipped")]
    out += ["", "## Notes on cells that did not pass", ""]
    if not notes:
        out.append("None.")
    # Cells that failed alike (the same feature, the same first line of the message: it
    # names the cause; the lines after it hold ports and transcripts) share one note.
    alike: dict[tuple[str, str], list[Outcome]] = {}
    for o in notes:
        alike.setdefault((o.feature, headline(o.message)), []).append(o)
    for (_, head), cells in alike.items():
        o = cells[0]
        message = " ".join(head.split())[:300].replace("|", "\\|")
        more = f" (and {len(cells) - 1} more cells alike)" if len(cells) > 1 else ""
        out.append(f"- `{o.module}::test_{o.feature}[{'-'.join(o.params)}]` ({o.verdict})"
                   f"{more}: {message}")  # fmt: skip
    return "\n".join(out) + "\n"


def headline(message: str) -> str:
    """The first non-empty line of a test's failure or skip message."""
    return next((line for line in message.splitlines() if line.strip()), "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--junit", type=Path, help="read this JUnit XML instead of running")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "interop.md")
    args = parser.parse_args(argv)
    if args.junit is None:
        with tempfile.TemporaryDirectory() as folder:
            report = Path(folder) / "interop.xml"
            run_pytest(report)
            outcomes = read_junit(report)
    else:
        outcomes = read_junit(args.junit)
    if not outcomes:
        print("interop_matrix: no interop test results found", file=sys.stderr)
        return 1
    args.out.write_text(render(outcomes, versions()), encoding="utf-8")
    print(f"interop_matrix: wrote {args.out} ({len(outcomes)} results)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
