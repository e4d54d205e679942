"""RTCP packets: parse and build (RFC 3550 §6, RFC 4585 §6, RFC 5104 §4.3.1, REMB, transport-cc).

Each packet class is a dataclass with `parse(data)` (one packet at the start of `data`; trailing
bytes are ignored) and `serialize()`. Malformed input raises `ValueError` with a fixed message.
`iter_compound` walks a compound packet without building objects (hot path: NACK/PLI from
viewers); `parse_compound` validates the whole compound first, then parses the known packets and
skips the others (APP, XR, unknown feedback formats).
"""

from __future__ import annotations

from hubbub.media.rtcp.common import APP as APP
from hubbub.media.rtcp.common import BYE as BYE
from hubbub.media.rtcp.common import E_EMPTY as E_EMPTY
from hubbub.media.rtcp.common import E_HEADER as E_HEADER
from hubbub.media.rtcp.common import E_PADDING as E_PADDING
from hubbub.media.rtcp.common import E_TRUNCATED as E_TRUNCATED
from hubbub.media.rtcp.common import E_VERSION as E_VERSION
from hubbub.media.rtcp.common import FMT_AFB as FMT_AFB
from hubbub.media.rtcp.common import FMT_FIR as FMT_FIR
from hubbub.media.rtcp.common import FMT_NACK as FMT_NACK
from hubbub.media.rtcp.common import FMT_PLI as FMT_PLI
from hubbub.media.rtcp.common import FMT_TWCC as FMT_TWCC
from hubbub.media.rtcp.common import PSFB as PSFB
from hubbub.media.rtcp.common import RR as RR
from hubbub.media.rtcp.common import RTPFB as RTPFB
from hubbub.media.rtcp.common import SDES as SDES
from hubbub.media.rtcp.common import SDES_CNAME as SDES_CNAME
from hubbub.media.rtcp.common import SR as SR
from hubbub.media.rtcp.common import XR as XR
from hubbub.media.rtcp.common import iter_compound as iter_compound
from hubbub.media.rtcp.common import ntp_now as ntp_now
from hubbub.media.rtcp.compound import RtcpPacket as RtcpPacket
from hubbub.media.rtcp.compound import parse_compound as parse_compound
from hubbub.media.rtcp.feedback import Fir as Fir
from hubbub.media.rtcp.feedback import Nack as Nack
from hubbub.media.rtcp.feedback import Pli as Pli
from hubbub.media.rtcp.feedback import Remb as Remb
from hubbub.media.rtcp.reports import ReceiverReport as ReceiverReport
from hubbub.media.rtcp.reports import ReportBlock as ReportBlock
from hubbub.media.rtcp.reports import SenderReport as SenderReport
from hubbub.media.rtcp.sdes import Bye as Bye
from hubbub.media.rtcp.sdes import SdesChunk as SdesChunk
from hubbub.media.rtcp.sdes import SourceDescription as SourceDescription
from hubbub.media.rtcp.twcc import LARGE_DELTA as LARGE_DELTA
from hubbub.media.rtcp.twcc import NOT_RECEIVED as NOT_RECEIVED
from hubbub.media.rtcp.twcc import SMALL_DELTA as SMALL_DELTA
from hubbub.media.rtcp.twcc import TransportCC as TransportCC

__all__ = [
    "APP",
    "BYE",
    "PSFB",
    "RR",
    "RTPFB",
    "SDES",
    "SR",
    "XR",
    "Bye",
    "Fir",
    "Nack",
    "Pli",
    "ReceiverReport",
    "Remb",
    "ReportBlock",
    "RtcpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "TransportCC",
    "iter_compound",
    "ntp_now",
    "parse_compound",
]
