"""Three `hubbub serve --redis` processes and a real redis-server: aiortc publishers and
viewers on different nodes hear each other, as on one node (issue 12, "same behaviour
wherever a client lands")."""

from __future__ import annotations

import asyncio
import itertools
import urllib.error
from collections.abc import Iterator

import pytest

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from tests.helpers.cluster import cluster_stats, get_json, running_cluster
from tests.helpers.redis import RedisServer
from tests.helpers.server import RunningServer
from tests.helpers.tones import which_tone
from tests.helpers.whip import WhepPlayer, WhipPublisher

pytestmark = pytest.mark.slow

_names = itertools.count()


def stream_name() -> str:
    return f"cl{next(_names)}"


@pytest.fixture(scope="module")
def nodes(redis: RedisServer) -> Iterator[list[RunningServer]]:
    with running_cluster(redis, "cluster", "abc") as started:
        yield started


def recorder(viewer: Viewer, mid: str | None = None) -> AudioRecorder:
    return AudioRecorder(viewer.tracks_by_mid[mid or viewer.audio_mid or ""], seconds=3).start()


async def heard(rec: AudioRecorder, seconds: float = 1.0) -> float:
    await rec.wait_for_frames(rec.frames + int(seconds * 50), timeout=10)
    return dominant_frequency(rec.samples(seconds), rec.sample_rate)


async def test_publisher_on_a_is_heard_and_seen_on_b_and_c(nodes: list[RunningServer]) -> None:
    a, b, c = nodes
    name = stream_name()
    async with Publisher(a.ws_pub_url, name, tracks=[ToneTrack(440), PatternTrack()]):
        async with Viewer(b.ws_sub_url, name) as on_b, Viewer(c.ws_sub_url, name) as on_c:
            for viewer in (on_b, on_c):
                active = await viewer.wait_for_event("active")
                assert active == {
                    "streamId": f"hubbub/{name}", "sourceId": None,
                    "tracks": [{"trackId": "0", "media": "audio"},
                               {"trackId": "1", "media": "video"}],
                }
                freq = await heard(recorder(viewer))
                assert abs(freq - 440) < 5, f"heard {freq:.1f} Hz on {viewer.url}"
                assert viewer.video_mid is not None
                video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid]).start()
                await video.wait_for_frames(10, timeout=15)
                assert video.last_size == (320, 240)
            # One relay feed per edge node, whatever its viewer count.
            hosted = cluster_stats(a)["hosted"]
            assert len(hosted) == 1 and len(hosted[0]["feeds"]) == 2


async def test_viewercount_counts_viewers_on_every_node(nodes: list[RunningServer]) -> None:
    a, b, c = nodes
    name = stream_name()
    async with Publisher(a.ws_pub_url, name, tracks=[ToneTrack(300)],
                         events=["active", "inactive", "viewercount"]) as pub:
        viewers = [Viewer(n.ws_sub_url, name, video=False) for n in (a, b, b, c)]
        try:
            for viewer in viewers:
                await viewer.connect()
            for session in (*viewers, pub):
                await session.wait_for_event(
                    "viewercount", lambda d: d == {"viewercount": 4}, timeout=10)
            await pub.wait_for_event("active", timeout=5)
            await viewers[3].close()
            await viewers[1].close()
            await viewers[0].wait_for_event(
                "viewercount", lambda d: d == {"viewercount": 2}, timeout=10)
            await pub.wait_for_event("viewercount", lambda d: d == {"viewercount": 2},
                                     timeout=10)
        finally:
            for viewer in viewers:
                await viewer.close()
        await pub.wait_for_event("inactive", timeout=10)


FREQS = {"s0": 300.0, "s1": 500.0, "s2": 700.0, "s3": 900.0}


def what_is_heard(rec: AudioRecorder) -> str | None:
    return which_tone(rec, FREQS)


async def test_speakers_on_a_and_c_are_multiplexed_for_a_viewer_on_b(
    nodes: list[RunningServer],
) -> None:
    a, b, c = nodes
    name = stream_name()
    tones = {s: ToneTrack(f, amplitude=0.0) for s, f in FREQS.items()}
    where = {"s0": a, "s1": c, "s2": a, "s3": c}
    pubs = [Publisher(where[s].ws_pub_url, name, source_id=s, tracks=[tones[s]])
            for s in FREQS]
    try:
        for pub in pubs:
            await pub.connect()
        async with Viewer(b.ws_sub_url, name, video=False, pinned_source_id="s0",
                          excluded_source_ids=["s2"], multiplexed_audio_tracks=2) as viewer:
            for s in FREQS:
                await viewer.wait_for_event("active", lambda d, s=s: d["sourceId"] == s)
            recs = {mid: recorder(viewer, mid)
                    for mid in [viewer.audio_mid or "", *viewer.multiplexed_mids]}
            for tone in tones.values():
                tone.amplitude = 0.3  # everyone talks
            await asyncio.sleep(2.0)
            heard_now = {mid: what_is_heard(r) for mid, r in recs.items()}
            # Main track: the pinned source. Slots: the others that talk, never the excluded
            # s2, each the source its last `vad` event named.
            assert heard_now[viewer.audio_mid or ""] == "s0"
            slots = {mid: heard_now[mid] for mid in viewer.multiplexed_mids}
            assert sorted(v for v in slots.values() if v) == ["s1", "s3"], slots
            assert slots == viewer.slots, (slots, viewer.slots)
            assert "s2" not in heard_now.values()
            vads = [d for n, d in viewer.events if n == "vad"]
            assert all(d["sourceId"] in ("s1", "s3") for d in vads), vads
            # Only s1 talks now: it keeps its slot and is heard there.
            for s, tone in tones.items():
                tone.amplitude = 0.3 if s == "s1" else 0.0
            await asyncio.sleep(1.6)
            s1_mid = next(m for m, v in viewer.slots.items() if v == "s1")
            assert what_is_heard(recs[s1_mid]) == "s1"
            for rec in recs.values():
                await rec.stop()
    finally:
        for pub in pubs:
            await pub.close()


async def test_republishing_a_source_on_another_node_replaces_it_seamlessly(
    nodes: list[RunningServer],
) -> None:
    a, b, c = nodes
    name = stream_name()
    first = Publisher(a.ws_pub_url, name, source_id="x", tracks=[ToneTrack(440)])
    await first.connect()
    try:
        async with Viewer(c.ws_sub_url, name, video=False) as viewer:
            rec = recorder(viewer)
            assert abs(await heard(rec) - 440) < 5
            async with Publisher(b.ws_pub_url, name, source_id="x", tracks=[ToneTrack(660)]):
                await first.wait_closed(timeout=10)  # the old feed is dropped
                await asyncio.sleep(0.5)
                assert abs(await heard(rec) - 660) < 5
                # Viewers keep their track: no inactive, no second active for "x".
                names = [n for n, _ in viewer.events]
                assert "inactive" not in names and names.count("active") == 1, names
            await rec.stop()
    finally:
        await first.close()


async def test_admin_stop_on_any_node_ends_a_source_published_on_another(
    nodes: list[RunningServer],
) -> None:
    a, b, c = nodes
    name = stream_name()
    async with Publisher(a.ws_pub_url, name, source_id="x", tracks=[ToneTrack(440)]) as pub:
        async with Viewer(c.ws_sub_url, name, video=False) as viewer:
            await viewer.wait_for_event("active")
            # Node B neither hosts nor pulls the stream (as Spaces' node demoting a speaker).
            reply = get_json(f"{b.http_url}/api/streams/{name}/sources/x/stop", body={})
            assert reply["data"]["stopped"] is True
            await pub.wait_closed(timeout=5)
            inactive = await viewer.wait_for_event("inactive", timeout=5)
            assert inactive == {"streamId": f"hubbub/{name}", "sourceId": "x"}
        with pytest.raises(urllib.error.HTTPError) as refused:
            get_json(f"{b.http_url}/api/streams/{name}/sources/x/stop", body={})
        assert refused.value.code == 404


async def test_projection_of_a_source_published_on_another_node(
    nodes: list[RunningServer],
) -> None:
    a, b, _ = nodes
    name = stream_name()
    async with Publisher(a.ws_pub_url, name, source_id="x", tracks=[ToneTrack(440)]), \
            Publisher(a.ws_pub_url, name, source_id="y", tracks=[ToneTrack(660)]):
        async with Viewer(b.ws_sub_url, name, video=False, pinned_source_id="x") as viewer:
            await viewer.wait_for_event("active", lambda d: d["sourceId"] == "y")
            rec = recorder(viewer)
            assert abs(await heard(rec) - 440) < 5
            reply = await viewer.command("project", {
                "sourceId": "y", "mapping": [{"media": "audio", "mediaId": viewer.audio_mid}]})
            assert reply["mapping"] == [
                {"mediaId": viewer.audio_mid, "trackId": None, "media": "audio"}]
            await asyncio.sleep(0.3)
            assert abs(await heard(rec) - 660) < 5
            await rec.stop()


async def test_whip_on_a_is_played_over_whep_on_b(nodes: list[RunningServer]) -> None:
    """Sources published over WHIP and viewers over WHEP are ordinary ones in a cluster too:
    the WHIP source on A is relayed to B, where a WHEP player hears and sees it."""
    a, b, _ = nodes
    name = stream_name()
    async with WhipPublisher(f"{a.http_url}/api/whip/{name}", None,
                             [ToneTrack(440), PatternTrack()]), \
            WhepPlayer(f"{b.http_url}/api/whep/hubbub/{name}") as player:
        rec = AudioRecorder(player.tracks_by_mid[player.mid_of("audio")], 3).start()
        video = VideoCounter(player.tracks_by_mid[player.mid_of("video")]).start()
        freq = await heard(rec)
        assert abs(freq - 440) < 5, f"heard {freq:.1f} Hz over WHEP on B"
        await video.wait_for_frames(10, timeout=15)
        assert video.last_size == (320, 240)
        assert len(cluster_stats(a)["hosted"]) == 1
        await rec.stop()
        await video.stop()
