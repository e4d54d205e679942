"""RTCP packets: parse and build (RFC 3550 §6, RFC 4585 §6, RFC 5104 §4.3.1, REMB, transport-cc).

Each packet class is a dataclass with `parse(data)` (one packet at the start of `data`; trailing
bytes are ignored) and `serialize()`. Malformed input raises `ValueError` with a fixed message.
`iter_compound` walks a compound packet without building objects (hot path: NACK/PLI from
viewers); `parse_compound` validates the whole compound first, then parses the known packets and
skips the others (APP, XR, unknown feedback formats).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

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
_SENDER_INFO = struct.Struct("!IQIII")  # SSRC, 64-bit NTP, RTP ts, packets, octets
_BLOCK = struct.Struct("!IIIIII")
_FIR_ENTRY = struct.Struct("!IB3x")
_NACK_FCI = struct.Struct("!HH")  # PID, BLP
_TWCC_HEAD = struct.Struct("!HHI")  # base seq, status count, reference time (24) + fb count (8)

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


# --- RFC 3550 §6.5 SDES, §6.6 BYE ----------------------------------------------------------------


class SdesChunk(NamedTuple):
    """One SSRC and its items as (type, value); type 1 is CNAME (RFC 3550 §6.5.1). A plain
    (ssrc, items) tuple works wherever a chunk is expected."""

    ssrc: int
    items: list[tuple[int, bytes]]

    @property
    def cname(self) -> str | None:
        return _cname(self.items)


def _cname(items: list[tuple[int, bytes]]) -> str | None:
    for kind, value in items:
        if kind == SDES_CNAME:
            return value.decode("utf-8", "replace")
    return None


def _sdes_chunk(ssrc: int, items: list[tuple[int, bytes]]) -> bytes:
    parts = [_U32.pack(ssrc)]
    for kind, value in items:
        if not 1 <= kind <= 255 or len(value) > 255:
            raise ValueError("RTCP SDES item type or length out of range")
        parts.append(bytes((kind, len(value))) + value)
    body = b"".join(parts)
    # RFC 3550 §6.5: a null item type ends the list, more nulls pad to a 32-bit boundary.
    return body + b"\x00" * (4 - (len(body) & 3))


@dataclass(slots=True)
class SourceDescription:
    """RFC 3550 §6.5 SDES: chunks of (ssrc, [(item type, value), ...])."""

    chunks: list[tuple[int, list[tuple[int, bytes]]]] = field(default_factory=list)

    def cnames(self) -> dict[int, str]:
        """SSRC -> CNAME for every chunk that has one."""
        out: dict[int, str] = {}
        for ssrc, items in self.chunks:
            cname = _cname(items)
            if cname is not None:
                out[ssrc] = cname
        return out

    @classmethod
    def parse(cls, data: bytes) -> SourceDescription:
        count, end = _open(data, SDES)
        chunks: list[tuple[int, list[tuple[int, bytes]]]] = []
        pos = 4
        for _ in range(count):
            if pos + 4 > end:
                raise ValueError("RTCP SDES chunk truncated")
            chunk = SdesChunk(_U32.unpack_from(data, pos)[0], [])
            pos += 4
            while True:
                if pos >= end:
                    raise ValueError("RTCP SDES chunk not terminated")
                kind = data[pos]
                if kind == 0:
                    pos = (pos + 4) & ~3  # the null octet plus padding to the next word
                    break
                if pos + 2 > end or pos + 2 + data[pos + 1] > end:
                    raise ValueError("RTCP SDES item truncated")
                length = data[pos + 1]
                chunk.items.append((kind, data[pos + 2 : pos + 2 + length]))
                pos += 2 + length
            if pos > end:
                raise ValueError("RTCP SDES chunk not terminated")
            chunks.append(chunk)
        return cls(chunks)

    def serialize(self) -> bytes:
        _check_count(len(self.chunks), "SDES chunks")
        body = b"".join(_sdes_chunk(ssrc, items) for ssrc, items in self.chunks)
        return _pack(SDES, len(self.chunks), body)


@dataclass(slots=True)
class Bye:
    """RFC 3550 §6.6 BYE; `reason` None means no reason field, b"" an empty one."""

    sources: list[int] = field(default_factory=list)
    reason: bytes | None = None

    @classmethod
    def parse(cls, data: bytes) -> Bye:
        count, end = _open(data, BYE)
        pos = 4 + 4 * count
        if pos > end:
            raise ValueError("RTCP BYE sources exceed the packet")
        sources = list(struct.unpack_from(f"!{count}I", data, 4))
        reason = None
        if pos < end:
            length = data[pos]
            if pos + 1 + length > end:
                raise ValueError("RTCP BYE reason truncated")
            reason = data[pos + 1 : pos + 1 + length]
        return cls(sources, reason)

    def serialize(self) -> bytes:
        _check_count(len(self.sources), "BYE sources")
        body = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason is not None:
            if len(self.reason) > 255:
                raise ValueError("RTCP BYE reason longer than 255 bytes")
            text = bytes((len(self.reason),)) + self.reason
            body += text + b"\x00" * (-len(text) & 3)  # zero-filled to a word (§6.6)
        return _pack(BYE, len(self.sources), body)


# --- RFC 4585 feedback ----------------------------------------------------------------------------


def _open_fb(data: bytes, pt: int, fmt: int, name: str) -> int:
    """Check a feedback packet header (RFC 4585 §6.1); return the end of its FCI."""
    got, end = _open(data, pt)
    if got != fmt:
        raise ValueError(f"RTCP feedback format {got}, expected {fmt}")
    if end < 12:
        raise ValueError(f"RTCP {name} shorter than its SSRCs")
    return end


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


# --- transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) -------------

NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2  # packet status symbols (§3.1.1)
_TICK_US = 250  # receive delta resolution
_REF_US = 64_000  # reference time resolution


def _signed24(v: int) -> int:
    return ((v + 0x800000) & 0xFFFFFF) - 0x800000


def _status_chunks(statuses: Sequence[int]) -> list[int]:
    """Encode statuses as run-length and status-vector chunks (§3.1.3, §3.1.4): symbols are
    collected until they fit no chunk kind; a uniform run becomes a run-length chunk, 14 small
    symbols a 1-bit vector, otherwise the first 7 go out as a 2-bit vector."""
    chunks: list[int] = []
    buf: list[int] = []
    same = True
    large = False
    for s in statuses:
        n = len(buf)
        fits = (n < 7 or (n < 14 and not large and s != LARGE_DELTA)
                or (n < 0x1FFF and same and buf[0] == s))
        if not fits:
            if same:
                chunks.append((buf[0] << 13) | n)
                buf = []
            elif n == 14:
                chunks.append(_vector(buf, 1))
                buf = []
            else:
                chunks.append(_vector(buf[:7], 2))
                buf = buf[7:]
            same = all(x == buf[0] for x in buf) if buf else True
            large = LARGE_DELTA in buf
        if buf and s != buf[0]:
            same = False
        large = large or s == LARGE_DELTA
        buf.append(s)
    if buf:
        if same:
            chunks.append((buf[0] << 13) | len(buf))
        else:
            chunks.append(_vector(buf, 2 if len(buf) <= 7 else 1))
    return chunks


def _vector(symbols: Sequence[int], bits: int) -> int:
    # Unused trailing symbols stay 0 ("not received"); the status count says where to stop.
    if bits == 1:
        word = 0x8000
        for k, s in enumerate(symbols):
            word |= s << (13 - k)
    else:
        word = 0xC000
        for k, s in enumerate(symbols):
            word |= s << (12 - 2 * k)
    return word


@dataclass(slots=True)
class TransportCC:
    """Transport-wide congestion control feedback (RTPFB FMT 15).

    `statuses` has one symbol per packet from `base_seq` on (0 not received, 1 small delta,
    2 large or negative delta); `deltas` has one receive delta per received packet, in 250 µs
    ticks, the first relative to `reference_time` (signed 24-bit, 64 ms units)."""

    sender_ssrc: int
    media_ssrc: int
    base_seq: int
    reference_time: int
    fb_count: int
    statuses: list[int] = field(default_factory=list)
    deltas: list[int] = field(default_factory=list)

    @classmethod
    def from_arrivals(
        cls,
        base_seq: int,
        arrivals: Sequence[int | None],
        fb_count: int,
        *,
        sender_ssrc: int = 0,
        media_ssrc: int = 0,
    ) -> TransportCC:
        """Feedback for packets base_seq, base_seq+1, ... with arrival times in µs (None = lost).
        Times are floored to 250 µs ticks; the reference time is the first arrival floored to
        64 ms. ValueError if two consecutive arrivals are more than ~8.2 s apart."""
        first = next((a for a in arrivals if a is not None), 0)
        ref = first // _REF_US
        prev = ref * (_REF_US // _TICK_US)
        statuses: list[int] = []
        deltas: list[int] = []
        for a in arrivals:
            if a is None:
                statuses.append(NOT_RECEIVED)
                continue
            tick = a // _TICK_US
            d = tick - prev
            prev = tick
            if 0 <= d <= 0xFF:
                statuses.append(SMALL_DELTA)
            elif -0x8000 <= d <= 0x7FFF:
                statuses.append(LARGE_DELTA)
            else:
                raise ValueError("transport-cc receive delta out of range")
            deltas.append(d)
        return cls(sender_ssrc, media_ssrc, base_seq & 0xFFFF, _signed24(ref), fb_count & 0xFF,
                    statuses, deltas)

    def arrivals(self) -> list[int | None]:
        """Arrival time in µs of each packet (None = not received), in the reference time's
        clock: reference_time * 64 ms plus the running sum of deltas."""
        tick = self.reference_time * (_REF_US // _TICK_US)
        out: list[int | None] = []
        it = iter(self.deltas)
        for s in self.statuses:
            if s == NOT_RECEIVED:
                out.append(None)
            else:
                tick += next(it)
                out.append(tick * _TICK_US)
        return out

    @classmethod
    def parse(cls, data: bytes) -> TransportCC:
        end = _open_fb(data, RTPFB, FMT_TWCC, "transport-cc")
        if end < 20:
            raise ValueError("RTCP transport-cc header truncated")
        sender, media = _TWO_U32.unpack_from(data, 4)
        base, count, word = _TWCC_HEAD.unpack_from(data, 12)
        statuses: list[int] = []
        pos = 20
        while len(statuses) < count:
            if pos + 2 > end:
                raise ValueError("RTCP transport-cc chunks truncated")
            c = _U16.unpack_from(data, pos)[0]
            pos += 2
            left = count - len(statuses)
            if not c & 0x8000:  # run length chunk: |0|S(2)|run length(13)|
                symbol = c >> 13
                if symbol == 3:
                    raise ValueError("RTCP transport-cc reserved status symbol")
                statuses.extend([symbol] * min(c & 0x1FFF, left))
            elif not c & 0x4000:  # status vector, 14 one-bit symbols
                statuses.extend((c >> (13 - k)) & 1 for k in range(min(14, left)))
            else:  # status vector, 7 two-bit symbols
                for k in range(min(7, left)):
                    symbol = (c >> (12 - 2 * k)) & 3
                    if symbol == 3:
                        raise ValueError("RTCP transport-cc reserved status symbol")
                    statuses.append(symbol)
        deltas: list[int] = []
        for s in statuses:
            if s == SMALL_DELTA:
                if pos + 1 > end:
                    raise ValueError("RTCP transport-cc deltas truncated")
                deltas.append(data[pos])
                pos += 1
            elif s == LARGE_DELTA:
                if pos + 2 > end:
                    raise ValueError("RTCP transport-cc deltas truncated")
                d = _U16.unpack_from(data, pos)[0]
                deltas.append(d - 0x10000 if d & 0x8000 else d)
                pos += 2
        return cls(sender, media, base, _signed24(word >> 8), word & 0xFF, statuses, deltas)

    def serialize(self) -> bytes:
        if len(self.statuses) > 0xFFFF:
            raise ValueError("transport-cc: too many packet statuses")
        received = [s for s in self.statuses if s != NOT_RECEIVED]
        if len(received) != len(self.deltas):
            raise ValueError("transport-cc: one delta per received packet needed")
        parts = [
            _TWO_U32.pack(self.sender_ssrc, self.media_ssrc),
            _TWCC_HEAD.pack(self.base_seq, len(self.statuses),
                            ((self.reference_time & 0xFFFFFF) << 8) | (self.fb_count & 0xFF)),
        ]
        for s in self.statuses:
            if s not in (NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA):
                raise ValueError("transport-cc: invalid packet status")
        parts.extend(_U16.pack(c) for c in _status_chunks(self.statuses))
        for s, d in zip(received, self.deltas, strict=True):
            if s == SMALL_DELTA and 0 <= d <= 0xFF:
                parts.append(bytes((d,)))
            elif s == LARGE_DELTA and -0x8000 <= d <= 0x7FFF:
                parts.append(_U16.pack(d & 0xFFFF))
            else:
                raise ValueError("transport-cc: delta does not fit its status")
        return _pack(RTPFB, FMT_TWCC, b"".join(parts))


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
