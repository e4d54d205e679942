"""Parse a whole compound RTCP packet into the known packet classes."""

from __future__ import annotations

from typing import TypeAlias

from hubbub.media.rtcp.common import (
    BYE,
    E_EMPTY,
    FMT_AFB,
    FMT_FIR,
    FMT_NACK,
    FMT_PLI,
    FMT_TWCC,
    PSFB,
    RR,
    RTPFB,
    SDES,
    SR,
    iter_compound,
)
from hubbub.media.rtcp.feedback import Fir, Nack, Pli, Remb
from hubbub.media.rtcp.reports import ReceiverReport, SenderReport
from hubbub.media.rtcp.sdes import Bye, SourceDescription
from hubbub.media.rtcp.twcc import TransportCC

# --- compound -------------------------------------------------------------------------------------

RtcpPacket: TypeAlias = (
    SenderReport | ReceiverReport | SourceDescription | Bye | Nack | Pli | Fir | Remb | TransportCC
)


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Every known packet of a compound, in order. The whole compound is validated first
    (version, lengths, padding); unknown types and feedback formats are skipped."""
    if not data:
        raise ValueError(E_EMPTY)
    spans = list(iter_compound(data))
    out: list[RtcpPacket] = []
    for pt, fmt, start, end in spans:
        pkt = data[start:end]
        if pt == SR:
            out.append(SenderReport.parse(pkt))
        elif pt == RR:
            out.append(ReceiverReport.parse(pkt))
        elif pt == SDES:
            out.append(SourceDescription.parse(pkt))
        elif pt == BYE:
            out.append(Bye.parse(pkt))
        elif pt == RTPFB:
            if fmt == FMT_NACK:
                out.append(Nack.parse(pkt))
            elif fmt == FMT_TWCC:
                out.append(TransportCC.parse(pkt))
        elif pt == PSFB:
            if fmt == FMT_PLI:
                out.append(Pli.parse(pkt))
            elif fmt == FMT_FIR:
                out.append(Fir.parse(pkt))
            elif fmt == FMT_AFB and pkt[12:16] == b"REMB":
                out.append(Remb.parse(pkt))
    return out
