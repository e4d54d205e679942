"""One RTMP connection against a scripted encoder: the command exchange, media to the
Publisher, refusals that reach the encoder, and the limits that close abusive connections."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from hubbub.ingest.rtmp import PublishRequest, Refusal, RtmpLimits, RtmpServer
from hubbub.ingest.rtmp.amf0 import encode_all
from hubbub.ingest.rtmp.chunks import (
    ACKNOWLEDGEMENT,
    AMF0_DATA,
    AUDIO,
    SET_CHUNK_SIZE,
    SET_PEER_BANDWIDTH,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    chunk_header,
)

from .rtmp_helpers import Gate, Recorder, RtmpClient

FAST = RtmpLimits(handshake_timeout=0.5, publish_timeout=0.5, authorize_timeout=0.3,
                  idle_timeout=0.7, linger=0.2)
SPS, PPS = bytes.fromhex("6742c01fd9"), bytes.fromhex("68ce3c80")
AVC_HEADER = (bytes([0x17, 0, 0, 0, 0, 1, 0x42, 0xC0, 0x1F, 0xFF, 0xE1, 0, len(SPS)]) + SPS
              + bytes([1, 0, len(PPS)]) + PPS)
IDR = bytes([0x17, 1, 0, 0, 0]) + (3).to_bytes(4, "big") + b"\x65\x88\x84"
P_FRAME = bytes([0x27, 1, 0, 0, 0]) + (2).to_bytes(4, "big") + b"\x41\x9a"
AAC_HEADER, AAC_FRAME = b"\xaf\x00\x12\x10", b"\xaf\x01" + bytes(20)
LOGGER = "hubbub.ingest.rtmp.session"


@pytest.fixture
async def gate() -> Gate:
    return Gate()


@pytest.fixture
async def server(gate: Gate) -> AsyncIterator[RtmpServer]:
    async with RtmpServer(gate, "127.0.0.1", 0, FAST, max_per_address=3) as srv:
        yield srv


def session_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


async def test_publish_is_answered_and_media_reaches_the_publisher(
        server: RtmpServer, gate: Gate) -> None:
    client = await RtmpClient.open(server.port)
    status = await client.publish("myStream?token=t1&sourceId=cam")
    assert (status["level"], status["code"]) == ("status", "NetStream.Publish.Start")
    types = [m.type_id for m in client.received]
    assert {WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH, USER_CONTROL} <= set(types)
    assert client.inp.chunk_size == 4096  # our Set Chunk Size was applied by the client's reader
    connect = next(m for m in client.received if m.type_id == 20)
    assert b"NetConnection.Connect.Success" in connect.payload
    [request] = gate.requests
    assert (request.app, request.stream_name, dict(request.query)) == (
        "v2/pub", "myStream", {"token": "t1", "sourceId": "cam"})

    client.send(AMF0_DATA, encode_all("@setDataFrame", "onMetaData", {"videocodecid": 7}),
                stream_id=1, csid=4)
    client.send(VIDEO, AVC_HEADER, 1, 0, csid=6)
    client.send(AUDIO, AAC_HEADER, 1, 0, csid=4)
    client.send(VIDEO, IDR, 1, 40, csid=6)
    client.send(AUDIO, AAC_FRAME, 1, 23, csid=4)
    client.send(VIDEO, P_FRAME, 1, 73, csid=6)
    client.command("FCUnpublish", 6, None, "myStream")
    [recorder] = gate.recorders
    await asyncio.wait_for(recorder.ended.wait(), 3)
    assert recorder.metadata == [{"videocodecid": 7.0}]
    assert recorder.video_configs[0].sps == (SPS,)
    assert recorder.audio_configs[0].sample_rate == 44100
    assert [(f.ts, f.cts, f.is_key, f.nal_types) for f in recorder.video] == [
        (40, 0, True, [5]), (73, 0, False, [1])]
    assert recorder.audio == [(23, 20)]
    assert recorder.reasons == ["unpublished by the encoder"]
    client.close()


async def test_query_on_the_app_is_read_and_the_publish_name_wins(
        server: RtmpServer, gate: Gate) -> None:
    client = await RtmpClient.open(server.port)
    await client.publish("s?sourceId=b", app="v2/pub?token=fromapp&sourceId=a")
    [request] = gate.requests
    assert (request.app, request.token, request.source_id) == ("v2/pub", "fromapp", "b")
    client.close()


async def test_stop_refuses_a_live_publication(server: RtmpServer, gate: Gate) -> None:
    client = await RtmpClient.open(server.port)
    await client.publish("s?token=t")
    client.send(VIDEO, AVC_HEADER, 1, 0, csid=6)
    [recorder] = gate.recorders
    await asyncio.sleep(0.05)
    gate.requests[0].control.stop("hubbub: replaced by a newer publisher")
    status = (await client.until("onStatus"))[3]
    assert isinstance(status, dict)
    assert (status["level"], status["description"]) == (
        "error", "hubbub: replaced by a newer publisher")
    assert await client.closed()
    assert recorder.reasons == ["refused: hubbub: replaced by a newer publisher"]


@pytest.mark.parametrize(("verdict", "description"), [
    ("raise", "hubbub: internal error"),
    ("slow", "hubbub: authorization timed out"),
    ("refuse", "hubbub: stream not allowed"),
])
async def test_authorizer_failures_reach_the_encoder(verdict: str, description: str) -> None:
    async def authorize(request: PublishRequest) -> Recorder | Refusal:
        if verdict == "raise":
            raise RuntimeError("database down")
        if verdict == "slow":
            await asyncio.sleep(5)
        return Refusal("hubbub: stream not allowed")

    async with RtmpServer(authorize, "127.0.0.1", 0, FAST) as server:
        client = await RtmpClient.open(server.port)
        status = await client.publish("s?token=t")
        assert (status["level"], status["description"]) == ("error", description)
        assert await client.closed()


async def test_stop_during_authorization_wins_over_the_verdict() -> None:
    recorder = Recorder()

    async def authorize(request: PublishRequest) -> Recorder | Refusal:
        request.control.stop("hubbub: token revoked")
        return recorder

    async with RtmpServer(authorize, "127.0.0.1", 0, FAST) as server:
        client = await RtmpClient.open(server.port)
        status = await client.publish("s?token=t")
        assert (status["level"], status["description"]) == ("error", "hubbub: token revoked")
        assert await client.closed()
    assert recorder.reasons == ["refused: hubbub: token revoked"]


@pytest.mark.parametrize(("kind", "tag", "description"), [
    (AUDIO, b"\x2f\xff\xfb", "hubbub: MP3 audio is not supported (use AAC)"),
    (AUDIO, b"\xaf\x01\x00",
     "hubbub: malformed media: AAC frames before the AAC sequence header"),
    (VIDEO, b"\x90hvc1\x00", "hubbub: enhanced-RTMP 'hvc1' video is not supported (use H.264)"),
    (VIDEO, P_FRAME, "hubbub: malformed media: H.264 frames before the AVC sequence header"),
    (VIDEO, AVC_HEADER[:8], "hubbub: malformed media: AVC decoder configuration record is "
                            "truncated"),
])
async def test_unsupported_or_malformed_media_is_refused(
        server: RtmpServer, gate: Gate, kind: int, tag: bytes, description: str) -> None:
    client = await RtmpClient.open(server.port)
    await client.publish("s?token=t")
    client.send(kind, tag, 1, 0, csid=4)
    status = (await client.until("onStatus"))[3]
    assert isinstance(status, dict) and status["description"] == description
    assert await client.closed()
    assert gate.recorders[0].reasons == [f"refused: {description}"]


async def test_an_amf3_command_message_is_read_as_amf0(server: RtmpServer, gate: Gate) -> None:
    client = await RtmpClient.open(server.port)
    await client.connect()
    client.command("createStream", 2, None)
    await client.until("_result")
    client.send(17, b"\x00" + encode_all("publish", 3, None, "s3?token=t", "live"), stream_id=1)
    status = (await client.until("onStatus"))[3]
    assert isinstance(status, dict) and status["code"] == "NetStream.Publish.Start"
    assert gate.requests[0].stream_name == "s3"
    client.close()


async def test_play_is_refused(server: RtmpServer) -> None:
    client = await RtmpClient.open(server.port)
    await client.connect()
    client.command("play", 2, None, "s")
    status = (await client.until("onStatus"))[3]
    assert isinstance(status, dict) and status["code"] == "NetStream.Play.Failed"
    assert await client.closed()


async def test_ping_is_answered_and_acknowledgements_follow_the_window(
        server: RtmpServer) -> None:
    client = await RtmpClient.open(server.port)
    await client.connect()
    client.send(WINDOW_ACK_SIZE, (1000).to_bytes(4, "big"), csid=2)
    client.send(USER_CONTROL, b"\x00\x06" + (1234).to_bytes(4, "big"), csid=2)
    client.command("getStreamLength", 7, None, "x" * 1200)
    while True:
        message = await client.recv()
        assert message is not None
        if message.type_id == USER_CONTROL:
            assert message.payload == b"\x00\x07" + (1234).to_bytes(4, "big")
        if message.type_id == ACKNOWLEDGEMENT:
            assert int.from_bytes(message.payload, "big") >= 1000
            break
    client.close()


@pytest.mark.parametrize(("data", "reason"), [
    (chunk_header(1, 6, 0, 1, VIDEO) + b"x", "chunk stream 6 starts with a type-1 header"),
    (chunk_header(0, 3, 0, 100_000, 20, 0), "message of 100000 bytes (type 20) is over"),
    (chunk_header(0, 3, 0, 3, 20, 0) + b"\x07\x00\x01", "AMF0 type 0x07 is not supported"),
    (chunk_header(0, 6, 0, 5, VIDEO, 1) + IDR[:5], "media before publish"),
    (chunk_header(0, 3, 0, 1, 20, 0) + b"\x05", "command without a name"),
    (chunk_header(0, 2, 0, 4, SET_CHUNK_SIZE, 0) + bytes(4), "Set Chunk Size 0 is out of range"),
])
async def test_malformed_input_closes_with_one_log_line(
        server: RtmpServer, caplog: pytest.LogCaptureFixture, data: bytes, reason: str) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    client = await RtmpClient.open(server.port)
    client.writer.write(data)
    assert await client.closed()
    await asyncio.sleep(0.05)
    [line] = session_logs(caplog)
    assert reason in line and "malformed input" not in line  # the reason, said once


async def test_deadlines_close_silent_connections(
        server: RtmpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    loop = asyncio.get_running_loop()
    started = loop.time()
    silent = await RtmpClient.open(server.port, handshake=False)
    no_publish = await RtmpClient.open(server.port)
    await no_publish.connect()
    idle = await RtmpClient.open(server.port)
    await idle.publish("s?token=t")
    assert await silent.closed() and await idle.closed() and await no_publish.closed()
    assert loop.time() - started < 2.0
    await asyncio.sleep(0.05)
    logs = session_logs(caplog)
    assert any("handshake not completed in time" in line for line in logs)
    assert any("no publish within 0.5 s" in line for line in logs)
    assert any(" s: closed, idle for 0.7 s" in line for line in logs)  # the publishing one


async def test_a_port_probe_is_not_logged(
        server: RtmpServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    probe = await RtmpClient.open(server.port, handshake=False)
    probe.writer.write(b"\x03" + bytes(100))
    probe.close()
    await asyncio.sleep(0.1)
    assert server.sessions == 0 and session_logs(caplog) == []


async def test_wrong_version_is_closed(server: RtmpServer) -> None:
    client = await RtmpClient.open(server.port, handshake=False)
    client.writer.write(b"\x06" + bytes(1536))
    assert await client.closed()


async def test_connections_per_address_are_capped(server: RtmpServer) -> None:
    clients = [await RtmpClient.open(server.port) for _ in range(3)]
    extra = await RtmpClient.open(server.port, handshake=False)
    assert await extra.closed(1.0)
    assert server.stats.refused_over_cap == 1 and server.sessions == 3
    for client in clients:
        client.close()


async def test_server_close_ends_publications(gate: Gate) -> None:
    server = RtmpServer(gate, "127.0.0.1", 0, FAST)
    await server.start()
    client = await RtmpClient.open(server.port)
    await client.publish("s?token=t")
    await server.close()
    assert gate.recorders[0].reasons == ["server closing"]
    assert await client.closed()
