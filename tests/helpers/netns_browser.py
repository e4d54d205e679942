"""Headless Chromium inside a test network namespace (a client behind a firewall), for Playwright.

The session's Chromium (tests/helpers/browser.py) lives in the root namespace and is reached over
CDP on 127.0.0.1. A Chromium inside a namespace has its own loopback, so that endpoint would not
be reachable from the test process. Instead Playwright launches it itself with the pipe transport
(`--remote-debugging-pipe`: CDP over inherited file descriptors 3 and 4, no socket at all), and
`executable_path` is a generated wrapper script, `exec ip netns exec <ns> chromium "$@"`:
`ip netns exec` enters the namespace and execs Chromium in the same process, keeping the pipes.

    pages = GatewayPages(network.gateway, REPO_ROOT)
    pages.start()
    async with NetnsBrowser(network.hosts["c"], network.gateway, secure_origins=[pages.url]) as nb:
        factory = nb.page_factory(pages.url + "/tests/e2e/sdk", name="fw")
        page = await factory("harness.html")          # like tests/helpers/browser.PageFactory
        report = await connection_report(page, "p")   # what the browser's ICE agent chose

The Playwright connection belongs to the event loop that started it: a module-scoped
NetnsBrowser needs module-scoped async fixtures and tests (`loop_scope="module"`).

Pages are served by `GatewayPages` from the bridge's gateway address (root namespace, reachable
from every host namespace). getUserMedia and WebRTC need a secure context; loopback http counts,
http://10.231.x.1 does not, hence `--unsafely-treat-insecure-origin-as-secure` for that origin.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shlex
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, Playwright, async_playwright

from tests.helpers.browser import (
    ARTIFACTS_DIR,
    CHROMIUM_FLAGS,
    PAGES_DIR,
    PageFactory,
    StaticServer,
    _QuietHandler,
    require_chromium,
)
from tests.helpers.netns import Host

LAUNCH_TIMEOUT = 30.0

# Playwright passes its own `--disable-features=<list>` and Chromium keeps only the last one given,
# so ours must repeat the entries of Playwright's list that matter for plain-http test pages
# (no HTTPS upgrade of http://10.231.x.1, no media-router discovery) next to our own.
_DISABLED_FEATURES = (
    "WebRtcHideLocalIpsWithMdns",  # real host IPs in candidates: nothing resolves mDNS here
    "HttpsUpgrades",
    "HttpsFirstBalancedModeAutoEnable",
    "MediaRouter",
    "OptimizationHints",
)


def netns_chromium_flags(secure_origins: Sequence[str] = ()) -> list[str]:
    """CHROMIUM_FLAGS for a Playwright launch: Playwright adds `--headless` (and its
    `--no-sandbox`) itself; `--disable-features` merged as explained above. No
    `--allow-loopback-in-peer-connection`: hubbub is never on this namespace's loopback, so
    127.0.0.1 candidates would only add pairs that fail (and log a send error per check)."""
    dropped = ("--headless", "--allow-loopback-in-peer-connection")
    flags = [f for f in CHROMIUM_FLAGS
             if f not in dropped and not f.startswith("--disable-features=")]
    flags.append("--disable-features=" + ",".join(_DISABLED_FEATURES))
    if secure_origins:
        flags.append("--unsafely-treat-insecure-origin-as-secure=" + ",".join(secure_origins))
    return flags


class GatewayPages(StaticServer):
    """StaticServer on `host` (e.g. the bridge gateway) instead of 127.0.0.1."""

    def __init__(self, host: str, directory: Path = PAGES_DIR) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._httpd = http.server.ThreadingHTTPServer((host, 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://{host}:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="gateway-pages", daemon=True
        )


def ensure_default_route(host: Host, gateway: str) -> None:
    """A default route via the bridge gateway in `host`'s namespace. Chromium needs one: a page
    without a getUserMedia grant (a viewer) gathers host candidates only on the interface of the
    default route, and a namespace without one gathers none at all."""
    proc = subprocess.run(["ip", "-n", host.netns, "route", "replace", "default", "via", gateway],
                          capture_output=True, text=True, timeout=10)
    if proc.returncode != 0:
        raise RuntimeError(f"default route in {host.netns}: {proc.stderr.strip()}")


class NetnsBrowser:
    """One headless Chromium in `host`'s namespace, launched and driven by Playwright."""

    def __init__(self, host: Host, gateway: str, *, secure_origins: Sequence[str] = (),
                 executable: str | None = None, name: str = "netns") -> None:
        self.host = host
        self.gateway = gateway
        self.executable = executable or require_chromium()
        self.flags = netns_chromium_flags(secure_origins)
        self.name = name
        self.log_path = ARTIFACTS_DIR / f"chromium-{name}.log"
        self._dir = ""
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None

    @property
    def browser(self) -> Browser:
        if self._browser is None:
            raise RuntimeError("NetnsBrowser not started")
        return self._browser

    def _write_wrapper(self) -> str:
        self._dir = tempfile.mkdtemp(prefix="hubbub-netns-chromium-")
        wrapper = Path(self._dir) / "chromium"
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(b"")  # this run's log only
        # Chromium's own stderr goes to a log file in test-artifacts (Playwright does not need it
        # with the pipe transport and shows it only when the launch fails).
        wrapper.write_text(
            "#!/bin/sh\n"
            f"# Generated by tests/helpers/netns_browser.py: Chromium in {self.host.netns}.\n"
            f"exec ip netns exec {shlex.quote(self.host.netns)} {shlex.quote(self.executable)} "
            f"\"$@\" 2>>{shlex.quote(str(self.log_path))}\n"
        )
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        return str(wrapper)

    async def start(self) -> NetnsBrowser:
        try:
            ensure_default_route(self.host, self.gateway)
            wrapper = self._write_wrapper()
            self._playwright = await async_playwright().start()
            self._browser = await self._playwright.chromium.launch(
                executable_path=wrapper, args=self.flags, headless=True,
                timeout=LAUNCH_TIMEOUT * 1000)
        except BaseException:
            await self.close()
            raise
        return self

    def page_factory(self, base_url: str, name: str) -> PageFactory:
        """Pages in new contexts of this browser; logs to test-artifacts/browser/<name>.log."""
        return PageFactory(self.browser, base_url, name=name)

    async def close(self) -> None:
        """Close Chromium and Playwright; never raises. Whatever is left in the namespace dies
        with VirtualNetwork.down()."""
        if self._browser is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to close
                await self._browser.close()
            self._browser = None
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
            self._playwright = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = ""

    async def __aenter__(self) -> NetnsBrowser:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# What the browser's ICE agent did, from RTCPeerConnection.getStats(): the selected candidate
# pair (through the transport's selectedCandidatePairId) with both candidates, every pair's
# state, the local and remote candidates, packetsLost summed over inbound-rtp (what this browser
# lost) and over remote-inbound-rtp (what the far end's receiver reports say it lost of what this
# browser sent: a publisher's figure, when hubbub sends receiver reports). `pc` is found
# through the harness (`sdk.pc(name)`, tests/e2e/sdk/harness.js).
_REPORT_JS = """
async (name) => {
  const pc = window.sdk.pc(name);
  if (!pc) return null;
  const stats = await pc.getStats();
  const candidate = (id) => {
    const c = stats.get(id);
    if (!c) return null;
    return { id: c.id, address: c.address ?? c.ip ?? null, port: c.port ?? null,
             protocol: c.protocol ?? null, candidateType: c.candidateType ?? null,
             tcpType: c.tcpType ?? null, relayProtocol: c.relayProtocol ?? null,
             url: c.url ?? null };
  };
  let selected = null;
  const pairs = [];
  const local = [];
  const remote = [];
  let packetsLost = null;
  let remotePacketsLost = null;
  let packetsReceived = 0;
  let packetsSent = 0;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) selected = s.selectedCandidatePairId;
    if (s.type === 'candidate-pair')
      pairs.push({ state: s.state, nominated: !!s.nominated, local: s.localCandidateId,
                   remote: s.remoteCandidateId, requestsSent: s.requestsSent ?? 0,
                   responsesReceived: s.responsesReceived ?? 0 });
    if (s.type === 'local-candidate') local.push(candidate(s.id));
    if (s.type === 'remote-candidate') remote.push(candidate(s.id));
    if (s.type === 'inbound-rtp') {
      packetsLost = (packetsLost ?? 0) + (s.packetsLost ?? 0);
      packetsReceived += s.packetsReceived ?? 0;
    }
    if (s.type === 'outbound-rtp') packetsSent += s.packetsSent ?? 0;
    if (s.type === 'remote-inbound-rtp')
      remotePacketsLost = (remotePacketsLost ?? 0) + (s.packetsLost ?? 0);
  });
  let pair = null;
  if (selected) {
    const p = stats.get(selected);
    pair = { state: p.state, local: candidate(p.localCandidateId),
             remote: candidate(p.remoteCandidateId),
             currentRoundTripTime: p.currentRoundTripTime ?? null };
  }
  const history = window.sdk.log(name).filter((e) => e.what === 'state').map((e) => e.data);
  return { connectionState: pc.connectionState, iceConnectionState: pc.iceConnectionState,
           states: history, selectedPair: pair, pairs, localCandidates: local,
           remoteCandidates: remote, packetsLost, remotePacketsLost, packetsReceived,
           packetsSent };
}
"""

ConnectionReport = dict[str, Any]


async def connection_report(page: Page, client: str) -> ConnectionReport:
    """`_REPORT_JS` for the harness client `client` ("p", "v", ...) on `page`:

    {"connectionState", "iceConnectionState", "states": [SDK connectionStateChange values],
     "selectedPair": None | {"state", "local": {address, port, protocol, candidateType,
     tcpType, relayProtocol, url}, "remote": {...}, "currentRoundTripTime"},
     "pairs": [{state, nominated, requestsSent, responsesReceived, ...}],
     "localCandidates": [...], "remoteCandidates": [...],
     "packetsLost": None (no inbound-rtp yet) | int, "remotePacketsLost": None | int,
     "packetsReceived", "packetsSent"}
    """
    report: ConnectionReport | None = await page.evaluate(_REPORT_JS, client)
    if report is None:
        raise AssertionError(f"{page.url}: harness client {client!r} has no peer connection")
    return report
