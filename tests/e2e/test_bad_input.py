"""Bad input while a viewer is receiving: every bad thing is refused or dropped, the viewer
keeps hearing its tone, and the server keeps serving."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import websockets
from aioice import stun
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack
from tests.helpers.server import RunningServer

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, ToneTrack
from hubbub.client.patches import use_loopback_only
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

STREAM = "badinput"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="bad-input") as s:
        yield s


@pytest.fixture
async def receiving(srv: RunningServer) -> AsyncIterator[tuple[Viewer, AudioRecorder]]:
    """A 440 Hz publisher and a viewer that hears it."""
    async with Publisher(srv.ws_pub_url, STREAM, tracks=[ToneTrack(440)]) as pub:
        await pub.wait_connected()
        async with Viewer(srv.ws_sub_url, STREAM, video=False) as viewer:
            await viewer.wait_connected()
            recorder = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], 3).start()
            await recorder.wait_for_frames(50)
            yield viewer, recorder
            await recorder.stop()


async def still_hears_440(recorder: AudioRecorder) -> None:
    before = recorder.frames
    await recorder.wait_for_frames(before + 75, timeout=10)
    freq = dominant_frequency(recorder.samples(1.0), recorder.sample_rate)
    assert abs(freq - 440) < 5, f"viewer now hears {freq:.1f} Hz"


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    return sock


def binding_request(username: str, pwd: str, **extra: object) -> bytes:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1853817087
    request.attributes["ICE-CONTROLLING"] = 1234
    request.attributes.update(extra)
    request.add_message_integrity(pwd.encode())
    return bytes(request)


async def ws_exchange(url: str, payload: str | bytes) -> dict[str, object]:
    async with websockets.connect(url) as ws:
        await ws.send(payload)
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert isinstance(reply, dict)
        return reply


async def test_garbage_datagrams_are_dropped(
    srv: RunningServer, receiving: tuple[Viewer, AudioRecorder]
) -> None:
    _, recorder = receiving
    rng = random.Random(7)
    sock = udp_socket()
    for i in range(3000):
        first = rng.choice([0, 1, 2, 3, 20, 22, 63, 128, 144, 191, 200, 255])
        size = rng.choice([1, 2, 12, 20, 100, 1200, 1472])
        sock.sendto(bytes([first]) + os.urandom(size - 1), ("127.0.0.1", srv.media_port))
        if i % 300 == 0:
            await asyncio.sleep(0.01)
    sock.close()
    await still_hears_440(recorder)


async def test_stun_with_unknown_ufrag_or_a_bad_password_gets_no_answer(
    srv: RunningServer, receiving: tuple[Viewer, AudioRecorder]
) -> None:
    viewer, recorder = receiving
    answer = viewer.pc.remoteDescription.sdp
    match = re.search(r"a=ice-ufrag:(\S+)", answer)
    assert match
    server_ufrag = match.group(1)
    sock = udp_socket()
    target = ("127.0.0.1", srv.media_port)
    # Unknown ufrag: silence (no reflection for strangers).
    sock.sendto(binding_request("nosuchufrag:x", "p" * 24), target)
    with pytest.raises(TimeoutError):
        sock.recvfrom(2048)
    # Known ufrag, wrong password: silence too (RFC 8489 §9.1.3 would answer 401; the media
    # port drops it unanswered: an answer is work and reflection, and libwebrtc treats a 401 to
    # a check as "retry", the same as no answer; issue 13).
    sock.sendto(binding_request(f"{server_ufrag}:x", "wrong-password-wrong-pw"), target)
    with pytest.raises(TimeoutError):
        sock.recvfrom(2048)
    # Truncated and mangled STUN.
    good = binding_request(f"{server_ufrag}:x", "wrong-password-wrong-pw")
    for cut in range(1, len(good), 7):
        sock.sendto(good[:cut], target)
    sock.sendto(good[:20] + b"\xff" * (len(good) - 20), target)
    sock.close()
    await still_hears_440(recorder)


async def test_wrong_dtls_fingerprint_publisher_is_refused(
    srv: RunningServer, receiving: tuple[Viewer, AudioRecorder]
) -> None:
    viewer, recorder = receiving
    use_loopback_only()
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = re.sub(
        r"(a=fingerprint:sha-256 )([0-9A-F]{2})",
        lambda m: m.group(1) + ("00" if m.group(2) != "00" else "11"),
        pc.localDescription.sdp,
    )
    try:
        async with websockets.connect(srv.ws_pub_url) as ws:
            cmd = {"type": "cmd", "transId": 0, "name": "publish",
                   "data": {"name": STREAM, "sourceId": "intruder", "sdp": offer}}
            await ws.send(json.dumps(cmd))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["type"] == "response"
            from aiortc import RTCSessionDescription

            await pc.setRemoteDescription(RTCSessionDescription(reply["data"]["sdp"], "answer"))
            # DTLS fails on our side: the server says why in an `error` event, then closes the
            # signaling socket with the reason.
            event = json.loads(await asyncio.wait_for(ws.recv(), 15))
            assert event["type"] == "event" and event["name"] == "error", event
            assert event["data"]["code"] == "transport-failed"
            assert "fingerprint" in event["data"]["message"]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert "fingerprint" in (closed.value.rcvd.reason if closed.value.rcvd else "")
    finally:
        await pc.close()
    assert not [d for n, d in viewer.events if d.get("sourceId") == "intruder"]
    await still_hears_440(recorder)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ("{not json", "invalid JSON"),
        ("[1, 2, 3]", "message must be a JSON object"),
        ('{"type": "cmd", "transId": 5, "name": "dance", "data": {}}', "unknown command 'dance'"),
        ('{"type": "cmd", "transId": 6, "name": "view", "data": {"streamId": "x", '
         '"sdp": "v=0\\r\\nthis is not sdp"}}', "SDP"),
        ('{"type": "cmd", "transId": 7, "name": "view", "data": {"streamId": "bad name!", '
         '"sdp": "v=0"}}', "invalid stream name"),
        ('{"type": "cmd", "transId": 8, "name": "view", "data": {"sdp": "v=0"}}',
         "missing streamId"),
        ('{"type": "cmd", "transId": 9, "name": "view", "data": "nope"}',
         "command data must be an object"),
    ],
)
async def test_bad_viewer_commands_get_clear_errors(
    srv: RunningServer, receiving: tuple[Viewer, AudioRecorder], payload: str, expected: str
) -> None:
    _, recorder = receiving
    reply = await ws_exchange(srv.ws_sub_url, payload)
    assert reply["type"] == "error"
    assert expected in str(reply["data"]), reply
    sent = json.loads(payload) if payload.startswith("{\"") else None
    if isinstance(sent, dict):
        assert reply["transId"] == sent["transId"]
    await still_hears_440(recorder)


async def test_broken_publish_sdp_and_unknown_codec_are_refused(
    srv: RunningServer, receiving: tuple[Viewer, AudioRecorder]
) -> None:
    _, recorder = receiving
    reply = await ws_exchange(srv.ws_pub_url, json.dumps(
        {"type": "cmd", "transId": 0, "name": "publish",
         "data": {"name": STREAM, "sdp": "v=0\r\nm=audio x\r\n"}}))
    assert reply["type"] == "error" and "SDP" in str(reply["data"])
    reply = await ws_exchange(srv.ws_pub_url, json.dumps(
        {"type": "cmd", "transId": 1, "name": "publish",
         "data": {"name": STREAM, "sdp": "v=0", "codec": "mpeg2"}}))
    assert reply == {"type": "error", "transId": 1, "data": "unsupported codec 'mpeg2'"}
    await still_hears_440(recorder)


async def test_oversize_message_is_refused(
    srv: RunningServer, receiving: tuple[Viewer, AudioRecorder]
) -> None:
    _, recorder = receiving
    async with websockets.connect(srv.ws_sub_url, max_size=None) as ws:
        await ws.send("x" * (2 * 1024 * 1024))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    await still_hears_440(recorder)


async def test_view_of_a_stream_nobody_publishes_waits_for_it(
    srv: RunningServer, receiving: tuple[Viewer, AudioRecorder]
) -> None:
    """Millicast semantics: viewing a stream that is not live succeeds and gets `active` once it
    goes live (Spaces listeners join before the owner speaks). Names that cannot be streams are
    refused (see test_bad_viewer_commands_get_clear_errors)."""
    _, recorder = receiving
    async with Viewer(srv.ws_sub_url, "nobody-here", video=False) as waiting:
        await waiting.wait_connected()
        await asyncio.sleep(0.5)
        assert [n for n, _ in waiting.events if n != "viewercount"] == []
        async with Publisher(srv.ws_pub_url, "nobody-here", tracks=[ToneTrack(880)]) as pub:
            await pub.wait_connected()
            await waiting.wait_for_event("active")
            late = AudioRecorder(waiting.tracks_by_mid[waiting.audio_mid or ""], 2).start()
            await late.wait_for_frames(60, timeout=10)
            freq = dominant_frequency(late.samples(1.0), late.sample_rate)
            assert abs(freq - 880) < 5
            await late.stop()
    await still_hears_440(recorder)
