#!/usr/bin/env python3
"""Bandwidth-estimate convergence after a step change in capacity (issue 17, "Measured").

Two senders face the same capacity schedule on a `tc tbf` bottleneck (default 1.5 Mb/s for
`--warmup` s, then 0.5 Mb/s for `--step` s, then 1.5 Mb/s for `--step` s), one after the other:

- hubbub: its downlink estimate (`Viewer.estimator.estimate_bps`, send side, from transport-cc)
  for an SDK View in Chromium whose downlink is shaped (tbf on the bridge end of its veth). The
  source is an SDK VP8 simulcast publisher (320x180 / 640x360 / 1280x720) on an unshaped link.
  hubbub runs in this process (uvicorn on the same loop), so the estimate is read directly.
- Chromium: the same publisher's own estimate, `availableOutgoingBitrate` of its selected
  candidate pair (getStats), with its uplink shaped the same way (tbf on eth0 in its namespace)
  and no viewer. Chromium fills whatever its estimate allows (3 layers ≈ 3.4 Mb/s at most).

The publisher's camera is a grainy y4m loop (`--noise`, see `write_y4m`): with Chromium's own
fake camera the layers need far less than the "high" capacity and neither estimate is tested.

Both samples run every `--sample-ms` (100). Per step: `converge_s` = time from the tbf change
until the estimate is within ±`--band` (20 %) of the new capacity and stays there `--hold` s
(2); `overshoot_pct` = highest estimate after it first reached the band, over the capacity;
`steady_ratio` = median estimate over the step's last 5 s ÷ capacity; `min_ratio` = lowest
estimate in the step ÷ capacity. Medians over `--runs`.

An estimator only learns what it sends (plus its probes): hubbub forwards one layer and probes
only toward a larger live layer, so the "high" capacity must stay below the top layer's rate
(+ audio) or hubbub's estimate would stop at what the top layer needs. `layers_bps` in the JSON
says what the publisher's layers were.

Needs root (namespaces, veths, a bridge, tc), Chromium and `npm ci` (the SDK). Namespaces are
`hubbub-bw<pid>-{p,v}`, bridge `hbbw<pid>br`; everything is removed at the end, also on errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import common  # noqa: E402
import httpx  # noqa: E402
import uvicorn  # noqa: E402
from playwright.async_api import Page  # noqa: E402
from tests.helpers.browser import PageFactory  # noqa: E402
from tests.helpers.netns import Host, VirtualNetwork, unavailable_reason  # noqa: E402
from tests.helpers.netns_browser import GatewayPages, NetnsBrowser  # noqa: E402
from tests.helpers.simulcast_page import SCALE  # noqa: E402

from hubbub.config import Config  # noqa: E402
from hubbub.control.app import create_app  # noqa: E402
from hubbub.control.node import Node  # noqa: E402
from hubbub.sfu.viewer import Viewer  # noqa: E402

ADMIN = "bench-bwe-convergence-admin-secret-0123456789"
STREAM = "bwe-sim"
SDK_FILE = common.REPO_ROOT / "node_modules" / "@millicast" / "sdk" / "dist" / "millicast.mjs"
CAMERA = {"width": {"exact": 1280}, "height": {"exact": 720}, "frameRate": 30}
TRACE_STEP = 0.5  # s between the points kept in the JSON traces (medians of the samples)

Json = dict[str, Any]
Trace = list[tuple[float, float]]  # (s since the run's t0, bit/s)

# Chromium 156 leaves the SDK's munged SIM encodings unscaled (all 1280x720): the publisher is
# scaled 1/4, 1/2, 1 with tests/helpers/simulcast_page.py's SCALE, as the e2e tests do.

# Every `ms`: wall-clock ms, the selected pair's availableOutgoingBitrate and bytesSent, and the
# encodings' frame widths and qualityLimitationReasons (what the publisher sends meanwhile).
SAMPLER_JS = """(ms) => {
    const pc = sdk.pc('p');
    window.bwe = [];
    if (window.bweTimer) clearInterval(window.bweTimer);
    window.bweTimer = setInterval(async () => {
        const at = Date.now();
        const stats = await pc.getStats();
        let pairId = null;
        stats.forEach((s) => {
            if (s.type === 'transport' && s.selectedCandidatePairId)
                pairId = s.selectedCandidatePairId;
        });
        const pair = pairId ? stats.get(pairId) : null;
        const layers = [];
        stats.forEach((s) => {
            if (s.type === 'outbound-rtp' && s.kind === 'video')
                layers.push([s.frameWidth || 0, s.qualityLimitationReason || '']);
        });
        window.bwe.push([at, pair ? (pair.availableOutgoingBitrate ?? null) : null,
                         pair ? pair.bytesSent : null, layers]);
    }, ms);
}"""
STOP_SAMPLER_JS = "() => { clearInterval(window.bweTimer); return window.bwe; }"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the bottleneck ------------------------------------------------------------------------------


class Shaper:
    """A tbf root qdisc on one device (in `netns`, or the root namespace): the bottleneck.

    The queue holds `latency_ms` at the current rate (tbf's `latency`, so the byte limit follows
    the rate as a router's buffer sized in time would); `burst_bytes` is the bucket."""

    def __init__(self, dev: str, netns: str | None, burst_bytes: int, latency_ms: float) -> None:
        self.dev = dev
        self.netns = netns
        self.burst = burst_bytes
        self.latency = latency_ms
        self.active = False

    def _tc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        ns = ["-n", self.netns] if self.netns else []
        proc = subprocess.run(["tc", *ns, *args], capture_output=True, text=True, timeout=10)
        if check and proc.returncode != 0:
            raise RuntimeError(f"tc {' '.join(args)}: {proc.stderr.strip()}")
        return proc

    def set(self, bps: float) -> None:
        verb = "change" if self.active else "add"
        self._tc("qdisc", verb, "dev", self.dev, "root", "tbf", "rate", f"{int(bps)}bit",
                 "burst", str(self.burst), "latency", f"{self.latency:g}ms")
        self.active = True

    def stats(self) -> Json:
        """bytes / packets / drops / overlimits the qdisc counted so far."""
        out = self._tc("-s", "-j", "qdisc", "show", "dev", self.dev, check=False).stdout
        with contextlib.suppress(ValueError):
            for q in json.loads(out or "[]"):
                if q.get("kind") == "tbf":
                    return {k: q.get(k) for k in ("bytes", "packets", "drops", "overlimits")}
        return {}

    def clear(self) -> None:
        if self.active:
            self._tc("qdisc", "del", "dev", self.dev, "root", check=False)
            self.active = False


async def run_schedule(shaper: Shaper, schedule: Sequence[tuple[float, float]],
                       t0: float) -> list[Json]:
    """Set each (capacity, seconds) of `schedule` at its time after `t0` (time.time());
    returns when each was set and the qdisc's counters at each change."""
    marks: list[Json] = []
    at = t0
    for bps, seconds in schedule:
        await asyncio.sleep(max(0.0, at - time.time()))
        shaper.set(bps)
        marks.append({"t": round(time.time() - t0, 3), "bps": bps, "qdisc": shaper.stats()})
        at += seconds
    await asyncio.sleep(max(0.0, at - time.time()))
    marks.append({"t": round(time.time() - t0, 3), "bps": None, "qdisc": shaper.stats()})
    return marks


# --- hubbub in this process ----------------------------------------------------------------------


def free_port(host: str, kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def hubbub_node(host: str, data_dir: str,
                      probe_duration: float | None) -> AsyncIterator[tuple[Node, str]]:
    """A node on the bridge address (reachable from every namespace); yields (node, http URL).
    `probe_duration`: BweConfig.probe_duration instead of its default (None: unchanged)."""
    config = Config(log_level="warning")
    config.control.host = host
    config.control.http_port = free_port(host, socket.SOCK_STREAM)
    config.media.host = host
    config.media.port = free_port(host, socket.SOCK_DGRAM)
    config.media.tcp_port = -1  # UDP only: nothing here needs ICE-TCP
    config.auth.data_dir = data_dir
    config.auth.api_secret = ADMIN
    config.auth.open_viewing = ["bwe-*"]
    node = Node(config)
    if probe_duration is not None:  # a what-if, before any Stream copies the config
        sfu = node.streams.config
        node.streams.config = dataclasses.replace(
            sfu, bwe=dataclasses.replace(sfu.bwe, probe_duration=probe_duration))
    server = uvicorn.Server(uvicorn.Config(
        create_app(node), host=host, port=config.control.http_port, log_level="warning",
        lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("uvicorn exited at start")
            await asyncio.sleep(0.05)
        yield node, f"http://{host}:{config.control.http_port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


def the_viewer(node: Node) -> Viewer | None:
    for stream in node.streams:
        for viewer in stream.viewers:
            if not viewer.closed:
                return viewer
    return None


def layer_rates(node: Node) -> list[Json]:
    """The simulcast layers hubbub measures on the published video: width, bit/s."""
    for stream in node.streams:
        for source in stream.sources.values():
            track = source.track("video")
            if track is not None and track.simulcast:
                return [{"width": t.width, "bps": t.bitrate}
                        for t in sorted(track.layers, key=lambda x: x.width)]
    return []


async def sample_hubbub(node: Node, t0: float, period: float,
                        until: float) -> tuple[list[Json], list[Json]]:
    """Every `period` until `until` (time.time()): the viewer's estimate and what it gets;
    also each probe result the estimator reached (as it judged it)."""
    out: list[Json] = []
    probes: list[Json] = []
    next_at = time.time()
    while next_at < until:
        await asyncio.sleep(max(0.0, next_at - time.time()))
        next_at += period
        viewer = the_viewer(node)
        est = viewer.estimator if viewer is not None else None
        if viewer is None or est is None:
            continue
        down = viewer.main_video
        track = down.track if down is not None else None
        out.append({"t": round(time.time() - t0, 3), "est": round(est.estimate_bps),
                    "acked": round(est.acked_bps or 0), "queue_ms": round(
                        est.standing_queue * 1000, 1), "width": track.width if track else 0,
                    "layer_bps": track.bitrate if track else 0,
                    "delay_bps": round(est.rate.bitrate), "loss_bps": round(est.loss.bitrate),
                    "state": est.state.name[0]})
        probe = est.last_probe
        if probe is not None and (not probes or probes[-1]["id"] != probe.cluster_id):
            probes.append({"t": out[-1]["t"], "id": probe.cluster_id,
                           "target_bps": round(probe.target_bps),
                           "send_bps": round(probe.send_bps),
                           "receive_bps": round(probe.receive_bps),
                           "received_fraction": round(probe.received_fraction, 3),
                           "delivered": probe.delivered})
    return out, probes


# --- a camera that needs the bits -----------------------------------------------------------------


def write_y4m(path: Path, noise: float, frames: int = 20, seed: int = 1) -> None:
    """A 1280x720 30 fps loop for Chromium's fake camera (`--use-file-for-fake-video-capture`):
    a fixed blocky texture plus fresh Gaussian luma noise of σ `noise` in every frame, like a
    grainy camera. Chromium's own fake camera is so simple that VP8 sends its 1280x720 layer at
    ~0.7 Mb/s, far below the 2.5 Mb/s it may use; with grain the encoders use their budget, so
    both senders have more to send than the "high" capacity."""
    import numpy as np

    w, h = 1280, 720
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(40, 216, (h // 16, w // 16)), np.ones((16, 16))).astype(np.int16)
    chroma = np.kron(rng.integers(96, 160, (h // 16, w // 16)),
                     np.ones((8, 8))).astype(np.uint8)  # 4:2:0: half size, same blocks
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            luma = base + rng.normal(0.0, noise, (h, w)).astype(np.int16)
            f.write(b"FRAME\n")
            f.write(np.clip(luma, 0, 255).astype(np.uint8).tobytes())
            f.write(chroma.tobytes())
            f.write(chroma.tobytes())


# --- the SDK pages -------------------------------------------------------------------------------


async def harness(factory: PageFactory, http_url: str) -> Page:
    page = await factory("harness.html")
    await page.wait_for_function("window.sdk && window.sdk.ready", timeout=15000)
    await page.evaluate("(url) => sdk.setEndpoint(url)", http_url)
    return page


async def wait_js(page: Page, expression: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await page.evaluate(expression):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not true within {timeout} s: {expression}")
        await asyncio.sleep(0.2)


async def start_publisher(factory: PageFactory, http_url: str) -> Page:
    # Async: the server answering it runs on this loop.
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        reply = await client.post(f"{http_url}/api/publish_token",
                                  headers={"Authorization": f"Bearer {ADMIN}"},
                                  json={"streams": [{"streamName": "bwe-*"}]})
    reply.raise_for_status()
    token = reply.json()["data"]["token"]
    page = await harness(factory, http_url)
    result = await page.evaluate("(o) => sdk.publish('p', o)", {
        "token": token, "streamName": STREAM, "codec": "vp8", "simulcast": True,
        "video": CAMERA})
    if not result["ok"]:
        raise RuntimeError(f"publish failed: {result}")
    await wait_js(page, "() => sdk.state('p') === 'connected'", 20)
    scaled = await page.evaluate(SCALE)
    if scaled != "ok":
        raise RuntimeError(f"setParameters: {scaled}")
    return page


# --- one side of one run -------------------------------------------------------------------------


def schedule_of(args: Any) -> list[tuple[float, float]]:
    return [(args.high * 1e6, args.warmup), (args.low * 1e6, args.step),
            (args.high * 1e6, args.step)]


async def hubbub_side(args: Any, node: Node, http_url: str, browser: NetnsBrowser,
                      shaper: Shaper, pages_url: str, run: int) -> Json:
    schedule = schedule_of(args)
    shaper.set(schedule[0][0])  # the viewer joins behind the bottleneck
    factory = browser.page_factory(pages_url, name=f"bwe-viewer-{run}")
    try:
        page = await harness(factory, http_url)
        result = await page.evaluate("(o) => sdk.view('v', o)",
                                     {"streamName": STREAM, "subscriberToken": None})
        if not result["ok"]:
            raise RuntimeError(f"view failed: {result}")
        # t0: the estimator exists and has feedback (before that it is the 1 Mb/s start rate).
        deadline = time.monotonic() + 30
        while True:
            viewer = the_viewer(node)
            if viewer is not None and viewer.estimator is not None \
                    and viewer.estimator.has_estimate:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the viewer's estimator got no transport-cc feedback")
            await asyncio.sleep(0.05)
        t0 = time.time()
        total = sum(s for _, s in schedule)
        sampler = asyncio.create_task(
            sample_hubbub(node, t0, args.sample_ms / 1000, t0 + total))
        marks = await run_schedule(shaper, schedule, t0)
        samples, probes = await sampler
        layers = layer_rates(node)
        await page.evaluate("() => sdk.stop('v')")
    finally:
        await factory.close()
        shaper.clear()
    return {"marks": marks, "samples": samples, "layers_bps": layers, "probes": probes}


async def chromium_side(args: Any, publisher: Page, shaper: Shaper, node: Node) -> Json:
    schedule = schedule_of(args)
    await publisher.evaluate(SAMPLER_JS, args.sample_ms)
    t0 = time.time()
    try:
        marks = await run_schedule(shaper, schedule, t0)
    finally:
        shaper.clear()
    raw: list[list[Any]] = await publisher.evaluate(STOP_SAMPLER_JS)
    samples: list[Json] = []
    prev: list[Any] | None = None
    for at, avail, sent, layers in raw:
        t = at / 1000 - t0
        if avail is None or t < 0:
            continue
        # What the publisher actually sent over the last sample period (bit/s).
        rate = 0.0
        if prev is not None and sent is not None and prev[2] is not None and at > prev[0]:
            rate = (sent - prev[2]) * 8000 / (at - prev[0])
        prev = [at, avail, sent]
        samples.append({"t": round(t, 3), "est": round(avail), "sent_bps": round(rate),
                        "widths": [w for w, _ in layers],
                        "limited": sorted({r for _, r in layers if r and r != "none"})})
    return {"marks": marks, "samples": samples, "layers_bps": layer_rates(node)}


# --- figures -------------------------------------------------------------------------------------


def step_figures(trace: Trace, start: float, end: float, capacity: float, band: float,
                 hold: float, sent: Trace) -> Json:
    """Convergence of `trace` to `capacity` over [start, end) (see the module docstring).
    `rate_before_bps`: median of `sent` (what got through) over the 5 s before the step; a
    "down" step below that rate is no test of the estimator."""
    points = [(t, v) for t, v in trace if start <= t < end]
    before = [v for t, v in sent if start - 5.0 <= t < start]
    lo, hi = (1 - band) * capacity, (1 + band) * capacity
    inside = [lo <= v <= hi for _, v in points]
    converge: float | None = None
    for i, (t, _) in enumerate(points):
        if t + hold > end:
            break
        window = [ok for (u, _), ok in zip(points[i:], inside[i:], strict=True) if u <= t + hold]
        if window and all(window):
            converge = t - start
            break
    enter = next((t for (t, _), ok in zip(points, inside, strict=True) if ok), None)
    after = [v for t, v in points if enter is not None and t >= enter]
    tail = [v for t, v in points if t >= end - 5.0]
    in_band = None
    if converge is not None:
        rest = [ok for (t, _), ok in zip(points, inside, strict=True) if t >= start + converge]
        in_band = round(sum(rest) / len(rest), 3)
    return {
        "capacity_bps": capacity,
        "converge_s": None if converge is None else round(converge, 2),
        "first_in_band_s": None if enter is None else round(enter - start, 2),
        "overshoot_pct": round((max(after) / capacity - 1) * 100, 1) if after else None,
        "undershoot_pct": round((min(after) / capacity - 1) * 100, 1) if after else None,
        "steady_ratio": round(statistics.median(tail) / capacity, 3) if tail else None,
        # Lowest over the whole step, band or not: how deep a drop undershoots.
        "min_ratio": round(min(v for _, v in points) / capacity, 3) if points else None,
        "in_band_after_converge": in_band,
        "rate_before_bps": round(statistics.median(before)) if before else None,
        "samples": len(points),
    }


def side_figures(side: Json, args: Any) -> Json:
    marks = side["marks"]
    trace = [(s["t"], float(s["est"])) for s in side["samples"]]
    rate = "acked" if "acked" in side["samples"][0] else "sent_bps"
    sent = [(s["t"], float(s[rate])) for s in side["samples"]]
    names = ["initial", "down", "up"]
    return {name: step_figures(trace, marks[i]["t"], marks[i + 1]["t"], marks[i]["bps"],
                               args.band, args.hold, sent)
            for i, name in enumerate(names)}


def downsample(samples: list[Json], keys: Sequence[str]) -> list[list[float]]:
    """[t, median of each key] per TRACE_STEP bucket: the committed trace stays small."""
    buckets: dict[int, list[Json]] = {}
    for s in samples:
        buckets.setdefault(int(s["t"] // TRACE_STEP), []).append(s)
    return [[round(b * TRACE_STEP, 1), *[round(statistics.median(x[k] for x in got))
                                         for k in keys]]
            for b, got in sorted(buckets.items())]


def medians(runs: list[Json], side: str) -> Json:
    out: Json = {}
    for step in ("initial", "down", "up"):
        figures = [r[side]["figures"][step] for r in runs]
        entry: Json = {"capacity_bps": figures[0]["capacity_bps"]}
        # A run that never converged counts as slower than any that did: the median is None
        # ("not within the step") when half or more of the runs did not converge.
        times = sorted(math.inf if f["converge_s"] is None else f["converge_s"]
                       for f in figures)
        mid = statistics.median(times)
        entry["converge_s"] = None if math.isinf(mid) else round(mid, 3)
        entry["converged_runs"] = f"{sum(not math.isinf(t) for t in times)}/{len(times)}"
        entry["converge_s_runs"] = [f["converge_s"] for f in figures]
        for key in ("overshoot_pct", "undershoot_pct", "steady_ratio", "min_ratio",
                    "rate_before_bps"):
            values = [f[key] for f in figures if f[key] is not None]
            entry[key] = round(statistics.median(values), 3) if values else None
            entry[f"{key}_runs"] = [f[key] for f in figures]
        out[step] = entry
    return out


# --- main ----------------------------------------------------------------------------------------


def source_note() -> Json:
    """The commit hubbub was imported from, and what under src/ differed from it (hubbub runs
    from the working tree, which other engineers edit while benches run)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=common.REPO_ROOT).stdout.strip()

    return {"git": git("rev-parse", "--short", "HEAD"),
            "uncommitted_src": git("status", "--short", "src").splitlines()}


def machine_note(load_at_start: Sequence[float], source: Json) -> Json:
    return {"cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in load_at_start],
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
            "kernel": platform.release(), "python": platform.python_version(),
            "chromium": subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True,
                                       text=True).stdout.strip(),
            **source}


async def bench(args: Any) -> Json:
    load_at_start = os.getloadavg()
    source = source_note()  # now: hubbub's modules are imported already
    tag = f"bw{os.getpid() % 100000}"
    net = VirtualNetwork(["p", "v"], tag=tag)
    shapers: list[Shaper] = []
    browsers: list[NetnsBrowser] = []
    pages: GatewayPages | None = None
    runs: list[Json] = []
    try:
        net.up()
        gateway = net.gateway
        host_p, host_v = net.hosts["p"], net.hosts["v"]
        # Viewer downlink: the bridge end of its veth sends towards it. Publisher uplink:
        # eth0 inside its namespace sends towards the bridge. Same tbf settings on both.
        down = Shaper(host_v.veth, None, args.burst, args.queue_ms)
        up = Shaper("eth0", host_p.netns, args.burst, args.queue_ms)
        shapers += [down, up]
        pages = GatewayPages(gateway, common.REPO_ROOT)
        pages.start()
        sdk_url = pages.url + "/tests/e2e/sdk"
        with tempfile.TemporaryDirectory(prefix="hubbub-bwe-") as data_dir:
            async with hubbub_node(gateway, data_dir, args.probe_duration) as (node, http_url):
                log(f"hubbub on {http_url}; namespaces {host_p.netns}, {host_v.netns}")
                camera: list[str] = []
                if args.noise > 0:
                    y4m = Path(data_dir) / "grain.y4m"
                    write_y4m(y4m, args.noise)
                    camera = [f"--use-file-for-fake-video-capture={y4m}"]
                pub_browser = await start_browser(host_p, gateway, pages.url, "bwe-publisher",
                                                  camera)
                browsers.append(pub_browser)
                view_browser = await start_browser(host_v, gateway, pages.url, "bwe-viewer")
                browsers.append(view_browser)
                factory = pub_browser.page_factory(sdk_url, name="bwe-publisher")
                try:
                    publisher = await start_publisher(factory, http_url)
                    await settle_layers(node)
                    log(f"publisher layers {layer_rates(node)}")
                    for run in range(args.runs):
                        entry: Json = {"run": run}
                        for side in args.sides:
                            log(f"run {run + 1}/{args.runs}: {side} side")
                            if side == "hubbub":
                                got = await hubbub_side(args, node, http_url, view_browser, down,
                                                        sdk_url, run)
                            else:
                                got = await chromium_side(args, publisher, up, node)
                            got["figures"] = side_figures(got, args)
                            log(f"  {json.dumps(got['figures'])}")
                            entry[side] = got
                        runs.append(entry)
                finally:
                    await factory.close()
    finally:
        for browser in browsers:
            await browser.close()
        for shaper in shapers:
            shaper.clear()
        if pages is not None:
            pages.stop()
        leftovers = net.down()
        if leftovers:
            log(f"could not remove {leftovers}")
    return summarize(runs, args, machine_note(load_at_start, source))


async def start_browser(host: Host, gateway: str, origin: str, name: str,
                        extra_flags: Sequence[str] = ()) -> NetnsBrowser:
    browser = NetnsBrowser(host, gateway, secure_origins=[origin], name=name)
    browser.flags.extend(extra_flags)
    return await browser.start()


async def settle_layers(node: Node, timeout: float = 30.0) -> None:
    """Until hubbub measures a bitrate on all three layers (the top one climbs last)."""
    deadline = time.monotonic() + timeout
    while True:
        rates = layer_rates(node)
        if len(rates) == 3 and all(r["bps"] > 0 for r in rates):
            await asyncio.sleep(5)  # Chromium's encoders ramp up over a few seconds
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"simulcast layers not all live: {rates}")
        await asyncio.sleep(0.5)


def summarize(runs: list[Json], args: Any, machine: Json) -> Json:
    keys = {"hubbub": ("est", "acked", "width", "queue_ms", "delay_bps", "loss_bps"),
            "chromium": ("est", "sent_bps")}
    traces = []
    for r in runs:
        entry: Json = {"run": r["run"]}
        for side in args.sides:
            got = r[side]
            entry[side] = {"marks": got["marks"], "layers_bps": got["layers_bps"],
                           "figures": got["figures"],
                           "trace_columns": ["t", *keys[side]],
                           "trace": downsample(got["samples"], keys[side])}
            if side == "hubbub":
                entry[side]["probes"] = got["probes"]
            if side == "chromium":
                entry[side]["quality_limited"] = sorted(
                    {x for s in got["samples"] for x in s["limited"]})
        traces.append(entry)
    return {"figures": {side: medians(runs, side) for side in args.sides},
            "runs": traces, "machine": machine}


def main() -> int:
    p = common.parser(__doc__.splitlines()[0], "bwe_convergence.json", server=False)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--high", type=float, default=1.5, help="high capacity, Mb/s")
    p.add_argument("--low", type=float, default=0.5, help="low capacity, Mb/s")
    p.add_argument("--warmup", type=float, default=20.0, help="s at --high first")
    p.add_argument("--step", type=float, default=20.0, help="s at --low, then at --high")
    p.add_argument("--sides", default="hubbub,chromium",
                   help="whose estimate to measure: hubbub, chromium or both")
    p.add_argument("--noise", type=float, default=6.0,
                   help="σ of the camera's grain (0: Chromium's own fake camera)")
    p.add_argument("--probe-duration", type=float, default=None,
                   help="what-if: hubbub's BweConfig.probe_duration (s) instead of its default")
    p.add_argument("--sample-ms", type=int, default=100)
    p.add_argument("--band", type=float, default=0.2, help="converged: within this fraction")
    p.add_argument("--hold", type=float, default=2.0, help="... for this many s")
    p.add_argument("--burst", type=int, default=3000, help="tbf bucket, bytes")
    p.add_argument("--queue-ms", type=float, default=200.0,
                   help="tbf queue (its `latency`): this many ms at the current rate")
    args = p.parse_args()
    args.sides = [s for s in args.sides.split(",") if s]
    if not set(args.sides) <= {"hubbub", "chromium"}:
        p.error("--sides takes hubbub and/or chromium")
    reason = unavailable_reason()
    if reason is not None:
        print(f"bwe_convergence: {reason}", file=sys.stderr)
        return 2
    if not SDK_FILE.is_file():
        print(f"bwe_convergence: {SDK_FILE} missing: run `npm ci`", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(bench(args))
    params = {k: v for k, v in vars(args).items() if k not in ("output", "quiet")}
    common.write_result(args.output, params, result)
    print(json.dumps(result["figures"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
