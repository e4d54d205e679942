"""Headless Chromium for end-to-end tests, driven by Playwright over CDP.

One Chromium process lives for the whole session (`ChromiumProcess`). Playwright's own connection
is per test (`connect_browser`) because a Playwright connection belongs to one asyncio loop and
pytest-asyncio gives every test its own loop; this way any async test can use the browser with no
loop-scope markers. Browsers are never downloaded: the system `/usr/bin/chromium` is used.

Pages under `tests/e2e/pages/` are served by `StaticServer` from `http://127.0.0.1:<port>`:
getUserMedia and WebRTC need a potentially trustworthy origin, and loopback http counts.
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

REPO_ROOT = Path(__file__).resolve().parents[2]
PAGES_DIR = REPO_ROOT / "tests" / "e2e" / "pages"
ARTIFACTS_DIR = REPO_ROOT / "test-artifacts" / "browser"
CHROMIUM_PATH = os.environ.get("HUBBUB_CHROMIUM", "/usr/bin/chromium")
SKIP_ENV = "HUBBUB_SKIP_BROWSER"
START_TIMEOUT = 20.0

CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--use-fake-device-for-media-stream",  # beeping tone + frame-counter video, no devices needed
    "--use-fake-ui-for-media-stream",  # grant getUserMedia without a prompt
    "--no-sandbox",  # runs as root in CI containers
    "--allow-loopback-in-peer-connection",  # gather 127.0.0.1 candidates
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
    "--disable-quic",
    # Real host IPs in candidates instead of mDNS names, which nothing resolves here.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    # Keep timers and media running at full rate in every tab.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--no-default-browser-check",
    "--password-store=basic",
)


def skip_reason() -> str | None:
    """Why browser tests must be skipped, or None. Missing Chromium is an error, not a skip."""
    if os.environ.get(SKIP_ENV) == "1":
        return f"{SKIP_ENV}=1"
    return None


def require_chromium() -> str:
    """Path of the Chromium binary; RuntimeError with a fix-it message when it is absent."""
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        raise RuntimeError(
            f"Chromium not found at {CHROMIUM_PATH}: run scripts/test (it installs the Debian "
            f"'chromium' package) or set {SKIP_ENV}=1 to skip browser tests"
        )
    return CHROMIUM_PATH


class ChromiumProcess:
    """A headless Chromium with a DevTools endpoint on 127.0.0.1 (`cdp_url`)."""

    def __init__(self, executable: str, extra_flags: Sequence[str] = ()) -> None:
        self.executable = executable
        self.user_data_dir = tempfile.mkdtemp(prefix="hubbub-chromium-")
        self.log_path = ARTIFACTS_DIR / "chromium.log"
        self.args = [
            executable,
            *CHROMIUM_FLAGS,
            *extra_flags,
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.user_data_dir}",
            "about:blank",
        ]
        self.cdp_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = START_TIMEOUT) -> ChromiumProcess:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        # Chromium writes "<port>\n<path>" here once DevTools listens.
        port_file = Path(self.user_data_dir) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                self.stop()
                raise RuntimeError(
                    f"Chromium exited with {self._proc.returncode} at start; see {self.log_path}"
                )
            text = port_file.read_text() if port_file.exists() else ""
            if text.strip():
                self.cdp_url = f"http://127.0.0.1:{text.split()[0]}"
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Chromium gave no DevTools port in {timeout} s")
            time.sleep(0.05)

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.user_data_dir, ignore_errors=True)


async def connect_browser(playwright: Playwright, chromium: ChromiumProcess) -> Browser:
    """A Playwright Browser bound to the current loop; `close()` only disconnects."""
    return await playwright.chromium.connect_over_cdp(chromium.cdp_url)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".html": "text/html",
    }

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class StaticServer:
    """Serves a directory on 127.0.0.1 from a background thread."""

    def __init__(self, directory: Path = PAGES_DIR) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="static-pages", daemon=True
        )

    def start(self) -> StaticServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


QueryValue = str | int | bool | Sequence[str] | None


def page_url(base_url: str, page: str, query: Mapping[str, QueryValue]) -> str:
    """`page_url(u, "viewer.html", {"multiplex": 3, "excluded": ["a", "b"], "x": None})`.

    True/False become "1"/"0", sequences are comma-joined, None is left out.
    """
    params: dict[str, str] = {}
    for key, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[key] = "1" if value else "0"
        elif isinstance(value, str | int):
            params[key] = str(value)
        else:
            params[key] = ",".join(value)
    suffix = "?" + urllib.parse.urlencode(params) if params else ""
    return f"{base_url}/{page}{suffix}"


class PageFactory:
    """`await page_factory("viewer.html", ws=url, stream="s")` opens a page in a new context.

    Console output and page errors of every page are kept in `logs` and written to
    `test-artifacts/browser/<name>.log` by `close()`, so a failing test shows what the page saw.
    """

    def __init__(self, browser: Browser, base_url: str, name: str = "pages") -> None:
        self.browser = browser
        self.base_url = base_url
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:100]
        self.logs: list[str] = []
        self._contexts: list[BrowserContext] = []

    async def __call__(self, page: str, /, **query: QueryValue) -> Page:
        context = await self.browser.new_context()
        self._contexts.append(context)
        tab = await context.new_page()
        label = f"{page}#{len(self._contexts)}"

        def on_console(msg: ConsoleMessage) -> None:
            self.logs.append(f"[{label}] {msg.type}: {msg.text}")

        def on_error(err: Exception) -> None:
            self.logs.append(f"[{label}] pageerror: {err}")

        tab.on("console", on_console)
        tab.on("pageerror", on_error)
        await tab.goto(page_url(self.base_url, page, query))
        return tab

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.logs[-lines:])

    async def close(self) -> None:
        for context in self._contexts:
            try:
                await context.close()
            except Exception as exc:  # browser already gone: keep closing the rest
                self.logs.append(f"[factory] context close failed: {exc}")
        self._contexts.clear()
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS_DIR / f"{self.name}.log").write_text("\n".join(self.logs) + "\n")


async def wait_for_state(page: Page, *states: str, timeout: float = 15.0) -> str:
    """Wait until `window.hubbub.state` is one of `states`; raise with the page's error if it
    reaches "failed" instead (unless "failed" was asked for)."""
    wanted = [*states, "failed"]
    await page.wait_for_function(
        "(wanted) => !!window.hubbub && wanted.includes(window.hubbub.state)",
        arg=wanted,
        timeout=timeout * 1000,
    )
    state: str = await page.evaluate("window.hubbub.state")
    if state not in states:
        error = await page.evaluate("window.hubbub.error")
        raise AssertionError(f"{page.url}: state {state!r} ({error}) while waiting for {states}")
    return state


async def wait_until(
    page: Page, expression: str, arg: Any = None, timeout: float = 15.0, interval: float = 0.1
) -> Any:
    """Poll the JS function `expression` (called with `arg`; it may be async) until it returns a
    truthy value, and return that value. On timeout, AssertionError shows the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{page.url}: not true within {timeout} s: {expression.strip()[:200]} "
                f"(arg {arg!r}, last value {value!r})"
            )
        await asyncio.sleep(interval)
