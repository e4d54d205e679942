"""GET /api/streams and /api/streams/{name} in-process: the admin secret, 404, what a live
stream reports (sources, tracks, codec, bitrate, loss, viewers, uptime) and the OpenAPI schema.
tests/e2e/test_metrics_e2e.py asks a real server about a real Opus publisher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest_asyncio
from tests.control.test_metrics import ADMIN, Env, make_env
from tests.sfu.fakes import (
    ABS_IN,
    VP8_DELTA,
    VP8_PT,
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    video_packet,
    video_params,
)

from hubbub.control.stream_stats import StreamStats
from hubbub.media import rtp

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


def sized_packet(seq: int, ts: int, ssrc: int, size: tuple[int, int] | None) -> bytes:
    """VP8: a keyframe of `size` (RFC 6386 §9.1 start code and size), else a delta frame."""
    body = VP8_DELTA if size is None else (
        b"\x10\x00\x00\x00\x9d\x01\x2a" + size[0].to_bytes(2, "little")
        + size[1].to_bytes(2, "little") + b"k" * 20)
    return rtp.build_packet(VP8_PT, seq, ts, ssrc, body, False, [(ABS_IN, b"\x01\x02\x03")])


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for made in make_env(tmp_path):
        yield made


async def get(env: Env, path: str) -> dict[str, Any]:
    reply = await env.client.get(path, headers=ADMIN_HEADERS)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    assert body["status"] == "success"
    data: dict[str, Any] = body["data"]
    return data


async def test_the_admin_secret_is_required(env: Env) -> None:
    for path in ("/api/streams", "/api/streams/room"):
        assert (await env.client.get(path)).status_code == 401
        reply = await env.client.get(path, headers={"Authorization": "Bearer wrong"})
        assert reply.status_code == 401


async def test_an_unknown_stream_is_404(env: Env) -> None:
    reply = await env.client.get("/api/streams/nobody", headers=ADMIN_HEADERS)
    assert reply.status_code == 404
    assert reply.json()["status"] == "fail"
    assert await get(env, "/api/streams") == {"streams": []}


async def test_a_live_stream_reports_its_sources_tracks_and_viewers(env: Env) -> None:
    node = env.node
    node.rates.stop()  # the test takes the samples, one second apart
    stream = node.streams.get_or_create("room")
    source = stream.publish("mic", [audio_params(), video_params()], FakeSink())
    stream.add_viewer([down_audio()], FakeSink())
    node.rates.sample(node, 100.0)
    # One second of Opus (50 packets of 20 ms) with 2 lost, and a VP8 keyframe.
    for seq in range(52):
        if seq not in (10, 11):
            source.on_rtp(audio_packet(seq, seq * 960))
    source.on_rtp(video_packet(0, 0, key=True))
    node.rates.sample(node, 101.0)

    data = await get(env, "/api/streams/room")
    StreamStats.model_validate(data)
    assert data["streamName"] == "room" and data["live"] is True
    assert data["uptime"] >= 0
    assert data["viewers"] == {"total": 1, "nodes": {node.cluster_id: 1}}
    (mic,) = data["sources"]
    assert mic["sourceId"] == "mic" and mic["uptime"] >= 0 and mic["started"] > 1.7e9
    audio, video = mic["tracks"]
    assert (audio["kind"], audio["codec"], audio["packets"]) == ("audio", "opus", 50)
    assert audio["packetsLost"] == 2
    assert audio["fractionLost"] == round(2 / 52, 4)
    packet_bits = len(audio_packet(0, 0)) * 8
    assert audio["bitrate"] == 50 * packet_bits
    assert audio["layers"] == []
    assert (video["kind"], video["codec"], video["packets"]) == ("video", "VP8", 1)

    listed = await get(env, "/api/streams")
    assert [s["streamName"] for s in listed["streams"]] == ["room"]


async def test_simulcast_layers_show_their_bitrate_and_size(env: Env) -> None:
    node = env.node
    node.rates.stop()
    stream = node.streams.get_or_create("cam")
    params = replace(video_params(ssrc=None), layer_ssrcs=[11, 22])
    source = stream.publish(None, [params], FakeSink())
    node.rates.sample(node, 100.0)
    for seq in range(30):
        source.on_rtp(sized_packet(seq, seq * 3000, 11, (1280, 720) if seq == 0 else None))
        source.on_rtp(sized_packet(seq, seq * 3000, 22, (320, 180) if seq == 0 else None))
    node.rates.sample(node, 101.0)
    (track,) = (await get(env, "/api/streams/cam"))["sources"][0]["tracks"]
    assert track["codec"] == "VP8" and track["packets"] == 60
    layers = {layer["encodingId"]: layer for layer in track["layers"]}
    assert (layers["0"]["width"], layers["0"]["height"]) == (1280, 720)
    assert (layers["1"]["width"], layers["1"]["height"]) == (320, 180)
    assert all(layer["bitrate"] > 0 for layer in layers.values())
    assert track["bitrate"] == sum(layer["bitrate"] for layer in layers.values())


async def test_the_replies_are_described_in_openapi(env: Env) -> None:
    spec = (await env.client.get("/openapi.json")).json()
    one = spec["paths"]["/api/streams/{stream_name}"]["get"]
    listed = spec["paths"]["/api/streams"]["get"]
    assert {"200", "401", "404"} <= set(one["responses"])
    assert "200" in listed["responses"]
    schemas = spec["components"]["schemas"]
    assert {"StreamStats", "SourceStats", "TrackStats", "LayerStats"} <= set(schemas)
    assert "bitrate" in schemas["TrackStats"]["properties"]
