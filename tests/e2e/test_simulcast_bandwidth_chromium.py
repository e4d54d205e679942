"""Simulcast layer choice under a real bandwidth limit, in Chromium (issue 17).

    root namespace    the test, the session Chromium (the SDK publisher with `simulcast: true`
                      and an unlimited SDK View), pages on 127.0.0.1 and on the bridge gateway
    "s" 10.231.N.11   `hubbub serve` (NetnsNode)
    "v" 10.231.N.12   Chromium (NetnsBrowser) with the limited SDK View

The limit is a `tbf` qdisc on the root-namespace end of "v"'s veth: its egress is everything
the bridge sends to "v", i.e. the limited viewer's downlink (and only its). A tbf drops what
waits longer than its latency, so a real queue forms, then loss, as on a slow access link.
The viewer's page (the SDK, 430 KB) is loaded before the limit is set.

Steps, each measured on the viewers' inbound-rtp (`frameWidth`, `framesDecoded`, Chromium's
`freezeCount`/`totalFreezesDuration`) and printed:
1. at about 300 kbit/s the limited viewer gets the 320x180 layer with few freezes; the
   unlimited one the 1280x720 layer (while the publisher sends it);
2. the limit lifted, the limited viewer moves up (a larger frameWidth) within 10 s;
3. the limit set again, it moves down to 320 within 3 s without a freeze over 1 s, and
   stays there.

Should step 2 leave the viewer on the low layer, step 3 measures the move down from a new
View in "v" that started unlimited and reached the top layer, so both figures are reported.

The tests share one network, server, publisher and both viewers (module scope, and so the
module's event loop: NetnsBrowser's Playwright connection belongs to the loop that started it)
and run in file order.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright
from tests.e2e.test_millicast_sdk import (
    ADMIN,
    SDK_DIR,
    SDK_FILE,
    create_token,
    events,
    harness,
)
from tests.helpers.browser import (
    REPO_ROOT,
    ChromiumProcess,
    PageFactory,
    StaticServer,
    connect_browser,
    wait_until,
)
from tests.helpers.netns import Host, NetnsNode, VirtualNetwork, unavailable_reason
from tests.helpers.netns_browser import GatewayPages, NetnsBrowser
from tests.helpers.simulcast_page import (
    SAMPLER,
    longest_freeze,
    samples,
    scaled_sdk_publisher,
    sent_layers,
    wait_width,
)

pytestmark = [pytest.mark.chromium, pytest.mark.slow, pytest.mark.netns,
              pytest.mark.asyncio(loop_scope="module")]

Json = dict[str, Any]
STREAM = "open-sim-bw"
LIMIT_KBIT = 300
# A queue of at most 200 ms behind a one-packet bucket: an over-sent layer shows as queue
# delay and loss within a fraction of a second, and a short probe cannot pass at line rate
# on saved-up tokens (with a 3000-byte bucket a 50 ms probe of 2.7 KB did).
TBF = ["burst", "1600", "latency", "200ms"]
LOW, TOP = 320, 1280
SETTLE = 25.0  # s for the limited viewer to reach the low layer after it connects
OBSERVE = 10.0  # s the limited viewer is watched on the low layer
MAX_FREEZES = 2  # Chromium freezeCount increments allowed in OBSERVE ...
MAX_FROZEN = 1.0  # ... and their totalFreezesDuration (s)
UP_LIMIT = 10.0  # s: lifted limit -> a larger layer
DOWN_LIMIT = 3.0  # s: limit set again -> the low layer
FREEZE_LIMIT = 1.0  # s: longest stretch without a decoded frame around the move down
SAMPLE_MS = 100  # inbound-rtp sampling: the longest gap measured is within 0.1 s of the truth
MIN_FPS = 3.0
"""Frames decoded a second on the low layer: more than its keyframes. Not the publisher's ~20:
while the estimate is below the low layer (for up to ~25 s after the start: see the report),
hubbub forwards only its VP8 temporal layer 0, about a quarter of the frames."""
TOP_WAIT = 25.0  # s from the lift the viewer gets to reach the top layer before step 3
PUBLISHER_RAMPED = 2_000_000  # bit/s: the top encoding's targetBitrate once Chromium ramped up
RAMP_WAIT = 15.0  # s
TOP_GRACE = 3.0  # s the top layer is live before the unlimited viewer must be on it (keyframe,
# probe, UPGRADE_HOLD)
MIN_JUDGED = 20  # samples (2 s) of that in the window, for its share to be judged
STEADY = 4.0  # s a new View plays the top layer before the limit is set again
RAMPED = """async (bps) => Object.values(await sdk.outbound('p')).some((m) => m.kind === 'video'
    && m.layers.some((x) => x.frameWidth === 1280 && x.targetBitrate >= bps))"""


# --- the limit ----------------------------------------------------------------------------


def _tc(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["tc", *args], capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise RuntimeError(f"tc {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc.stdout


class Shaper:
    """A tbf on `host`'s root-namespace veth end: the rate of what reaches `host`."""

    def __init__(self, host: Host) -> None:
        self.dev = host.veth

    def limit(self, kbit: int) -> None:
        _tc("qdisc", "replace", "dev", self.dev, "root", "tbf", "rate", f"{kbit}kbit", *TBF)

    def lift(self) -> None:
        _tc("qdisc", "del", "dev", self.dev, "root", check=False)  # none: already lifted

    def stats(self) -> str:
        """`tc -s` of the qdisc: sent, dropped, overlimits, backlog."""
        return " ".join(_tc("-s", "qdisc", "show", "dev", self.dev, check=False).split())


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def network() -> Iterator[VirtualNetwork]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    if shutil.which("tc") is None:
        pytest.skip("`tc` (iproute2) is not installed")
    if not SDK_FILE.is_file():
        pytest.fail(f"{SDK_FILE} missing: run `npm ci` (scripts/test does)", pytrace=False)
    net = VirtualNetwork(["s", "v"])
    try:
        net.up()
        yield net
    finally:
        leftovers = net.down()  # also kills the namespaced Chromium and hubbub
        assert not leftovers, f"could not remove {leftovers}"


@pytest.fixture(scope="module")
def shaper(network: VirtualNetwork) -> Iterator[Shaper]:
    shaper = Shaper(network.hosts["v"])
    try:
        yield shaper
    finally:
        shaper.lift()


@pytest.fixture(scope="module")
def node(network: VirtualNetwork) -> Iterator[NetnsNode]:
    host = network.hosts["s"]
    node = NetnsNode(host, name=f"simulcast-bw-{network.tag}",
                     options={"announce_ip": host.ip, "api_secret": ADMIN})
    node.args.remove("--allow-any-stream")
    node.args += ["--open-viewing", "open-*"]
    try:
        node.start()
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def repo_pages() -> Iterator[StaticServer]:
    """The repository root on 127.0.0.1, for the session Chromium (loopback: a secure origin)."""
    pages = StaticServer(REPO_ROOT).start()
    yield pages
    pages.stop()


@pytest.fixture(scope="module")
def gateway_pages(network: VirtualNetwork) -> Iterator[GatewayPages]:
    """The repository root on the bridge gateway, for the Chromium in "v"."""
    pages = GatewayPages(network.gateway, REPO_ROOT)
    pages.start()
    yield pages
    pages.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def root_pages(chromium: ChromiumProcess,
                     repo_pages: StaticServer) -> AsyncIterator[PageFactory]:
    """Pages in the session Chromium, on this module's loop (conftest's `browser` is per test)."""
    async with async_playwright() as playwright:
        browser: Browser = await connect_browser(playwright, chromium)
        factory = PageFactory(browser, repo_pages.url + SDK_DIR, name="simulcast-bw-root")
        try:
            yield factory
        finally:
            await factory.close()
            await browser.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def limited_pages(network: VirtualNetwork,
                        gateway_pages: GatewayPages) -> AsyncIterator[PageFactory]:
    async with NetnsBrowser(network.hosts["v"], network.gateway,
                            secure_origins=[gateway_pages.url], name="simulcast-bw") as nb:
        factory = nb.page_factory(gateway_pages.url + SDK_DIR, name="simulcast-bw-limited")
        try:
            yield factory
        finally:
            await factory.close()


@dataclass
class Scene:
    publisher: Page
    unlimited: Page
    limited: Page
    sending: list[Json]
    connected_at: float  # the limited viewer's View.connect resolved (page clock, ms)
    limited_pages: PageFactory
    node: NetnsNode


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(node: NetnsNode, shaper: Shaper, root_pages: PageFactory,
                limited_pages: PageFactory) -> Scene:
    token = str(create_token(node, "publish", pattern="open-*")["token"])
    publisher, _, sending = await scaled_sdk_publisher(root_pages, node, token, STREAM, "vp8")
    # Viewers join once the publisher's own estimate has ramped up (if it does within
    # RAMP_WAIT): while it does, the top layer's bitrate jumps (seen: 1.35 Mb/s for a moment)
    # and an unlimited viewer whose estimate is still near its 1 Mb/s start drops to 640.
    deadline = time.monotonic() + RAMP_WAIT
    while not await publisher.evaluate(RAMPED, PUBLISHER_RAMPED):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    sending = await sent_layers(publisher, 3)
    unlimited = await view(root_pages, node)
    limited = await harness(limited_pages, node)  # the SDK loaded at full speed ...
    shaper.limit(LIMIT_KBIT)  # ... then the viewer connects through the limit
    connected_at = await start_view(limited, limited_pages)
    return Scene(publisher, unlimited, limited, sending, connected_at, limited_pages, node)


async def view(pages: PageFactory, node: NetnsNode) -> Page:
    page = await harness(pages, node)
    await start_view(page, pages)
    return page


async def start_view(page: Page, pages: PageFactory) -> float:
    """View.connect on a harness page, then the sampler on its video; returns when it
    connected (page clock, ms)."""
    result = await page.evaluate("(o) => sdk.view('v', o)",
                                 {"streamName": STREAM, "subscriberToken": None})
    assert result["ok"], (result, pages.log_tail())
    at: float = await page.evaluate("performance.now()")
    await wait_until(page, "() => sdk.tracks('v').some((t) => t.kind === 'video')", timeout=15)
    await page.evaluate(SAMPLER, ["0", SAMPLE_MS])
    return at


# --- helpers ------------------------------------------------------------------------------


async def now_ms(page: Page) -> float:
    at: float = await page.evaluate("performance.now()")
    return at


async def wait_latest(page: Page, since: float, ok: Any, timeout: float) -> Json | None:
    """The first sample after `since` (page ms) for which `ok(sample)` holds and that is still
    the latest one when seen (not a passing frame); None after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = await samples(page)
        if history and history[-1]["at"] > since and ok(history[-1]):
            hit = history[-1]
            # When it started: the first of the trailing run of samples that satisfy `ok`.
            for s in reversed(history):
                if s["at"] <= since or not ok(s):
                    break
                hit = s
            return hit
        await asyncio.sleep(0.1)
    return None


def trace(history: list[Json], start: float, end: float, origin: float) -> list[tuple[Any, ...]]:
    """(s after `origin`, width, framesDecoded, freezeCount) of the samples in [start, end]
    where the width or freezeCount changed, and one a second otherwise: for reports."""
    out: list[tuple[Any, ...]] = []
    last: Json | None = None
    shown = -1e9
    for s in history:
        if not start <= s["at"] <= end:
            continue
        if (last is None or s["width"] != last["width"] or s["freezes"] != last["freezes"]
                or s["at"] - shown >= 1000):
            out.append((round((s["at"] - origin) / 1000, 1), s["width"], s["decoded"],
                        s["freezes"]))
            shown = s["at"]
        last = s
    return out


def longest_chromium_freeze(history: list[Json], start: float, end: float) -> float:
    """Chromium's longest freeze (s) that ended in [start, end]: a freeze is counted when it
    ends, with its duration, and two cannot end within one 100 ms sample."""
    window = [s for s in history if start <= s["at"] <= end]
    return max([b["frozen"] - a["frozen"] for a, b in zip(window, window[1:], strict=False)
                if b["freezes"] > a["freezes"]], default=0.0)


def window_figures(history: list[Json], start: float, end: float) -> Json:
    window = [s for s in history if start <= s["at"] <= end]
    first, last = window[0], window[-1]
    seconds = (last["at"] - first["at"]) / 1000
    return {"widths": sorted({s["width"] for s in window}),
            "topShare": round(sum(s["width"] == TOP for s in window) / len(window), 2),
            "fps": round((last["decoded"] - first["decoded"]) / max(seconds, 0.001), 1),
            "freezeCount": last["freezes"] - first["freezes"],
            "totalFreezesDuration": round(last["frozen"] - first["frozen"], 2),
            "longestGap": round(longest_freeze(history, start, end), 2),
            "longestFreeze": round(longest_chromium_freeze(history, start, end), 2),
            "keyframes": last["keys"] - first["keys"], "plis": last["plis"] - first["plis"]}


async def sending_now(publisher: Page) -> list[tuple[Any, ...]]:
    """(frameWidth, framesEncoded, targetBitrate, qualityLimitationReason) per encoding."""
    stats: dict[str, Json] = await publisher.evaluate("sdk.outbound('p')")
    video = next(s for s in stats.values() if s["kind"] == "video")
    return [(x.get("frameWidth"), x.get("framesEncoded"), x.get("targetBitrate"),
             x.get("qualityLimitationReason")) for x in video["layers"]]


TOP_TIMELINE = """(width) => sdk.log('v')
    .filter((e) => e.what === 'event' && e.data.name === 'layers')
    .map((e) => ({at: e.at, top: Object.values(e.data.data.medias).some(
        (m) => m.active.some((x) => x.width === width))}))"""


async def top_live_since(page: Page) -> list[tuple[float, float | None]]:
    """From the viewer's `layers` events: (page ms, since when the top layer has been live
    without a break, or None while it is not) at each event."""
    events_: list[Json] = await page.evaluate(TOP_TIMELINE, TOP)
    out: list[tuple[float, float | None]] = []
    since: float | None = None
    for ev in events_:
        since = (since if since is not None else ev["at"]) if ev["top"] else None
        out.append((ev["at"], since))
    return out


def top_share_while_live(history: list[Json], timeline: list[tuple[float, float | None]],
                         start: float, end: float) -> tuple[float | None, int]:
    """Of the samples in [start, end] taken while the top layer had been live for TOP_GRACE,
    the share on it (None if none was), and how many there were."""
    judged = []
    for s in history:
        if not start <= s["at"] <= end:
            continue
        since = next((live for at, live in reversed(timeline) if at <= s["at"]), None)
        if since is not None and s["at"] - since >= TOP_GRACE * 1000:
            judged.append(s["width"] == TOP)
    return (round(sum(judged) / len(judged), 2) if judged else None), len(judged)


async def layer_rates(page: Page) -> list[list[tuple[Any, ...]]]:
    """(id, width, bitrate) of the active layers in the last three `layers` events."""
    got = await events(page, "layers")
    return [[(e["id"], e.get("width"), e["bitrate"]) for e in next(iter(
        ev["data"]["medias"].values()))["active"]] for ev in got[-3:]]


# --- tests --------------------------------------------------------------------------------


async def test_a_viewer_at_300_kbits_gets_the_low_layer_and_an_unlimited_one_the_top(
    scene: Scene, shaper: Shaper,
) -> None:
    limited, unlimited = scene.limited, scene.unlimited
    top = await wait_width(unlimited, TOP, 20, "the unlimited viewer")
    hit = await wait_latest(limited, scene.connected_at, lambda s: s["width"] == LOW, SETTLE)
    history = await samples(limited)
    if hit is None:
        raise AssertionError(
            f"at {LIMIT_KBIT} kbit/s the viewer is not on the {LOW} layer {SETTLE} s after it "
            f"connected: (s, width, decoded, freezes) "
            f"{trace(history, scene.connected_at, history[-1]['at'], scene.connected_at)}; "
            f"{shaper.stats()}")
    took = (hit["at"] - scene.connected_at) / 1000
    start = await now_ms(limited)
    await asyncio.sleep(OBSERVE)
    history = await samples(limited)
    figures = window_figures(history, start, history[-1]["at"])
    top_history = await samples(unlimited)
    top_figures = window_figures(top_history, top_history[-1]["at"] - OBSERVE * 1000,
                                 top_history[-1]["at"])
    top_trace = trace(top_history, top_history[-1]["at"] - OBSERVE * 1000, top_history[-1]["at"],
                      top_history[-1]["at"] - OBSERVE * 1000)
    timeline = await top_live_since(unlimited)
    top_share, judged = top_share_while_live(top_history, timeline,
                                             top_history[-1]["at"] - OBSERVE * 1000,
                                             top_history[-1]["at"])
    recent_live = [(round((top_history[-1]["at"] - at) / 1000, 1), live is not None)
                   for at, live in timeline[-6:]]
    settling = trace(history, scene.connected_at, start, scene.connected_at)
    report = (f"\nlimited ({LIMIT_KBIT} kbit/s): on {LOW} {took:.1f} s after connecting "
              f"(first widths {[s['width'] for s in history if s['at'] > scene.connected_at][:1]}"
              f"; (s, width, decoded, freezes) {settling}), then over {OBSERVE:.0f} s "
              f"{figures}; unlimited: {top['width']}x"
              f"{top['height']}, {top_figures}; publisher sends "
              f"{[(x['frameWidth'], x.get('targetBitrate')) for x in scene.sending]} when the "
              f"viewers joined, now "
              f"{await sending_now(scene.publisher)}; {shaper.stats()}; unlimited: (s, width, "
              f"decoded, freezes) {top_trace}; layers {await layer_rates(unlimited)}; top layer "
              f"live at (s before the end, live) {recent_live}"
              f"; on top while it was live {top_share} of {judged} samples")
    print(report)
    assert figures["widths"] == [LOW], report
    assert figures["freezeCount"] <= MAX_FREEZES, report
    assert figures["totalFreezesDuration"] <= MAX_FROZEN, report
    assert figures["longestGap"] <= FREEZE_LIMIT, report
    assert figures["longestFreeze"] <= FREEZE_LIMIT, report
    assert figures["fps"] >= MIN_FPS, report
    # The unlimited viewer's own link is loopback, but its estimate sees the load of three
    # Chromiums on two cores as delay: a dip to 640 for a second was seen in 1 of 7 runs.
    # It is judged only while the publisher sends the top layer: under that load Chromium's
    # own adaptation pauses it (seen in CI: 1280 absent from `layers` for 8 s of the window).
    if judged >= MIN_JUDGED:
        assert top_share is not None and top_share >= 0.8, report
    # At the end on the top layer, or (the publisher paused it) back on it soon.
    if top_history[-1]["width"] != TOP:
        await wait_width(unlimited, TOP, TOP_WAIT, f"the unlimited viewer{report}")


async def test_lifting_the_limit_moves_the_viewer_up_within_10_s(
    scene: Scene, shaper: Shaper,
) -> None:
    limited = scene.limited
    before = await samples(limited)
    assert before[-1]["width"] == LOW, f"needs the limited viewer on {LOW}: {before[-3:]}"
    lifted = await now_ms(limited)
    await asyncio.to_thread(shaper.lift)
    # Waits past the limit to measure how late a late move is; then on to the top layer
    # (step 3 moves down from it).
    up = await wait_latest(limited, lifted, lambda s: s["width"] > LOW, UP_LIMIT + 10)
    left = TOP_WAIT - (await now_ms(limited) - lifted) / 1000
    top = await wait_latest(limited, lifted, lambda s: s["width"] == TOP, max(left, 0.5))
    history = await samples(limited)
    took_up = (up["at"] - lifted) / 1000 if up else None
    took_top = (top["at"] - lifted) / 1000 if top else None
    report = (f"\nlifted: up to {up['width'] if up else None} after {took_up} s, {TOP} after "
              f"{took_top} s; (s, width, decoded, freezes) "
              f"{trace(history, lifted - 1000, history[-1]['at'], lifted)}")
    print(report)
    # (4.3-7.8 s, and 14.4 s once in CI, while a probe's result waited out the 1 s probe
    # timeout and its padding fell short of the target whenever fewer temporal layers were
    # forwarded than the layer's bitrate assumed.)
    assert took_up is not None and took_up <= UP_LIMIT, report


async def test_lowering_it_again_moves_the_viewer_down_within_3_s_without_a_freeze(
    scene: Scene, shaper: Shaper,
) -> None:
    limited = scene.limited
    before = await samples(limited)
    note = ""
    if before[-1]["width"] <= LOW:
        # Step 2 left it on the low layer: measure the move down from a new View in "v"
        # that starts unlimited (the SDK page reloaded at full speed) and reaches the top.
        note = (f" (a new View: the first stayed on {before[-1]['width']} after the lift)")
        await limited.evaluate("sdk.stop('v')")
        limited = scene.limited = await view(scene.limited_pages, scene.node)
        await wait_width(limited, TOP, TOP_WAIT, "a new unlimited View in 'v'")
        await asyncio.sleep(STEADY)  # playing, not just its first frames
        before = await samples(limited)
        # Seen under load: its estimate, still near the 1 Mb/s start, took it down to 640.
        assert before[-1]["width"] > LOW, f"the new View is on the low layer: {before[-3:]}"
    lowered = await now_ms(limited)
    await asyncio.to_thread(shaper.limit, LIMIT_KBIT)
    down = await wait_latest(limited, lowered, lambda s: s["width"] == LOW, DOWN_LIMIT + 12)
    await asyncio.sleep(2)  # decoding after the move is part of the freeze window
    history = await samples(limited)
    took = (down["at"] - lowered) / 1000 if down else None
    end = max(lowered + DOWN_LIMIT * 1000, down["at"] if down else history[-1]["at"]) + 2000
    figures = window_figures(history, lowered, end)
    report = (f"\nlowered to {LIMIT_KBIT} kbit/s from {before[-1]['width']}{note}: {LOW} after "
              f"{took} s; from the limit to 2 s after the move {figures}; (s, width, decoded, "
              f"freezes) {trace(history, lowered - 1000, end, lowered)}; {shaper.stats()}")
    print(report)
    assert took is not None and down is not None, f"never down to {LOW}: {report}"
    # (Slower than 3 s, or a freeze over 1 s, in 5 of 15 loaded runs until NACKs for the
    # layer left behind stopped being answered: they flooded the narrowed path.)
    assert took <= DOWN_LIMIT, report
    assert max(figures["longestGap"], figures["longestFreeze"]) <= FREEZE_LIMIT, report
    # ... and it stays there (a probe that left as a burst once read 1.5 Mb/s through the
    # 0.3 Mb/s link and took it back up to 1280 for half a second).
    assert window_figures(history, down["at"], end)["widths"] == [LOW], report
