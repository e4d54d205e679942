"""Headless Chromium through a real `hubbub serve`: what the viewer's getStats() shows arriving and
decoding, with Chromium and aiortc on either end.

Chromium's fake devices: a camera that draws a frame counter (the publisher page asks for 640x360
at 30 fps) and a microphone that beeps 400 Hz for 20 ms every 500 ms. Pages are served from
127.0.0.1 (tests/helpers/browser.py); one server for the module, one stream name per test.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from playwright.async_api import Page
from tests.helpers.browser import PageFactory, wait_for_state, wait_until
from tests.helpers.server import RunningServer

from hubbub.client.analysis import dominant_frequency, rms
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

pytestmark = pytest.mark.chromium

# viewer.html offers recvonly video first, then audio (like the Millicast SDK).
VIDEO_MID, AUDIO_MID = "0", "1"
FAKE_BEEP_HZ = 400.0
FAKE_BEEP_PERIOD = 0.5  # seconds

Stats = dict[str, dict[str, Any]]

# Chromium probes bandwidth with padding-only packets on the video SSRC (hubbub negotiates no
# RTX). sfu/source.py Source.on_rtp drops them (`end == offset`) while DownTrack keeps the
# publisher's seq numbers, so each one is a hole in the viewer's sequence space that no NACK can
# fill: aiortc's jitter buffer never completes a frame, Chromium counts packetsLost and, for H264
# (no picture id, continuity by seq only), stalls until its PLI brings a keyframe. Forwarding
# padding-only packets (or skipping them in the seq offset) fixes all of it.

_names = itertools.count()


def stream_name() -> str:
    return f"chromium{next(_names)}"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="forwarding-chromium") as s:
        yield s


# Both m-lines have packets and the video decodes; returns the stats (truthy) when so.
FLOWING = """async ([min]) => {
  const s = await window.hubbub.inbound();
  const v = s["0"], a = s["1"];
  return !!(v && a && v.packetsReceived >= min && a.packetsReceived >= min
            && v.framesDecoded > 0) && s;
}"""

# What Chromium made of the sender reports it received (RFC 3550 §6.4.1), keyed by kind.
REMOTE_OUTBOUND = """async () => {
  const out = {};
  (await window.hubbub.pc.getStats()).forEach((s) => {
    if (s.type !== "remote-outbound-rtp") return;
    out[s.kind] = {ssrc: s.ssrc, packetsSent: s.packetsSent, bytesSent: s.bytesSent,
                   reportsSent: s.reportsSent, remoteTimestamp: s.remoteTimestamp};
  });
  return out;
}"""

SEND_CODECS = "RTCRtpSender.getCapabilities('video').codecs.map((c) => c.mimeType)"

AUDIO_SAMPLES = "(mid) => window.hubbub.audioSamples(mid)"


async def inbound(page: Page) -> Stats:
    stats: Stats = await page.evaluate("window.hubbub.inbound()")
    return stats


async def open_publisher(
    page_factory: PageFactory, srv: RunningServer, name: str, codec: str = "vp8"
) -> Page:
    page = await page_factory("publisher.html", ws=srv.ws_pub_url, stream=name, codec=codec)
    await wait_for_state(page, "connected", timeout=20)
    return page


async def open_viewer(page_factory: PageFactory, srv: RunningServer, name: str) -> Page:
    page = await page_factory("viewer.html", ws=srv.ws_sub_url, stream=name)
    await wait_for_state(page, "connected", timeout=20)
    return page


async def two_samples(page: Page, seconds: float = 2.0) -> tuple[Stats, Stats]:
    """Inbound stats once media flows, and again `seconds` later."""
    first: Stats = await wait_until(page, FLOWING, [10], timeout=20)
    await asyncio.sleep(seconds)
    return first, await inbound(page)


COUNTERS = ("packetsReceived", "packetsLost", "nackCount", "pliCount", "framesReceived",
            "framesDecoded", "keyFramesDecoded", "framesDropped", "frameWidth", "frameHeight",
            "totalSamplesReceived", "concealedSamples")


def brief(stats: Stats) -> dict[str, dict[str, Any]]:
    """The counters that explain a failure (pytest truncates the full entries)."""
    return {mid: {k: e[k] for k in COUNTERS if e.get(k)} for mid, e in stats.items()}


def assert_media_rising(
    first: Stats, later: Stats, seconds: float, min_fps: float, check_loss: bool = True
) -> None:
    """Both kinds kept arriving and decoding over `seconds`, audio without much concealment."""
    v0, v1 = first[VIDEO_MID], later[VIDEO_MID]
    a0, a1 = first[AUDIO_MID], later[AUDIO_MID]
    why = f"first {brief(first)}, {seconds} s later {brief(later)}"
    assert (v1["kind"], a1["kind"]) == ("video", "audio")
    assert v1["packetsReceived"] - v0["packetsReceived"] >= min_fps * seconds, why
    assert v1["framesDecoded"] - v0["framesDecoded"] >= min_fps * seconds, why
    assert v1["framesDropped"] <= 0.05 * v1["framesDecoded"], why
    assert v1["frameWidth"] > 0 and v1["frameHeight"] > 0, why
    # Opus at 20 ms is 50 packets a second; half of that is the least a live stream gives.
    assert a1["packetsReceived"] - a0["packetsReceived"] >= 25 * seconds, why
    samples = a1["totalSamplesReceived"] - a0["totalSamplesReceived"]
    assert samples >= 0.5 * 48000 * seconds, why
    concealed = a1["concealedSamples"] - a0["concealedSamples"]
    assert concealed / samples < 0.2, f"{concealed} of {samples} samples concealed; {why}"
    if not check_loss:
        return
    # Loopback: nothing should be lost, but leave room for a hiccup on a loaded machine.
    assert v1["packetsLost"] <= 0.02 * v1["packetsReceived"], why
    assert a1["packetsLost"] <= 0.02 * a1["packetsReceived"], why


def assert_16_by_9(width: int, height: int) -> None:
    """The fake camera's 640x360, or a 16:9 downscale if the encoder adapted to CPU load."""
    assert width > 0 and width * 9 == height * 16, f"{width}x{height}"


async def test_chromium_vp8_publisher_to_chromium_viewer(
    srv: RunningServer, page_factory: PageFactory
) -> None:
    name = stream_name()
    await open_publisher(page_factory, srv, name, "vp8")
    viewer = await open_viewer(page_factory, srv, name)
    first, later = await two_samples(viewer)
    video, audio = later[VIDEO_MID], later[AUDIO_MID]
    assert video["codec"].startswith("video/VP8"), video
    assert audio["codec"].startswith("audio/opus"), audio
    assert_media_rising(first, later, 2.0, min_fps=10)
    assert video["framesDecoded"] > 20, video
    assert video["keyFramesDecoded"] >= 1, video
    assert_16_by_9(video["frameWidth"], video["frameHeight"])


async def test_chromium_h264_publisher_to_chromium_viewer(
    srv: RunningServer, page_factory: PageFactory
) -> None:
    name = stream_name()
    publisher = await page_factory("publisher.html", ws=srv.ws_pub_url, stream=name, codec="h264")
    state = await wait_for_state(publisher, "connected", "failed", timeout=20)
    send_codecs: list[str] = await publisher.evaluate(SEND_CODECS)
    if "video/H264" not in send_codecs:
        # publisher.js refuses before signaling, so the server never saw this stream.
        assert state == "failed"
        assert await publisher.evaluate("window.hubbub.error") == "this browser cannot send h264"
        pytest.skip(f"this Chromium build has no H264 encoder: it sends {sorted(set(send_codecs))}")
    assert state == "connected", await publisher.evaluate("window.hubbub.error")
    viewer = await open_viewer(page_factory, srv, name)
    first, later = await two_samples(viewer)
    video = later[VIDEO_MID]
    # packetization-mode=1 is what the publisher offered; the viewer must get the same mode.
    assert video["codec"].startswith("video/H264"), video
    assert "packetization-mode=1" in video["codec"], video
    assert_media_rising(first, later, 2.0, min_fps=10)
    assert video["framesDecoded"] > 20, video
    assert_16_by_9(video["frameWidth"], video["frameHeight"])


def beep_onsets(samples: np.ndarray, rate: int, threshold: float = 0.1) -> list[int]:
    """Indexes of the 20 ms windows where a beep starts (RMS crosses `threshold` upwards)."""
    n = rate // 50
    windows = samples[: len(samples) // n * n].reshape(-1, n)
    loud = np.sqrt(np.mean(windows * windows, axis=1)) > threshold
    return [i for i in range(1, len(loud)) if loud[i] and not loud[i - 1]]


async def test_chromium_publisher_to_aiortc_viewer(
    srv: RunningServer, page_factory: PageFactory
) -> None:
    name = stream_name()
    await open_publisher(page_factory, srv, name, "vp8")
    async with Viewer(srv.ws_sub_url, name) as viewer:
        assert viewer.audio_mid is not None and viewer.video_mid is not None
        audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid], seconds=3).start()
        video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid]).start()
        try:
            await video.wait_for_frames(20, timeout=15)
            await audio.wait_for_frames(audio.frames + 150, timeout=10)  # 3 s of 20 ms frames
            samples = audio.samples(3.0)
            rate = audio.sample_rate
        finally:
            await audio.stop()
            await video.stop()
    assert len(samples) == 3 * rate
    assert rms(samples) > 0.02, f"rms {rms(samples):.4f}: the beeps did not arrive"
    assert abs(dominant_frequency(samples, rate) - FAKE_BEEP_HZ) < 20
    # One beep every 500 ms (25 windows of 20 ms), none lost or smeared by the forwarding.
    onsets = beep_onsets(samples, rate)
    assert 5 <= len(onsets) <= 7, onsets
    gaps = np.diff(onsets)
    assert all(abs(g - FAKE_BEEP_PERIOD * 50) <= 2 for g in gaps), onsets
    assert video.last_size is not None
    assert_16_by_9(*video.last_size)


async def test_aiortc_publisher_to_chromium_viewer(
    srv: RunningServer, page_factory: PageFactory
) -> None:
    name = stream_name()
    async with Publisher(
        srv.ws_pub_url, name, tracks=[ToneTrack(440), PatternTrack()], codec="vp8"
    ) as pub:
        await pub.wait_connected()
        viewer = await open_viewer(page_factory, srv, name)
        first, later = await two_samples(viewer)
        # Start the AnalyserNode tap, then read it once it holds a full buffer of the tone.
        await viewer.evaluate(AUDIO_SAMPLES, AUDIO_MID)
        heard: dict[str, Any] = await wait_until(
            viewer,
            """async (mid) => { const h = await window.hubbub.audioSamples(mid);
                return h.playedSeconds > 2 * h.samples.length / h.sampleRate && h; }""",
            AUDIO_MID,
            timeout=10,
        )
    video = later[VIDEO_MID]
    assert video["codec"].startswith("video/VP8"), video
    assert later[AUDIO_MID]["codec"].startswith("audio/opus"), later[AUDIO_MID]
    assert_media_rising(first, later, 2.0, min_fps=5)  # PatternTrack sends 15 fps
    assert (video["frameWidth"], video["frameHeight"]) == (320, 240)
    samples = np.array(heard["samples"], dtype=np.float64)
    assert rms(samples) > 0.05, f"rms {rms(samples):.4f}: the tone did not play out"
    freq = dominant_frequency(samples, int(heard["sampleRate"]))
    assert abs(freq - 440) < 5, f"Chromium played {freq:.1f} Hz, expected 440"


async def test_chromium_viewer_video_is_not_stalled(
    srv: RunningServer, page_factory: PageFactory
) -> None:
    name = stream_name()
    await open_publisher(page_factory, srv, name, "vp8")
    viewer = await open_viewer(page_factory, srv, name)
    await wait_until(viewer, FLOWING, [10], timeout=20)
    samples = [await inbound(viewer)]
    for _ in range(5):
        await asyncio.sleep(1.0)
        samples.append(await inbound(viewer))
    decoded = [s[VIDEO_MID]["framesDecoded"] for s in samples]
    audio_packets = [s[AUDIO_MID]["packetsReceived"] for s in samples]
    # Every second of the five both kinds moved on: no frozen picture, no gap in the sound.
    why = [brief(s) for s in samples]
    assert all(b - a >= 5 for a, b in itertools.pairwise(decoded)), why
    assert all(b - a >= 25 for a, b in itertools.pairwise(audio_packets)), why


async def test_chromium_viewer_gets_sender_reports_for_audio_and_video(
    srv: RunningServer, page_factory: PageFactory
) -> None:
    name = stream_name()
    await open_publisher(page_factory, srv, name, "vp8")
    viewer = await open_viewer(page_factory, srv, name)
    await wait_until(viewer, FLOWING, [10], timeout=20)
    await asyncio.sleep(4.0)
    # hubbub sends each DownTrack's SR every second, aggregated per viewer with one SDES (sfu
    # config sr_interval); Chromium keeps the latest as remote-outbound-rtp and needs them to sync
    # audio and video playout.
    reports: dict[str, dict[str, Any]] = await viewer.evaluate(REMOTE_OUTBOUND)
    now_ms: float = await viewer.evaluate("Date.now()")
    last = await inbound(viewer)
    assert sorted(reports) == ["audio", "video"], reports
    for kind, mid in (("audio", AUDIO_MID), ("video", VIDEO_MID)):
        report, received = reports[kind], last[mid]
        assert report["ssrc"] == received["ssrc"], (report, received)
        assert report["reportsSent"] >= 3, report
        assert 0 < report["packetsSent"] <= received["packetsReceived"], (report, received)
        # The SR's NTP time is wall-clock time on this machine (RFC 3550 §6.4.1).
        assert abs(report["remoteTimestamp"] - now_ms) < 3000, (report, now_ms)
