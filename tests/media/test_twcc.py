"""Transport-cc feedback built from recorded arrivals (draft-holmer-...-01 §3.1)."""

from __future__ import annotations

from hubbub.media import rtcp, rtp
from hubbub.media.twcc import TwccResponder

EXT_ID = 3


def packet(twseq: int) -> bytes:
    return rtp.build_packet(
        111, twseq, twseq * 960, 0x1234, b"\x00" * 20,
        extensions=[(EXT_ID, twseq.to_bytes(2, "big"))],
    )


def test_feedback_reports_arrivals_and_losses_then_continues() -> None:
    responder = TwccResponder(EXT_ID, sender_ssrc=0x48554242)
    for seq, at in [(100, 1_000_000), (101, 1_020_000), (103, 1_060_000)]:
        responder.record(packet(seq), at)
    data = responder.build()
    assert data is not None
    fb = rtcp.TransportCC.parse(data)
    assert fb.sender_ssrc == 0x48554242 and fb.media_ssrc == 0x1234
    assert fb.base_seq == 100 and fb.fb_count == 0
    arrivals = fb.arrivals()
    assert arrivals[2] is None  # 102 lost
    assert [a - arrivals[0] for a in (arrivals[1], arrivals[3])] == [20_000, 60_000]  # type: ignore[operator]
    # Nothing new: no feedback. Next window starts after 103 and reports 104 lost.
    assert responder.build() is None
    responder.record(packet(105), 1_100_000)
    fb2 = rtcp.TransportCC.parse(responder.build() or b"")
    assert fb2.base_seq == 104 and fb2.fb_count == 1
    assert fb2.arrivals()[0] is None and fb2.arrivals()[1] is not None


def test_sequence_wrap_is_unwrapped() -> None:
    responder = TwccResponder(EXT_ID, sender_ssrc=1)
    responder.record(packet(65534), 0)
    responder.record(packet(65535), 1000)
    responder.record(packet(0), 2000)
    fb = rtcp.TransportCC.parse(responder.build() or b"")
    assert fb.base_seq == 65534 and len(fb.statuses) == 3 and None not in fb.arrivals()


def test_packets_without_the_extension_are_ignored() -> None:
    responder = TwccResponder(EXT_ID, sender_ssrc=1)
    responder.record(rtp.build_packet(111, 1, 1, 1, b"x"), 0)
    responder.record(b"\x80", 0)
    assert responder.build() is None
