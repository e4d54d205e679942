"""The plain handshake (§5.2): S0 is version 3, S2 echoes C1, other versions are refused."""

from __future__ import annotations

import pytest

from hubbub.ingest.rtmp.handshake import C0C1_SIZE, HandshakeError, parse_c0c1, respond


def test_response_is_s0_s1_s2_echoing_c1() -> None:
    c1 = (1234).to_bytes(4, "big") + bytes(4) + bytes(range(256)) * 6
    c1 = c1[:1536]
    out = respond(parse_c0c1(b"\x03" + c1), now_ms=99, random=bytes(1528))
    assert len(out) == 1 + 1536 + 1536 and out[0] == 3
    s1, s2 = out[1:1537], out[1537:]
    assert s1[:4] == (99).to_bytes(4, "big") and s1[4:8] == bytes(4)
    assert s2[:4] == c1[:4] and s2[4:8] == (99).to_bytes(4, "big") and s2[8:] == c1[8:]


def test_other_versions_and_short_input_are_refused() -> None:
    with pytest.raises(HandshakeError, match="RTMP version 6 is not supported"):
        parse_c0c1(b"\x06" + bytes(C0C1_SIZE - 1))
    with pytest.raises(HandshakeError, match="truncated"):
        parse_c0c1(b"\x03")
