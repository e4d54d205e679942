"""Drain (C batch receive for bots): exact counts from real sockets, pass-through with kernel
arrival times, and listener bots on a Drain against a real server."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from hubbub.client.bots import Swarm
from hubbub.client.bots.drain import Drain
from hubbub.client.bots.janus import use_counting_peer
from tests.helpers.server import RunningServer

pytestmark = pytest.mark.skipif(not Drain.available(), reason="_drain C module not built")


class Sink:
    """What a Drain needs of a peer: the datagrams it is handed, with their arrival times."""

    def __init__(self) -> None:
        self.arrival_ns = 0
        self.got: list[tuple[bytes, int, tuple[str, int]]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append((data, self.arrival_ns, addr))


def rtp(seq: int, ssrc: int, pt: int = 111) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq, 1000 * seq, ssrc) + b"\x00" * 20


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx.bind(("127.0.0.1", 0))
    rx.connect(tx.getsockname())
    tx.connect(rx.getsockname())
    rx.setblocking(False)
    yield rx, tx
    rx.close()
    tx.close()


async def drained(drain: Drain) -> None:
    await asyncio.sleep(0.05)  # the loop calls the Drain when its epoll fd is readable


async def test_counting_member_counts_srtp_per_ssrc_and_passes_the_rest_up(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    rx, tx = pair
    drain = Drain()
    sink = Sink()
    link = drain.attach(sink, rx, counting=True)  # type: ignore[arg-type]
    stun = b"\x01\x01" + b"\x00" * 18
    rtcp = struct.pack("!BBHI", 0x80, 200, 6, 7) + b"\x00" * 20
    sent_at = time.monotonic_ns()
    for seq in (1, 2, 3, 5, 9):  # 4, 6, 7, 8 lost
        tx.send(rtp(seq, 0xA))
    for seq in (65535, 0, 1):  # wraps: no loss
        tx.send(rtp(seq, 0xB))
    tx.send(rtp(4, 0xA))  # late: counted as received, the gap stays counted
    tx.send(rtp(1, 0xB))  # repeat of the last: received, one loss given back
    tx.send(stun)
    tx.send(rtcp)
    await drained(drain)
    assert link.counts() == (10, 3)
    assert drain.total() == (10, 3)
    assert [d for d, _, _ in sink.got] == [stun, rtcp]
    assert all(addr == tx.getsockname() for _, _, addr in sink.got)
    for _, arrival, _ in sink.got:  # kernel time on the monotonic clock, near the send
        assert sent_at - 5_000_000 < arrival < time.monotonic_ns()
    link.close()
    tx.send(rtp(10, 0xA))
    await drained(drain)
    assert len(sink.got) == 2
    drain.close()


@pytest.mark.parametrize("poll_interval", [None, 0.001])
async def test_pass_through_member_hands_up_every_datagram_in_order(
    pair: tuple[socket.socket, socket.socket], poll_interval: float | None
) -> None:
    rx, tx = pair
    drain = Drain(poll_interval)
    sink = Sink()
    drain.attach(sink, rx, counting=False)  # type: ignore[arg-type]
    packets = [rtp(seq, 0xC) for seq in range(100)]  # more than one recvmmsg batch
    for packet in packets:
        tx.send(packet)
    await drained(drain)
    assert [d for d, _, _ in sink.got] == packets
    arrivals = [a for _, a, _ in sink.got]
    assert arrivals == sorted(arrivals) and arrivals[0] > 0
    assert drain.total() == (0, 0)  # pass-through members are not counted
    drain.close()


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="drain") as s:
        yield s


async def test_listener_bots_on_a_drain_count_and_time_what_the_server_forwards(
    srv: RunningServer,
) -> None:
    swarm = Swarm(srv.ws_pub_url, srv.ws_sub_url, "drain-room")
    pub = swarm.add_publisher(frequency=500, dtx=False)
    drain = Drain(poll_interval=0.002)
    timed = swarm.add_listener(slots=0)
    timed.peer.drain = drain
    counted = swarm.add_listener(slots=0)
    counted.peer.drain = drain
    counter = use_counting_peer(counted)
    try:
        await swarm.start()
        await swarm.run(2.0)
        await asyncio.sleep(0.1)
    finally:
        await swarm.stop()
        drain.close()
    main = timed.mids[timed.main_mid]
    assert pub.sent >= 95
    assert main.packets >= pub.sent - 2 and main.lost == 0
    assert main.per_bot == {pub.bot_id: main.packets}
    latencies = sorted(main.latency_ns)
    assert len(latencies) == main.packets
    assert 0 < latencies[len(latencies) // 2] < 20_000_000  # kernel arrival - send: ms
    packets, lost = counter.totals()
    assert packets >= pub.sent - 2 and lost == 0
