"""The cheap RTP bots: their parts in memory, then through a real `hubbub serve`."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from aioice import stun
from hypothesis import given
from hypothesis import strategies as st

from hubbub.client.analysis import dominant_frequency
from hubbub.client.bots import FrameBook, Schedule, Swarm, alternating, conversation, encode_tone
from hubbub.client.bots.dtls import DtlsClient
from hubbub.client.bots.ice import IceClient
from hubbub.client.bots.offer import (
    LocalTransport,
    listener_offer,
    parse_answer,
    publisher_offer,
)
from hubbub.client.bots.opus import level_of, read_tag, tag_frame
from hubbub.client.media import AudioRecorder
from hubbub.client.viewer import Viewer
from hubbub.media import ice, sdp
from hubbub.media.dtls import Certificate, DtlsError, DtlsServer, SrtpKeys
from hubbub.media.srtp import SrtpPair
from tests.helpers.server import REPO_ROOT, RunningServer

_names = itertools.count()


def stream_name() -> str:
    return f"bots{next(_names)}"


# --- Opus frames ------------------------------------------------------------------------


def decode(payloads: list[bytes]) -> np.ndarray:
    codec = av.CodecContext.create("opus", "r")
    assert isinstance(codec, av.AudioCodecContext)
    codec.sample_rate = 48000
    codec.layout = "mono"
    out = []
    for payload in payloads:
        for frame in codec.decode(av.Packet(payload)):
            scale = 32768.0 if frame.format.name.startswith("s16") else 1.0
            out.append(frame.to_ndarray().astype(np.float64).ravel() / scale)
    return np.concatenate(out)


def test_tagged_tone_frames_decode_to_the_tone_and_carry_their_tag() -> None:
    frames = encode_tone(7, 660)
    assert len(frames.tone) == 50
    assert [read_tag(p) for p in frames.tone] == [(7, i) for i in range(50)]
    assert read_tag(frames.silence) == (7, 50)
    samples = decode(list(frames.tone) * 2)
    assert abs(dominant_frequency(samples[-48000:], 48000) - 660) < 2
    assert frames.level == level_of(samples[-48000:]) == 23  # amplitude 0.1 = -23 dBov
    quiet = decode([frames.silence] * 5)
    assert np.abs(quiet).max() < 1e-3


def test_tag_frame_layout_is_rfc6716_code3_with_padding() -> None:
    packet = bytes([0x78, 1, 2, 3])  # code 0
    assert tag_frame(packet, 1, 2) == bytes([0x7B, 0x41, 6, 1, 2, 3, 0, 0, 0, 1, 0, 2])
    with pytest.raises(ValueError, match="expected a code-0 Opus packet, got code 1"):
        tag_frame(bytes([0x79, 0]), 1, 2)
    with pytest.raises(ValueError, match="empty Opus packet"):
        tag_frame(b"", 1, 2)


@given(st.binary(max_size=40))
def test_read_tag_never_raises(data: bytes) -> None:
    tag = read_tag(data)
    assert tag is None or len(data) >= 9


def test_frame_book_refuses_a_bot_twice_and_identical_payloads() -> None:
    book = FrameBook()
    frames = encode_tone(1, 440, frames=3)
    ring = book.register(frames)
    assert ring == [0, 0, 0, 0]
    assert book.owner[frames.tone[2]] == (1, 2)
    assert book.is_silence(1, 3) and not book.is_silence(1, 2)
    with pytest.raises(ValueError, match="bot id 1 is already registered"):
        book.register(frames)
    clone = type(frames)(2, 440, frames.tone, frames.silence, frames.level)
    with pytest.raises(ValueError, match="bot 2 frame 0 equals bot 1's"):
        book.register(clone)


# --- schedules --------------------------------------------------------------------------


def test_schedule_talks_inside_its_intervals_only() -> None:
    s = Schedule([(1.0, 2.0), (3.0, 3.5)])
    assert [s.talking(t) for t in (0.0, 0.99, 1.0, 1.99, 2.0, 3.2, 3.5, 9)] == [
        False, False, True, True, False, True, False, False]
    assert Schedule.always().talking(1e6) and not Schedule.never().talking(0)
    with pytest.raises(ValueError, match="talk intervals overlap at 1.5"):
        Schedule([(1, 2), (1.5, 3)])
    with pytest.raises(ValueError, match=r"bad talk interval \(2.0, 1.0\)"):
        Schedule([(2, 1)])
    assert alternating(1, 2, 7, offset=0.5).intervals == [(0.5, 1.5), (3.5, 4.5), (6.5, 7.0)]


def test_conversation_is_two_valid_alternating_speakers() -> None:
    a, b = conversation(120, seed=3)
    assert a.intervals and b.intervals
    merged = sorted(a.intervals + b.intervals)
    assert merged[0][0] == 1.0 and merged[-1][1] <= 120
    for (_, b1), (a2, _) in itertools.pairwise(merged):
        assert a2 >= b1 - 0.8 and a2 <= b1 + 1.0  # overlap or short pause between turns
    for start, end in merged:
        assert end - start <= 5.0
        assert end - start >= 2.0 or end == 120  # only the last turns are cut short


# --- ICE and DTLS in memory -------------------------------------------------------------


def test_ice_request_passes_the_servers_checks_and_success_is_recognised() -> None:
    client = IceClient("botU", "srvU", "p" * 22, tie_breaker=5)
    data = client.request(nominate=True)
    request = ice.parse_binding_request(data)
    assert (request.local_ufrag, request.remote_ufrag) == ("srvU", "botU")
    ice.check_binding_request(request, "p" * 22)
    assert ice.is_nomination(request)
    assert request.message.attributes["ICE-CONTROLLING"] == 5
    with pytest.raises(ice.StunError, match="401"):
        ice.check_binding_request(request, "q" * 22)
    assert not client.handle(ice.success_response(request, ("127.0.0.1", 1), "q" * 22))
    assert not client.handle(b"\x00\x01garbage")
    assert client.handle(ice.success_response(request, ("127.0.0.1", 1), "p" * 22))
    assert client.succeeded
    assert not client.handle(ice.success_response(request, ("127.0.0.1", 1), "p" * 22))  # once
    error = stun.Message(stun.Method.BINDING, stun.Class.ERROR,
                         transaction_id=ice.parse_binding_request(client.request()).message
                         .transaction_id)
    error.add_message_integrity(b"p" * 22)
    assert not client.handle(bytes(error))


def handshake(
    fingerprint_for_client: str | None = None,
) -> tuple[DtlsClient, DtlsServer, list[SrtpKeys]]:
    server_cert, client_cert = Certificate(), Certificate()
    to_server: list[bytes] = []
    to_client: list[bytes] = []
    server = DtlsServer(server_cert.context(), [("sha-256", client_cert.fingerprint)],
                        to_client.append)
    client = DtlsClient(client_cert,
                        [("sha-256", fingerprint_for_client or server_cert.fingerprint)],
                        to_server.append)
    results: list[SrtpKeys] = []
    client.start()
    for _ in range(10):
        while to_server:
            keys = server.receive(to_server.pop(0))
            if keys is not None:
                results.append(keys)
        while to_client:
            keys = client.receive(to_client.pop(0))
            if keys is not None:
                results.append(keys)
    return client, server, results


def test_dtls_client_and_server_agree_on_srtp_keys() -> None:
    client, server, results = handshake()
    assert client.done and server.done and len(results) == 2
    server_keys, client_keys = results
    assert client_keys.profile == server_keys.profile == "SRTP_PROFILE_AEAD_AES_128_GCM"
    assert client_keys.tx_key == server_keys.rx_key and client_keys.rx_key == server_keys.tx_key
    bot, srv = SrtpPair(client_keys), SrtpPair(server_keys)
    packet = bytes([0x80, 111, 0, 1, 0, 0, 0, 1, 0, 0, 0, 9]) + b"opus"
    assert srv.unprotect(bot.protect(packet)) == packet
    assert bot.unprotect(srv.protect(packet)) == packet


def test_dtls_client_refuses_a_server_with_another_fingerprint() -> None:
    with pytest.raises(DtlsError, match="does not match the SDP fingerprint"):
        handshake(fingerprint_for_client=Certificate().fingerprint)


# --- offers and answers -----------------------------------------------------------------


def test_bot_offers_are_answerable_by_the_server_sdp_module() -> None:
    local_ufrag, local_pwd = ice.new_credentials()
    local = LocalTransport(local_ufrag, local_pwd, Certificate().fingerprint)
    pub = sdp.parse(publisher_offer(local, 1234, "bot1", dtx=True))
    assert [m.direction for m in pub.media] == ["sendonly"]
    assert pub.media[0].ssrcs == {1234: {"cname": "bot1"}}
    assert "usedtx=1" in pub.media[0].codecs[0].fmtp
    text, mids = listener_offer(local, slots=3, video=True)
    view = sdp.parse(text)
    assert [m.kind for m in view.media] == ["video", "audio", "audio", "audio", "audio"]
    assert mids == ["1", "2", "3", "4"] and view.bundle == [["0", "1", "2", "3", "4"]]
    answer, _ = sdp.build_answer(view, sdp.AnswerOptions(
        ice_ufrag="srvU", ice_pwd="s" * 22, fingerprint=("sha-256", Certificate().fingerprint),
        candidates=[("127.0.0.1", 5000)], role="view"))
    parsed = parse_answer(answer)
    assert parsed.address == ("127.0.0.1", 5000)
    assert (parsed.ice_ufrag, parsed.ice_pwd) == ("srvU", "s" * 22)
    assert parsed.ext_ids["2"][sdp.URI_MID] == 4
    with pytest.raises(sdp.SdpError, match="no UDP host candidate"):
        parse_answer(answer.replace("a=candidate", "a=x-candidate"))


# --- through a real server --------------------------------------------------------------


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="bots") as s:
        yield s


async def test_publisher_bot_reaches_listener_main_mid_without_loss(srv: RunningServer) -> None:
    swarm = Swarm(srv.ws_pub_url, srv.ws_sub_url, stream_name())
    pub = swarm.add_publisher(frequency=500)
    listener = swarm.add_listener(slots=2)
    try:
        await swarm.start()
        await swarm.run(2.0)
        await asyncio.sleep(0.1)
    finally:
        await swarm.stop()
    main = listener.mids[listener.main_mid]
    assert pub.sent >= 95
    assert main.packets >= pub.sent - 2  # the last packets may still be in flight
    assert main.per_bot == {pub.bot_id: main.packets}
    assert main.unknown == main.lost == main.out_of_order == main.silence == 0
    assert listener.peer.srtp_errors == 0 and listener.unrouted == 0
    assert len(main.latency_ns) == main.packets
    assert sorted(main.latency_ns)[len(main.latency_ns) // 2] < 20_000_000  # loopback: ms
    assert all(listener.mids[m].packets == 0 for m in listener.slot_mids)


async def test_non_dtx_silence_and_dtx_gaps_are_seen_as_such(srv: RunningServer) -> None:
    swarm = Swarm(srv.ws_pub_url, srv.ws_sub_url, stream_name())
    talk = Schedule([(0.0, 0.5), (1.0, 1.5)])
    pub = swarm.add_publisher(schedule=talk, dtx=False)
    listener = swarm.add_listener()
    try:
        await swarm.start()
        await swarm.run(2.0)
        await asyncio.sleep(0.1)
    finally:
        await swarm.stop()
    main = listener.mids[listener.main_mid]
    assert len(pub.talk_starts_ns) == 2
    assert main.silence >= 45 and main.packets - main.silence >= 45
    assert [bot for _, bot in main.onsets] == [pub.bot_id, pub.bot_id]
    assert main.lost == 0


async def test_aiortc_viewer_hears_the_bots_tone(srv: RunningServer) -> None:
    name = stream_name()
    swarm = Swarm(srv.ws_pub_url, srv.ws_sub_url, name)
    swarm.add_publisher(frequency=660)
    listener = swarm.add_listener()
    try:
        await swarm.start()
        async with Viewer(srv.ws_sub_url, name, video=False) as viewer:
            await viewer.wait_connected()
            recorder = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], 3).start()
            await recorder.wait_for_frames(recorder.frames + 75, timeout=10)
            freq = dominant_frequency(recorder.samples(1.0), recorder.sample_rate)
            await recorder.stop()
        assert abs(freq - 660) < 5, f"aiortc decoded {freq:.1f} Hz, expected 660"
    finally:
        await swarm.stop()
    assert listener.mids[listener.main_mid].per_bot.get(0, 0) > 50


async def test_twenty_listener_bots_cost_little_cpu(srv: RunningServer) -> None:
    swarm = Swarm(srv.ws_pub_url, srv.ws_sub_url, stream_name())
    swarm.add_publisher()
    for _ in range(20):
        swarm.add_listener(slots=3)
    try:
        await swarm.start()
        cpu0, wall0 = time.process_time(), time.monotonic()
        await swarm.run(5.0)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    finally:
        await swarm.stop()
    received = sum(v.packets for v in swarm.listeners)
    print(f"\n20 listener bots + 1 publisher bot: {cpu:.3f} CPU s in {wall:.2f} s "
          f"({100 * cpu / wall:.1f}% of a core), {received} packets received, "
          f"{1e6 * cpu / max(received, 1):.1f} µs per received packet")
    assert received >= 20 * 240
    assert cpu / wall < 0.5


def test_bench_harness_smoke(srv: RunningServer, tmp_path: Path) -> None:
    out = tmp_path / "stability.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "mux_stability.py"), "--duration", "2",
         "--ws", srv.http_url.replace("http", "ws"), "--output", str(out), "--quiet"],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert {"command", "params", "duration_s", "switches", "needless_switches",
            "needless_per_minute", "listeners"} <= result.keys()
    assert result["params"]["duration"] == 2.0
    assert result["command"][0].endswith("mux_stability.py")
