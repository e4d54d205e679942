"""RFC 4585 feedback: generic NACK, PLI; RFC 5104 FIR; REMB."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from hubbub.media.rtcp.common import (
    _TWO_U32,
    _U32,
    FMT_AFB,
    FMT_FIR,
    FMT_NACK,
    FMT_PLI,
    PSFB,
    RTPFB,
    _open_fb,
    _pack,
)

_FIR_ENTRY = struct.Struct("!IB3x")
_NACK_FCI = struct.Struct("!HH")  # PID, BLP


# --- RFC 4585 feedback ----------------------------------------------------------------------------

def _seq_sorted(seqs: Iterable[int]) -> list[int]:
    """Unique 16-bit sequence numbers in wrap-aware order: ascending from the element after the
    largest circular gap, so [65535, 0, 1] stays in that order."""
    s = sorted({q & 0xFFFF for q in seqs})
    if len(s) < 2:
        return s
    best = s[0] + 0x10000 - s[-1]  # the gap across the wrap keeps plain ascending order
    cut = 0
    for k in range(1, len(s)):
        gap = s[k] - s[k - 1]
        if gap > best:
            best, cut = gap, k
    return s[cut:] + s[:cut]


@dataclass(slots=True)
class Nack:
    """RFC 4585 §6.2.1 generic NACK; `lost` is kept unique and in wrap-aware order."""

    sender_ssrc: int
    media_ssrc: int
    lost: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lost = _seq_sorted(self.lost)

    @classmethod
    def parse(cls, data: bytes) -> Nack:
        end = _open_fb(data, RTPFB, FMT_NACK, "NACK")
        if (end - 12) & 3:
            raise ValueError("RTCP NACK FCI length not a multiple of 4")
        sender, media = _TWO_U32.unpack_from(data, 4)
        lost = []
        for pos in range(12, end, 4):
            pid, blp = _NACK_FCI.unpack_from(data, pos)
            lost.append(pid)
            for bit in range(16):
                if blp >> bit & 1:
                    lost.append((pid + bit + 1) & 0xFFFF)
        return cls(sender, media, lost)

    def fci(self) -> list[tuple[int, int]]:
        """(PID, BLP) entries: greedy over the wrap-aware order, the fewest entries needed."""
        entries: list[tuple[int, int]] = []
        pid = blp = -1
        for seq in self.lost:
            d = (seq - pid) & 0xFFFF
            if pid >= 0 and 1 <= d <= 16:
                blp |= 1 << (d - 1)
            else:
                if pid >= 0:
                    entries.append((pid, blp))
                pid, blp = seq, 0
        if pid >= 0:
            entries.append((pid, blp))
        return entries

    def serialize(self) -> bytes:
        fci = b"".join(_NACK_FCI.pack(pid, blp) for pid, blp in self.fci())
        return _pack(RTPFB, FMT_NACK, _TWO_U32.pack(self.sender_ssrc, self.media_ssrc) + fci)


@dataclass(slots=True)
class Pli:
    """RFC 4585 §6.3.1 Picture Loss Indication (no FCI)."""

    sender_ssrc: int
    media_ssrc: int

    @classmethod
    def parse(cls, data: bytes) -> Pli:
        _open_fb(data, PSFB, FMT_PLI, "PLI")
        sender, media = _TWO_U32.unpack_from(data, 4)
        return cls(sender, media)

    def serialize(self) -> bytes:
        return _pack(PSFB, FMT_PLI, _TWO_U32.pack(self.sender_ssrc, self.media_ssrc))


@dataclass(slots=True)
class Fir:
    """RFC 5104 §4.3.1 Full Intra Request; entries are (SSRC, command sequence number)."""

    sender_ssrc: int
    entries: list[tuple[int, int]] = field(default_factory=list)
    media_ssrc: int = 0  # "not used", set to 0 (§4.3.1.2)

    @classmethod
    def parse(cls, data: bytes) -> Fir:
        end = _open_fb(data, PSFB, FMT_FIR, "FIR")
        if (end - 12) & 7:
            raise ValueError("RTCP FIR FCI length not a multiple of 8")
        sender, media = _TWO_U32.unpack_from(data, 4)
        entries = [_FIR_ENTRY.unpack_from(data, pos) for pos in range(12, end, 8)]
        return cls(sender, entries, media)

    def serialize(self) -> bytes:
        fci = b"".join(_FIR_ENTRY.pack(ssrc, seq & 0xFF) for ssrc, seq in self.entries)
        return _pack(PSFB, FMT_FIR, _TWO_U32.pack(self.sender_ssrc, self.media_ssrc) + fci)


@dataclass(slots=True)
class Remb:
    """draft-alvestrand-rmcat-remb §2.2: an AFB (PSFB FMT 15) with the 'REMB' identifier.
    `bitrate` is in bit/s; serialize rounds it down to what 6-bit exp / 18-bit mantissa holds."""

    sender_ssrc: int
    bitrate: int
    ssrcs: list[int] = field(default_factory=list)
    media_ssrc: int = 0  # always 0 (§2.2)

    @classmethod
    def parse(cls, data: bytes) -> Remb:
        end = _open_fb(data, PSFB, FMT_AFB, "REMB")
        if end < 20:
            raise ValueError("RTCP REMB truncated")
        if data[12:16] != b"REMB":
            raise ValueError("RTCP AFB is not REMB")
        sender, media = _TWO_U32.unpack_from(data, 4)
        word = _U32.unpack_from(data, 16)[0]
        num = word >> 24
        if 20 + 4 * num > end:
            raise ValueError("RTCP REMB SSRC list truncated")
        bitrate = (word & 0x3FFFF) << ((word >> 18) & 0x3F)
        return cls(sender, bitrate, list(struct.unpack_from(f"!{num}I", data, 20)), media)

    def serialize(self) -> bytes:
        if len(self.ssrcs) > 255:
            raise ValueError("RTCP REMB: at most 255 SSRCs")
        if self.bitrate < 0:
            raise ValueError("RTCP REMB bitrate must not be negative")
        mantissa, exp = self.bitrate, 0
        while mantissa > 0x3FFFF:
            mantissa >>= 1
            exp += 1
        if exp > 63:
            raise ValueError("RTCP REMB bitrate too large")
        word = (len(self.ssrcs) << 24) | (exp << 18) | mantissa
        body = (_TWO_U32.pack(self.sender_ssrc, self.media_ssrc) + b"REMB" + _U32.pack(word)
                + struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs))
        return _pack(PSFB, FMT_AFB, body)
