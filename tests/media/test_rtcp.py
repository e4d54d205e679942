"""RTCP parse/build: exact bytes, compound handling, truncation, fuzzing, round trips."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.media import rtcp
from hubbub.media.rtcp import (
    Bye,
    Fir,
    Nack,
    Pli,
    ReceiverReport,
    Remb,
    ReportBlock,
    SdesChunk,
    SenderReport,
    SourceDescription,
    TransportCC,
)

A, B = 0x1E5D2A9C, 0x5E0C2F9A
CNAME = b"2d4f6a2e-7c1b-4b8e-9f3a-0c5d6e7f8a9b"  # aiortc uses a uuid4 as CNAME

# aiortc-style SR (no report blocks) + SDES CNAME compound.
SR_PKT = bytes.fromhex(
    "80c80006" "1e5d2a9c" "e9a83c11" "4b6f2e00" "0003a980" "00000032" "00001f40"
)
SDES_PKT = bytes.fromhex("81ca000b" "1e5d2a9c" "0124") + CNAME + b"\x00\x00"
SR_SDES = SR_PKT + SDES_PKT

RR_PKT = bytes.fromhex(
    "82c9000d" "00000001"
    "1e5d2a9c" "0a00000c" "00010f2c" "00000020" "3c114b6f" "00008000"
    "5e0c2f9a" "05fffffe" "0000ffff" "00000000" "00000000" "00000000"
)
NACK_PKT = bytes.fromhex("81cd0004" "00000001" "1e5d2a9c" "fffe0007" "00140000")
PLI_PKT = bytes.fromhex("81ce0002" "00000001" "1e5d2a9c")
FIR_PKT = bytes.fromhex("84ce0004" "00000001" "00000000" "1e5d2a9c" "07000000")
REMB_PKT = bytes.fromhex(
    "8fce0006" "00000001" "00000000" "52454d42" "020bd090" "1e5d2a9c" "5e0c2f9a"
)
BYE_PKT = bytes.fromhex("81cb0002" "1e5d2a9c" "03627965")
# transport-cc with a 2-bit status vector, small and large deltas and RTCP padding.
TWCC_PKT = bytes.fromhex(
    "afcd0006" "00000001" "1e5d2a9c"
    "0064" "0004" "000003" "07"  # base seq 100, 4 statuses, reference 3 (x64 ms), fb count 7
    "d180"  # 2-bit vector: small, not received, small, large
    "00" "04" "0190"  # deltas 0, 4, 400 ticks
    "0002"  # padding
)

SR = SenderReport(A, 0xE9A83C11_4B6F2E00, 0x3A980, 50, 8000)
SDES = SourceDescription([SdesChunk(A, [(1, CNAME)])])
RR = ReceiverReport(1, [
    ReportBlock(A, 10, 12, 0x10F2C, 32, 0x3C114B6F, 0x8000),
    ReportBlock(B, 5, -2, 0xFFFF),
])
NACK = Nack(1, A, [65534, 65535, 0, 1, 20])
PLI = Pli(1, A)
FIR = Fir(1, [(A, 7)])
REMB = Remb(1, 1_000_000, [A, B])
BYE = Bye([A], b"bye")
TWCC = TransportCC(1, A, 100, 3, 7, [1, 0, 1, 2], [0, 4, 400])

FIXTURES: list[tuple[bytes, rtcp.RtcpPacket]] = [
    (SR_PKT, SR),
    (SDES_PKT, SDES),
    (RR_PKT, RR),
    (NACK_PKT, NACK),
    (PLI_PKT, PLI),
    (FIR_PKT, FIR),
    (REMB_PKT, REMB),
    (BYE_PKT, BYE),
    (TWCC_PKT, TWCC),
]
IDS = ["SR", "SDES", "RR", "NACK", "PLI", "FIR", "REMB", "BYE", "TWCC"]


def error(fn: Callable[[bytes], object], data: bytes) -> str:
    with pytest.raises(ValueError) as info:
        fn(data)
    return str(info.value)


@pytest.mark.parametrize(("data", "packet"), FIXTURES, ids=IDS)
def test_fixture_parses_and_serializes_exactly(data: bytes, packet: rtcp.RtcpPacket) -> None:
    assert type(packet).parse(data) == packet
    assert packet.serialize() == data
    assert rtcp.parse_compound(data) == [packet]


@pytest.mark.parametrize(("data", "packet"), FIXTURES, ids=IDS)
def test_fixture_truncation_loop(data: bytes, packet: rtcp.RtcpPacket) -> None:
    for n in range(len(data)):
        expected = "RTCP header truncated" if n < 4 else "RTCP packet truncated"
        assert error(type(packet).parse, data[:n]) == expected, n
        if n:
            assert error(rtcp.parse_compound, data[:n]) == expected, n


def test_aiortc_sr_sdes_compound() -> None:
    sr, sdes = rtcp.parse_compound(SR_SDES)
    assert isinstance(sr, SenderReport) and isinstance(sdes, SourceDescription)
    assert sr.ssrc == A and sr.packet_count == 50 and sr.octet_count == 8000
    assert sr.lsr == 0x3C114B6F
    assert sdes.chunks == [(A, [(1, CNAME)])]
    assert sdes.cnames() == {A: CNAME.decode()}
    assert sr.serialize() + sdes.serialize() == SR_SDES
    assert list(rtcp.iter_compound(SR_SDES)) == [(200, 0, 0, 28), (202, 1, 28, 76)]


def test_compound_truncation_loop() -> None:
    for n in range(1, len(SR_SDES)):
        data = SR_SDES[:n]
        if n == 28:
            assert rtcp.parse_compound(data) == [SR]
            continue
        expected = "RTCP header truncated" if n < 4 or 28 < n < 32 else "RTCP packet truncated"
        assert error(rtcp.parse_compound, data) == expected, n
        assert error(lambda d: list(rtcp.iter_compound(d)), data) == expected, n
    assert error(rtcp.parse_compound, b"") == "RTCP compound packet is empty"
    assert list(rtcp.iter_compound(b"")) == []


def test_compound_skips_unknown_types_and_formats() -> None:
    app = bytes.fromhex("80cc0002" "1e5d2a9c" "6e616d65")
    xr = bytes.fromhex("80cf0004" "1e5d2a9c" "04000002" "e9a83c11" "4b6f2e00")
    sli = bytes.fromhex("82ce0003" "00000001" "1e5d2a9c" "00000000")
    tmmbr = bytes.fromhex("83cd0004" "00000001" "00000000" "1e5d2a9c" "0a1b2c3d")
    afb = bytes.fromhex("8fce0003" "00000001" "00000000" "41424344")
    data = RR_PKT + app + xr + sli + tmmbr + afb + PLI_PKT + SDES_PKT
    assert rtcp.parse_compound(data) == [RR, PLI, SDES]
    assert [(pt, fmt) for pt, fmt, _, _ in rtcp.iter_compound(data)] == [
        (201, 2), (204, 0), (207, 0), (206, 2), (205, 3), (206, 15), (206, 1), (202, 1)
    ]


def test_compound_is_validated_before_anything_is_parsed() -> None:
    # a bad second packet rejects the whole datagram
    assert error(rtcp.parse_compound, PLI_PKT + b"\x40\xc8\x00\x00") == "RTCP version must be 2"
    assert error(rtcp.parse_compound, PLI_PKT + b"\x00") == "RTCP header truncated"


def test_version_and_padding_errors() -> None:
    assert error(SenderReport.parse, b"\x40" + SR_PKT[1:]) == "RTCP version must be 2"
    padded_wrong = bytes((SR_PKT[0] | 0x20,)) + SR_PKT[1:]  # last byte 0x40 > 24-byte body
    assert error(SenderReport.parse, padded_wrong) == "RTCP padding invalid"
    assert error(rtcp.parse_compound, padded_wrong) == "RTCP padding invalid"
    zero = bytes.fromhex("a0ce0002" "00000001" "1e5d2a00")
    assert error(rtcp.parse_compound, zero) == "RTCP padding invalid"
    empty_padded = bytes.fromhex("a0c90000")
    assert error(rtcp.parse_compound, empty_padded) == "RTCP padding invalid"


def test_wrong_type_or_format() -> None:
    assert error(Nack.parse, SR_PKT) == "RTCP packet type 200, expected 205"
    assert error(Nack.parse, TWCC_PKT) == "RTCP feedback format 15, expected 1"
    assert error(Pli.parse, FIR_PKT) == "RTCP feedback format 4, expected 1"


@pytest.mark.parametrize(
    ("parse", "hexdata", "message"),
    [
        (SenderReport.parse, "81c80006" + "00" * 24, "RTCP SR report blocks exceed the packet"),
        (SenderReport.parse, "80c80001" "00000001", "RTCP SR shorter than its sender info"),
        (ReceiverReport.parse, "80c90000", "RTCP RR shorter than its SSRC"),
        (ReceiverReport.parse, "81c90001" "00000001", "RTCP RR report blocks exceed the packet"),
        (SourceDescription.parse, "81ca0002" "00000001" "01027878",
         "RTCP SDES chunk not terminated"),
        (SourceDescription.parse, "81ca0002" "00000001" "01057878", "RTCP SDES item truncated"),
        (SourceDescription.parse, "82ca0002" "00000001" "00000000", "RTCP SDES chunk truncated"),
        (Bye.parse, "82cb0001" "00000001", "RTCP BYE sources exceed the packet"),
        (Bye.parse, "81cb0002" "00000001" "05627965", "RTCP BYE reason truncated"),
        (Nack.parse, "81cd0001" "00000001", "RTCP NACK shorter than its SSRCs"),
        (Nack.parse, "a1cd0004" "00000001" "00000002" "fffe0007" "00000002",
         "RTCP NACK FCI length not a multiple of 4"),
        (Fir.parse, "84ce0003" "00000001" "00000000" "1e5d2a9c",
         "RTCP FIR FCI length not a multiple of 8"),
        (Remb.parse, "8fce0003" "00000001" "00000000" "52454d42", "RTCP REMB truncated"),
        (Remb.parse, "8fce0004" "00000001" "00000000" "41424344" "00000000",
         "RTCP AFB is not REMB"),
        (Remb.parse, "8fce0005" "00000001" "00000000" "52454d42" "020bd090" "1e5d2a9c",
         "RTCP REMB SSRC list truncated"),
        (TransportCC.parse, "8fcd0003" "00000001" "00000002" "00640004",
         "RTCP transport-cc header truncated"),
        (TransportCC.parse, "8fcd0005" "00000001" "00000002" "00640014" "00000101" "200f0000",
         "RTCP transport-cc chunks truncated"),
        (TransportCC.parse, "8fcd0005" "00000001" "00000002" "00640002" "00000101" "40020100",
         "RTCP transport-cc deltas truncated"),
        (TransportCC.parse, "8fcd0005" "00000001" "00000002" "00640002" "00000101" "60020100",
         "RTCP transport-cc reserved status symbol"),
        (TransportCC.parse, "8fcd0005" "00000001" "00000002" "00640002" "00000101" "f0000100",
         "RTCP transport-cc reserved status symbol"),
    ],
)
def test_content_errors(parse: Callable[[bytes], object], hexdata: str, message: str) -> None:
    data = bytes.fromhex(hexdata)
    assert error(parse, data) == message
    if message == "RTCP AFB is not REMB":
        assert rtcp.parse_compound(data) == []  # other AFB messages are skipped
    else:
        assert error(rtcp.parse_compound, data) == message


# --- individual packets ------------------------------------------------------------------------


def test_report_block_packets_lost_is_signed_and_saturates() -> None:
    rr = ReceiverReport.parse(RR_PKT)
    assert rr.reports[1].packets_lost == -2
    block = ReportBlock(A, packets_lost=-10_000_000).serialize()
    assert block[4:8] == bytes.fromhex("00800000")
    block = ReportBlock(A, packets_lost=10_000_000).serialize()
    assert block[4:8] == bytes.fromhex("007fffff")


def test_sr_and_rr_keep_profile_extensions() -> None:
    sr = SenderReport(1, 2, 3, 4, 5, [], b"\xaa\xbb\xcc\xdd")
    assert SenderReport.parse(sr.serialize()) == sr
    rr = ReceiverReport(1, [ReportBlock(2)], b"\x01\x02\x03\x04")
    assert ReceiverReport.parse(rr.serialize()) == rr
    with pytest.raises(ValueError, match=r"^RTCP SR extension must be a multiple of 4 bytes$"):
        SenderReport(1, 2, 3, 4, 5, [], b"x").serialize()
    with pytest.raises(ValueError, match=r"^RTCP RR report blocks: at most 31 allowed$"):
        ReceiverReport(1, [ReportBlock(i) for i in range(32)]).serialize()


def test_sdes_keeps_all_items_and_chunks() -> None:
    sdes = SourceDescription([
        SdesChunk(A, [(1, b"user@host"), (6, b"hubbub"), (8, b"\x03privval")]),
        SdesChunk(B, []),
        SdesChunk(3, [(2, b"")]),
    ])
    data = sdes.serialize()
    assert data[:4] == bytes.fromhex("83ca000d")
    assert data[40:48] == bytes.fromhex("5e0c2f9a00000000")  # an empty chunk: SSRC + null word
    assert SourceDescription.parse(data) == sdes
    assert sdes.cnames() == {A: "user@host"}
    chunk = SourceDescription.parse(data).chunks[0]
    assert isinstance(chunk, SdesChunk) and chunk.cname == "user@host"
    plain = SourceDescription([(7, [(1, b"c")])])  # plain tuples work as chunks
    assert plain.serialize() == bytes.fromhex("81ca0002" "00000007" "01016300")


def test_bye_reason_variants() -> None:
    assert Bye([A]).serialize() == bytes.fromhex("81cb0001" "1e5d2a9c")
    assert Bye([A], b"").serialize() == bytes.fromhex("81cb0002" "1e5d2a9c" "00000000")
    assert Bye([], b"done").serialize() == bytes.fromhex("80cb0002" "04646f6e" "65000000")
    for bye in (Bye([A]), Bye([A], b""), Bye([], b"done"), Bye([A, B], b"x" * 255)):
        assert Bye.parse(bye.serialize()) == bye


def test_nack_expands_pid_and_blp() -> None:
    data = bytes.fromhex("81cd0004" "00000001" "00000002" "00648001" "ffff0001")
    nack = Nack.parse(data)
    assert nack.lost == [65535, 0, 100, 101, 116]  # wrap-aware order, largest gap cut
    assert Nack(1, 2, [116, 100, 101, 100]).lost == [100, 101, 116]


def test_nack_packs_minimal_entries_across_wrap() -> None:
    assert NACK.fci() == [(65534, 0b111), (20, 0)]
    assert Nack(1, 2, list(range(65530, 65536)) + list(range(11))).fci() == [
        (65530, 0xFFFF)
    ]
    assert Nack(1, 2, [5, 22, 23]).fci() == [(5, 0), (22, 1)]
    assert Nack(1, 2, []).serialize() == bytes.fromhex("81cd0002" "00000001" "00000002")


def test_remb_bitrate_encoding() -> None:
    assert Remb.parse(REMB_PKT).bitrate == 1_000_000
    assert Remb(1, 1_000_003).serialize() == Remb(1, 1_000_000).serialize()
    assert Remb.parse(Remb(1, 0x3FFFF).serialize()).bitrate == 0x3FFFF
    huge = Remb(1, 0x3FFFF << 63)
    assert Remb.parse(huge.serialize()) == huge
    with pytest.raises(ValueError, match=r"^RTCP REMB bitrate too large$"):
        Remb(1, 1 << 82).serialize()


def test_fir_entries() -> None:
    fir = Fir(9, [(A, 255), (B, 0)])
    assert Fir.parse(fir.serialize()) == fir
    assert fir.serialize()[12:] == bytes.fromhex("1e5d2a9cff000000" "5e0c2f9a00000000")


# --- transport-cc ----------------------------------------------------------------------


def test_twcc_from_arrivals_exact_bytes() -> None:
    base_us = 3 * 64_000
    fb = TransportCC.from_arrivals(100, [base_us, None, base_us + 1000, base_us + 101_000], 7,
                                   sender_ssrc=1, media_ssrc=A)
    assert fb == TWCC
    assert fb.serialize() == TWCC_PKT
    assert fb.arrivals() == [base_us, None, base_us + 1000, base_us + 101_000]


def test_twcc_run_length_and_vector_chunks_with_signed_reference() -> None:
    statuses = [1] * 15 + [0, 0, 1, 0, 1]
    fb = TransportCC(1, 2, 0xFFFE, -1, 255, statuses, [1] * 17)
    data = fb.serialize()
    assert data == bytes.fromhex(
        "afcd000a" "00000001" "00000002" "fffe" "0014" "ffffff" "ff"
        "200f" "c110" + "01" * 17 + "000003"
    )
    assert TransportCC.parse(data) == fb


def test_twcc_one_bit_vector_and_draft_examples() -> None:
    fb = TransportCC(1, 2, 0, 0, 0, [1, 0] * 7, [0] * 7)
    assert fb.serialize()[20:22] == bytes.fromhex("aaaa")
    assert TransportCC.parse(fb.serialize()) == fb
    # draft §3.1.3 example: a run of 221 packets received with small deltas
    run = bytes.fromhex("8fcd003c" "00000001" "00000002" "000000dd" "00000000" "20dd") + bytes(222)
    parsed = TransportCC.parse(run)
    assert parsed.statuses == [1] * 221 and parsed.deltas == [0] * 221
    # draft §3.1.4 example: 1-bit status vector 0b1|0|00111110001110 0
    vec = bytes.fromhex("8fcd0007" "00000001" "00000002" "0000000e" "00000000" "9f1c") + bytes(10)
    assert TransportCC.parse(vec).statuses == [0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0]


def test_twcc_negative_and_large_deltas() -> None:
    arrivals: list[int | None] = [1_000_000, 900_000, None, 901_000, 9_000_000]
    fb = TransportCC.from_arrivals(7, arrivals, 1)
    assert fb.statuses == [1, 2, 0, 1, 2]
    assert fb.deltas == [160, -400, 4, 32396]  # reference 15 x 64 ms = 3840 ticks
    assert TransportCC.parse(fb.serialize()).arrivals() == arrivals
    with pytest.raises(ValueError, match=r"^transport-cc receive delta out of range$"):
        TransportCC.from_arrivals(7, [0, 9_000_000], 1)


def test_twcc_serialize_rejects_inconsistent_fields() -> None:
    with pytest.raises(ValueError, match=r"^transport-cc: one delta per received packet needed$"):
        TransportCC(1, 2, 0, 0, 0, [1, 1], [0]).serialize()
    with pytest.raises(ValueError, match=r"^transport-cc: delta does not fit its status$"):
        TransportCC(1, 2, 0, 0, 0, [1], [300]).serialize()
    with pytest.raises(ValueError, match=r"^transport-cc: invalid packet status$"):
        TransportCC(1, 2, 0, 0, 0, [3], [0]).serialize()


def test_ntp_now_tracks_wall_clock() -> None:
    sec, frac = rtcp.ntp_now()
    now = time.time() + 2_208_988_800
    assert abs((sec + frac / 2**32) - now) < 1.0
    assert 0 <= frac < 2**32


# --- fuzzing and round trips ---------------------------------------------------------------------

PARSERS: list[Callable[[bytes], object]] = [
    rtcp.parse_compound,
    lambda d: list(rtcp.iter_compound(d)),
    SenderReport.parse,
    ReceiverReport.parse,
    SourceDescription.parse,
    Bye.parse,
    Nack.parse,
    Pli.parse,
    Fir.parse,
    Remb.parse,
    TransportCC.parse,
]


def only_value_error(data: bytes) -> None:
    for parse in PARSERS:
        try:
            parse(data)
        except ValueError:
            pass


@settings(max_examples=300)
@given(st.binary(max_size=120))
def test_random_bytes_raise_only_value_error(data: bytes) -> None:
    only_value_error(data)


@st.composite
def framed(draw: st.DrawFn) -> bytes:
    """Packets with a plausible header and a length that fits, so parsing reaches the bodies."""
    out = b""
    for _ in range(draw(st.integers(1, 3))):
        body = draw(st.binary(max_size=60))
        body += b"\x00" * (-len(body) & 3)
        padded = draw(st.booleans())
        b0 = 0x80 | (0x20 if padded else 0) | draw(st.integers(0, 31))
        pt = draw(st.sampled_from([200, 201, 202, 203, 204, 205, 206, 207]))
        out += bytes((b0, pt)) + (len(body) // 4).to_bytes(2, "big") + body
    return out


@settings(max_examples=500)
@given(framed())
def test_framed_random_packets_raise_only_value_error(data: bytes) -> None:
    only_value_error(data)


u32 = st.integers(0, 0xFFFFFFFF)
blocks = st.lists(
    st.builds(ReportBlock, u32, st.integers(0, 255), st.integers(-0x800000, 0x7FFFFF),
              u32, u32, u32, u32),
    max_size=4,
)
words = st.binary(max_size=12).map(lambda b: b + b"\x00" * (-len(b) & 3))


@given(st.one_of(
    st.builds(SenderReport, u32, st.integers(0, 2**64 - 1), u32, u32, u32, blocks, words),
    st.builds(ReceiverReport, u32, blocks, words),
    st.builds(SourceDescription, st.lists(st.builds(SdesChunk, u32, st.lists(
        st.tuples(st.integers(1, 255), st.binary(max_size=20)), max_size=3)), max_size=3)),
    st.builds(Bye, st.lists(u32, max_size=4), st.none() | st.binary(max_size=20)),
    st.builds(Pli, u32, u32),
    st.builds(Fir, u32, st.lists(st.tuples(u32, st.integers(0, 255)), max_size=3), u32),
    st.builds(Remb, u32, st.integers(0, 0x3FFFF), st.lists(u32, max_size=4), u32),
))
def test_round_trip(packet: rtcp.RtcpPacket) -> None:
    data = packet.serialize()
    assert type(packet).parse(data) == packet
    assert rtcp.parse_compound(data + data) == [packet, packet]


def greedy_entries(offsets: list[int]) -> int:
    count, pid = 0, None
    for o in offsets:
        if pid is None or o - pid > 16:
            count, pid = count + 1, o
    return count


@given(st.integers(0, 0xFFFF), st.sets(st.integers(0, 3000), max_size=60))
def test_nack_round_trip_and_minimal_packing(base: int, offsets: set[int]) -> None:
    lost = [(base + o) & 0xFFFF for o in offsets]
    nack = Nack(1, 2, lost)
    assert nack.lost == [(base + o) & 0xFFFF for o in sorted(offsets)]
    assert Nack.parse(nack.serialize()) == nack
    assert len(nack.fci()) == greedy_entries(sorted(offsets))


@settings(max_examples=300)
@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 10_000_000_000),
    st.lists(st.none() | st.integers(-30_000, 600_000), max_size=120),
    st.integers(0, 255),
)
def test_twcc_round_trip_at_250us(
    base_seq: int, start: int, steps: list[int | None], fb_count: int
) -> None:
    arrivals: list[int | None] = []
    t = start
    for step in steps:
        if step is None:
            arrivals.append(None)
        else:
            t = max(0, t + step)
            arrivals.append(t)
    fb = TransportCC.from_arrivals(base_seq, arrivals, fb_count, sender_ssrc=5, media_ssrc=6)
    data = fb.serialize()
    parsed = TransportCC.parse(data)
    assert parsed == fb
    assert parsed.serialize() == data
    assert parsed.arrivals() == [None if a is None else a // 250 * 250 for a in arrivals]
    assert rtcp.parse_compound(data) == [fb]
