"""RFC 3550 §6.4 sender and receiver reports."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from hubbub.media.rtcp.common import _U32, RR, SR, _check_count, _open, _pack

_SENDER_INFO = struct.Struct("!IQIII")  # SSRC, 64-bit NTP, RTP ts, packets, octets
_BLOCK = struct.Struct("!IIIIII")


# --- RFC 3550 §6.4: sender and receiver reports -------------------------------------------------


@dataclass(slots=True)
class ReportBlock:
    """RFC 3550 §6.4.1 reception report block (24 bytes)."""

    ssrc: int
    fraction_lost: int = 0  # 8-bit fixed point
    packets_lost: int = 0  # cumulative, signed 24-bit
    highest_sequence: int = 0  # extended highest sequence number received
    jitter: int = 0
    lsr: int = 0  # middle 32 bits of the last SR's NTP timestamp
    dlsr: int = 0  # delay since that SR, 1/65536 s

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> ReportBlock:
        if len(data) - offset < 24:
            raise ValueError("RTCP report block truncated")
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        # RFC 3550 A.3: the cumulative count saturates at the signed 24-bit limits.
        lost = max(-0x800000, min(0x7FFFFF, self.packets_lost)) & 0xFFFFFF
        return _BLOCK.pack(self.ssrc, ((self.fraction_lost & 0xFF) << 24) | lost,
                           self.highest_sequence, self.jitter, self.lsr, self.dlsr)


def _parse_blocks(data: bytes, start: int, count: int, end: int, what: str) -> list[ReportBlock]:
    if start + 24 * count > end:
        raise ValueError(f"RTCP {what} report blocks exceed the packet")
    return [ReportBlock.parse(data, start + 24 * k) for k in range(count)]


def _check_extension(extension: bytes, what: str) -> None:
    if len(extension) & 3:
        raise ValueError(f"RTCP {what} extension must be a multiple of 4 bytes")


@dataclass(slots=True)
class SenderReport:
    """RFC 3550 §6.4.1 SR; `extension` holds profile-specific bytes after the report blocks."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP: seconds since 1900 << 32 | fraction
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    @property
    def lsr(self) -> int:
        """The middle 32 bits of the NTP timestamp, as echoed in report blocks (LSR)."""
        return (self.ntp_timestamp >> 16) & 0xFFFFFFFF

    @classmethod
    def parse(cls, data: bytes) -> SenderReport:
        count, end = _open(data, SR)
        if end < 28:
            raise ValueError("RTCP SR shorter than its sender info")
        ssrc, ntp, ts, packets, octets = _SENDER_INFO.unpack_from(data, 4)
        reports = _parse_blocks(data, 28, count, end, "SR")
        return cls(ssrc, ntp, ts, packets, octets, reports, data[28 + 24 * count : end])

    def serialize(self) -> bytes:
        _check_count(len(self.reports), "SR report blocks")
        _check_extension(self.extension, "SR")
        info = _SENDER_INFO.pack(self.ssrc, self.ntp_timestamp, self.rtp_timestamp,
                                 self.packet_count, self.octet_count)
        blocks = b"".join(r.serialize() for r in self.reports)
        return _pack(SR, len(self.reports), info + blocks + self.extension)


@dataclass(slots=True)
class ReceiverReport:
    """RFC 3550 §6.4.2 RR."""

    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)
    extension: bytes = b""

    @classmethod
    def parse(cls, data: bytes) -> ReceiverReport:
        count, end = _open(data, RR)
        if end < 8:
            raise ValueError("RTCP RR shorter than its SSRC")
        reports = _parse_blocks(data, 8, count, end, "RR")
        return cls(_U32.unpack_from(data, 4)[0], reports, data[8 + 24 * count : end])

    def serialize(self) -> bytes:
        _check_count(len(self.reports), "RR report blocks")
        _check_extension(self.extension, "RR")
        blocks = b"".join(r.serialize() for r in self.reports)
        return _pack(RR, len(self.reports), _U32.pack(self.ssrc) + blocks + self.extension)
