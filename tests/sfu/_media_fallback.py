"""Stand-ins for `hubbub.media.rtcp` / `hubbub.media.codecs` used only until the real modules
land; installed by conftest.py when importing the real one fails. Field names follow the
sfu's expectations (see hubbub/sfu/rtcp_io.py)."""

from __future__ import annotations

import struct
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass, field


def _header(fmt: int, pt: int, body: bytes) -> bytes:
    return struct.pack("!BBH", 0x80 | fmt, pt, len(body) // 4) + body


@dataclass
class ReportBlock:
    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int

    def serialize(self) -> bytes:
        return struct.pack("!IIIIII", self.ssrc,
                           (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF),
                           self.highest_sequence, self.jitter, self.lsr, self.dlsr)

    @classmethod
    def parse_from(cls, data: bytes, off: int) -> ReportBlock:
        ssrc, fl, hs, jit, lsr, dlsr = struct.unpack_from("!IIIIII", data, off)
        lost = fl & 0xFFFFFF
        if lost & 0x800000:
            lost -= 0x1000000
        return cls(ssrc, fl >> 24, lost, hs, jit, lsr, dlsr)


@dataclass
class SenderReport:
    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = struct.pack("!IQIII", self.ssrc, self.ntp_timestamp, self.rtp_timestamp,
                           self.packet_count, self.octet_count)
        body += b"".join(r.serialize() for r in self.reports)
        return _header(len(self.reports), 200, body)

    @classmethod
    def parse(cls, data: bytes) -> SenderReport:
        if len(data) < 28:
            raise ValueError("SR truncated")
        ssrc, ntp, rtp_ts, pc, oc = struct.unpack_from("!IQIII", data, 4)
        n = data[0] & 0x1F
        return cls(ssrc, ntp, rtp_ts, pc, oc,
                   [ReportBlock.parse_from(data, 28 + 24 * i) for i in range(n)])


@dataclass
class ReceiverReport:
    ssrc: int
    reports: list[ReportBlock] = field(default_factory=list)

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.serialize() for r in self.reports)
        return _header(len(self.reports), 201, body)

    @classmethod
    def parse(cls, data: bytes) -> ReceiverReport:
        n = data[0] & 0x1F
        if len(data) < 8 + 24 * n:
            raise ValueError("RR truncated")
        (ssrc,) = struct.unpack_from("!I", data, 4)
        return cls(ssrc, [ReportBlock.parse_from(data, 8 + 24 * i) for i in range(n)])


@dataclass
class SourceDescription:
    chunks: list[tuple[int, list[tuple[int, bytes]]]]

    def serialize(self) -> bytes:
        body = b""
        for ssrc, items in self.chunks:
            chunk = struct.pack("!I", ssrc)
            for kind, value in items:
                chunk += bytes((kind, len(value))) + value
            chunk += b"\x00" * (4 - len(chunk) % 4)
            body += chunk
        return _header(len(self.chunks), 202, body)

    @classmethod
    def parse(cls, data: bytes) -> SourceDescription:
        chunks = []
        pos = 4
        for _ in range(data[0] & 0x1F):
            (ssrc,) = struct.unpack_from("!I", data, pos)
            pos += 4
            items = []
            while data[pos] != 0:
                kind, ln = data[pos], data[pos + 1]
                items.append((kind, data[pos + 2:pos + 2 + ln]))
                pos += 2 + ln
            pos = (pos + 4) & ~3
            chunks.append((ssrc, items))
        return cls(chunks)


@dataclass
class Pli:
    sender_ssrc: int
    media_ssrc: int

    def serialize(self) -> bytes:
        return _header(1, 206, struct.pack("!II", self.sender_ssrc, self.media_ssrc))

    @classmethod
    def parse(cls, data: bytes) -> Pli:
        if len(data) < 12:
            raise ValueError("PLI truncated")
        return cls(*struct.unpack_from("!II", data, 4))


@dataclass
class Fir:
    sender_ssrc: int
    entries: list[tuple[int, int]]

    def serialize(self) -> bytes:
        body = struct.pack("!II", self.sender_ssrc, 0)
        body += b"".join(struct.pack("!IB3x", s, n) for s, n in self.entries)
        return _header(4, 206, body)

    @classmethod
    def parse(cls, data: bytes) -> Fir:
        (sender,) = struct.unpack_from("!I", data, 4)
        entries = [struct.unpack_from("!IB", data, off) for off in range(12, len(data), 8)]
        return cls(sender, [(s, n) for s, n in entries])


@dataclass
class Nack:
    sender_ssrc: int
    media_ssrc: int
    lost: list[int]

    def serialize(self) -> bytes:
        fci = b""
        seqs = sorted(set(self.lost))
        while seqs:
            pid = seqs.pop(0)
            blp = 0
            for s in list(seqs):
                d = (s - pid) & 0xFFFF
                if 1 <= d <= 16:
                    blp |= 1 << (d - 1)
                    seqs.remove(s)
            fci += struct.pack("!HH", pid, blp)
        return _header(1, 205, struct.pack("!II", self.sender_ssrc, self.media_ssrc) + fci)

    @classmethod
    def parse(cls, data: bytes) -> Nack:
        sender, media = struct.unpack_from("!II", data, 4)
        lost = []
        for off in range(12, len(data), 4):
            pid, blp = struct.unpack_from("!HH", data, off)
            lost.append(pid)
            lost.extend((pid + i + 1) & 0xFFFF for i in range(16) if blp >> i & 1)
        return cls(sender, media, lost)


def iter_compound(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("RTCP header truncated")
        b0, pt, words = struct.unpack_from("!BBH", data, pos)
        end = pos + 4 + 4 * words
        if end > len(data):
            raise ValueError("RTCP packet truncated")
        yield pt, b0 & 0x1F, pos, end
        pos = end


def parse_compound(data: bytes) -> list[object]:
    parsers = {200: SenderReport, 201: ReceiverReport, 202: SourceDescription, 205: Nack}
    out: list[object] = []
    for pt, fmt, start, end in iter_compound(data):
        chunk = data[start:end]
        if pt in parsers:
            out.append(parsers[pt].parse(chunk))  # type: ignore[attr-defined]
        elif pt == 206:
            out.append(Pli.parse(chunk) if fmt == 1 else Fir.parse(chunk))
    return out


def ntp_now() -> tuple[int, int]:
    t = time.time() + 2208988800
    return int(t), int((t % 1) * (1 << 32))


def is_keyframe(codec_name: str, payload: bytes) -> bool:
    """VP8 only (RFC 7741 §4.2/§4.3): S=1, PID=0 and the P bit of the payload header clear."""
    if codec_name.upper() != "VP8" or len(payload) < 2:
        return False
    b0 = payload[0]
    if not b0 & 0x10 or b0 & 0x07:
        return False
    pos = 1
    if b0 & 0x80:
        x = payload[pos]
        pos += 1
        if x & 0x80:
            pos += 2 if payload[pos] & 0x80 else 1
        if x & 0x40:
            pos += 1
        if x & 0x30:
            pos += 1
    return pos < len(payload) and not payload[pos] & 0x01


def install() -> None:
    """Register the stand-ins for whichever real module is missing."""
    import hubbub.media

    for name, attrs in (
        ("rtcp", ["ReportBlock", "SenderReport", "ReceiverReport", "SourceDescription", "Pli",
                  "Fir", "Nack", "iter_compound", "parse_compound", "ntp_now"]),
        ("codecs", ["is_keyframe"]),
    ):
        full = f"hubbub.media.{name}"
        try:
            __import__(full)
        except ImportError:
            module = types.ModuleType(full)
            for attr in attrs:
                setattr(module, attr, globals()[attr])
            sys.modules[full] = module
            setattr(hubbub.media, name, module)
