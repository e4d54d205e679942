"""The media port under junk (issue 13): cheap rejection, per-address budgets with bounded
state, silent drops, counters, aggregated logging and the socket receive buffer."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator

import pytest
from aioice import stun
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.config import MediaConfig
from hubbub.media import ice
from hubbub.media.budget import AddressBudget
from hubbub.media.transport import RemoteParameters, TransportState, WebRtcTransport
from hubbub.media.udp import MediaPort

Sent = list[tuple[bytes, tuple[str, int]]]


def request(username: str, pwd: str | None) -> bytes:
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    message.attributes["USERNAME"] = username
    message.attributes["PRIORITY"] = 1853817087
    message.attributes["ICE-CONTROLLING"] = 42
    message.attributes["USE-CANDIDATE"] = None
    if pwd is not None:
        message.add_message_integrity(pwd.encode())
    return bytes(message)


def with_attributes(data: bytes, count: int) -> bytes:
    """`data` with `count` empty SOFTWARE attributes inserted after the header."""
    body = bytes.fromhex("80220000") * count + data[20:]
    return data[:2] + (len(body)).to_bytes(2, "big") + data[4:20] + body


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def port() -> AsyncIterator[MediaPort]:
    p = MediaPort(MediaConfig(host="127.0.0.1", port=0, stun_rate=10, stun_burst=5,
                              dtls_rate=10, dtls_burst=5, budget_addresses=64))
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def sent(port: MediaPort) -> Sent:
    out: Sent = []
    port.sendto = lambda data, addr: out.append((data, addr))  # type: ignore[method-assign]
    return out


@pytest.fixture
def transport(port: MediaPort) -> WebRtcTransport:
    return port.create_transport(RemoteParameters("peer", "p" * 24, [("sha-256", "AA")]))


# --- AddressBudget -----------------------------------------------------------------------


def test_budget_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    budget = AddressBudget(rate=10, burst=5, max_addresses=10, clock=clock)
    a = ("10.0.0.1", 1)
    assert [budget.take(a) for _ in range(7)] == [True] * 5 + [False] * 2
    clock.now += 0.25  # 2.5 tokens
    assert [budget.take(a) for _ in range(3)] == [True, True, False]
    assert budget.take(("10.0.0.2", 1)), "another address has its own budget"
    clock.now += 100
    assert sum(budget.take(a) for _ in range(10)) == 5, "refills to the burst, not beyond"


def test_budget_table_stays_bounded_under_a_source_port_spray() -> None:
    clock = Clock()
    budget = AddressBudget(rate=10, burst=5, max_addresses=100, clock=clock)
    for port in range(50_000):
        budget.take(("10.6.6.6", port))
        assert len(budget) <= 100
    assert budget.evictions == 50_000 - len(budget) and len(budget) >= 100 - 100 // 16


def test_a_full_table_forgets_refilled_buckets_before_busy_ones() -> None:
    clock = Clock()
    budget = AddressBudget(rate=1, burst=5, max_addresses=3, clock=clock)  # refills in 5 s
    busy, idle1, idle2 = ("10.0.0.1", 1), ("10.0.0.2", 1), ("10.0.0.3", 1)
    budget.take(idle1)
    budget.take(idle2)
    clock.now += 5.0
    assert sum(budget.take(busy) for _ in range(6)) == 5
    clock.now += 4.9  # the idle ones have refilled, `busy` has not (4.9 tokens)
    budget.take(("10.0.0.4", 1))
    assert len(budget) == 2 and budget.evictions == 2
    assert sum(budget.take(busy) for _ in range(6)) == 4, "busy kept its (spent) budget"


def test_budget_rejects_nonsense() -> None:
    for rate, burst, size in ((0, 1, 1), (1, 0.5, 1), (1, 1, 0)):
        with pytest.raises(ValueError):
            AddressBudget(rate, burst, size)


# --- the cheap STUN pre-check -----------------------------------------------------------


def test_peek_finds_the_ufrag_and_the_integrity() -> None:
    data = request("srvufrag:client", "x" * 24)
    peeked = ice.peek_binding_request(data)
    assert peeked is not None
    ufrag, offset = peeked
    assert ufrag == "srvufrag" and data[offset : offset + 2] == b"\x00\x08"
    assert ice.IntegrityKey("x" * 24).matches(data, offset)
    assert not ice.IntegrityKey("y" * 24).matches(data, offset)
    assert ice.peek_binding_request(request("srvufrag:client", None)) == ("srvufrag", 0)


@pytest.mark.parametrize("data", [
    b"",
    b"\x00\x01\x00\x00",
    bytes.fromhex("0011 0000 2112a442") + bytes(12),  # Binding indication (keepalive)
    bytes.fromhex("0101 0000 2112a442") + bytes(12),  # a response
    bytes.fromhex("0001 0000 deadbeef") + bytes(12),  # no magic cookie (RFC 3489)
    bytes.fromhex("0001 0008 2112a442") + bytes(12) + bytes.fromhex("0006 0004 61626364"),
    bytes.fromhex("0001 0008 2112a442") + bytes(12) + bytes.fromhex("0006 0040 613a6263"),
    bytes.fromhex("0001 0004 2112a442") + bytes(12) + bytes.fromhex("0006 0000"),
    bytes.fromhex("0001 0003 2112a442") + bytes(12) + b"abc",
])
def test_peek_refuses_what_is_not_a_binding_request_with_username(data: bytes) -> None:
    assert ice.peek_binding_request(data) is None


def test_peek_bounds_the_attribute_walk() -> None:
    data = request("srvufrag:client", "x" * 24)
    assert ice.peek_binding_request(with_attributes(data, 10)) is not None
    assert ice.peek_binding_request(with_attributes(data, 400)) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_peek_never_raises(data: bytes) -> None:
    ice.peek_binding_request(bytes.fromhex("0001") + data[:2] + bytes.fromhex("2112a442")
                             + data[2:])
    ice.peek_binding_request(data)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="abcXYZ019+/", min_size=1, max_size=32),
       st.text(alphabet="abcXYZ019+/", min_size=1, max_size=32),
       st.text(min_size=1, max_size=80), st.booleans())
def test_integrity_check_agrees_with_aioice(ufrag: str, remote: str, pwd: str,
                                            right: bool) -> None:
    data = request(f"{ufrag}:{remote}", pwd)
    peeked = ice.peek_binding_request(data)
    assert peeked is not None and peeked[0] == ufrag
    key = pwd if right else pwd + "!"
    expected = stun.parse_message(data).check_message_integrity(key.encode())
    assert ice.IntegrityKey(key).matches(data, peeked[1]) is expected is right


# --- MediaPort ----------------------------------------------------------------------------


async def test_unknown_ufrags_are_dropped_silently_without_state(
    port: MediaPort, transport: WebRtcTransport, sent: Sent
) -> None:
    for i in range(1000):
        port.datagram_received(request(f"nobody{i}:x", "x" * 24), ("10.0.0.1", 5000 + i))
    assert sent == [] and port.stats.stun_unknown_ufrag == 1000
    assert len(port.stun_budget) == 0, "an unknown ufrag must not cost a budget entry"


async def test_a_forged_flood_is_silent_and_spends_only_its_own_budget(
    port: MediaPort, transport: WebRtcTransport, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    checks = 0
    real = ice.IntegrityKey.matches

    def counting(self: ice.IntegrityKey, data: bytes, offset: int) -> bool:
        nonlocal checks
        checks += 1
        return real(self, data, offset)

    monkeypatch.setattr(ice.IntegrityKey, "matches", counting)
    port.stun_budget = AddressBudget(rate=10, burst=5, max_addresses=64, clock=Clock())
    forged = request(f"{transport.local_ufrag}:x", "wrong-password-wrong-pw")
    unsigned = request(f"{transport.local_ufrag}:x", None)
    attacker = ("10.6.6.6", 4000)
    for _ in range(500):
        port.datagram_received(forged, attacker)
        port.datagram_received(unsigned, attacker)
    assert sent == [], "a forged request is never answered"
    assert checks == 3, "over its budget, an address costs no HMAC (2 of 5 were unsigned)"
    assert port.stats.stun_bad_integrity == 5 and port.stats.stun_over_budget == 995
    # The victim's own checks, from its own address, still go through.
    victim = ("10.0.0.2", 5000)
    port.datagram_received(request(f"{transport.local_ufrag}:peer", transport.local_pwd), victim)
    assert len(sent) == 1 and sent[0][1] == victim
    reply = stun.parse_message(sent[0][0])
    assert reply.message_class == stun.Class.RESPONSE
    assert transport.state is TransportState.CONNECTING and transport.addr == victim


async def test_a_source_port_spray_keeps_the_budget_table_bounded(
    port: MediaPort, transport: WebRtcTransport, sent: Sent
) -> None:
    port.stun_budget = AddressBudget(rate=10, burst=5, max_addresses=64, clock=Clock())
    forged = request(f"{transport.local_ufrag}:x", "wrong-password-wrong-pw")
    for source_port in range(20_000):
        port.datagram_received(forged, ("10.6.6.6", source_port))
    assert len(port.stun_budget) <= 64
    assert port.stats.stun_bad_integrity == 20_000 and sent == []
    port._report_drops()  # the periodic report (and the sweep) copy the evictions to PortStats
    assert port.stats.budget_evictions == 20_000 - len(port.stun_budget)


async def test_dtls_is_budgeted_per_bound_address_and_dropped_from_others(
    port: MediaPort, transport: WebRtcTransport, sent: Sent
) -> None:
    peer = ("10.0.0.2", 5000)
    port.datagram_received(request(f"{transport.local_ufrag}:peer", transport.local_pwd), peer)
    assert transport.addr == peer
    records: list[bytes] = []
    transport.receive_dtls = records.append  # type: ignore[method-assign]
    port.dtls_budget = AddressBudget(rate=10, burst=5, max_addresses=64, clock=Clock())
    junk = bytes([22, 0xFE, 0xFD]) + os.urandom(60)
    for source_port in range(2000):
        port.datagram_received(junk, ("10.6.6.6", source_port))
    assert records == [] and port.stats.dropped_unknown_peer == 2000
    assert len(port.dtls_budget) == 0, "unbound addresses cost no DTLS budget entry"
    for _ in range(100):
        port.datagram_received(junk, peer)
    assert len(records) == 5 and port.stats.dtls_over_budget == 95


async def test_rtp_from_known_peers_touches_no_budget(
    port: MediaPort, transport: WebRtcTransport, sent: Sent
) -> None:
    peer = ("10.0.0.2", 5000)
    port.datagram_received(request(f"{transport.local_ufrag}:peer", transport.local_pwd), peer)
    before = (len(port.stun_budget), len(port.dtls_budget))
    packets: list[bytes] = []
    transport.receive_srtp = packets.append  # type: ignore[method-assign]
    rtp = bytes([0x80, 111]) + bytes(30)
    for _ in range(1000):
        port.datagram_received(rtp, peer)
        port.datagram_received(rtp, ("10.6.6.6", 1))
    assert len(packets) == 1000 and port.stats.dropped_unknown_peer == 1000
    assert (len(port.stun_budget), len(port.dtls_budget)) == before


async def test_floods_are_logged_once_per_cause_then_summed_up(
    port: MediaPort, transport: WebRtcTransport, sent: Sent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hubbub.media.udp")
    port.stun_budget = AddressBudget(rate=10, burst=5, max_addresses=64, clock=Clock())
    forged = request(f"{transport.local_ufrag}:x", "wrong-password-wrong-pw")
    for i in range(10_000):
        port.datagram_received(forged, ("10.6.6.6", i))
        port.datagram_received(request("nobody:x", None), ("10.6.6.6", i))
        port.datagram_received(bytes([0x80, 0]) + bytes(20), ("10.6.6.6", i))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert any("MESSAGE-INTEGRITY" in line for line in lines)
    caplog.clear()
    port._report_drops()
    assert [r.getMessage() for r in caplog.records] == [
        "media port dropped in the last 60 s: dropped_unknown_peer 10000, "
        f"stun_unknown_ufrag 10000, stun_bad_integrity 10000, budget_evictions "
        f"{10_000 - len(port.stun_budget)}"]
    caplog.clear()
    port._report_drops()  # a quiet interval: nothing to say
    assert caplog.records == []
    port.datagram_received(forged, ("10.6.6.6", 1))
    assert len(caplog.records) == 1, "the next interval logs the cause's first drop again"


async def test_the_receive_buffer_is_set_and_read_back() -> None:
    small = MediaPort(MediaConfig(host="127.0.0.1", port=0, recv_buffer=100_000))
    await small.start()
    try:
        # Below net.core.rmem_max (208 KiB by default) the kernel grants it, doubled.
        assert small.recv_buffer == 200_000
    finally:
        await small.stop()
    default = MediaPort(MediaConfig(host="127.0.0.1", port=0, recv_buffer=0))
    await default.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as plain:
            assert default.recv_buffer == plain.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    finally:
        await default.stop()


async def test_the_default_receive_buffer_is_4_mib_or_says_why_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hubbub.media.udp")
    port = MediaPort(MediaConfig(host="127.0.0.1", port=0))
    await port.start()
    await port.stop()
    if port.recv_buffer >= 2 * 4 * 1024 * 1024:
        assert any("receive buffer: 4194304 bytes" in r.getMessage() for r in caplog.records)
    else:  # no CAP_NET_ADMIN and a low net.core.rmem_max
        assert any("rmem_max" in r.getMessage() for r in caplog.records)
