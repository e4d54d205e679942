"""RTCP: compound walking and every packet class of hubbub.media.rtcp, and what the sfu reads
from viewers (hubbub.sfu.rtcp_io.read_feedback, sender_reports).

Input: the compound packet (as it is after SRTCP unprotect).

Documented errors: ValueError only. read_feedback raises only for a broken compound framing
(it counts bad packets inside); a packet that parses serializes back to one that parses equal.
"""

from __future__ import annotations

from hubbub.media import rtcp
from hubbub.sfu import rtcp_io

MAX_LEN = 1500
EXPECTED = (ValueError,)


def one_input(data: bytes) -> None:
    try:
        spans = list(rtcp.iter_compound(data))
    except EXPECTED:
        spans = None
    try:
        events, bad = rtcp_io.read_feedback(data)
        assert 0 <= bad <= len(spans or ())
    except EXPECTED:
        assert spans is None, "read_feedback raised on a compound that iter_compound walks"
    try:
        rtcp_io.sender_reports(data)
    except EXPECTED:
        pass
    try:
        packets = rtcp.parse_compound(data)
    except EXPECTED:
        return
    for packet in packets:
        try:
            again = type(packet).parse(packet.serialize())
        except EXPECTED:
            continue  # e.g. more than 31 report blocks: parsed, not re-sendable as one
        assert again == packet, f"round trip changed {packet!r} into {again!r}"


if __name__ == "__main__":
    from tests.fuzz.harness import fuzz_main

    fuzz_main(one_input, "rtcp", MAX_LEN)
