"""WebRtcTransport against a real aiortc peer over loopback UDP (ICE-lite + DTLS-SRTP)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import aioice.ice
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from hubbub.config import MediaConfig
from hubbub.media.transport import RemoteParameters, TransportState, WebRtcTransport
from hubbub.media.udp import MediaPort

aioice.ice.get_host_addresses = lambda *a, **k: ["127.0.0.1"]


@pytest.fixture
async def port() -> AsyncIterator[MediaPort]:
    p = MediaPort(MediaConfig(host="127.0.0.1", port=0))
    await p.start()
    yield p
    await p.stop()


def remote_params(sdp: str) -> RemoteParameters:
    ufrag = re.search(r"a=ice-ufrag:(\S+)", sdp)
    pwd = re.search(r"a=ice-pwd:(\S+)", sdp)
    fp = re.search(r"a=fingerprint:(\S+) (\S+)", sdp)
    assert ufrag and pwd and fp
    return RemoteParameters(ufrag.group(1), pwd.group(1), [(fp.group(1), fp.group(2))])


def answer_for(offer: str, transport: WebRtcTransport, port: MediaPort) -> str:
    mid = re.search(r"a=mid:(\S+)", offer)
    opus = re.search(r"a=rtpmap:(\d+) opus/48000/2", offer)
    assert mid and opus
    ip, udp_port = port.candidates()[0]
    return "\r\n".join(
        [
            "v=0",
            "o=- 1 1 IN IP4 0.0.0.0",
            "s=-",
            "t=0 0",
            "a=ice-lite",
            f"a=group:BUNDLE {mid.group(1)}",
            f"m=audio {udp_port} UDP/TLS/RTP/SAVPF {opus.group(1)}",
            f"c=IN IP4 {ip}",
            f"a=mid:{mid.group(1)}",
            "a=recvonly",
            "a=rtcp-mux",
            f"a=rtpmap:{opus.group(1)} opus/48000/2",
            f"a=ice-ufrag:{transport.local_ufrag}",
            f"a=ice-pwd:{transport.local_pwd}",
            f"a=fingerprint:sha-256 {transport.local_fingerprint}",
            "a=setup:passive",
            f"a=candidate:1 1 udp 2130706431 {ip} {udp_port} typ host",
            "a=end-of-candidates",
            "",
        ]
    )


async def connect(
    port: MediaPort, tamper_fingerprint: bool = False
) -> tuple[RTCPeerConnection, WebRtcTransport]:
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    remote = remote_params(offer)
    if tamper_fingerprint:
        alg, value = remote.fingerprints[0]
        remote.fingerprints = [(alg, ("00" if value[:2] != "00" else "11") + value[2:])]
    transport = port.create_transport(remote)
    await pc.setRemoteDescription(
        RTCSessionDescription(answer_for(offer, transport, port), "answer")
    )
    return pc, transport


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


async def test_aiortc_peer_connects_and_its_rtp_is_decrypted(port: MediaPort) -> None:
    pc, transport = await connect(port)
    rtp: list[bytes] = []
    transport.on_rtp = rtp.append
    try:
        await wait_for(lambda: transport.state is TransportState.CONNECTED)
        await wait_for(lambda: len(rtp) >= 25)
        # Decrypted RTP: version 2, the offer's Opus payload type, plaintext header.
        assert all(p[0] >> 6 == 2 for p in rtp)
        assert transport.nominated
        assert transport.stats.srtp_errors == 0
    finally:
        await pc.close()


async def test_wrong_dtls_fingerprint_fails_the_transport(port: MediaPort) -> None:
    pc, transport = await connect(port, tamper_fingerprint=True)
    rtp: list[bytes] = []
    transport.on_rtp = rtp.append
    try:
        await wait_for(lambda: transport.state is TransportState.FAILED)
        assert "fingerprint" in transport.close_reason
        await asyncio.sleep(0.3)
        assert rtp == []
        assert transport not in port.transports
    finally:
        await pc.close()


async def test_the_openssl_connection_is_freed_at_the_handshake(port: MediaPort) -> None:
    pc, transport = await connect(port)
    rtcp: list[bytes] = []
    transport.on_rtcp = rtcp.append
    try:
        await wait_for(lambda: transport.state is TransportState.CONNECTED)
        assert transport._dtls.released
        await wait_for(lambda: len(rtcp) >= 1)  # aiortc sends its first SR within seconds
        # Media still flows both ways after the release.
        received: list[bytes] = []
        transport.on_rtp = received.append
        await wait_for(lambda: len(received) >= 10)
    finally:
        await pc.close()
