from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiortc import MediaStreamTrack

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter
from hubbub.client.signaling import SignalingError
from hubbub.client.viewer import DEFAULT_EVENTS, Viewer
from tests.client.fakes import FakeConnection, FakeServer, FakeSfu, Handler

MakeServer = Callable[[Handler], Awaitable[FakeServer]]


def m_lines(sdp: str) -> list[tuple[str, str, str]]:
    """(kind, mid, direction) of each m-line, in order."""
    sections = re.split(r"\r\nm=", sdp)[1:]
    result = []
    for section in sections:
        kind = section.split(" ", 1)[0]
        mid = re.search(r"a=mid:(\S+)", section)
        direction = re.search(r"a=(sendrecv|sendonly|recvonly|inactive)", section)
        assert mid and direction
        result.append((kind, mid.group(1), direction.group(1)))
    return result


def answering(sfu: FakeSfu, send: Callable[[], dict[int, MediaStreamTrack]] | None = None,
              munge: Callable[[str], str] | None = None) -> Handler:
    async def handler(conn: FakeConnection, name: str, data: Any) -> dict[str, Any]:
        answer = await sfu.answer(data["sdp"], send() if send else None, munge)
        return {"sdp": answer, "subscriberId": "sub-1", "streamId": "acc/" + data["streamId"]}

    return handler


async def test_offer_has_video_audio_then_n_multiplexed_audio_m_lines(
    make_server: MakeServer, sfu: FakeSfu
) -> None:
    server = await make_server(answering(sfu))
    viewer = Viewer(server.url(), "room", token="t", pinned_source_id="owner",
                    excluded_source_ids=["me"], multiplexed_audio_tracks=3)
    async with viewer:
        assert viewer.subscriber_id == "sub-1"
        assert viewer.response["streamId"] == "acc/room"
        (view,) = server.connections[0].commands
        assert view["name"] == "view" and view["transId"] == 0
        data = view["data"]
        assert m_lines(data.pop("sdp")) == [
            ("video", "0", "recvonly"),
            ("audio", "1", "recvonly"),
            ("audio", "2", "recvonly"),
            ("audio", "3", "recvonly"),
            ("audio", "4", "recvonly"),
        ]
        assert data == {"streamId": "room", "pinnedSourceId": "owner",
                        "excludedSourceIds": ["me"], "events": DEFAULT_EVENTS, "vad": True}
        assert (viewer.video_mid, viewer.audio_mid) == ("0", "1")
        assert viewer.multiplexed_mids == ["2", "3", "4"]
        assert viewer.slots == {"2": None, "3": None, "4": None}
        assert server.connections[0].path == "/ws/v2/sub?token=t"


@pytest.mark.parametrize(
    ("options", "kinds", "vad"),
    [
        ({}, ["video", "audio"], False),
        ({"video": False}, ["audio"], False),
        ({"audio": False, "multiplexed_audio_tracks": 2}, ["video", "audio", "audio"], True),
        ({"video": False, "audio": False, "multiplexed_audio_tracks": 1}, ["audio"], True),
    ],
)
async def test_offer_shape_follows_the_options(
    make_server: MakeServer, sfu: FakeSfu, options: dict[str, Any], kinds: list[str], vad: bool
) -> None:
    server = await make_server(answering(sfu))
    async with Viewer(server.url(), "s", events=["active"], **options) as viewer:
        data = server.connections[0].commands[0]["data"]
        lines = m_lines(data["sdp"])
        assert [kind for kind, _, _ in lines] == kinds
        assert all(direction == "recvonly" for _, _, direction in lines)
        assert data["vad"] is vad and data["events"] == ["active"]
        assert "pinnedSourceId" not in data and "excludedSourceIds" not in data
        assert len(viewer.multiplexed_mids) == options.get("multiplexed_audio_tracks", 0)


def test_viewer_without_any_m_line_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one m-line"):
        Viewer("ws://127.0.0.1:1/ws/v2/sub", "s", video=False, audio=False)
    with pytest.raises(ValueError, match="must be >= 0"):
        Viewer("ws://127.0.0.1:1/ws/v2/sub", "s", multiplexed_audio_tracks=-1)


async def test_view_error_raises_and_leaves_nothing_open(make_server: MakeServer) -> None:
    async def refuse(conn: FakeConnection, name: str, data: Any) -> str:
        return "stream not found"

    server = await make_server(refuse)
    viewer = Viewer(server.url(), "nope")
    with pytest.raises(SignalingError, match="view: stream not found"):
        await viewer.connect()
    assert viewer.closed
    assert viewer.pc.connectionState == "closed"


async def test_vad_events_update_slots_and_wake_waiters(
    make_server: MakeServer, sfu: FakeSfu
) -> None:
    server = await make_server(answering(sfu))
    seen: list[str] = []
    async with Viewer(server.url(), "s", multiplexed_audio_tracks=2) as viewer:
        viewer.on_event = lambda name, data: seen.append(name)
        conn = server.connections[0]
        await conn.send_event("active", {"streamId": "a/s", "sourceId": None, "tracks": []})
        await conn.send_event("vad", {"mediaId": "2", "sourceId": "alice"})
        await conn.send_event("vad", {"mediaId": "3", "sourceId": "bob"})
        data = await viewer.wait_for_event("vad", lambda d: d["mediaId"] == "3")
        assert data == {"mediaId": "3", "sourceId": "bob"}
        assert viewer.slots == {"2": "alice", "3": "bob"}

        mark = len(viewer.events)
        await conn.send_event("vad", {"mediaId": "2", "sourceId": None})
        await conn.send_event("vad", {"mediaId": "3"})  # absent sourceId: idle
        await viewer.wait_for_event("vad", lambda d: d["mediaId"] == "3", since=mark)
        assert viewer.slots == {"2": None, "3": None}
        assert [name for name, _ in viewer.events] == ["active", "vad", "vad", "vad", "vad"]
        assert seen == ["vad", "vad", "vad", "vad"] or seen[-2:] == ["vad", "vad"]

        with pytest.raises(TimeoutError, match="no matching 'stopped' event"):
            await viewer.wait_for_event("stopped", timeout=0.05)

        waiting = asyncio.create_task(viewer.wait_for_event("stopped", timeout=5))
        await asyncio.sleep(0.05)
        await conn.ws.close()
        with pytest.raises(ConnectionError):
            await waiting
        await viewer.wait_closed(timeout=2)
        assert viewer.closed


def strip_ssrc_lines(sdp: str) -> str:
    return "".join(
        line for line in sdp.splitlines(keepends=True)
        if not line.startswith(("a=ssrc:", "a=ssrc-group:"))
    )


@pytest.mark.parametrize("munge", [None, strip_ssrc_lines], ids=["with-ssrc", "mid-only"])
async def test_tracks_by_mid_carry_the_media_sent_into_each_m_line(
    make_server: MakeServer, sfu: FakeSfu, munge: Callable[[str], str] | None
) -> None:
    # m-line index -> what the fake SFU sends there: pattern, main tone, two multiplexed tones
    def send() -> dict[int, MediaStreamTrack]:
        return {0: PatternTrack(), 1: ToneTrack(440), 2: ToneTrack(660), 3: ToneTrack(880)}

    server = await make_server(answering(sfu, send, munge))
    async with Viewer(server.url(), "s", multiplexed_audio_tracks=2) as viewer:
        assert sorted(viewer.tracks_by_mid) == ["0", "1", "2", "3"]
        assert viewer.tracks_by_mid["0"].kind == "video"
        video = VideoCounter(viewer.tracks_by_mid["0"]).start()
        audio = {mid: AudioRecorder(viewer.tracks_by_mid[mid]).start() for mid in "123"}
        await asyncio.gather(video.wait_for_frames(5), *(a.wait_for_frames(40) for a in
                                                         audio.values()))
        assert video.last_size == (320, 240)
        for mid, tone in (("1", 440), ("2", 660), ("3", 880)):
            recorder = audio[mid]
            assert recorder.sample_rate == 48000
            assert abs(dominant_frequency(recorder.samples(0.5), 48000) - tone) < 3, mid


async def test_closing_a_viewer_leaves_no_tasks_behind(
    make_server: MakeServer, sfu: FakeSfu
) -> None:
    server = await make_server(answering(sfu, lambda: {1: ToneTrack(440)}))
    before = asyncio.all_tasks()
    async with Viewer(server.url(), "s") as viewer:
        recorder = AudioRecorder(viewer.tracks_by_mid["1"]).start()
        await recorder.wait_for_frames(5)
    await asyncio.sleep(0.1)
    assert recorder.ended  # the remote track ended with the peer connection
    leftover = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert not leftover, [t.get_name() for t in leftover]
