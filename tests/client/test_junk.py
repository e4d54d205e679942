"""The junk sender of the media-port abuse tests (hubbub.client.bots.junk): its datagrams are
what they claim to be, and it sends from the source ports it was asked for."""

from __future__ import annotations

import socket

import pytest
from aioice import stun

from hubbub.client.bots import junk
from hubbub.media import ice


def test_binding_requests_are_well_formed_and_signed() -> None:
    data = junk.binding_request("srvufrag:client", b"p" * 24)
    message = stun.parse_message(data)  # checks the FINGERPRINT
    assert message.message_class == stun.Class.REQUEST
    assert message.check_message_integrity(b"p" * 24)
    assert message.attributes["USERNAME"] == "srvufrag:client"


def test_payloads_of_each_kind() -> None:
    bad = junk.payloads("bad-mi", "srvufrag", count=10)
    assert len(bad) == 10 and all(ice.peek_binding_request(d) is not None for d in bad)
    assert {ice.peek_binding_request(d)[0] for d in bad} == {"srvufrag"}  # type: ignore[index]
    unknown = junk.payloads("unknown-ufrag", None, count=10)
    assert "srvufrag" not in {ice.peek_binding_request(d)[0] for d in unknown}  # type: ignore[index]
    assert all(d[0] == 22 for d in junk.payloads("dtls", None, count=10))
    assert all(d[0] == 0x80 for d in junk.payloads("rtp", None, count=10))
    mixed = junk.payloads("mix", None, count=30)
    assert {d[0] for d in mixed} == {0, 22, 0x80}, "mix without a ufrag has no bad-mi"
    with pytest.raises(ValueError):
        junk.payloads("bad-mi", None)


def test_it_sends_from_the_source_ports_asked_for() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(1.0)
        result = junk.run(sink.getsockname(), junk.payloads("rtp", None, count=4), 2000, 0.2,
                          sources=50)
        assert int(str(result["sent"])) >= 300
        ports = set()
        for _ in range(100):
            _, (_, port) = sink.recvfrom(2048)
            ports.add(port)
        assert len(ports) == 50
