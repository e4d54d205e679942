"""sfu.rtcp_io's struct-built SR/SDES bytes against media.rtcp's dataclasses, and the aggregated
compound packets read back by media.rtcp's parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.media import rtcp
from hubbub.sfu import rtcp_io

U32 = st.integers(0, 0xFFFFFFFF)
U64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
CNAMES = st.text(max_size=120).filter(lambda s: len(s.encode()) <= 255)


def dataclass_sr(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int) -> bytes:
    return rtcp.SenderReport(ssrc=ssrc, ntp_timestamp=ntp, rtp_timestamp=rtp_ts,
                             packet_count=packets & 0xFFFFFFFF,
                             octet_count=octets & 0xFFFFFFFF, reports=[]).serialize()


def dataclass_sdes(ssrcs: list[int], cname: str) -> bytes:
    chunks: list[tuple[int, list[tuple[int, bytes]]]] = [
        (ssrc, [(1, cname.encode())]) for ssrc in ssrcs
    ]
    return rtcp.SourceDescription(chunks=chunks).serialize()


@given(U32, U64, U32, st.integers(0, 1 << 40), st.integers(0, 1 << 40), CNAMES)
def test_sender_report_is_byte_identical_to_the_dataclasses(
    ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int, cname: str
) -> None:
    expected = dataclass_sr(ssrc, ntp, rtp_ts, packets, octets) + dataclass_sdes([ssrc], cname)
    assert rtcp_io.sender_report(ssrc, ntp, rtp_ts, packets, octets, cname) == expected
    assert rtcp_io.sr_packet(ssrc, ntp, rtp_ts, packets, octets) == expected[:rtcp_io.SR_SIZE]


@given(st.lists(U32, min_size=1, max_size=31), CNAMES)
def test_sdes_with_many_chunks_is_byte_identical_to_the_dataclass(
    ssrcs: list[int], cname: str
) -> None:
    built = rtcp_io.sdes([rtcp_io.cname_chunk(ssrc, cname) for ssrc in ssrcs])
    assert built == dataclass_sdes(ssrcs, cname)
    assert rtcp.SourceDescription.parse(built).cnames() == {s: cname for s in ssrcs}


def test_sdes_chunk_count_and_cname_length_are_checked() -> None:
    chunk = rtcp_io.cname_chunk(1, "x")
    with pytest.raises(ValueError, match=r"^RTCP SDES chunks: 1 to 31 allowed$"):
        rtcp_io.sdes([])
    with pytest.raises(ValueError, match=r"^RTCP SDES chunks: 1 to 31 allowed$"):
        rtcp_io.sdes([chunk] * 32)
    with pytest.raises(ValueError, match=r"^RTCP SDES item type or length out of range$"):
        rtcp_io.cname_chunk(1, "é" * 128)  # 256 bytes in UTF-8
    assert len(rtcp_io.cname_chunk(1, "y" * 255)) == 4 + 260  # 2 + 255 + null, word aligned


def test_compound_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^sender reports and SDES chunks must pair up$"):
        rtcp_io.sender_report_compounds([rtcp_io.sr_packet(1, 2, 3, 4, 5)], [])
    assert rtcp_io.sender_report_compounds([], []) == []


Report = tuple[int, int, int, int, int]
REPORTS = st.lists(st.tuples(U32, U64, U32, U32, U32), min_size=1, max_size=80,
                   unique_by=lambda r: r[0])


@given(REPORTS, st.sampled_from(["hubbub", "", "c" * 255]),
       st.sampled_from([rtcp_io.MAX_COMPOUND, 300, 100, 1]))
def test_aggregated_compounds_parse_back_to_the_right_ssrcs_and_values(
    reports: list[Report], cname: str, limit: int
) -> None:
    srs = [rtcp_io.sr_packet(*r) for r in reports]
    chunks = [rtcp_io.cname_chunk(r[0], cname) for r in reports]
    compounds = rtcp_io.sender_report_compounds(srs, chunks, limit)
    seen: list[Report] = []
    for compound in compounds:
        packets = rtcp.parse_compound(compound)
        # RFC 3550 §6.1: each compound starts with a report and carries the CNAME of exactly
        # the SSRCs it reports on, in one SDES at the end.
        *sender_reports, sdes = packets
        assert sender_reports and all(isinstance(p, rtcp.SenderReport) for p in sender_reports)
        assert isinstance(sdes, rtcp.SourceDescription)
        ssrcs = [p.ssrc for p in sender_reports if isinstance(p, rtcp.SenderReport)]
        assert [c[0] for c in sdes.chunks] == ssrcs
        assert set(sdes.cnames().values()) == {cname}
        assert len(ssrcs) <= 31
        assert len(compound) <= limit or len(ssrcs) == 1
        seen.extend((p.ssrc, p.ntp_timestamp, p.rtp_timestamp, p.packet_count, p.octet_count)
                    for p in sender_reports if isinstance(p, rtcp.SenderReport))
    assert seen == reports  # all of them, once each, in order
    # Greedy: the first SR of the next compound would not have fitted in the previous one.
    for compound in compounds[:-1]:
        sdes = rtcp.parse_compound(compound)[-1]
        assert isinstance(sdes, rtcp.SourceDescription)
        grown = len(compound) + rtcp_io.SR_SIZE + len(chunks[0])  # chunks: all one length
        assert grown > limit or len(sdes.chunks) == 31

def test_four_reports_make_one_compound_of_four_srs_and_one_sdes() -> None:
    srs = [rtcp_io.sr_packet(0xA0 + i, 1 << 40, 1000 * i, i, 10 * i) for i in range(4)]
    chunks = [rtcp_io.cname_chunk(0xA0 + i, "hubbub") for i in range(4)]
    (compound,) = rtcp_io.sender_report_compounds(srs, chunks)
    assert compound == b"".join(srs) + dataclass_sdes([0xA0 + i for i in range(4)], "hubbub")
    assert len(compound) == 4 * 28 + 4 + 4 * 16


def test_a_full_mtu_of_reports_splits_at_27_per_compound() -> None:
    # 28-byte SR + 16-byte "hubbub" chunk = 44 bytes per SSRC; (1200 - 4) // 44 = 27.
    srs = [rtcp_io.sr_packet(i, 0, 0, 0, 0) for i in range(60)]
    chunks = [rtcp_io.cname_chunk(i, "hubbub") for i in range(60)]
    compounds = rtcp_io.sender_report_compounds(srs, chunks)
    assert [len(c) for c in compounds] == [4 + 27 * 44, 4 + 27 * 44, 4 + 6 * 44]
