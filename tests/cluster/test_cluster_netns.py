"""Three `hubbub serve --redis` nodes, each in its own network namespace with its own address on
a virtual bridge: relays cross a real (virtual) network, not loopback. A publisher on node A is
heard on B and C, B and C pull the source from A, A feeds each edge once, and what travels
between A's and B's media ports is SRTP, not the publisher's RTP in the clear."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc.rtcrtpreceiver import RTCRtpReceiver

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from hubbub.cluster import keys
from hubbub.cluster.records import SourceClaim
from tests.helpers.cluster import API_SECRET, HEARTBEAT, TTL, get_json
from tests.helpers.netns import (
    Datagram,
    NetnsNode,
    VirtualNetwork,
    capture_udp,
    ice_host_addresses,
    running_network,
    unavailable_reason,
)
from tests.helpers.redis import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.netns]

NAMES = ("a", "b", "c")
GCM_TAG = 16  # AEAD_AES_128_GCM authentication tag (RFC 7714 §5)


@pytest.fixture(scope="module")
def network() -> Iterator[VirtualNetwork]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_network(NAMES) as net:
        yield net


@pytest.fixture(scope="module")
def redis(network: VirtualNetwork) -> Iterator[RedisServer]:
    with RedisServer(host=network.gateway, name=f"netns-{network.tag}-redis") as server:
        yield server


def cluster_view(node: NetnsNode) -> dict[str, Any]:
    stats: dict[str, Any] = get_json(f"{node.http_url}/api/cluster", API_SECRET)
    return stats


@pytest.fixture(scope="module")
def nodes(network: VirtualNetwork, redis: RedisServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NetnsNode]]:
    started: list[NetnsNode] = []
    try:
        for name in NAMES:
            host = network.hosts[name]
            node = NetnsNode(host, name=f"netns-{network.tag}-{name}", options={
                "allow_any_stream": True, "redis": redis.url, "cluster_ip": host.ip,
                "announce_ip": host.ip, "no_spaces": True, "heartbeat": HEARTBEAT,
                "node_ttl": TTL, "api_secret": API_SECRET, "drain_grace": 1,
                "data_dir": str(tmp_path_factory.mktemp(f"node-{name}")),
            })
            started.append(node)
            node.spawn()  # all three start at once
        for node in started:
            node.wait_healthy()
        deadline = time.monotonic() + 10
        while not all(len(cluster_view(n)["nodes"]) == len(NAMES) for n in started):
            assert time.monotonic() < deadline, "the nodes never saw each other in Redis"
            time.sleep(0.1)
        yield started
    finally:
        for node in started:
            node.stop()


async def heard(rec: AudioRecorder, seconds: float = 1.0) -> float:
    await rec.wait_for_frames(rec.frames + int(seconds * 50), timeout=10)
    return dominant_frequency(rec.samples(seconds), rec.sample_rate)


@contextlib.contextmanager
def received_rtp_payloads(payload_type: int) -> Iterator[list[bytes]]:
    """The RTP payloads (Opus frames, decrypted by aiortc) every viewer in this process gets."""
    payloads: list[bytes] = []
    original = RTCRtpReceiver._handle_rtp_packet

    async def spy(self: RTCRtpReceiver, packet: Any, arrival_time_ms: int) -> None:
        if packet.payload_type == payload_type:
            payloads.append(bytes(packet.payload))
        await original(self, packet, arrival_time_ms)

    RTCRtpReceiver._handle_rtp_packet = spy  # type: ignore[method-assign]
    try:
        yield payloads
    finally:
        RTCRtpReceiver._handle_rtp_packet = original  # type: ignore[method-assign]


def rtp_header_length(data: bytes) -> int:
    """Length of the RTP header (fixed part, CSRCs, extension): SRTP leaves it in the clear."""
    length = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        words = struct.unpack_from("!H", data, length + 2)[0]
        length += 4 + 4 * words
    return length


def is_relayed_rtp(d: Datagram) -> bool:
    return len(d.payload) >= 12 and not 191 < d.payload[1] < 224  # RTCP: RFC 5761 §4


async def test_publisher_in_one_namespace_is_heard_in_the_others_over_srtp_relays(
    network: VirtualNetwork, redis: RedisServer, nodes: list[NetnsNode],
) -> None:
    a, b, c = nodes
    name = f"netns{network.tag}"
    # Host candidates only on the bridge address: aioice's default (every root-namespace
    # address) works too, but a loopback test earlier in the same process leaves
    # hubbub.client.patches.use_loopback_only in place (127.0.0.1 only), which the
    # nodes cannot reach. A patch in a test, not a server feature.
    with ice_host_addresses(network.gateway):
        async with Publisher(a.ws_pub_url, name, tracks=[ToneTrack(440)]):
            async with (Viewer(b.ws_sub_url, name, video=False) as on_b,
                        Viewer(c.ws_sub_url, name, video=False) as on_c):
                for viewer in (on_b, on_c):
                    active = await viewer.wait_for_event("active")
                    assert active["streamId"] == f"hubbub/{name}", active
                    rec = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""],
                                        seconds=3).start()
                    freq = await heard(rec)
                    assert abs(freq - 440) < 5, f"heard {freq:.1f} Hz on {viewer.url}"
                    await rec.stop()

                # The registry's view: B and C pull the source from A; A feeds each edge once.
                view_a, view_b, view_c = (cluster_view(n) for n in nodes)
                for edge in (view_b, view_c):
                    assert [(p["sourceId"], p["origin"]) for p in edge["pulled"]] == [
                        (None, view_a["node"])], edge
                    (link,) = edge["links"]
                    assert link["peer"] == view_a["node"], edge["links"]
                    assert link["rtpIn"] > 0 and link["srtpErrors"] == 0, edge["links"]
                (hosted,) = view_a["hosted"]
                assert set(hosted["feeds"]) == {view_b["node"], view_c["node"]}, hosted
                (claim,) = [SourceClaim.from_json(v) for v in redis.command(
                    "HVALS", keys.sources(hosted["stream"])).splitlines() if v]
                (track,) = claim.tracks

                # What crosses the bridge from A's media port to B's, while the viewers note
                # the Opus frames they decrypt.
                with received_rtp_payloads(track.payload_type) as plain:
                    captured = await asyncio.to_thread(
                        capture_udp, network.hosts["a"].veth, 1.5,
                        lambda d: d.src == (a.host.ip, a.media_port)
                        and d.dst == (b.host.ip, b.media_port) and is_relayed_rtp(d))
                    await asyncio.sleep(0.3)  # the last captured packets reach the viewers
    assert_srtp_not_plain_rtp(captured, plain, claim.ssrcs[0], track.payload_type)


def assert_srtp_not_plain_rtp(captured: list[Datagram], plain: list[bytes], ssrc: int,
                              payload_type: int) -> None:
    """The relay is SRTP with AEAD_AES_128_GCM: the RTP header stays in the clear (so we know
    the datagrams are this source's relayed packets), the payload is encrypted and followed by
    a 16-byte tag. We cannot decrypt (the keys never leave the nodes), so we compare with the
    Opus frames the viewers decrypted from the same packets (the SFU forwards them unchanged):
    - none of them appears anywhere on the wire: the publisher's audio is not in the clear;
    - every wire payload is exactly a frame's length + 16, as GCM makes it;
    - where the Opus TOC byte would be, which is the same in every frame of this steady tone,
      the wire has near-random bytes.
    """
    assert len(captured) >= 20, f"only {len(captured)} relayed RTP datagrams A -> B in 1.5 s"
    assert len(plain) >= 20, f"the viewers decrypted only {len(plain)} Opus frames"
    toc_bytes = {p[0] for p in plain if p}
    assert len(toc_bytes) <= 2, f"expected a steady Opus config, TOCs {sorted(toc_bytes)}"
    plain_lengths = {len(p) for p in plain}
    wire_payloads = []
    for d in captured:
        data = d.payload
        assert data[0] >> 6 == 2, data.hex()
        assert data[1] & 0x7F == payload_type, data.hex()
        assert struct.unpack_from("!I", data, 8)[0] == ssrc, data.hex()
        wire_payloads.append(data[rtp_header_length(data):])
    leaked = [p.hex() for p in plain if len(p) >= 8 and any(p in d.payload for d in captured)]
    assert not leaked, f"Opus frames in the clear between the nodes: {leaked[:3]}"
    tagged = sum(len(w) - GCM_TAG in plain_lengths for w in wire_payloads)
    assert tagged >= 0.9 * len(wire_payloads), (
        f"{tagged}/{len(wire_payloads)} wire payloads are a decrypted frame's length + 16; "
        f"wire {sorted({len(w) for w in wire_payloads})}, frames {sorted(plain_lengths)}")
    first_bytes = {w[0] for w in wire_payloads if w}
    assert len(first_bytes) >= len(wire_payloads) // 4, (
        f"the encrypted Opus TOC position takes only {sorted(first_bytes)}")
