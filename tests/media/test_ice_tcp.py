"""ICE-TCP (RFC 6544, passive) on the media port, in-process, against real peers: aiortc
through an RFC 4571 bridge (tests/helpers/ice_tcp.py: aioice has no ICE-TCP), and raw TCP
clients for what a connection may and may not do."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aioice import stun
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from hubbub.config import MediaConfig
from hubbub.media.transport import RemoteParameters, TransportState, WebRtcTransport
from hubbub.media.udp import MediaPort
from tests.helpers.ice_tcp import IceTcpBridge
from tests.media.test_transport import answer_for, remote_params, wait_for


@pytest.fixture
async def port() -> AsyncIterator[MediaPort]:
    p = MediaPort(MediaConfig(host="127.0.0.1", port=0, tcp_port=0, tcp_check_timeout=1.0,
                              tcp_connections_per_ip=4))
    await p.start()
    yield p
    await p.stop()


def tcp_addr(port: MediaPort) -> tuple[str, int]:
    assert port.tcp is not None
    return port.tcp.local_addrs[0]


async def connect_over_tcp(
    port: MediaPort, recv_buffer: int | None = None,
) -> tuple[RTCPeerConnection, WebRtcTransport, IceTcpBridge]:
    bridge = await IceTcpBridge(tcp_addr(port), recv_buffer).start()
    pc = RTCPeerConnection()
    pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    transport = port.create_transport(remote_params(pc.localDescription.sdp))
    answer = bridge.candidate_sdp(answer_for(pc.localDescription.sdp, transport, port))
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pc, transport, bridge


def stun_request(ufrag: str, pwd: str) -> bytes:
    request = stun.Message(message_method=stun.Method.BINDING,
                           message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{ufrag}:peer"
    request.attributes["PRIORITY"] = 1862270975
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(pwd.encode())
    request.add_fingerprint()
    return bytes(request)


def framed(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    size = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(size)


async def test_an_aiortc_peer_connects_over_ice_tcp_and_its_rtp_is_decrypted(
    port: MediaPort,
) -> None:
    pc, transport, bridge = await connect_over_tcp(port)
    rtp: list[bytes] = []
    transport.on_rtp = rtp.append
    try:
        await wait_for(lambda: transport.state is TransportState.CONNECTED)
        await wait_for(lambda: len(rtp) >= 25)
        assert all(p[0] >> 6 == 2 for p in rtp)
        assert transport.link is not None and transport.tcp_link is transport.link
        assert transport.stats.srtp_errors == 0
        assert port.tcp is not None and port.tcp.stats.frames_in >= 25 + 3
        # Nothing of it is UDP: no address is bound on the UDP socket for it.
        assert port._by_addr == {}
    finally:
        await pc.close()
        bridge.close()
    # The peer closed its connection: the transport's only path is gone.
    await wait_for(lambda: transport.state is TransportState.CLOSED
                   or transport.state is TransportState.FAILED)


async def test_rtcp_and_srtp_go_back_to_the_peer_over_the_connection(port: MediaPort) -> None:
    pc, transport, bridge = await connect_over_tcp(port)
    try:
        await wait_for(lambda: transport.state is TransportState.CONNECTED)
        before = bridge.frames_in
        # A receiver report, as the SFU sends them: it reaches aiortc through the bridge.
        rr = bytes([0x80, 201, 0, 1]) + (1).to_bytes(4, "big")
        for _ in range(5):
            transport.send_rtcp(rr)
        await wait_for(lambda: bridge.frames_in >= before + 5)
        assert transport.stats.rtcp_out == 5
    finally:
        await pc.close()
        bridge.close()


async def test_the_peer_closing_its_connection_fails_the_transport_with_a_reason(
    port: MediaPort,
) -> None:
    pc, transport, bridge = await connect_over_tcp(port)
    try:
        await wait_for(lambda: transport.state is TransportState.CONNECTED)
        bridge.close()  # the TCP connection goes; aiortc does not know yet
        await wait_for(lambda: transport.state is TransportState.FAILED)
        assert "ICE-TCP connection" in transport.close_reason
        assert "closed by the peer" in transport.close_reason
        assert transport.ice_failed
        assert port.tcp is not None and not port.tcp.links
    finally:
        await pc.close()


async def test_a_connection_without_a_check_is_closed_after_the_timeout(
    port: MediaPort,
) -> None:
    reader, writer = await asyncio.open_connection(*tcp_addr(port))
    try:
        started = time.monotonic()
        assert await reader.read(1) == b""  # closed by the server
        assert 0.8 < time.monotonic() - started < 3.0
        assert port.tcp is not None and port.tcp.stats.closed_unchecked == 1
        assert not port.tcp.links
    finally:
        writer.close()


async def test_media_before_a_check_closes_the_connection(port: MediaPort) -> None:
    reader, writer = await asyncio.open_connection(*tcp_addr(port))
    try:
        writer.write(framed(bytes([0x80, 111]) + bytes(30)))  # RTP-looking, unchecked
        assert await asyncio.wait_for(reader.read(1), 2) == b""
        assert port.tcp is not None and port.tcp.stats.closed_unchecked == 1
    finally:
        writer.close()


async def test_a_check_is_answered_on_the_connection_and_binds_it(port: MediaPort) -> None:
    transport = port.create_transport(RemoteParameters("peer", "p" * 24, [("sha-256", "00")]))
    reader, writer = await asyncio.open_connection(*tcp_addr(port))
    try:
        # Two checks in one segment: the framing, not the segment, delimits them.
        request = stun_request(transport.local_ufrag, transport.local_pwd)
        writer.write(framed(request) + framed(request))
        for _ in range(2):
            answer = stun.parse_message(await asyncio.wait_for(read_frame(reader), 2))
            assert answer.message_class == stun.Class.RESPONSE
            assert answer.transaction_id == stun.parse_message(request).transaction_id
            local = writer.get_extra_info("sockname")
            assert answer.attributes["XOR-MAPPED-ADDRESS"] == (local[0], local[1])
        assert transport.state is TransportState.CONNECTING
        assert transport.tcp_link is not None and transport.link is transport.tcp_link
        # A second connection for the same peer is refused while the first is open.
        reader2, writer2 = await asyncio.open_connection(*tcp_addr(port))
        writer2.write(framed(stun_request(transport.local_ufrag, transport.local_pwd)))
        assert await asyncio.wait_for(reader2.read(1), 2) == b""
        writer2.close()
        assert port.tcp is not None and port.tcp.stats.closed_second_link == 1
        # A forged check (wrong password) on a fresh connection gets no answer.
        reader3, writer3 = await asyncio.open_connection(*tcp_addr(port))
        writer3.write(framed(stun_request(transport.local_ufrag, "x" * 24)))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader3.read(1), 0.3)
        writer3.close()
        assert port.stats.stun_bad_integrity == 1
    finally:
        writer.close()
        transport.close()


async def test_connections_past_the_per_address_cap_are_refused(port: MediaPort) -> None:
    streams = [await asyncio.open_connection(*tcp_addr(port)) for _ in range(4)]
    try:
        reader, writer = await asyncio.open_connection(*tcp_addr(port))
        assert await asyncio.wait_for(reader.read(1), 2) == b""
        writer.close()
        assert port.tcp is not None and port.tcp.stats.refused_over_cap == 1
        assert len(port.tcp.links) == 4
    finally:
        for _, w in streams:
            w.close()


async def test_a_peer_that_stops_reading_costs_a_bounded_queue_and_drops_the_oldest() -> None:
    port = MediaPort(MediaConfig(host="127.0.0.1", port=0, tcp_port=0,
                                 tcp_send_queue_bytes=20_000, tcp_write_buffer=8_000,
                                 tcp_send_buffer=16_000))
    await port.start()
    pc, transport, bridge = await connect_over_tcp(port, recv_buffer=4096)
    try:
        await wait_for(lambda: transport.state is TransportState.CONNECTED)
        link = transport.link
        assert link is not None and port.tcp is not None
        bridge.stall()
        await asyncio.sleep(0.1)
        packet = bytes([0x80, 111]) + bytes(1000)
        started = time.perf_counter()
        for _ in range(3000):  # 3 MB at a peer that reads nothing
            link.send(packet)
            await asyncio.sleep(0)
        spent = time.perf_counter() - started
        assert link.queued_bytes <= 20_000
        assert port.tcp.stats.send_dropped > 2500  # all but the kernel's and our buffers
        assert port.tcp.stats.send_dropped_bytes >= 2500 * 1002
        assert spent < 2.0, f"sending to a stalled peer took {spent:.2f} s"  # never blocks
        # Reading again: what is left in the queue arrives, the newest last.
        got = bridge.frames_in
        bridge.resume()
        await wait_for(lambda: bridge.frames_in > got + 10)
    finally:
        await pc.close()
        bridge.close()
        await port.stop()


async def test_tcp_candidates_rank_below_udp_and_name_the_tcp_port(port: MediaPort) -> None:
    from hubbub.media import sdp

    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    offer = sdp.parse(pc.localDescription.sdp)
    ufrag, pwd, fingerprints = sdp.remote_credentials(offer)
    text, _ = sdp.build_answer(offer, sdp.AnswerOptions(
        ice_ufrag="abcd", ice_pwd="p" * 24, fingerprint=("sha-256", port.certificate.fingerprint),
        candidates=port.candidates(), tcp_candidates=port.tcp_candidates(), role="view"))
    await pc.close()
    udp = [line for line in text.split("\r\n") if " udp " in line]
    tcp = [line for line in text.split("\r\n") if " tcp " in line]
    assert len(udp) == 1 and len(tcp) == 1
    assert tcp[0].endswith(f"127.0.0.1 {tcp_addr(port)[1]} typ host tcptype passive")
    assert int(tcp[0].split()[3]) < int(udp[0].split()[3])
    assert tcp[0].split()[0] != udp[0].split()[0]  # own foundation


async def test_bound_to_both_families_a_port_offers_ipv4_and_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    port = MediaPort(MediaConfig(host="::", port=0, tcp_port=0))
    await port.start()
    try:
        hosts = [h for h, _ in port.local_addrs]
        assert hosts == ["0.0.0.0", "::"]
        assert len({p for _, p in port.local_addrs}) == 1
        assert port.candidates() == [("127.0.0.1", port.local_addr[1]),
                                     ("::1", port.local_addr[1])]
        assert [h for h, _ in port.tcp_candidates()] == ["127.0.0.1", "::1"]
        assert port.listening()["udp"][1].startswith("[::]:")
    finally:
        await port.stop()


async def test_a_transport_no_check_reaches_fails_naming_what_the_client_could_not_reach(
) -> None:
    port = MediaPort(MediaConfig(host="127.0.0.1", port=0, tcp_port=0, dtls_timeout=1.0))
    await port.start()
    try:
        transport = port.create_transport(
            RemoteParameters("peer", "p" * 24, [("sha-256", "00")]))
        states: list[tuple[TransportState, str]] = []
        transport.on_state = lambda state, reason: states.append((state, reason))
        await wait_for(lambda: bool(states), timeout=4)
        [(state, reason)] = states
        assert state is TransportState.FAILED and transport.ice_failed
        udp, tcp = port.local_addr[1], tcp_addr(port)[1]
        assert reason == (
            "ICE failed: no connectivity check reached the server within 1 s (the client could "
            f"reach none of udp 127.0.0.1:{udp}, tcp 127.0.0.1:{tcp}; a firewall? a TURN "
            "server helps)")
        assert transport not in port.transports
    finally:
        await port.stop()


async def test_a_peer_whose_checks_stop_loses_consent_with_the_path_named() -> None:
    port = MediaPort(MediaConfig(host="127.0.0.1", port=0, tcp_port=0, consent_timeout=2.0))
    await port.start()
    pc, transport, bridge = await connect_over_tcp(port)
    try:
        await wait_for(lambda: transport.state is TransportState.CONNECTED)
        assert transport.link is not None
        path = f"tcp {transport.link.addr[0]}:{transport.link.addr[1]}"
        bridge.blackholed = True  # consent checks stop arriving; the connection stays open
        await wait_for(lambda: transport.state is TransportState.FAILED, timeout=6)
        assert transport.close_reason == (
            f"ICE consent lost: no connectivity check from {path} for 2 s (RFC 7675)")
        assert transport.ice_failed
    finally:
        await pc.close()
        bridge.close()
        await port.stop()
