"""Open every page of the built site in headless Chromium and check it as a reader would.

``make docs-check`` runs this: it installs Debian's chromium when it is missing
(apt-get, under ``flock /tmp/smtpcore-apt.lock``), builds the site with
``mkdocs build --strict``, serves ``site/`` on 127.0.0.1 and loads each page
the build holds or a page links to. It fails on:

- a console error or an uncaught exception on a page (a script that breaks,
  a resource that does not load: a missing stylesheet, the search index);
- a link to a page of the site that does not exist;
- a link to an anchor (``page.html#name``) that is not on its page.

Links to other sites are counted, never fetched. Screenshots of the home page
and of the reference pages are saved in ``site/screenshots/`` (PNG, 1280x900).

Chromium is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``: NUL-separated JSON on file descriptors 3 and 4),
so the check needs only the standard library and the browser.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import http.server
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "site"
DOCS = ROOT / "docs"
SHOTS = SITE / "screenshots"
SCREENSHOT_PAGES = {
    "": "index.png",
    "quickstart/": "quickstart.png",
    "reference/": "reference.png",
    "reference/core/": "reference-core.png",
    "reference/sync/": "reference-sync.png",
}
# Chromium's own start-up asks for nothing from the network with these; as
# root it needs --no-sandbox.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--remote-debugging-pipe",
)
LOAD_TIMEOUT = 30.0
SETTLE = 0.5  # seconds after the load event for late errors (the search worker)


def say(text: str) -> None:
    print(f"docs_check: {text}", flush=True)


def chromium() -> str:
    """The path of Debian's chromium, installed first when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("docs_check: chromium is missing; as root: apt-get install chromium")
    say("installing Debian's chromium")
    subprocess.run(
        [
            "flock",
            "/tmp/smtpcore-apt.lock",
            "sh",
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive"
            " apt-get install -y -qq --no-install-recommends chromium",
        ],
        check=True,
    )
    found = shutil.which("chromium")
    if not found:
        raise SystemExit("docs_check: chromium is still missing after apt-get install")
    return found


def build() -> None:
    say("building the site (mkdocs build --strict)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    mkdocs = Path(sys.executable).with_name("mkdocs")
    subprocess.run([str(mkdocs), "build", "--strict", "--quiet"], cwd=ROOT, env=env, check=True)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    missing: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.missing.append(f"{code} {self.path}")
        super().send_error(code, message, explain)


@contextlib.contextmanager
def serve_site(missing: list[str]) -> Iterator[str]:
    """``site/`` over HTTP on a free port of 127.0.0.1; yields the base URL."""
    handler = functools.partial(type("Handler", (_Quiet,), {"missing": missing}), directory=SITE)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class Browser:
    """Headless Chromium and one page, spoken to over the DevTools pipe."""

    def __init__(self, executable: str, profile: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser wants the pipe at exactly fds 3 (its input) and 4 (its
        # output); move ours above them first so dup2 overwrites nothing we need.
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)

        def give_pipe() -> None:
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self._process = subprocess.Popen(  # preexec_fn only moves the pipe's two fds
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=give_pipe,
        )
        os.close(high_r)
        os.close(high_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def call(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events meanwhile go to ``events``."""
        self._next_id += 1
        request: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            request["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + LOAD_TIMEOUT
        while True:
            message = self._receive(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, event: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._receive(deadline))

    def settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            while True:
                self.events.append(self._receive(deadline))

    def open(self, url: str) -> dict[str, Any]:
        """Load ``url``; its links, its ids and the errors it logged."""
        self.events.clear()
        navigated = self.call("Page.navigate", session=True, url=url)
        if navigated.get("errorText"):
            return {
                "errors": [f"navigation failed: {navigated['errorText']}"],
                "links": [],
                "ids": [],
            }
        self.wait_for("Page.loadEventFired", LOAD_TIMEOUT)
        self.settle(SETTLE)
        found = self.call(
            "Runtime.evaluate",
            session=True,
            returnByValue=True,
            expression=(
                "({links: [...document.querySelectorAll('a[href]')].map(a => a.href),"
                " ids: [...document.querySelectorAll('[id]')].map(e => e.id)"
                ".concat([...document.querySelectorAll('a[name]')].map(a => a.name))})"
            ),
        )["result"]["value"]
        return {"errors": self.errors(), "links": found["links"], "ids": found["ids"]}

    def errors(self) -> list[str]:
        errors: list[str] = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details.get("text")
                errors.append(f"uncaught exception: {text}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                text = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                errors.append(f"console.{params['type']}: {text}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                errors.append(f"{entry['source']}: {entry['text']} {entry.get('url', '')}".strip())
        return errors

    def screenshot(self, path: Path) -> None:
        shot = self.call("Page.captureScreenshot", session=True, format="png")
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def site_pages() -> list[str]:
    """The site's pages, as paths relative to its root: every built ``index.html``.

    Read from the build itself rather than from the sitemap, which holds no
    address while the site has no ``site_url``.
    """
    pages = []
    for index in SITE.rglob("index.html"):
        relative = index.parent.relative_to(SITE)
        if relative.parts[:1] in (("assets",), ("search",), ("screenshots",)):
            continue
        pages.append("" if relative == Path(".") else f"{relative.as_posix()}/")
    return sorted(pages)


def check(browser: Browser, base: str, missing: list[str]) -> list[str]:
    problems: list[str] = []
    pages = site_pages()
    sources = sorted(DOCS.rglob("*.md"))
    if len(pages) < len(sources):
        problems.append(
            f"the build has {len(pages)} pages for {len(sources)} Markdown files in {DOCS}"
        )
    queue = list(pages)
    seen: dict[str, dict[str, Any]] = {}
    external = 0
    while queue:
        path = queue.pop(0)
        if path in seen:
            continue
        page = browser.open(base + path)
        seen[path] = page
        for error in page["errors"]:
            problems.append(f"/{path}: {error}")
        if path in SCREENSHOT_PAGES:
            browser.screenshot(SHOTS / SCREENSHOT_PAGES[path])
        for link in page["links"]:
            if not link.startswith(base):
                external += link.startswith(("http://", "https://"))
                continue
            target = urllib.parse.urlsplit(link[len(base) :]).path
            if (target == "" or target.endswith("/")) and target not in seen:
                queue.append(target)
    say(f"opened {len(seen)} pages ({len(pages)} built); {external} links leave the site")
    if not seen:
        problems.append("no page was opened")
    for path, page in seen.items():
        for link in page["links"]:
            if not link.startswith(base):
                continue
            parts = urllib.parse.urlsplit(link[len(base) :])
            target = parts.path
            if target == "" or target.endswith("/"):
                if not (SITE / target / "index.html").is_file():
                    problems.append(f"/{path}: link to a missing page: {link}")
                    continue
                ids = seen[target]["ids"] if target in seen else []
            else:
                if not (SITE / urllib.parse.unquote(target)).is_file():
                    problems.append(f"/{path}: link to a missing file: {link}")
                continue
            fragment = urllib.parse.unquote(parts.fragment)
            if fragment and fragment not in ids:
                problems.append(f"/{path}: link to a missing anchor: {link}")
    problems.extend(f"the server answered {entry}" for entry in sorted(set(missing)))
    return sorted(set(problems))


def main() -> int:
    executable = chromium()
    build()
    SHOTS.mkdir(exist_ok=True)
    missing: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="smtpcore-chromium-") as profile,
        serve_site(missing) as base,
    ):
        say(f"serving {SITE} at {base}; {executable}")
        browser = Browser(executable, profile)
        try:
            problems = check(browser, base, missing)
        finally:
            browser.close()
    for name in SCREENSHOT_PAGES.values():
        say(f"screenshot {SHOTS / name}")
    if problems:
        for problem in problems:
            print(f"docs_check: FAILED: {problem}", file=sys.stderr)
        return 1
    say("passed: no broken link, no missing anchor, no console error")
    return 0


if __name__ == "__main__":
    sys.exit(main())
