"""RTCP common header, packet type constants and shared helpers (RFC 3550 §6.4.1, RFC 4585 §6.1)."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator

# Packet types (RFC 3550 §12.1, RFC 4585 §6.1, RFC 3611).
SR, RR, SDES, BYE, APP, RTPFB, PSFB, XR = 200, 201, 202, 203, 204, 205, 206, 207
# Feedback message types (FMT): RFC 4585 §6.2/§6.3, RFC 5104 §4.3.1, REMB and transport-cc.
FMT_NACK, FMT_TWCC = 1, 15
FMT_PLI, FMT_FIR, FMT_AFB = 1, 4, 15
SDES_CNAME = 1

_HEADER = struct.Struct("!BBH")  # V/P/count, PT, length in 32-bit words minus one
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_TWO_U32 = struct.Struct("!II")

_NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01

E_HEADER = "RTCP header truncated"
E_VERSION = "RTCP version must be 2"
E_TRUNCATED = "RTCP packet truncated"
E_PADDING = "RTCP padding invalid"
E_EMPTY = "RTCP compound packet is empty"


def ntp_now() -> tuple[int, int]:
    """Wall clock as an NTP timestamp (seconds since 1900 mod 2^32, 32-bit fraction)."""
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    return (sec + _NTP_EPOCH_OFFSET) & 0xFFFFFFFF, (ns << 32) // 1_000_000_000


def iter_compound(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """Yield (pt, fmt_or_count, start, end) for each packet of a compound; data[start:end] is the
    whole packet, header and padding included. Raises ValueError on the first bad header."""
    pos = 0
    n = len(data)
    while pos < n:
        if pos + 4 > n:
            raise ValueError(E_HEADER)
        b0, pt, length = _HEADER.unpack_from(data, pos)
        if b0 & 0xC0 != 0x80:
            raise ValueError(E_VERSION)
        end = pos + 4 + (length << 2)
        if end > n:
            raise ValueError(E_TRUNCATED)
        if b0 & 0x20:
            # RFC 3550 §6.4.1: the last octet counts the padding, itself included.
            count = data[end - 1] if end > pos + 4 else 0
            if count == 0 or count > end - pos - 4:
                raise ValueError(E_PADDING)
        yield pt, b0 & 0x1F, pos, end
        pos = end


def _open(data: bytes, pt: int) -> tuple[int, int]:
    """Check the common header of the packet at data[0:]; return (count or FMT, end of the
    packet body with padding removed)."""
    if len(data) < 4:
        raise ValueError(E_HEADER)
    b0, got, length = _HEADER.unpack_from(data)
    if b0 & 0xC0 != 0x80:
        raise ValueError(E_VERSION)
    if got != pt:
        raise ValueError(f"RTCP packet type {got}, expected {pt}")
    end = 4 + (length << 2)
    if end > len(data):
        raise ValueError(E_TRUNCATED)
    if b0 & 0x20:
        count = data[end - 1] if end > 4 else 0
        if count == 0 or count > end - 4:
            raise ValueError(E_PADDING)
        end -= count
    return b0 & 0x1F, end


def _pack(pt: int, count: int, body: bytes) -> bytes:
    """Common header + body; a body that is not word aligned gets RFC 3550 §6.4.1 padding."""
    pad = -len(body) & 3
    if pad:
        body += b"\x00" * (pad - 1) + bytes((pad,))
    return _HEADER.pack(0x80 | (0x20 if pad else 0) | count, pt, len(body) >> 2) + body


def _check_count(count: int, what: str) -> None:
    if count > 31:
        raise ValueError(f"RTCP {what}: at most 31 allowed")



def _open_fb(data: bytes, pt: int, fmt: int, name: str) -> int:
    """Check a feedback packet header (RFC 4585 §6.1); return the end of its FCI."""
    got, end = _open(data, pt)
    if got != fmt:
        raise ValueError(f"RTCP feedback format {got}, expected {fmt}")
    if end < 12:
        raise ValueError(f"RTCP {name} shorter than its SSRCs")
    return end
