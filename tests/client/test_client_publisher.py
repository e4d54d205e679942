from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
import pytest

from hubbub.client.analysis import tone_present
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter
from hubbub.client.patches import is_loopback_url
from hubbub.client.publisher import Publisher, use_loopback_only
from hubbub.client.signaling import SignalingError
from tests.client.fakes import FakeConnection, FakeServer, FakeSfu, Handler

MakeServer = Callable[[Handler], Awaitable[FakeServer]]


def accepting(sfu: FakeSfu) -> Handler:
    async def handler(conn: FakeConnection, name: str, data: Any) -> dict[str, Any]:
        answer = await sfu.answer(data["sdp"])
        return {"sdp": answer, "publisherId": "pub-7", "clusterId": "local", "feedId": "f"}

    return handler


def video_codecs(sdp: str) -> list[str]:
    video = sdp.split("\r\nm=video", 1)[1].split("\r\nm=", 1)[0]
    return sorted(set(re.findall(r"a=rtpmap:\d+ ([\w-]+)/", video)))


async def test_publish_sends_name_codec_source_and_a_sendonly_offer(
    make_server: MakeServer, sfu: FakeSfu
) -> None:
    server = await make_server(accepting(sfu))
    tracks = [ToneTrack(440), PatternTrack()]
    async with Publisher(server.url("/ws/v2/pub"), "live", source_id="alice", token="jwt",
                         tracks=tracks, events=["active", "viewercount"], priority=2) as pub:
        assert pub.publisher_id == "pub-7"
        (command,) = server.connections[0].commands
        assert command["name"] == "publish" and command["transId"] == 0
        data = dict(command["data"])
        sdp = data.pop("sdp")
        assert data == {"name": "live", "codec": "vp8", "sourceId": "alice", "priority": 2,
                        "events": ["active", "viewercount"]}
        assert re.findall(r"m=(\w+) ", sdp) == ["audio", "video"]
        assert re.findall(r"a=(sendonly|recvonly|sendrecv|inactive)", sdp) == ["sendonly"] * 2
        assert video_codecs(sdp) == ["VP8", "rtx"]
        assert server.connections[0].path == "/ws/v2/pub?token=jwt"

        # media really leaves: the fake SFU decodes the tone and the pattern
        audio, video = sorted(sfu.received, key=lambda t: t.kind)
        recorder = AudioRecorder(audio).start()
        counter = VideoCounter(video).start()
        await recorder.wait_for_frames(30)
        await counter.wait_for_frames(3)
        assert tone_present(recorder.samples(0.4), 440, recorder.sample_rate, tolerance_hz=3)
        assert counter.last_size == (320, 240)
        await recorder.stop()
        await counter.stop()


async def test_main_source_publish_omits_source_id_and_h264_is_offered_alone(
    make_server: MakeServer, sfu: FakeSfu
) -> None:
    server = await make_server(accepting(sfu))
    async with Publisher(server.url("/ws/v2/pub"), "live", codec="h264",
                         tracks=[PatternTrack()]):
        data = server.connections[0].commands[0]["data"]
        assert "sourceId" not in data and "priority" not in data and "events" not in data
        assert data["codec"] == "h264"
        assert video_codecs(data["sdp"]) == ["H264", "rtx"]


async def test_publisher_events_are_logged_and_awaitable(
    make_server: MakeServer, sfu: FakeSfu
) -> None:
    server = await make_server(accepting(sfu))
    names: list[str] = []
    async with Publisher(server.url("/ws/v2/pub"), "live", tracks=[ToneTrack(300)],
                         on_event=lambda name, data: names.append(name)) as pub:
        await server.connections[0].send_event("active", {})
        await server.connections[0].send_event("viewercount", {"viewercount": 3})
        assert await pub.wait_for_event("viewercount") == {"viewercount": 3}
        assert pub.events == [("active", {}), ("viewercount", {"viewercount": 3})]
        assert names == ["active", "viewercount"]


async def test_refused_publish_raises_and_closes(make_server: MakeServer) -> None:
    async def refuse(conn: FakeConnection, name: str, data: Any) -> str:
        return "Unauthorized: token does not cover stream"

    server = await make_server(refuse)
    pub = Publisher(server.url("/ws/v2/pub"), "live", tracks=[ToneTrack(440)])
    with pytest.raises(SignalingError, match="token does not cover stream"):
        await pub.connect()
    assert pub.closed and pub.pc.connectionState == "closed"
    assert pub.publisher_id is None


def test_bad_arguments_are_refused() -> None:
    url = "ws://127.0.0.1:1/ws/v2/pub"
    with pytest.raises(ValueError, match="unknown codec 'mpeg2'"):
        Publisher(url, "s", codec="mpeg2", tracks=[ToneTrack(440)])
    with pytest.raises(ValueError, match="aiortc cannot encode 'vp9'"):
        Publisher(url, "s", codec="vp9", tracks=[PatternTrack()])
    with pytest.raises(ValueError, match="at least one track"):
        Publisher(url, "s", tracks=[])
    Publisher(url, "s", codec="vp9", tracks=[ToneTrack(440)])  # audio only: codec is just sent


def test_loopback_helpers() -> None:
    use_loopback_only()
    assert aioice.ice.get_host_addresses(True, True) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(False, True) == []
    assert is_loopback_url("ws://127.0.0.1:8080/ws/v2/pub")
    assert is_loopback_url("ws://127.8.9.1/ws/v2/pub")
    assert is_loopback_url("ws://localhost:8080/ws/v2/sub?token=x")
    assert is_loopback_url("ws://[::1]:8080/ws/v2/sub")
    assert not is_loopback_url("ws://10.0.0.1:8080/ws/v2/sub")
    assert not is_loopback_url("ws://example.com/ws/v2/sub")
