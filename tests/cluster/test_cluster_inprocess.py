"""Two nodes in one process (control.Node with a ClusterCoordinator each), a real
redis-server and real UDP between their media ports: a source published on A is pulled by B
for its viewer; the relay is encrypted; releasing the source reaches B."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hubbub.cluster import ClusterConfig, ClusterCoordinator
from hubbub.config import Config
from hubbub.control.auth.keys import SigningKey
from hubbub.control.node import Node
from hubbub.media import rtp
from tests.helpers.redis import RedisServer
from tests.sfu.fakes import (
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    down_video,
    video_packet,
    video_params,
)


def make_node(redis: RedisServer, node_id: str, heartbeat: float = 0.2) -> Node:
    config = Config()
    config.media.host = "127.0.0.1"
    config.media.port = 0
    coordinator = ClusterCoordinator(
        ClusterConfig(redis_url=redis.url, node_id=node_id, url=f"ws://{node_id}",
                      heartbeat=heartbeat, ttl=1.0),
        SigningKey.generate().jwk,
    )
    return Node(config, coordinator)


@pytest_asyncio.fixture
async def nodes(redis: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    stamp = str(time.monotonic_ns())[-6:]
    a, b = make_node(redis, f"a{stamp}"), make_node(redis, f"b{stamp}")
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await b.stop()
        await a.stop()


async def wait_for(check: object, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_source_on_a_reaches_a_viewer_on_b(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    stream_a = a.streams.get_or_create("s")
    source = stream_a.publish("x", [audio_params()], FakeSink())
    a.coordinator.source_published(stream_a, source)

    await wait_for(lambda: a.coordinator.origin.hosted[("s", "x")].claim is not None)
    interest = b.coordinator.interest("s", "view")
    await interest.ready()  # a claim in the registry is followed before `view` is answered
    stream_b = b.streams.get("s")
    assert stream_b is not None and "x" in stream_b.sources  # the copy, before any packet
    sink = FakeSink()
    stream_b.add_viewer([down_audio()], sink)
    await wait_for(lambda: bool(stream_a.relays))  # B's wants reached A

    for seq in range(10):
        source.on_rtp(audio_packet(seq, seq * 960, level=20))
        await asyncio.sleep(0.005)
    await wait_for(lambda: len(sink.rtp_out) == 10)
    assert [rtp.read_header(p)[2] for p in sink.rtp_out] == list(range(10))
    # On the wire between A and B: SRTP, never the publisher's plain packet.
    link = b.coordinator.links.find(a.cluster_id)
    assert link is not None and link.stats.rtp_in == 10 and link.stats.srtp_errors == 0

    # A garbage datagram from A's address is refused by SRTP, nothing reaches the viewer.
    b.port.datagram_received(b"\x80" + bytes(40), link.addr)  # type: ignore[arg-type]
    assert link.stats.srtp_errors == 1 and len(sink.rtp_out) == 10

    stream_a.unpublish(source)
    a.coordinator.source_unpublished(stream_a, source)
    await wait_for(lambda: "x" not in stream_b.sources)
    interest.release()
    await wait_for(lambda: not stream_a.relays)  # the last viewer left B: A stops feeding


async def test_a_node_that_joined_after_our_last_heartbeat_is_followed_not_buried(
    redis: RedisServer,
) -> None:
    stamp = str(time.monotonic_ns())[-6:]
    # B reads the registry once, at start; its next heartbeat is far away.
    b = make_node(redis, f"b{stamp}", heartbeat=30.0)
    await b.start()
    a = make_node(redis, f"a{stamp}")
    await a.start()
    try:
        await asyncio.sleep(1.2)  # past B's start-up grace (one TTL)
        assert a.cluster_id not in b.coordinator.nodes  # type: ignore[attr-defined]
        stream_a = a.streams.get_or_create("late")
        source = stream_a.publish(None, [audio_params()], FakeSink())
        a.coordinator.source_published(stream_a, source)
        await wait_for(lambda: a.coordinator.origin.hosted[("late", None)].claim is not None)
        interest = b.coordinator.interest("late", "view")
        await interest.ready()
        stream_b = b.streams.get("late")
        assert stream_b is not None and None in stream_b.sources
        assert redis.command("HKEYS", "hubbub:stream:late:sources").split() == [b"null"]
        interest.release()
    finally:
        await a.stop()
        await b.stop()


async def test_a_node_taken_for_dead_after_a_stall_comes_back_whole(redis: RedisServer) -> None:
    stamp = str(time.monotonic_ns())[-6:]
    a = make_node(redis, f"a{stamp}", heartbeat=30.0)  # stalls: no heartbeat after start
    b = make_node(redis, f"b{stamp}")
    await a.start()
    await b.start()
    try:
        stream_a = a.streams.get_or_create("stall")
        source = stream_a.publish(None, [audio_params()], FakeSink())
        a.coordinator.source_published(stream_a, source)
        interest = b.coordinator.interest("stall", "view")
        await wait_for(lambda: (b.streams.get("stall") is not None
                                and None in b.streams.get("stall").sources))  # type: ignore
        # A's record expires (TTL 1 s): B buries it, its claim and B's copy go.
        await wait_for(lambda: not b.streams.get("stall"), timeout=5)  # type: ignore
        # The copy goes at once; the claim's compare-and-delete in Redis follows it.
        await wait_for(lambda: redis.command("HKEYS", "hubbub:stream:stall:sources").split()
                       == [], timeout=2)
        # A's next heartbeat notices and writes its part again; B follows it again.
        await a.coordinator._heartbeat()  # type: ignore[attr-defined]
        await wait_for(lambda: (b.streams.get("stall") is not None
                                and None in b.streams.get("stall").sources))  # type: ignore
        interest.release()
    finally:
        await b.stop()
        await a.stop()


async def test_video_lost_between_nodes_is_resent_by_the_origin(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    stream_a = a.streams.get_or_create("loss")
    publisher = FakeSink()
    source = stream_a.publish(None, [video_params()], publisher)
    a.coordinator.source_published(stream_a, source)
    await wait_for(lambda: a.coordinator.origin.hosted[("loss", None)].claim is not None)
    # The network between the nodes loses two relayed packets once: a loss shim on A's port,
    # set before A's link to B exists (replacing `sendto` keeps the C sender off for it).
    to_b = (b.port.local_addr[0], b.port.local_addr[1])
    dropped: list[int] = []
    send = a.port.sendto

    def lossy(data: bytes, addr: tuple[str, int]) -> None:
        seq = int.from_bytes(data[2:4], "big")
        if addr == to_b and data[1] & 0x7F == 96 and seq in (5, 12) and seq not in dropped:
            dropped.append(seq)  # the first copy only: the resend gets through
            return
        send(data, addr)

    a.port.sendto = lossy  # type: ignore[method-assign]
    interest = b.coordinator.interest("loss", "view")
    await interest.ready()
    stream_b = b.streams.get("loss")
    assert stream_b is not None
    sink = FakeSink()
    stream_b.add_viewer([down_video()], sink)
    await wait_for(lambda: bool(stream_a.relays))
    for seq in range(20):
        source.on_rtp(video_packet(seq, seq * 3000, key=seq == 0))
        await asyncio.sleep(0.005)
    await wait_for(lambda: len(sink.rtp_out) == 20)
    assert sorted(dropped) == [5, 12]
    got = sorted(rtp.read_header(p)[2] for p in sink.rtp_out)
    assert got == list(range(20)), "B's viewer got every packet, the lost ones resent by A"
    feed = stream_a.relays[0]
    assert feed.down_tracks[0].packets_resent == 2
    assert not [p for p in publisher.rtcp_out if p[1] == 205], "no NACK reached the publisher"
    interest.release()


async def test_a_node_that_stops_cleanly_is_gone_at_the_next_heartbeat(
    redis: RedisServer, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hubbub.cluster")
    stamp = str(time.monotonic_ns())[-6:]
    a, b = make_node(redis, f"a{stamp}"), make_node(redis, f"b{stamp}")
    await a.start()
    await b.start()
    try:
        await wait_for(lambda: a.cluster_id in b.coordinator.nodes)  # type: ignore[attr-defined]
        await a.stop()
        stopped = time.monotonic()
        await wait_for(lambda: a.cluster_id not in b.coordinator.nodes)  # type: ignore
        assert time.monotonic() - stopped < 0.6  # a heartbeat or two, not the TTL
        assert f"node {a.cluster_id} left the cluster" in caplog.text
        assert "no heartbeat" not in caplog.text  # a clean leave is not reported as a crash
    finally:
        await b.stop()
