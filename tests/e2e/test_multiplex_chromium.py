"""A headless Chromium viewer with three multiplexed audio tracks (offer shaped like the SDK's):
aiortc tone publishers talk on a script, a Chromium publisher with DTX beeps (its fake
microphone: 400 Hz for 20 ms every 500 ms, nothing sent in between) and is switched in and out.
Checked in the browser: `vad` events, rising inbound audio and energy on the tracks that carry
talkers, the tones themselves, and a jitter buffer that stays sane across switches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Page
from tests.helpers.browser import PageFactory, wait_for_state
from tests.helpers.server import RunningServer

from hubbub.client.analysis import dominant_frequency, rms
from hubbub.client.media import ToneTrack
from hubbub.client.publisher import Publisher

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

MAIN_MID = "0"  # video=0: the main audio m-line, then the three slots
SLOT_MIDS = ("1", "2", "3")
FREQS = {"host": 300.0, "t1": 500.0, "t2": 700.0, "t3": 900.0, "t4": 1100.0}
LOUD = 0.9  # about -4 dBov: no beep can be the 6 dB margin louder than a talking tone
AUDIO_SAMPLES = "(mid) => window.hubbub.audioSamples(mid)"
VADS = "() => window.hubbub.eventsNamed('vad').map((e) => e.data)"

Stats = dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="multiplex-chromium") as s:
        yield s


async def slots(page: Page) -> dict[str, str | None]:
    """mid -> sourceId after every vad event so far."""
    current: dict[str, str | None] = dict.fromkeys(SLOT_MIDS)
    for data in await page.evaluate(VADS):
        current[data["mediaId"]] = data.get("sourceId")
    return current


async def inbound(page: Page) -> Stats:
    stats: Stats = await page.evaluate("window.hubbub.inbound()")
    return stats


async def tone_in(page: Page, mid: str) -> float:
    heard: dict[str, Any] = await page.evaluate(AUDIO_SAMPLES, mid)
    samples = np.array(heard["samples"], dtype=np.float64)
    if rms(samples) < 0.02:
        return 0.0
    return dominant_frequency(samples, int(heard["sampleRate"]))


def jitter_buffer_ms(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Mean jitter-buffer delay of the samples emitted between two stats snapshots."""
    emitted = float(b["jitterBufferEmittedCount"] - a["jitterBufferEmittedCount"])
    if emitted <= 0:
        return 0.0
    return 1000.0 * float(b["jitterBufferDelay"] - a["jitterBufferDelay"]) / emitted


async def settle_on(page: Page, wanted: set[str | None], timeout: float = 8.0) -> dict[str, Any]:
    """Wait until the vad events put exactly `wanted` in the slots; return mid -> source."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        current = await slots(page)
        if set(current.values()) == wanted:
            return current
        if loop.time() > deadline:
            raise AssertionError(f"slots {current}, expected {wanted}")
        await asyncio.sleep(0.1)


async def publish_tones(srv: RunningServer, name: str, *names: str) -> dict[str, Publisher]:
    """One aiortc publisher per name, connected in order (the first is the oldest: main)."""
    pubs: dict[str, Publisher] = {}
    for source in names:
        tone = ToneTrack(FREQS[source], amplitude=0.0)
        pub = Publisher(srv.ws_pub_url, name, source_id=source, tracks=[tone])
        pubs[source] = pub
        await pub.connect()
        await pub.wait_connected()
    return pubs


def talk(pubs: dict[str, Publisher], amplitude: float, *names: str) -> None:
    for source in names:
        track = pubs[source].tracks[0]
        assert isinstance(track, ToneTrack)
        track.amplitude = amplitude


async def open_viewer(page_factory: PageFactory, srv: RunningServer, name: str) -> Page:
    viewer = await page_factory("viewer.html", ws=srv.ws_sub_url, stream=name, video=0,
                                multiplex=3)
    await wait_for_state(viewer, "connected", timeout=20)
    for mid in (MAIN_MID, *SLOT_MIDS):
        await viewer.evaluate(AUDIO_SAMPLES, mid)  # start the taps
    return viewer


async def two_snapshots(page: Page, seconds: float) -> tuple[Stats, Stats]:
    first = await inbound(page)
    await asyncio.sleep(seconds)
    return first, await inbound(page)


async def assert_tones(page: Page, placed: dict[str, Any], first: Stats, later: Stats) -> None:
    """Every slot with a talker gets ~50 packets a second, energy, and plays its tone."""
    for mid, source in placed.items():
        a, b = first[mid], later[mid]
        assert b["packetsReceived"] - a["packetsReceived"] >= 70, (mid, a, b)
        assert b["totalAudioEnergy"] > a["totalAudioEnergy"], (mid, a, b)
        freq = await tone_in(page, mid)
        assert abs(freq - FREQS[source]) < 10, f"mid {mid} ({source}) plays {freq:.1f} Hz"


def assert_jitter_buffers_sane(first: Stats, later: Stats) -> None:
    """After switches the slots' jitter buffers hold what the main track's does (which never
    switches) — a broken timestamp or sequence continuity would show as seconds."""
    delays = {mid: jitter_buffer_ms(first[mid], later[mid]) for mid in (MAIN_MID, *SLOT_MIDS)}
    for mid in SLOT_MIDS:
        b = later[mid]
        assert b["packetsLost"] <= 0.02 * b["packetsReceived"], b
        # A loaded machine grows every buffer alike (main included); a switch that broke
        # continuity would add seconds to one slot.
        assert delays[mid] < delays[MAIN_MID] + 250.0, delays


def moves(history: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(d["mediaId"], d.get("sourceId")) for d in history]


async def test_chromium_viewer_hears_the_talkers_in_its_multiplexed_tracks(
    srv: RunningServer, page_factory: PageFactory
) -> None:
    name = "mux-chromium-talkers"
    pubs = await publish_tones(srv, name, "host", "t1", "t2", "t3", "t4")
    try:
        talk(pubs, 0.3, "host", "t1", "t2", "t3")
        viewer = await open_viewer(page_factory, srv, name)
        placed = await settle_on(viewer, {"t1", "t2", "t3"})
        first, later = await two_snapshots(viewer, 2.0)
        await assert_tones(viewer, placed, first, later)
        assert abs(await tone_in(viewer, MAIN_MID) - FREQS["host"]) < 10

        # t3 stops, t4 starts: t4 takes t3's slot; t1 and t2 stay where they are.
        talk(pubs, 0.0, "t3")
        talk(pubs, 0.3, "t4")
        t3_mid = next(m for m, s in placed.items() if s == "t3")
        placed = await settle_on(viewer, {"t1", "t2", "t4"})
        assert placed[t3_mid] == "t4"
        await asyncio.sleep(0.5)  # let the analyser window fill with t4's tone
        first, later = await two_snapshots(viewer, 2.0)
        await assert_tones(viewer, placed, first, later)
        history = moves(await viewer.evaluate(VADS))
        assert sorted(history) == sorted([*((m, s) for m, s in placed.items()), (t3_mid, "t3")])
        assert_jitter_buffers_sane(first, later)
    finally:
        for pub in pubs.values():
            await pub.close()


async def test_dtx_chromium_publisher_is_switched_in_and_out(
    srv: RunningServer, page_factory: PageFactory
) -> None:
    name = "mux-chromium-dtx"
    pubs = await publish_tones(srv, name, "host", "t1", "t2", "t3")
    try:
        talk(pubs, 0.3, "host")
        talk(pubs, LOUD, "t1", "t2", "t3")
        beeper = await page_factory("publisher.html", ws=srv.ws_pub_url, stream=name,
                                    video=0, dtx=1, sourceId="c")
        await wait_for_state(beeper, "connected", timeout=20)
        viewer = await open_viewer(page_factory, srv, name)

        # Three loud talkers hold the three slots; the beeper cannot displace them.
        placed = await settle_on(viewer, {"t1", "t2", "t3"})
        first, later = await two_snapshots(viewer, 2.0)
        await assert_tones(viewer, placed, first, later)

        # t3 falls silent: the DTX beeper takes its slot.
        talk(pubs, 0.0, "t3")
        placed = await settle_on(viewer, {"t1", "t2", "c"})
        beeper_mid = next(m for m, s in placed.items() if s == "c")
        first, later = await two_snapshots(viewer, 2.5)
        a, b = first[beeper_mid], later[beeper_mid]
        # The beeps arrive in that track and carry energy.
        assert b["packetsReceived"] - a["packetsReceived"] >= 5, (a, b)
        assert b["totalAudioEnergy"] > a["totalAudioEnergy"], (a, b)

        # t3 talks again and, louder than the beeps, takes the beeper's slot back.
        talk(pubs, LOUD, "t3")
        placed = await settle_on(viewer, {"t1", "t2", "t3"})
        assert placed[beeper_mid] == "t3"
        await asyncio.sleep(0.5)
        first, later = await two_snapshots(viewer, 2.0)
        await assert_tones(viewer, placed, first, later)

        history = moves(await viewer.evaluate(VADS))
        for source in ("t1", "t2"):
            assert sum(1 for _, s in history if s == source) == 1, history
        assert [s for m, s in history if m == beeper_mid][-3:] == ["t3", "c", "t3"]
        assert "host" not in {s for _, s in history}  # the main source is never duplicated
        assert_jitter_buffers_sane(first, later)
    finally:
        for pub in pubs.values():
            await pub.close()
