"""aiortc publishers and viewers through a real `hubbub serve`: what is heard and seen."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest
from tests.helpers.server import RunningServer

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

_names = itertools.count()


def stream_name() -> str:
    return f"e2e{next(_names)}"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="forwarding-aiortc", extra_args=["--media-timeout", "3"]) as s:
        yield s


async def heard(recorder: AudioRecorder, seconds: float = 1.0) -> float:
    """Dominant frequency of the last `seconds` the viewer decoded."""
    await recorder.wait_for_frames(recorder.frames + int(seconds * 50), timeout=10)
    return dominant_frequency(recorder.samples(seconds), recorder.sample_rate)


def audio_recorder(viewer: Viewer, mid: str | None = None) -> AudioRecorder:
    track = viewer.tracks_by_mid[mid or viewer.audio_mid or ""]
    return AudioRecorder(track, seconds=3).start()


async def test_tone_and_video_reach_the_viewer(srv: RunningServer) -> None:
    name = stream_name()
    async with Publisher(
        srv.ws_pub_url, name, tracks=[ToneTrack(440), PatternTrack()], codec="vp8"
    ) as pub:
        await pub.wait_connected()
        async with Viewer(srv.ws_sub_url, name) as viewer:
            await viewer.wait_connected()
            audio = audio_recorder(viewer)
            assert viewer.video_mid is not None
            video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid]).start()
            freq = await heard(audio)
            assert abs(freq - 440) < 5, f"heard {freq:.1f} Hz, expected 440"
            await video.wait_for_frames(20, timeout=15)
            assert video.last_size == (320, 240)
            active = await viewer.wait_for_event("active")
            assert active["sourceId"] is None
            assert active["streamId"].endswith("/" + name)
            assert sorted(t["media"] for t in active["tracks"]) == ["audio", "video"]
            await audio.stop()
            await video.stop()


async def test_pinned_viewer_hears_its_source_and_main_is_default(srv: RunningServer) -> None:
    name = stream_name()
    pubs = [
        Publisher(srv.ws_pub_url, name, tracks=[ToneTrack(330)]),
        Publisher(srv.ws_pub_url, name, source_id="alice", tracks=[ToneTrack(550)]),
        Publisher(srv.ws_pub_url, name, source_id="bob", tracks=[ToneTrack(770)]),
    ]
    try:
        for pub in pubs:
            await pub.connect()
            await pub.wait_connected()
        async with (
            Viewer(srv.ws_sub_url, name, video=False) as main_viewer,
            Viewer(srv.ws_sub_url, name, video=False, pinned_source_id="bob") as bob_viewer,
        ):
            await main_viewer.wait_connected()
            await bob_viewer.wait_connected()
            # Every live source is announced with its tracks right after the view reply.
            for viewer in (main_viewer, bob_viewer):
                for source in (None, "alice", "bob"):
                    event = await viewer.wait_for_event(
                        "active", lambda d, s=source: d["sourceId"] == s  # type: ignore[misc]
                    )
                    assert event["tracks"] == [{"trackId": event["tracks"][0]["trackId"],
                                                "media": "audio"}]
            main_audio = audio_recorder(main_viewer)
            bob_audio = audio_recorder(bob_viewer)
            assert abs(await heard(main_audio) - 330) < 5
            assert abs(await heard(bob_audio) - 770) < 5
            await main_audio.stop()
            await bob_audio.stop()
    finally:
        for pub in pubs:
            await pub.close()


async def test_republish_same_source_id_keeps_the_viewer_track(srv: RunningServer) -> None:
    name = stream_name()
    first = Publisher(srv.ws_pub_url, name, source_id="s1", tracks=[ToneTrack(440)])
    await first.connect()
    await first.wait_connected()
    async with Viewer(
        srv.ws_sub_url, name, video=False, pinned_source_id="s1"
    ) as viewer:
        await viewer.wait_connected()
        audio = audio_recorder(viewer)
        assert abs(await heard(audio) - 440) < 5
        track_before = viewer.tracks_by_mid[viewer.audio_mid or ""]
        second = Publisher(srv.ws_pub_url, name, source_id="s1", tracks=[ToneTrack(660)])
        async with second:
            await second.wait_connected()
            # The old publisher is dropped by the server.
            await first.wait_closed(timeout=10)
            await asyncio.sleep(0.5)
            audio.clear()
            assert abs(await heard(audio) - 660) < 5
            # Same track object, no renegotiation, no inactive/active pair, no duplicate source.
            assert viewer.tracks_by_mid[viewer.audio_mid or ""] is track_before
            names = [n for n, d in viewer.events if d.get("sourceId") == "s1"]
            assert names == ["active"]
        await audio.stop()


async def test_publisher_leaving_gives_inactive_then_stopped(srv: RunningServer) -> None:
    name = stream_name()
    pub = Publisher(srv.ws_pub_url, name, source_id="a", tracks=[ToneTrack(440)])
    await pub.connect()
    await pub.wait_connected()
    async with Viewer(
        srv.ws_sub_url, name, video=False, events=["active", "inactive", "stopped", "viewercount"]
    ) as viewer:
        await viewer.wait_connected()
        count = await viewer.wait_for_event("viewercount", lambda d: d["viewercount"] == 1)
        assert count == {"viewercount": 1}
        async with Viewer(
            srv.ws_sub_url, name, video=False, events=["viewercount"]
        ) as second:
            await second.wait_connected()
            await viewer.wait_for_event("viewercount", lambda d: d["viewercount"] == 2)
        await viewer.wait_for_event("viewercount", lambda d: d["viewercount"] == 1, timeout=5)
        await pub.close()
        inactive = await viewer.wait_for_event("inactive", timeout=5)
        assert inactive == {"streamId": inactive["streamId"], "sourceId": "a"}
        await viewer.wait_for_event("stopped", timeout=5)
        names = [n for n, _ in viewer.events if n != "viewercount"]
        assert names == ["active", "inactive", "stopped"]


class _Freezable(ToneTrack):
    """A tone that can stop producing frames while the peer connection stays up."""

    frozen = False

    async def recv(self):  # type: ignore[no-untyped-def]
        while self.frozen:
            await asyncio.sleep(0.05)
        return await super().recv()


async def test_publisher_that_stops_sending_goes_inactive(srv: RunningServer) -> None:
    name = stream_name()
    tone = _Freezable(440)
    async with Publisher(srv.ws_pub_url, name, tracks=[tone]) as pub:
        await pub.wait_connected()
        async with Viewer(srv.ws_sub_url, name, video=False) as viewer:
            await viewer.wait_connected()
            await viewer.wait_for_event("active")
            tone.frozen = True
            # Server started with --media-timeout 3.
            await viewer.wait_for_event("inactive", timeout=8)
            await viewer.wait_for_event("stopped", timeout=5)
