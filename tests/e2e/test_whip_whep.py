"""WHIP and WHEP end to end against a real `hubbub serve`, with aiortc on the other side
(tests/helpers/whip.py; its test-side patches are listed there).

Sources published over WHIP are ordinary sources (heard, seen, multiplexed, replaced) and a
WHEP player is an ordinary viewer, with its events as server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from tests.helpers import tokens
from tests.helpers.server import RunningServer
from tests.helpers.tokens import admin_token
from tests.helpers.tones import which_tone
from tests.helpers.whip import WhepPlayer, WhipError, WhipPublisher

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

pytestmark = pytest.mark.slow

ADMIN = "admin-secret-whip-whep-0123456789abcdef"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    args = ["--api-secret", ADMIN, "--open-viewing", "open-*"]
    with RunningServer(name="whip-whep", allow_any_stream=False, extra_args=args) as s:
        yield s


def new_token(srv: RunningServer, kind: str = "publish", **fields: Any) -> str:
    return str(admin_token(srv.http_url, ADMIN, kind, **fields)["token"])


def view_jwt(srv: RunningServer, stream: str) -> str:
    return tokens.view_jwt(srv.http_url, stream)


def whip_url(srv: RunningServer, stream: str, query: str = "") -> str:
    return f"{srv.http_url}/api/whip/{stream}{'?' + query if query else ''}"


def whep_url(srv: RunningServer, stream: str, query: str = "") -> str:
    return f"{srv.http_url}/api/whep/hubbub/{stream}{'?' + query if query else ''}"


def source_is(source_id: str | None) -> Any:
    return lambda data: data.get("sourceId") == source_id


async def heard(rec: AudioRecorder, frames: int = 100) -> float:
    await rec.wait_for_frames(rec.frames + frames, timeout=10)
    return dominant_frequency(rec.samples(1.0), rec.sample_rate)


class EventStream:
    """A WHEP session's SSE stream read as an EventSource would: (event, data) records."""

    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    async def read(self, response: httpx.Response) -> None:
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                self.records.append((name, json.loads(line[6:])))
                self._changed.set()

    async def wait_for(self, name: str, predicate: Any = None,
                       timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for event, data in self.records:
                    if event == name and (predicate is None or predicate(data)):
                        return data
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def subscribe_events(player: WhepPlayer, names: list[str]) -> AsyncIterator[EventStream]:
    """POST the event list to the SSE Link of the 201, then read the stream it names."""
    link = next(h for h in player.links if "server-sent-events" in h)
    sse_url = httpx.URL(player.endpoint).join(link[1:link.index(">")])
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http:
        reply = await http.post(sse_url, json=names)
        assert reply.status_code == 201, reply.text
        events = EventStream()
        async with http.stream("GET", sse_url.join(reply.headers["location"])) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = asyncio.ensure_future(events.read(response))
            try:
                yield events
            finally:
                reader.cancel()


async def test_a_whip_source_is_heard_and_seen_and_delete_ends_it(srv: RunningServer) -> None:
    stream = "open-whip"
    token = new_token(srv)
    async with Viewer(srv.ws_sub_url, stream, token=view_jwt(srv, stream)) as viewer:
        await viewer.wait_connected()
        rec = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], 3).start()
        video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid or ""]).start()
        publisher = await WhipPublisher(whip_url(srv, stream), token,
                                        [ToneTrack(440), PatternTrack()]).start()
        try:
            assert publisher.location is not None and "/api/whip/session/" in publisher.location
            await viewer.wait_for_event("active", source_is(None), timeout=10)
            assert abs(await heard(rec) - 440) < 5
            assert video.frames >= 20, video.frames
            since = len(viewer.events)
            deleted = await publisher.delete()
            assert deleted.status_code == 200
            started = asyncio.get_running_loop().time()
            await viewer.wait_for_event("inactive", source_is(None), since=since, timeout=5)
            assert asyncio.get_running_loop().time() - started < 2.0, "DELETE did not end it"
            again = await publisher.delete()
            assert again.status_code == 404, again.text
        finally:
            publisher.location = None
            await publisher.close()
            await rec.stop()
            await video.stop()


async def test_whip_speakers_take_multiplexed_slots_and_a_republish_replaces(
        srv: RunningServer) -> None:
    """A WHIP main source plus two WHIP speakers with sourceIds: the viewer's main track
    carries the main tone and its slots the speakers, as the `vad` events say. A second WHIP
    publish of s2 replaces the first without an `inactive`, and ends the old session."""
    stream = "open-whip-mux"
    token = new_token(srv, multisource=True)
    tones = {"main": 440.0, "s1": 500.0, "s2": 700.0}
    publishers = {
        name: await WhipPublisher(
            whip_url(srv, stream, "" if name == "main" else f"sourceId={name}"), token,
            [ToneTrack(tone)]).start()
        for name, tone in tones.items()
    }
    try:
        async with Viewer(srv.ws_sub_url, stream, token=view_jwt(srv, stream), video=False,
                          multiplexed_audio_tracks=2) as viewer:
            await viewer.wait_connected()
            await viewer.wait_for_event("vad", source_is("s2"), timeout=10)
            await viewer.wait_for_event("vad", source_is("s1"), timeout=10)
            mids = [viewer.audio_mid or "", *viewer.multiplexed_mids]
            recs = {mid: AudioRecorder(viewer.tracks_by_mid[mid], 3).start() for mid in mids}
            await asyncio.sleep(2.0)
            by_mid = {mid: which_tone(rec, tones) for mid, rec in recs.items()}
            assert by_mid[viewer.audio_mid or ""] == "main", by_mid
            for mid in viewer.multiplexed_mids:
                assert by_mid[mid] == viewer.slots[mid], (by_mid, viewer.slots)
            assert sorted(filter(None, viewer.slots.values())) == ["s1", "s2"]

            since = len(viewer.events)
            old = publishers["s2"]
            publishers["s2"] = await WhipPublisher(whip_url(srv, stream, "sourceId=s2"), token,
                                                   [ToneTrack(tones["s2"])]).start()
            await asyncio.sleep(1.5)
            gone = await old.delete()
            assert gone.status_code == 404, "the replaced WHIP session should have ended"
            old.location = None
            await old.close()
            assert not [(n, d) for n, d in viewer.events[since:]
                        if n == "inactive" and d.get("sourceId") == "s2"], viewer.events[since:]
            slot = next(mid for mid, s in viewer.slots.items() if s == "s2")
            assert which_tone(recs[slot], tones) == "s2"
            for rec in recs.values():
                await rec.stop()
    finally:
        for publisher in publishers.values():
            await publisher.close()


async def test_whep_plays_a_stream_and_streams_its_events(srv: RunningServer) -> None:
    stream = "open-whep"
    publish = Publisher(srv.ws_pub_url, stream, tracks=[ToneTrack(440), PatternTrack()],
                        token=await director_publish(srv, new_token(srv), stream))
    await publish.connect()
    try:
        async with WhepPlayer(whep_url(srv, stream)) as player:
            async with subscribe_events(player, ["active", "inactive", "bogus"]) as events:
                active = await events.wait_for("active")
                assert active == {"streamId": f"hubbub/{stream}", "sourceId": None,
                                  "tracks": [{"trackId": "0", "media": "audio"},
                                             {"trackId": "1", "media": "video"}]}
                rec = AudioRecorder(player.tracks_by_mid[player.mid_of("audio")], 3).start()
                video = VideoCounter(player.tracks_by_mid[player.mid_of("video")]).start()
                assert abs(await heard(rec) - 440) < 5
                assert video.frames >= 20, video.frames
                await publish.close()
                inactive = await events.wait_for("inactive")
                assert inactive == {"streamId": f"hubbub/{stream}", "sourceId": None}
                assert [name for name, _ in events.records] == ["active", "inactive"]
                await rec.stop()
                await video.stop()
    finally:
        await publish.close()


async def director_publish(srv: RunningServer, token: str, stream: str) -> str:
    return await asyncio.to_thread(tokens.publish_jwt, srv.http_url, token, stream)


async def test_whep_token_rules_match_the_websocket(srv: RunningServer) -> None:
    """A stream outside --open-viewing needs a subscribe token (or JWT) over WHEP too; with
    one, the player gets media; a publish token is not a subscribe token."""
    stream = "closed-whep"
    publish = Publisher(srv.ws_pub_url, stream, tracks=[ToneTrack(440)],
                        token=await director_publish(srv, new_token(srv), stream))
    await publish.connect()
    try:
        with pytest.raises(WhipError) as refused:
            await WhepPlayer(whep_url(srv, stream), video=False).start()
        assert refused.value.status == 401
        assert "requires a subscribe token" in refused.value.text
        with pytest.raises(WhipError) as wrong_kind:
            await WhepPlayer(whep_url(srv, stream), new_token(srv), video=False).start()
        assert wrong_kind.value.status == 401
        async with WhepPlayer(whep_url(srv, stream), new_token(srv, "subscribe"),
                              video=False) as player:
            rec = AudioRecorder(player.tracks_by_mid[player.mid_of("audio")], 3).start()
            assert abs(await heard(rec) - 440) < 5
            await rec.stop()
    finally:
        await publish.close()
