"""The RTCP the sfu sends and reads, on top of `hubbub.media.rtcp` (kept in one place)."""

from __future__ import annotations

from typing import NamedTuple

from hubbub.media import rtcp
from hubbub.sfu.receive_stats import ReportValues

# RTCP packet types (RFC 3550 §12.1, RFC 4585 §6.1) and feedback message types.
PT_SR = 200
PT_RR = 201
PT_RTPFB = 205
PT_PSFB = 206
FMT_NACK = 1  # RFC 4585 §6.2.1
FMT_PLI = 1  # RFC 4585 §6.3.1
FMT_FIR = 4  # RFC 5104 §4.3.1


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


Feedback = NackEvent | KeyframeEvent | BlockEvent


def pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """Picture Loss Indication (RFC 4585 §6.3.1)."""
    return rtcp.Pli(sender_ssrc=sender_ssrc, media_ssrc=media_ssrc).serialize()


def nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    """RFC 4585 §6.2.1 generic NACK asking the publisher to resend `lost`."""
    return rtcp.Nack(sender_ssrc, media_ssrc, lost).serialize()


def sender_report(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int,
                  cname: str) -> bytes:
    """SR without report blocks + SDES CNAME (RFC 3550 §6.4.1, §6.5.1; §6.1 compound rules)."""
    sr = rtcp.SenderReport(
        ssrc=ssrc,
        ntp_timestamp=ntp & 0xFFFFFFFFFFFFFFFF,
        rtp_timestamp=rtp_ts,
        packet_count=packets & 0xFFFFFFFF,
        octet_count=octets & 0xFFFFFFFF,
        reports=[],
    )
    sdes = rtcp.SourceDescription(chunks=[(ssrc, [(1, cname.encode())])])
    return sr.serialize() + sdes.serialize()


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
    """Feedback a viewer sent (NACK, PLI, FIR, report blocks) and the count of packets in the
    compound that failed to parse; a broken compound framing raises ValueError."""
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
        except ValueError:
            bad += 1
    return events, bad
