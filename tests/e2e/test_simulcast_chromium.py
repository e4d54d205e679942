"""Simulcast through hubbub with Chromium publishers (issue 17).

The official `@millicast/sdk` publishes with `simulcast: true`: it munges `a=ssrc-group:SIM`
(three SSRCs) into Chromium's offer, and Chromium then sends three VP8 (or H.264) encodings of
its 1280x720 fake camera at 1/4, 1/2 and full size. An SDK View in Chromium must get the top
layer, `select` must move it to the smallest and back to automatic without a freeze, and the
`layers` events it asked for must describe the live encodings with the ids `select` takes.
A plain page publishes RID simulcast (`sendEncodings` q/h/f, VP8 and H.264) over WHIP; an
aiortc viewer pinned to `h` decodes 640x360, then `select`s `q`.

Chromium 156 leaves the SDK's munged SIM encodings unscaled (all three 1280x720), so the
publisher page scales them 1/4, 1/2, 1 with `RTCRtpSender.setParameters`. H.264 (layers sized
from their SPS): pins are checked, and automatic must come back to the top layer. (Both
H.264 problems seen earlier, a stall after a switch and the top layer kept off, went away
once RTX payload padding was no longer forwarded as media.)
Pages are served from the repository root (tests/e2e/test_millicast_sdk.py's fixtures).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page
from tests.e2e.test_millicast_sdk import (
    ADMIN,
    SDK_FILE,
    create_token,
    events,
    sdk_view,
)
from tests.e2e.test_millicast_sdk import pages as pages  # the fixtures, re-exported
from tests.e2e.test_millicast_sdk import repo_pages as repo_pages
from tests.helpers.browser import PageFactory, StaticServer, wait_for_state, wait_until
from tests.helpers.server import RunningServer
from tests.helpers.simulcast_page import (
    SAMPLER,
    longest_freeze,
    samples,
    scaled_sdk_publisher,
    wait_width,
)

from hubbub.client.director import connect_info
from hubbub.client.media import VideoCounter
from hubbub.client.viewer import Viewer

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

Json = dict[str, Any]
SWITCH_LIMIT = 5.0  # s: a select reaches the viewer's decoder within this
AUTO_LIMIT = 10.0  # s: back in automatic, the viewer's estimate (probes) climbs to the top
FREEZE_LIMIT = 1.0  # s: longest acceptable stretch without a decoded frame


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    if not SDK_FILE.is_file():
        pytest.fail(f"{SDK_FILE} missing: run `npm ci` (scripts/test does)", pytrace=False)
    args = ["--api-secret", ADMIN, "--open-viewing", "open-*"]
    with RunningServer(name="simulcast-chromium", allow_any_stream=False, extra_args=args) as s:
        yield s


@pytest.fixture(scope="module")
def publish_token(srv: RunningServer) -> str:
    return str(create_token(srv, "publish", pattern="open-*")["token"])


# --- helpers ------------------------------------------------------------------------------


async def switch(page: Page, layer: Json, width: int, timeout: float = SWITCH_LIMIT + 3
                 ) -> tuple[float, float]:
    """`select(layer)`; returns (when it was sent, how long until frameWidth was `width`),
    page clock in ms / s."""
    sent: Json = await page.evaluate("""async (layer) => {
        const at = performance.now();
        const result = await sdk.select('v', layer);
        return {at, result};
    }""", layer)
    assert sent["result"] == {"ok": True, "value": None}, sent
    deadline = time.monotonic() + timeout
    while True:
        after = [s for s in await samples(page) if s["at"] > sent["at"]]
        hit = next((s for s in after if s["width"] == width), None)
        if hit is not None:
            return sent["at"], (hit["at"] - sent["at"]) / 1000
        if time.monotonic() > deadline:
            raise AssertionError(f"select {layer}: frameWidth never {width}: {after[-5:]}")
        await asyncio.sleep(0.2)


ACTIVE_KEYS = {"id", "simulcastIdx", "bitrate", "width", "height", "layers"}
FLAT_KEYS = {"encodingId", "simulcastIdx", "spatialLayerId", "temporalLayerId", "bitrate"}


def check_layers_event(data: Json, mid: str, sizes: bool = True) -> Json:
    """PROTOCOL.md `layers`, exactly: returns the mid's entry. `sizes`: active entries carry
    width and height (from VP8 keyframes and H.264 SPSs)."""
    assert set(data) == {"medias"}, data
    assert set(data["medias"]) == {mid}, data
    media = data["medias"][mid]
    assert set(media) == {"active", "inactive", "layers"}, media
    for entry in media["active"]:
        assert set(entry) == (ACTIVE_KEYS if sizes else ACTIVE_KEYS - {"width", "height"}), entry
        assert isinstance(entry["id"], str) and isinstance(entry["simulcastIdx"], int), entry
        assert isinstance(entry["bitrate"], int) and entry["bitrate"] >= 0, entry
        if sizes:
            assert isinstance(entry["width"], int) and isinstance(entry["height"], int), entry
        assert entry["layers"] == [], entry
    for entry in media["inactive"]:
        assert set(entry) == {"id", "simulcastIdx"}, entry
    assert len(media["layers"]) == len(media["active"]), media
    for flat, entry in zip(media["layers"], media["active"], strict=True):
        assert set(flat) == FLAT_KEYS, flat
        assert (flat["encodingId"], flat["simulcastIdx"], flat["bitrate"]) == (
            entry["id"], entry["simulcastIdx"], entry["bitrate"]), (flat, entry)
        assert (flat["spatialLayerId"], flat["temporalLayerId"]) == (255, 255), flat
    ids = [e["id"] for e in media["active"]] + [e["id"] for e in media["inactive"]]
    assert len(set(ids)) == len(ids), media
    return dict(media)


async def decode_rate(page: Page, seconds: float) -> float:
    """Frames decoded per second over the last `seconds` (waits that long)."""
    await asyncio.sleep(seconds)
    history = await samples(page)
    window = [x for x in history if x["at"] >= history[-1]["at"] - seconds * 1000]
    span = (window[-1]["at"] - window[0]["at"]) / 1000
    return (window[-1]["decoded"] - window[0]["decoded"]) / span if span > 0 else 0.0


async def live_layers(page: Page, count: int, timeout: float = 15) -> Json:
    """The first `layers` event whose `count` active layers all have a measured bitrate."""
    deadline = time.monotonic() + timeout
    while True:
        for event in await events(page, "layers"):
            media = next(iter(event["data"]["medias"].values()))
            if len(media["active"]) >= count and all(e["bitrate"] > 0 for e in media["active"]):
                return dict(event["data"])
        if time.monotonic() > deadline:
            raise AssertionError(f"no layers event with {count} measured layers: "
                                 f"{(await events(page, 'layers'))[-3:]}")
        await asyncio.sleep(0.3)


# --- the SDK: SSRC-group simulcast --------------------------------------------------------


async def test_sdk_vp8_simulcast_view_gets_the_top_layer_and_select_moves_it(
    srv: RunningServer, pages: PageFactory, publish_token: str
) -> None:
    codec = "vp8"
    stream = f"open-sim-{codec}"
    _, munged, sending = await scaled_sdk_publisher(pages, srv, publish_token, stream, codec)
    # The viewer starts on the top layer (automatic: no bandwidth limit on loopback).
    viewer = await sdk_view(pages, srv, None, stream)
    await wait_until(viewer, "() => sdk.tracks('v').some((t) => t.kind === 'video')", timeout=15)
    started = time.monotonic()
    await viewer.evaluate(SAMPLER, "0")
    data = await live_layers(viewer, 3)
    media = check_layers_event(data, "0")
    for event in await events(viewer, "layers"):
        check_layers_event(event["data"], "0")
    assert sorted(e["id"] for e in media["active"]) == ["0", "1", "2"], media
    assert [e["simulcastIdx"] for e in media["active"]] == [0, 1, 2], media
    # Sizes from the VP8 keyframes, ranked by them, lowest first.
    assert [(e["id"], e["width"], e["height"]) for e in media["active"]] == [
        ("0", 320, 180), ("1", 640, 360), ("2", 1280, 720)], media
    assert all(e["bitrate"] > 0 for e in media["active"]), media
    first = await wait_width(viewer, 1280, 15, f"{codec}: the top layer")  # estimate climbs
    took_top = time.monotonic() - started

    # select the smallest layer, then automatic again: no freeze on the way.
    at_low, took_low = await switch(viewer, {"encodingId": "0"}, 320)
    # Chromium encodes each VP8 layer L1T3: capping to TID 0 leaves a quarter of the frames.
    await asyncio.sleep(1.5)
    all_fps = await decode_rate(viewer, 2.0)
    assert (await viewer.evaluate("async (l) => (await sdk.select('v', l)).ok",
                                  {"encodingId": "0", "temporalLayerId": 0}))
    await asyncio.sleep(1.0)
    tl0_fps = await decode_rate(viewer, 2.0)
    assert (await viewer.evaluate("async (l) => (await sdk.select('v', l)).ok",
                                  {"encodingId": "0"}))
    # Chromium marks few frames layer-sync: the raise may wait 1 s, then for a keyframe.
    await asyncio.sleep(2.5)
    back_fps = await decode_rate(viewer, 2.0)
    assert 2 <= tl0_fps <= 0.5 * all_fps and back_fps >= 0.8 * all_fps, (
        f"decoded frames/s: all layers {all_fps:.1f}, TID 0 {tl0_fps:.1f}, "
        f"all again {back_fps:.1f}")
    # (Slower than AUTO_LIMIT in 2 of 6 loaded CI runs until a probe that left late, on a
    # busy server, stopped counting as a failed path: sfu/bwe ProbeResult.congested.)
    at_auto, took_auto = await switch(viewer, {}, 1280, timeout=AUTO_LIMIT + 2)
    await asyncio.sleep(1.5)
    history = await samples(viewer)
    # The pinned switch must not freeze. The climb back in automatic passes through what the
    # viewer's estimate allows on the way (the publisher's middle layer sometimes runs at a
    # few frames a second here): its longest gap is reported, not bounded (issue 17's
    # tc-limited tests will bound the estimate-driven switches).
    freeze = longest_freeze(history, at_low - 1000, at_auto)
    climb_freeze = longest_freeze(history, at_auto, history[-1]["at"])
    report = (f"\n{codec}: munged encodings {munged}; sent "
              f"{[(x['ssrc'], x['frameWidth'], x.get('targetBitrate')) for x in sending]}; "
              f"layers {[(e['id'], e.get('width'), e['bitrate']) for e in media['active']]}; "
              f"top {first['width']}x{first['height']} after {took_top:.1f} s; select 0 -> 320 "
              f"in {took_low:.2f} s, select {{}} -> 1280 in {took_auto:.2f} s; longest freeze "
              f"{freeze:.2f} s (pinned switch), {climb_freeze:.2f} s (automatic climb); "
              f"freezeCount {history[-1]['freezes']}; 320 at all temporal layers "
              f"{all_fps:.1f} fps, TID 0 only {tl0_fps:.1f}, all again {back_fps:.1f}")
    print(report)
    assert took_low <= SWITCH_LIMIT and took_auto <= AUTO_LIMIT, report
    assert freeze <= FREEZE_LIMIT, report
    assert history[-1]["decoded"] > history[0]["decoded"] + 60, history[-1]


async def test_sdk_h264_simulcast_select_pins_each_layer(
    srv: RunningServer, pages: PageFactory, publish_token: str
) -> None:
    """H.264: the layers are sized from their SPS and pinning by encodingId moves the view."""
    codec = "h264"
    stream = f"open-sim-{codec}"
    _, munged, sending = await scaled_sdk_publisher(pages, srv, publish_token, stream, codec)
    viewer = await sdk_view(pages, srv, None, stream)
    await wait_until(viewer, "() => sdk.tracks('v').some((t) => t.kind === 'video')", timeout=15)
    await viewer.evaluate(SAMPLER, "0")
    data = await live_layers(viewer, 3)
    for event in await events(viewer, "layers"):
        check_layers_event(event["data"], "0")
    media = check_layers_event(data, "0")
    assert sorted(e["id"] for e in media["active"]) == ["0", "1", "2"], media
    assert await wait_until(viewer, "() => samples.some((s) => s.decoded > 5)", timeout=10)

    _, took_top = await switch(viewer, {"encodingId": "2"}, 1280)
    at_low, took_low = await switch(viewer, {"encodingId": "0"}, 320)
    _, took_mid = await switch(viewer, {"encodingId": "1"}, 640)
    history = await samples(viewer)
    freeze = longest_freeze(history, at_low - 1000, history[-1]["at"])
    sent_as = [(x["ssrc"], x["frameWidth"], x.get("targetBitrate")) for x in sending]
    report = (f"\n{codec}: munged encodings {munged}; sent {sent_as}; select 2 -> 1280 in "
              f"{took_top:.2f} s, "
              f"0 -> 320 in {took_low:.2f} s, 1 -> 640 in {took_mid:.2f} s; longest freeze "
              f"{freeze:.2f} s")
    print(report)
    trace = [(round(x["at"] - at_low), x["width"], x["decoded"], x["received"], x["keys"],
              x["plis"]) for x in history if x["at"] > at_low - 500]
    assert max(took_top, took_low, took_mid) <= SWITCH_LIMIT, report
    assert freeze <= FREEZE_LIMIT, (f"H.264 switch froze {freeze:.2f} s; (ms after select 0, "
                                    f"width, decoded, received, keyframes, PLIs): {trace}")

    # Automatic: the largest layer the viewer's estimate allows (layers ranked by SPS size).
    sent = await viewer.evaluate("async () => (await sdk.select('v', {})).ok")
    assert sent
    await asyncio.sleep(SWITCH_LIMIT)
    history = await samples(viewer)
    tail = [s["width"] for s in history[-10:]]
    ranking = [[(e["id"], e["bitrate"]) for e in ev["data"]["medias"]["0"]["active"]]
               for ev in (await events(viewer, "layers"))[-3:]]
    print(f"{codec}: automatic -> frameWidth {tail}; last layers rankings {ranking}")
    assert tail[-1] == 1280, f"H.264 automatic layer is {tail[-1]} wide, not 1280: {ranking}"


# --- RID simulcast over WHIP, an aiortc viewer --------------------------------------------


@pytest.mark.parametrize("codec", ["VP8", "H264"])
async def test_rid_simulcast_over_whip_to_an_aiortc_viewer(
    srv: RunningServer, repo_pages: StaticServer, browser: Browser, publish_token: str,
    codec: str
) -> None:
    stream = f"open-sim-rid-{codec.lower()}"
    factory = PageFactory(browser, repo_pages.url + "/tests/e2e/simulcast", name="simulcast-rid")
    try:
        page = await factory("rid.html", endpoint=f"{srv.http_url}/api/whip/{stream}",
                             token=publish_token, codec=codec)
        await wait_for_state(page, "connected", timeout=20)
        offer: str = await page.evaluate("hubbub.offer")
        answer: str = await page.evaluate("hubbub.answer")
        assert "a=simulcast:send q;h;f" in offer, offer
        assert "a=simulcast:recv q;h;f" in answer, answer
        assert f" {codec}/90000" in answer.split("m=video")[1], answer
        sizes = await rid_sizes(page)
        assert sizes == {"q": (320, 180), "h": (640, 360), "f": (1280, 720)}, sizes
        stats: dict[str, Json] = await page.evaluate("hubbub.outbound()")
        modes = {x.get("rid"): x.get("scalabilityMode")
                 for x in next(iter(stats.values()))["layers"]}

        view = await connect_info(srv.http_url, "subscribe", stream, None)
        # aiortc decodes in Python threads: 1280x720 is more than a loaded CI machine keeps
        # up with, so this viewer is pinned to the middle layer and then to the low one (the
        # automatic choice and the bandwidth estimate are the SDK tests' and the sfu's).
        async with Viewer(view.url, stream, token=view.jwt,
                          layer={"encodingId": "h"}) as viewer:
            assert viewer.video_mid is not None
            counter = VideoCounter(viewer.tracks_by_mid[viewer.video_mid]).start()
            started = time.monotonic()
            await wait_size(counter, (640, 360), 10)
            took_top = time.monotonic() - started
            event = await viewer.wait_for_event(
                "layers", lambda d: len(next(iter(d["medias"].values()))["active"]) == 3
                and all(e["bitrate"] > 0 for e in next(iter(d["medias"].values()))["active"]),
                timeout=10)
            media = check_layers_event(event, viewer.video_mid)
            assert [(e["id"], e["width"], e["height"]) for e in media["active"]] == [
                ("q", 320, 180), ("h", 640, 360), ("f", 1280, 720)], media

            started = time.monotonic()
            assert await viewer.command("select", {"layer": {"encodingId": "q"}}) is not None
            await wait_size(counter, (320, 180), SWITCH_LIMIT)
            took_low = time.monotonic() - started
            started = time.monotonic()
            await viewer.command("select", {"layer": {"encodingId": "h"}})
            await wait_size(counter, (640, 360), SWITCH_LIMIT)
            took_back = time.monotonic() - started
        print(f"\nRID {codec}: sent {sizes} as {modes}; layers "
              f"{[(e['id'], e['width'], e['bitrate']) for e in media['active']]}; aiortc "
              f"640x360 after {took_top:.1f} s, select q -> 320x180 in {took_low:.2f} s, "
              f"h -> 640x360 in {took_back:.2f} s; sizes decoded {dict(counter.sizes)}")
        await counter.stop()
    finally:
        await factory.close()


async def rid_sizes(page: Page, timeout: float = 20) -> dict[str, tuple[int, int]]:
    """rid -> (width, height) of every encoding the page sends frames of, once all three do."""
    deadline = time.monotonic() + timeout
    while True:
        stats: dict[str, Json] = await page.evaluate("hubbub.outbound()")
        layers = next(iter(stats.values()))["layers"]
        sizes = {x["rid"]: (x["frameWidth"], x["frameHeight"]) for x in layers
                 if x.get("rid") and x.get("frameWidth") and x.get("framesEncoded", 0) > 0}
        if len(sizes) == 3:
            return sizes
        if time.monotonic() > deadline:
            raise AssertionError(f"RID encodings sending: {layers}")
        await asyncio.sleep(0.5)


async def wait_size(counter: VideoCounter, size: tuple[int, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while counter.last_size != size:
        if time.monotonic() > deadline:
            raise AssertionError(f"aiortc decodes {counter.last_size}, not {size}: "
                                 f"{dict(counter.sizes)}")
        await asyncio.sleep(0.1)
