"""The RTCP the sfu sends and reads, on top of `hubbub.media.rtcp` (kept in one place)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from hubbub.media import rtcp
from hubbub.sfu.receive_stats import ReportValues

# RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1) and feedback message types.
PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_RTPFB = 205
PT_PSFB = 206
FMT_NACK = 1  # RFC 4585 §6.2.1
FMT_PLI = 1  # RFC 4585 §6.3.1
FMT_FIR = 4  # RFC 5104 §4.3.1
FMT_TWCC = 15  # draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1 (RTPFB)
FMT_AFB = 15  # RFC 4585 §6.4 application layer feedback: REMB (PSFB)


class NackEvent(NamedTuple):
    media_ssrc: int
    lost: list[int]


class KeyframeEvent(NamedTuple):
    media_ssrc: int


class BlockEvent(NamedTuple):
    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    jitter: int
    lsr: int
    dlsr: int


class TransportFeedbackEvent(NamedTuple):
    packet: bytes  # one transport-cc packet, parsed only by a viewer that uses it


class RembEvent(NamedTuple):
    bitrate: int  # bit/s the viewer estimates it can receive (draft-alvestrand-rmcat-remb)


Feedback = NackEvent | KeyframeEvent | BlockEvent | TransportFeedbackEvent | RembEvent


def pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """Picture Loss Indication (RFC 4585 §6.3.1)."""
    return rtcp.Pli(sender_ssrc=sender_ssrc, media_ssrc=media_ssrc).serialize()


def nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    """RFC 4585 §6.2.1 generic NACK asking the publisher to resend `lost`."""
    return rtcp.Nack(sender_ssrc, media_ssrc, lost).serialize()


# Built with precompiled structs, byte for byte what `rtcp.SenderReport(..., reports=[])` and
# `rtcp.SourceDescription` serialize (tests/sfu/test_rtcp_io.py proves it): once a second per
# DownTrack for every viewer, the dataclass round trip was most of the server's RTCP cost.
# SR with no report blocks: V=2, RC=0, PT=200, length 6 words, then the sender info (§6.4.1).
_SR = struct.Struct("!BBHIQIII")
SR_SIZE = _SR.size  # 28
_SDES_HEADER = struct.Struct("!BBH")  # V=2 | SC, PT=202, length in words minus one (§6.5)
_U32 = struct.Struct("!I")
_MAX_CHUNKS = 31  # the 5-bit source count of an SDES header
# An aggregated compound stays at most this long, so with SRTCP's index and tag (RFC 3711 §3.4)
# and the IP/UDP headers it fits the 1280-byte IPv6 minimum MTU and is never fragmented.
MAX_COMPOUND = 1200

_CNAME_ITEMS: dict[str, bytes] = {}


def _cname_items(cname: str) -> bytes:
    """The item list of a CNAME-only chunk: CNAME item, null terminator, zero padding so that
    the chunk (with its 4-byte SSRC) ends on a word boundary (RFC 3550 §6.5)."""
    items = _CNAME_ITEMS.get(cname)
    if items is None:
        value = cname.encode()
        if len(value) > 255:
            raise ValueError("RTCP SDES item type or length out of range")
        items = bytes((rtcp.SDES_CNAME, len(value))) + value
        items += b"\x00" * (4 - (len(items) & 3))  # at least one null octet ends the list
        if len(_CNAME_ITEMS) > 64:
            _CNAME_ITEMS.clear()
        _CNAME_ITEMS[cname] = items
    return items


def sr_packet(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int) -> bytes:
    """One SR without report blocks (RFC 3550 §6.4.1); counters wrap modulo 2^32."""
    return _SR.pack(0x80, PT_SR, 6, ssrc, ntp & 0xFFFFFFFFFFFFFFFF, rtp_ts & 0xFFFFFFFF,
                    packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)


def cname_chunk(ssrc: int, cname: str) -> bytes:
    """One SDES chunk: `ssrc` and its CNAME (RFC 3550 §6.5.1), word aligned."""
    return _U32.pack(ssrc) + _cname_items(cname)


def sdes(chunks: Sequence[bytes]) -> bytes:
    """An SDES packet of 1..31 chunks made by `cname_chunk` (RFC 3550 §6.5)."""
    if not 0 < len(chunks) <= _MAX_CHUNKS:
        raise ValueError("RTCP SDES chunks: 1 to 31 allowed")
    body = b"".join(chunks)
    return _SDES_HEADER.pack(0x80 | len(chunks), PT_SDES, len(body) >> 2) + body


def sender_report(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int,
                  cname: str) -> bytes:
    """SR without report blocks + SDES CNAME (RFC 3550 §6.4.1, §6.5.1; §6.1 compound rules)."""
    return sr_packet(ssrc, ntp, rtp_ts, packets, octets) + sdes((cname_chunk(ssrc, cname),))


def sender_report_compounds(reports: Sequence[bytes], chunks: Sequence[bytes],
                            limit: int = MAX_COMPOUND) -> list[bytes]:
    """Aggregate the SRs of several SSRCs of one endpoint (RFC 8108 §5.3, RFC 8861) into as
    few compound packets as fit in `limit` bytes each: SR, SR, ..., then one SDES with the
    CNAME chunk of each of those SRs, so every compound is valid on its own (RFC 3550 §6.1:
    it starts with a report and carries the CNAME of every SSRC it reports on).

    `reports[i]` is an SR packet (`sr_packet`) and `chunks[i]` the `cname_chunk` of its SSRC.
    A single SR that cannot fit the limit still goes out alone.
    """
    n = len(reports)
    if n != len(chunks):
        raise ValueError("sender reports and SDES chunks must pair up")
    if n <= _MAX_CHUNKS and (_SDES_HEADER.size + sum(map(len, reports))
                             + sum(map(len, chunks))) <= limit:
        return [b"".join(reports) + sdes(chunks)] if n else []  # the usual case: one packet
    out: list[bytes] = []
    start = 0
    size = _SDES_HEADER.size
    for i in range(n):
        add = len(reports[i]) + len(chunks[i])
        if i > start and (size + add > limit or i - start == _MAX_CHUNKS):
            out.append(b"".join(reports[start:i]) + sdes(chunks[start:i]))
            start = i
            size = _SDES_HEADER.size
        size += add
    if start < n:
        out.append(b"".join(reports[start:]) + sdes(chunks[start:]))
    return out


def receiver_report(sender_ssrc: int, media_ssrc: int, values: ReportValues, lsr: int,
                    dlsr: int, cname: str) -> bytes:
    """RR with one report block about `media_ssrc` (RFC 3550 §6.4.2) + SDES CNAME (§6.1)."""
    block = rtcp.ReportBlock(
        ssrc=media_ssrc,
        fraction_lost=values.fraction_lost,
        packets_lost=values.cumulative_lost,
        highest_sequence=values.highest_seq,
        jitter=values.jitter,
        lsr=lsr,
        dlsr=dlsr,
    )
    sdes = rtcp.SourceDescription(chunks=[(sender_ssrc, [(1, cname.encode())])])
    return rtcp.ReceiverReport(ssrc=sender_ssrc, reports=[block]).serialize() + sdes.serialize()


def sender_reports(data: bytes) -> list[tuple[int, int, int]]:
    """(ssrc, 64-bit NTP, RTP ts) of every SR in a compound; ValueError if malformed."""
    out: list[tuple[int, int, int]] = []
    for pt, _fmt, start, end in rtcp.iter_compound(data):
        if pt == PT_SR:
            sr = rtcp.SenderReport.parse(data[start:end])
            out.append((sr.ssrc, sr.ntp_timestamp, sr.rtp_timestamp))
    return out


def _blocks(reports: list[rtcp.ReportBlock]) -> list[Feedback]:
    return [
        BlockEvent(b.ssrc, b.fraction_lost, b.packets_lost, b.jitter, b.lsr, b.dlsr)
        for b in reports
    ]


def read_feedback(data: bytes) -> tuple[list[Feedback], int]:
    """Feedback a viewer sent (NACK, PLI, FIR, report blocks, transport-cc, REMB) and the
    count of packets in the compound that failed to parse; a broken compound framing raises
    ValueError."""
    events: list[Feedback] = []
    bad = 0
    for pt, fmt, start, end in rtcp.iter_compound(data):
        try:
            if pt == PT_RTPFB and fmt == FMT_NACK:
                nack = rtcp.Nack.parse(data[start:end])
                events.append(NackEvent(nack.media_ssrc, nack.lost))
            elif pt == PT_PSFB and fmt == FMT_PLI:
                events.append(KeyframeEvent(rtcp.Pli.parse(data[start:end]).media_ssrc))
            elif pt == PT_PSFB and fmt == FMT_FIR:
                fir = rtcp.Fir.parse(data[start:end])
                events.extend(KeyframeEvent(ssrc) for ssrc, _seq in fir.entries)
            elif pt == PT_RR:
                events.extend(_blocks(rtcp.ReceiverReport.parse(data[start:end]).reports))
            elif pt == PT_SR:
                events.extend(_blocks(rtcp.SenderReport.parse(data[start:end]).reports))
            elif pt == PT_RTPFB and fmt == FMT_TWCC:
                events.append(TransportFeedbackEvent(data[start:end]))
            elif pt == PT_PSFB and fmt == FMT_AFB and data[start + 12:start + 16] == b"REMB":
                events.append(RembEvent(rtcp.Remb.parse(data[start:end]).bitrate))
        except ValueError:
            bad += 1
    return events, bad
