"""ICE-lite Binding request handling on a real MediaPort (RFC 8445 §7.3, RFC 8489)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator

import pytest
from aioice import stun

from hubbub.config import MediaConfig
from hubbub.media import ice
from hubbub.media.dtls import split_records
from hubbub.media.transport import RemoteParameters, TransportState, WebRtcTransport
from hubbub.media.udp import MediaPort


@pytest.fixture
async def port() -> AsyncIterator[MediaPort]:
    p = MediaPort(MediaConfig(host="127.0.0.1", port=0, consent_timeout=2.5))
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def transport(port: MediaPort) -> WebRtcTransport:
    return port.create_transport(RemoteParameters("peer", "p" * 24, [("sha-256", "AA")]))


def request(
    username: str,
    pwd: str | None,
    *,
    priority: bool = True,
    role: str = "ICE-CONTROLLING",
    use_candidate: bool = False,
    fingerprint: bool = True,
) -> bytes:
    message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    message.attributes["USERNAME"] = username
    if priority:
        message.attributes["PRIORITY"] = 1853817087
    message.attributes[role] = 42
    if use_candidate:
        message.attributes["USE-CANDIDATE"] = None
    if pwd is not None:
        message.add_message_integrity(pwd.encode())
        if not fingerprint:
            message.attributes.pop("FINGERPRINT")
    return bytes(message)


async def exchange(port: MediaPort, data: bytes) -> stun.Message | None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        await loop.sock_sendto(sock, data, port.local_addr)
        try:
            reply = await asyncio.wait_for(loop.sock_recv(sock, 2048), 0.3)
        except TimeoutError:
            return None
        return stun.parse_message(reply)
    finally:
        sock.close()


async def test_valid_check_gets_signed_xor_mapped_address(
    port: MediaPort, transport: WebRtcTransport
) -> None:
    data = request(f"{transport.local_ufrag}:peer", transport.local_pwd, use_candidate=True)
    reply = await exchange(port, data)
    assert reply is not None and reply.message_class == stun.Class.RESPONSE
    assert reply.check_message_integrity(transport.local_pwd.encode())
    ip, _port = reply.attributes["XOR-MAPPED-ADDRESS"]
    assert ip == "127.0.0.1"
    assert transport.state is TransportState.CONNECTING
    assert transport.nominated and transport.addr is not None


@pytest.mark.parametrize("pwd", ["wrong-password-wrong-pw", None])
async def test_unauthenticated_checks_for_a_live_ufrag_get_no_answer(
    port: MediaPort, transport: WebRtcTransport, pwd: str | None
) -> None:
    # RFC 8489 §9.1.3 would answer 401/400; hubbub drops them silently (MediaPort._on_stun).
    data = request(f"{transport.local_ufrag}:peer", pwd)
    assert await exchange(port, data) is None
    assert port.stats.stun_bad_integrity == 1 and port.stats.stun_errors == 0
    assert transport.state is TransportState.NEW and transport.addr is None


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"fingerprint": False}, 400),
        ({"priority": False}, 400),
        ({"role": "ICE-CONTROLLED"}, 487),
    ],
)
async def test_refused_authenticated_checks_get_the_rfc_error_code(
    port: MediaPort, transport: WebRtcTransport, kwargs: dict[str, object], code: int
) -> None:
    args: dict[str, object] = {"pwd": transport.local_pwd} | kwargs
    pwd = args.pop("pwd")
    data = request(f"{transport.local_ufrag}:peer", pwd, **args)  # type: ignore[arg-type]
    reply = await exchange(port, data)
    assert reply is not None and reply.message_class == stun.Class.ERROR
    assert reply.attributes["ERROR-CODE"][0] == code
    assert reply.check_message_integrity(transport.local_pwd.encode())
    assert transport.state is TransportState.NEW and transport.addr is None


async def test_unknown_ufrag_and_garbage_get_no_answer(
    port: MediaPort, transport: WebRtcTransport
) -> None:
    assert await exchange(port, request("nobody:peer", "x" * 24)) is None
    assert await exchange(port, b"\x00\x01\x00\x00garbage") is None
    good = request(f"{transport.local_ufrag}:peer", transport.local_pwd)
    for cut in range(1, len(good), 9):
        assert await exchange(port, good[:cut]) is None
    assert port.stats.dropped_garbage > 0 and port.stats.stun_unknown_ufrag == 1
    assert transport.addr is None and not transport.nominated


async def test_a_binding_indication_is_a_keepalive_not_garbage(port: MediaPort) -> None:
    """libnice sends one after connecting (RFC 8445 §11): counted apart, never answered."""
    indication = struct.pack("!HHI12s", 0x0011, 0, 0x2112A442, b"transaction!")
    assert await exchange(port, indication) is None
    assert port.stats.stun_indications == 1 and port.stats.dropped_garbage == 0


async def test_consent_expiry_fails_the_transport(
    port: MediaPort, transport: WebRtcTransport
) -> None:
    data = request(f"{transport.local_ufrag}:peer", transport.local_pwd, use_candidate=True)
    assert await exchange(port, data) is not None
    await asyncio.sleep(4.2)  # consent_timeout=2.5 s, swept once a second
    assert transport.state is TransportState.FAILED
    assert transport not in port.transports


def test_new_credentials_have_the_rfc_entropy() -> None:
    ufrag, pwd = ice.new_credentials()
    assert len(ufrag) >= 4 and len(pwd) >= 22  # RFC 8445 §5.3: 24 and 128 bits
    assert ice.new_credentials() != (ufrag, pwd)


def test_dtls_flights_split_at_record_boundaries() -> None:
    def record(n: int) -> bytes:
        return bytes([22, 0xFE, 0xFD, 0, 0]) + bytes(6) + n.to_bytes(2, "big") + bytes(n)

    flight = record(500) + record(500) + record(300) + record(10)
    datagrams = split_records(flight, 1200)
    assert b"".join(datagrams) == flight
    assert [len(d) for d in datagrams] == [1026, 336]
