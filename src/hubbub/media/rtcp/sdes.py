"""RFC 3550 §6.5 SDES and §6.6 BYE."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from hubbub.media.rtcp.common import _U32, BYE, SDES, SDES_CNAME, _check_count, _open, _pack

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
