"""control/rtmp.py in-process: the publish token rules at RTMP `publish`, and the publication
that turns an encoder's configuration and frames into a Source (SQLite token store)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from hubbub.config import Config
from hubbub.control.app import create_app
from hubbub.control.auth import datadir
from hubbub.control.auth.service import Auth
from hubbub.control.node import Node
from hubbub.control.rtmp import AUDIO_PT, VIDEO_PT, RtmpIngest, RtmpPublication
from hubbub.ingest.rtmp import BAD_NAME, AacConfig, AvcConfig, PublishRequest, Refusal

ADMIN = "admin-secret-for-rtmp-tests-0123456789"
SPS = bytes.fromhex("6742c00d8c8d40a0fd00f08840")  # any bytes with NAL type 7 do here
PPS = bytes.fromhex("68ce3c80")
AVC = AvcConfig(profile=66, compatibility=0xC0, level=13, nal_length_size=4, sps=(SPS,),
                pps=(PPS,), record=b"")
AAC = AacConfig(object_type=2, sample_rate=44100, channels=2, asc=bytes.fromhex("1210"))


@dataclass
class Control:
    stops: list[str] = field(default_factory=list)

    def stop(self, description: str, code: str = "NetStream.Publish.Rejected") -> None:
        self.stops.append(description)


@dataclass
class Env:
    node: Node
    auth: Auth
    ingest: RtmpIngest
    client: httpx.AsyncClient

    async def token(self, **fields: Any) -> dict[str, Any]:
        body = {"streams": [{"streamName": "cam*"}], **fields}
        reply = await self.client.post("/api/publish_token", json=body,
                                       headers={"Authorization": f"Bearer {ADMIN}"})
        assert reply.status_code == 201, reply.text
        data: dict[str, Any] = reply.json()["data"]
        return data

    async def publish(self, name: str, query: dict[str, str], app: str = "v2/pub",
                      ip: str = "127.0.0.1",
                      control: Control | None = None) -> RtmpPublication | Refusal:
        request = PublishRequest(app, name, query, (ip, 50000), f"rtmp://h/{app}",
                                 "FMLE/3.0 (compatible; Lavf59.27.100)", control or Control())
        verdict = await self.ingest.authorize(request)
        assert isinstance(verdict, (RtmpPublication, Refusal))
        return verdict


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    config = Config()
    config.auth.data_dir = str(tmp_path / "data")
    config.auth.api_secret = ADMIN
    node = Node(config)
    auth = Auth(config.auth, datadir.prepare(config.auth))
    app = create_app(node, auth)
    assert node.rtmp is None  # rtmp_port is off in a Config(): in-process nodes bind nothing
    await auth.start()
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://media.test") as c:
        yield Env(node, auth, RtmpIngest(node, auth), c)
    await auth.stop()


def refused(verdict: RtmpPublication | Refusal, text: str) -> None:
    assert isinstance(verdict, Refusal), verdict
    assert verdict.code == BAD_NAME
    assert verdict.description.startswith("hubbub: ") and text in verdict.description, verdict


async def test_long_lived_publish_token_rules(env: Env) -> None:
    token = (await env.token())["token"]
    ok = await env.publish("cam1", {"token": token})
    assert isinstance(ok, RtmpPublication) and ok.name == "cam1"
    ok.closed("done")
    ok = await env.publish("hubbub/cam2", {"token": token})  # accountId/ prefix stripped
    assert isinstance(ok, RtmpPublication) and ok.name == "cam2"
    ok.closed("done")
    refused(await env.publish("cam1", {}), "token required")
    refused(await env.publish("cam1", {"token": "nope"}), "Unauthorized: Invalid token")
    refused(await env.publish("other", {"token": token}), "does not cover stream 'other'")
    refused(await env.publish("cam1", {"token": token}, app="live"), "unknown application")
    refused(await env.publish("bad name!", {"token": token}), "invalid stream name")
    refused(await env.publish("cam1", {"token": token, "sourceId": "s1"}),
            "multisource publishing is not enabled")
    multi = (await env.token(multisource=True))["token"]
    ok = await env.publish("cam1", {"token": multi, "sourceId": "s1"})
    assert isinstance(ok, RtmpPublication) and ok.source_id == "s1"
    ok.closed("done")


async def test_expiry_revocation_and_addresses(env: Env) -> None:
    pub = await env.token(allowedIpAddresses=["10.0.0.0/8"],
                          allowedOrigins=["https://a.example"])  # origins: not for encoders
    assert isinstance(await env.publish("cam", {"token": pub["token"]}, ip="10.1.2.3"),
                      RtmpPublication)
    refused(await env.publish("cam", {"token": pub["token"]}, ip="192.0.2.1"),
            "client address not allowed")
    await env.auth.store.update("publish", pub["id"], {"expires_on": time.time() - 1})
    refused(await env.publish("cam", {"token": pub["token"]}, ip="10.1.2.3"), "token expired")
    other = await env.token()
    await env.client.post(f"/api/publish_token/{other['id']}/revoke",
                          headers={"Authorization": f"Bearer {ADMIN}"})
    refused(await env.publish("cam", {"token": other["token"]}), "token revoked")


async def test_director_jwt(env: Env) -> None:
    token = (await env.token())["token"]
    reply = await env.client.post("/api/director/publish", json={"streamName": "cam9"},
                                  headers={"Authorization": f"Bearer {token}"})
    jwt = reply.json()["data"]["jwt"]
    ok = await env.publish("cam9", {"token": jwt})
    assert isinstance(ok, RtmpPublication)
    ok.closed("done")
    refused(await env.publish("cam8", {"token": jwt}), "the token is for 'cam9'")
    refused(await env.publish("cam9", {"token": jwt[:-4] + "AAAA"}), "Unauthorized")


async def test_allow_any_stream_needs_no_token(env: Env) -> None:
    env.node.config.control.allow_any_stream = True
    ok = await env.publish("anything", {"sourceId": "x"})
    assert isinstance(ok, RtmpPublication)
    ok.closed("done")


async def test_publication_feeds_a_source_and_ends(env: Env) -> None:
    env.node.config.control.allow_any_stream = True
    pub = await env.publish("live", {})
    assert isinstance(pub, RtmpPublication)
    assert pub.on_metadata({"videocodecid": 7.0, "audiocodecid": 10.0}) is None
    assert pub.on_video_config(AVC) is None
    assert pub.source is None  # waits for the AAC header onMetaData announced
    assert pub.on_audio_config(AAC) is None
    source = pub.source
    assert source is not None and source.source_id is None
    video, audio = source.tracks
    assert (video.params.codec, video.params.payload_type, video.params.clock_rate) == \
        ("H264", VIDEO_PT, 90000)
    assert video.params.fmtp == ("level-asymmetry-allowed=1;packetization-mode=1;"
                                 "profile-level-id=42c00d")
    assert (audio.params.codec, audio.params.payload_type, audio.params.fmtp) == \
        ("opus", AUDIO_PT, "minptime=10;useinbandfec=1")
    stream = env.node.streams.get_or_create("live")
    assert stream.sources[None] is source
    idr = bytes([0x65]) + bytes(3000)
    assert pub.on_video(1000, 0, True, [idr]) is None
    assert video.packets == 4  # STAP-A (SPS, PPS) and three FU-A fragments
    assert source.packets_unknown == 0 and source.packets_malformed == 0
    refusal = pub.on_video(1033, 67, False, [bytes([0x41]) + bytes(100)])
    assert isinstance(refusal, Refusal) and "B-frames are not supported" in refusal.description
    pub.closed("refused")
    assert None not in stream.sources


async def test_a_second_publish_replaces_the_first(env: Env) -> None:
    env.node.config.control.allow_any_stream = True
    first_control = Control()
    first = await env.publish("live", {}, control=first_control)
    assert isinstance(first, RtmpPublication)
    first.on_video_config(AVC)
    first.on_audio_config(AAC)
    assert first.source is not None
    second = await env.publish("live", {})
    assert isinstance(second, RtmpPublication)
    second.on_video_config(AVC)
    second.on_audio_config(AAC)
    assert first_control.stops == ["hubbub: replaced by a new publisher"]
    assert first.source is None
    first.closed("replaced")  # the floor then ends it: the new source stays live
    stream = env.node.streams.get_or_create("live")
    assert stream.sources[None] is second.source
    second.closed("done")
    assert None not in stream.sources


async def test_admin_stop_ends_an_rtmp_source(env: Env) -> None:
    env.node.config.control.allow_any_stream = True
    control = Control()
    pub = await env.publish("live", {"sourceId": "cam"}, control=control)
    assert isinstance(pub, RtmpPublication)
    pub.on_video_config(AVC)
    pub.on_audio_config(AAC)
    assert pub.source is not None
    assert env.node.hub.owner_of(pub.source) is pub
    reply = await env.client.post("/api/streams/live/sources/cam/stop",
                                  headers={"Authorization": f"Bearer {ADMIN}"})
    assert reply.status_code == 200, reply.text
    assert len(control.stops) == 1 and control.stops[0].startswith("hubbub: ")
    assert pub.source is None
    assert env.node.streams.get("live") is None or \
        "cam" not in env.node.streams.get_or_create("live").sources


async def test_sender_reports_put_audio_and_video_on_one_clock(env: Env) -> None:
    from tests.ingest.test_aac_opus import make_aac

    env.node.config.control.allow_any_stream = True
    asc, frames = make_aac(0.5)
    pub = await env.publish("synced", {})
    assert isinstance(pub, RtmpPublication)
    pub.on_video_config(AVC)
    pub.on_audio_config(AacConfig(object_type=2, sample_rate=44100, channels=2, asc=asc))
    assert pub.source is not None
    video, audio = pub.source.tracks
    start = 5000  # FLV ms of the first frame
    assert pub.on_video(start, 0, True, [bytes([0x65]) + bytes(500)]) is None
    for frame, ms in frames:
        assert pub.on_audio(start + ms, frame) is None
    assert video.sr_ntp >= 0 and audio.sr_ntp >= 0
    # RFC 6464 level of the 0.5-amplitude sine (RMS -9 dBov) rides on every audio packet
    assert audio.packets >= 20 and audio.audio_level in (8, 9, 10)
    assert pub.source.packets_malformed == 0

    def ntp_seconds(track: Any, ms: int) -> float:
        rate = track.params.clock_rate
        delta = ((ms * rate // 1000 - track.sr_rtp + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        return float(track.sr_ntp) / 2**32 + delta / rate

    # The same FLV instant maps to the same NTP time on both tracks (lip sync).
    for ms in (start, start + 400, start + 10_000):
        assert abs(ntp_seconds(video, ms) - ntp_seconds(audio, ms)) < 0.002
    assert abs(ntp_seconds(video, start) - (time.time() + 2208988800)) < 5
    pub.closed("done")
