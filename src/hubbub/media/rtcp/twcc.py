"""Transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from hubbub.media.rtcp.common import _TWO_U32, _U16, FMT_TWCC, RTPFB, _open_fb, _pack

_TWCC_HEAD = struct.Struct("!HHI")  # base seq, status count, reference time (24) + fb count (8)


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
