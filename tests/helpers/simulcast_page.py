"""An SDK simulcast publisher and what an SDK View decodes, in Chromium (issue 17).

Shared by tests/e2e/test_simulcast_chromium.py and test_simulcast_bandwidth_chromium.py. Pages
are tests/e2e/sdk/harness.html: the publisher's client is `p`, the viewer's `v`.

Chromium 156 leaves the SDK's munged SIM encodings unscaled (all three 1280x720), so
`scaled_sdk_publisher` scales them 1/4, 1/2, 1 with `RTCRtpSender.setParameters`, as an app
would. `SAMPLER` records the viewer's inbound-rtp every 200 ms (or as asked) in
`window.samples` (page clock, ms): `samples`, `wait_width` and `longest_freeze` read it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from playwright.async_api import Page

from tests.e2e.test_millicast_sdk import events, sdk_publish
from tests.helpers.browser import PageFactory
from tests.helpers.server import RunningServer

Json = dict[str, Any]
CAMERA = {"width": {"exact": 1280}, "height": {"exact": 720}, "frameRate": 30}


async def sent_layers(page: Page, count: int, timeout: float = 30, h264: bool = False
                      ) -> list[Json]:
    """The publisher's outbound-rtp video encodings once `count` of them send frames."""
    deadline = time.monotonic() + timeout
    last: list[Json] = []
    while True:
        stats: dict[str, Json] = await page.evaluate("sdk.outbound('p')")
        video = next((s for s in stats.values() if s["kind"] == "video"), None)
        last = video["layers"] if video else []
        live = [x for x in last if x.get("frameWidth") and x.get("framesEncoded", 0) > 0]
        if len(live) >= count:
            return sorted(live, key=lambda x: x["frameWidth"])
        if time.monotonic() > deadline:
            if h264 and all(x.get("qualityLimitationReason") == "bandwidth" for x in last):
                pytest.xfail(f"Chromium's send-side estimate stayed too low for the 1280x720 "
                             f"H.264 layer: {last}")
            raise AssertionError(f"{len(live)} of {count} encodings sending: {last}")
        await asyncio.sleep(0.5)


ENCODINGS = """() => sdk.pc('p').getSenders().find((s) => s.track && s.track.kind === 'video')
    .getParameters().encodings"""
SCALE = """async () => {
    const sender = sdk.pc('p').getSenders().find((s) => s.track && s.track.kind === 'video');
    const params = sender.getParameters();
    const n = params.encodings.length;
    params.encodings.forEach((e, i) => { e.scaleResolutionDownBy = 2 ** (n - 1 - i); });
    try { await sender.setParameters(params); return 'ok'; } catch (e) { return String(e); }
}"""

SAMPLER = """(arg) => {
    const [mid, every] = Array.isArray(arg) ? arg : [arg, 200];  // mid or [mid, ms]
    const t = sdk.pc('v').getTransceivers().find((x) => x.mid === mid);
    window.samples = [];
    window.sampler = setInterval(async () => {
        const at = performance.now();
        (await t.receiver.getStats()).forEach((s) => {
            if (s.type !== 'inbound-rtp') return;
            samples.push({at, width: s.frameWidth || 0, height: s.frameHeight || 0,
                          decoded: s.framesDecoded || 0, freezes: s.freezeCount || 0,
                          frozen: s.totalFreezesDuration || 0, plis: s.pliCount || 0,
                          keys: s.keyFramesDecoded || 0, dropped: s.framesDropped || 0,
                          received: s.framesReceived || 0});
        });
    }, every);
}"""


async def samples(page: Page) -> list[Json]:
    got: list[Json] = await page.evaluate("window.samples")
    return got


async def wait_width(page: Page, width: int, timeout: float, what: str) -> Json:
    """The first sample at `width` that is still the latest one (not a passing frame)."""
    deadline = time.monotonic() + timeout
    while True:
        history = await samples(page)
        if history and history[-1]["width"] == width:
            return history[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: frameWidth never {width}: {history[-3:]}; "
                                 f"layers {(await events(page, 'layers'))[-2:]}")
        await asyncio.sleep(0.2)


def longest_freeze(history: list[Json], start: float, end: float) -> float:
    """Longest time (s) in [start, end] (page ms) over which framesDecoded did not grow."""
    window = [s for s in history if start <= s["at"] <= end]
    changes = [window[0]["at"]] + [b["at"] for a, b in zip(window, window[1:], strict=False)
                                   if b["decoded"] > a["decoded"]] + [window[-1]["at"]]
    return float(max(b - a for a, b in zip(changes, changes[1:], strict=False))) / 1000


def sim_group(sdp: str) -> list[int]:
    """The SSRCs of the offer's `a=ssrc-group:SIM` (lowest layer first): encodingIds 0, 1, 2."""
    line = next(x for x in sdp.splitlines() if x.startswith("a=ssrc-group:SIM "))
    return [int(x) for x in line.split()[1:]]


async def scaled_sdk_publisher(pages: PageFactory, srv: RunningServer, token: str, stream: str,
                               codec: str) -> tuple[Page, list[Json], list[Json]]:
    """An SDK Publish with `simulcast: true` sending 320x180, 640x360 and 1280x720 as
    encodingIds 0, 1, 2; also the encodings as the SDK's munging left them, and what is sent."""
    publisher = await sdk_publish(pages, srv, token, stream, codec=codec, simulcast=True,
                                  video=CAMERA)
    ssrcs = sim_group(await publisher.evaluate("sdk.localSdp('p')"))
    assert len(ssrcs) == 3
    # Chromium 156 gives the munged SIM encodings no scaling (the first 1, the others unset):
    # all three would be 1280x720. Scale them 1/4, 1/2, 1 as an app would.
    munged: list[Json] = await publisher.evaluate(ENCODINGS)
    assert await publisher.evaluate(SCALE) == "ok"
    sending = await sent_layers(publisher, 3, h264=codec == "h264")
    width_of = {str(ssrcs.index(x["ssrc"])): x["frameWidth"] for x in sending}
    assert width_of == {"0": 320, "1": 640, "2": 1280}, sending
    return publisher, munged, sending
