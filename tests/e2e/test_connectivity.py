"""ICE-TCP and ICE diagnostics through a real `hubbub serve`, with aiortc peers.

aioice has no ICE-TCP, so the TCP peers here go through `tests/helpers/ice_tcp.IceTcpBridge`
(RFC 4571 framing over one TCP connection to hubbub's passive candidate); Chromium over ICE-TCP
with UDP dropped by nftables is in tests/e2e/test_firewalled_clients.py.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
from collections.abc import Iterator

import pytest
from aiortc import RTCPeerConnection
from tests.helpers.ice_tcp import IceTcpBridge, TcpPublisher, TcpViewer, tcp_candidates
from tests.helpers.server import RunningServer

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter
from hubbub.client.publisher import Publisher
from hubbub.client.signaling import Signaling
from hubbub.client.viewer import Viewer

pytestmark = [pytest.mark.slow]

_names = itertools.count()
SEND_QUEUE = 16 * 1024


def stream_name() -> str:
    return f"tcp{next(_names)}"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    args = ["--media-timeout", "3", "--ice-timeout", "3"]
    with RunningServer(name="ice-tcp", extra_args=args) as s:
        yield s


async def bridge_to(srv: RunningServer, recv_buffer: int | None = None) -> IceTcpBridge:
    return await IceTcpBridge(("127.0.0.1", srv.media_tcp_port), recv_buffer).start()


async def heard(recorder: AudioRecorder, seconds: float = 1.0) -> float:
    await recorder.wait_for_frames(recorder.frames + int(seconds * 50), timeout=10)
    return dominant_frequency(recorder.samples(seconds), recorder.sample_rate)


def healthz(srv: RunningServer) -> dict[str, object]:
    with urllib.request.urlopen(f"{srv.http_url}/healthz", timeout=5) as reply:
        data: dict[str, object] = json.loads(reply.read())
        return data


def test_healthz_lists_the_udp_and_tcp_media_ports(srv: RunningServer) -> None:
    assert healthz(srv)["media"] == {"udp": [f"127.0.0.1:{srv.media_port}"],
                                     "tcp": [f"127.0.0.1:{srv.media_tcp_port}"]}


async def test_a_tcp_publisher_is_heard_and_seen_by_tcp_and_udp_viewers(
    srv: RunningServer,
) -> None:
    name = stream_name()
    pub_bridge = await bridge_to(srv)
    view_bridge = await bridge_to(srv)
    pub = TcpPublisher(pub_bridge, srv.ws_pub_url, name,
                       tracks=[ToneTrack(440), PatternTrack()], codec="vp8")
    try:
        await pub.connect()
        # The answer offers the TCP port as a passive candidate, ranked below UDP.
        [(priority, ip, port)] = set(tcp_candidates(pub.answer))  # the same in each m-line
        assert (ip, port) == ("127.0.0.1", srv.media_tcp_port)
        udp_priority = int(pub.answer.split(" udp ", 1)[1].split()[0])
        assert priority < udp_priority
        async with (
            Viewer(srv.ws_sub_url, name) as udp_viewer,
            TcpViewer(view_bridge, srv.ws_sub_url, name) as tcp_viewer,
        ):
            for viewer in (udp_viewer, tcp_viewer):
                audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""]).start()
                video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid or ""]).start()
                freq = await heard(audio)
                assert abs(freq - 440) < 5, f"heard {freq:.1f} Hz over {type(viewer).__name__}"
                await video.wait_for_frames(20, timeout=15)
                assert video.last_size == (320, 240)
                await audio.stop()
                await video.stop()
            # Everything the TCP peers exchanged with hubbub went through their connections.
            assert pub_bridge.frames_out > 100 and view_bridge.frames_in > 100
    finally:
        await pub.close()
        pub_bridge.close()
        view_bridge.close()


async def test_a_viewer_that_stops_reading_its_tcp_socket_starves_nobody() -> None:
    """One ICE-TCP viewer stops reading; two UDP viewers of the same stream keep receiving at
    the full rate, and the stalled one's queue drops its oldest packets (counted in the
    server's closing summary). Small buffers, so that the stall fills them in a second."""
    args = ["--media-tcp-send-queue", str(SEND_QUEUE), "--media-tcp-send-buffer", "16384"]
    srv = RunningServer(name="ice-tcp-stall", extra_args=args)
    await asyncio.to_thread(srv.start)
    try:
        await stalled_reader_starves_nobody(srv)
    finally:
        await asyncio.to_thread(srv.stop)
    line = next((line for line in srv.log_text().splitlines()
                 if "media port dropped since the last report" in line), "")
    counts = dict(part.rsplit(" ", 1) for part in line.rsplit(": ", 1)[-1].split(", ") if part)
    assert int(counts.get("tcp_send_dropped", 0)) > 50, line


async def stalled_reader_starves_nobody(srv: RunningServer) -> None:
    name = stream_name()
    stalled_bridge = await bridge_to(srv, recv_buffer=4096)
    pub = Publisher(srv.ws_pub_url, name, tracks=[ToneTrack(440), PatternTrack()], codec="vp8")
    viewers = [Viewer(srv.ws_sub_url, name) for _ in range(2)]
    stalled = TcpViewer(stalled_bridge, srv.ws_sub_url, name)
    try:
        await pub.connect()
        for v in [*viewers, stalled]:
            await v.connect()
        audio = [AudioRecorder(v.tracks_by_mid[v.audio_mid or ""]).start() for v in viewers]
        video = [VideoCounter(v.tracks_by_mid[v.video_mid or ""]).start() for v in viewers]
        await asyncio.gather(*(a.wait_for_frames(50) for a in audio))

        async def rates(seconds: float) -> list[float]:
            before = [s.frames for s in (*audio, *video)]
            await asyncio.sleep(seconds)
            return [(s.frames - b) / seconds for s, b in zip((*audio, *video), before,
                                                             strict=True)]

        baseline = await rates(3.0)
        stalled_bridge.stall()
        await asyncio.sleep(1.0)  # the kernel's window closes and our queue fills
        during = await rates(6.0)
        print(f"frames/s (audio, audio, video, video) before the stall {baseline}, "
              f"during it {during}")
        for rate, base in zip(during, baseline, strict=True):
            assert rate >= 0.85 * base, f"{during} during the stall vs {baseline} before"
        assert min(during[:2]) >= 45, f"audio at {during[:2]} frames/s during the stall"
        gaps = [time.monotonic() - (a.last_frame_at or 0) for a in audio]
        assert max(gaps) < 0.5, f"audio stalled for {gaps} s"
        assert abs(dominant_frequency(audio[0].samples(1.0), audio[0].sample_rate) - 440) < 5
    finally:
        for v in [*viewers, stalled]:
            await v.close()
        await pub.close()
        stalled_bridge.close()


async def test_a_peer_whose_checks_never_arrive_gets_an_error_event_saying_why(
    srv: RunningServer,
) -> None:
    """The offer is answered but no connectivity check ever comes (UDP and TCP blocked, as
    it looks from the server): after --ice-timeout the socket gets an `error` event, then
    closes, and the server log says why."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    events: list[tuple[str, dict[str, object]]] = []
    signaling = Signaling(srv.ws_sub_url, None,
                          on_event=lambda name, data: events.append((name, data)))
    try:
        await signaling.connect()
        started = time.monotonic()
        await signaling.command("view", {"streamId": stream_name(),
                                         "sdp": pc.localDescription.sdp})
        # The answer is never applied: no check leaves this peer.
        await signaling.wait_closed(timeout=10)
        waited = time.monotonic() - started
    finally:
        await signaling.close()
        await pc.close()
    assert 2.5 < waited < 6, waited
    errors = [data for name, data in events if name == "error"]
    assert len(errors) == 1, events
    assert errors[0]["code"] == "ice-failed"
    message = str(errors[0]["message"])
    assert message.startswith("ICE failed: no connectivity check reached the server within 3 s")
    assert f"udp 127.0.0.1:{srv.media_port}" in message
    assert f"tcp 127.0.0.1:{srv.media_tcp_port}" in message
    assert message in srv.log_text()


def nominated_remote(session: Publisher | Viewer) -> str:
    """The server address of the pair aiortc's ICE agent nominated."""
    transport = session.pc.getTransceivers()[0].receiver.transport.transport
    pair = transport._connection._nominated[1]  # aioice: component 1
    host: str = pair.remote_candidate.host
    return host


async def test_publish_and_view_over_ipv6_loopback() -> None:
    """Bound to ::, hubbub offers IPv6 host candidates next to IPv4 ones; peers that have only
    ::1 publish and view over it (the client patch gathers only ::1 for an [::1] URL)."""
    srv = RunningServer(name="ipv6", extra_args=["--host", "::"])
    await asyncio.to_thread(srv.start)
    base = f"ws://[::1]:{srv.http_port}/ws/v2"
    name = stream_name()
    try:
        assert healthz(srv)["media"] == {
            "udp": [f"0.0.0.0:{srv.media_port}", f"[::]:{srv.media_port}"],
            "tcp": [f"0.0.0.0:{srv.media_tcp_port}", f"[::]:{srv.media_tcp_port}"]}
        async with Publisher(f"{base}/pub", name, tracks=[ToneTrack(523)]) as pub:
            answer = pub.pc.remoteDescription.sdp
            assert f"udp 2130706175 ::1 {srv.media_port} typ host" in answer
            assert f"::1 {srv.media_tcp_port} typ host tcptype passive" in answer
            assert nominated_remote(pub) == "::1"
            async with Viewer(f"{base}/sub", name, video=False) as viewer:
                assert nominated_remote(viewer) == "::1"
                audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""]).start()
                freq = await heard(audio)
                assert abs(freq - 523) < 5, f"heard {freq:.1f} Hz over IPv6"
                await audio.stop()
    finally:
        await asyncio.to_thread(srv.stop)
