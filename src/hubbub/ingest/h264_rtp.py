"""H.264 access units to RTP packets, RFC 6184 packetization-mode=1 (non-interleaved).

The RTMP publisher hands over one access unit at a time as bare NAL units (AVCC without the
length prefixes). Each goes out as:
- a single NAL unit packet (§5.6) when it fits the MTU;
- FU-A fragments (§5.8) when it does not;
- before every keyframe, the SPS and PPS aggregated in one STAP-A (§5.7.1), so a viewer that
  joins, or asks for a keyframe, can decode it without the out-of-band sprop-parameter-sets.

All packets of an access unit share its 90 kHz timestamp, and the last one carries the marker
bit (§5.1). Sequence numbers start at a random value (RFC 3550 §5.1) and continue across calls.

NAL units dropped on the way (§5.3 leaves it to the sender what to send):
- access unit delimiters (type 9): the RTP timestamp and marker already delimit access units,
  and an AUD would cost a packet (and its SRTP overhead) per frame;
- filler data (type 12): CBR stuffing that decoders discard; it only spends viewers' bandwidth;
- SPS and PPS (7, 8) inside the access unit: they move into the keyframe's STAP-A instead
  (they replace the configuration's ones there, being the newer), so they are not sent twice;
- empty units and types 0 and 24-31, which are unspecified in H.264 and in RTP would be read
  as aggregation or fragmentation packets (§5.2).
SEI (type 6) is kept: it is small, and carries what players use (recovery points, timecodes,
captions).
"""

from __future__ import annotations

import secrets
import struct

__all__ = ["H264Packetizer"]

_RTP = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence number, timestamp, SSRC (RFC 3550)
_RTP_FU = struct.Struct("!BBHIIBB")  # the RTP header, FU indicator and FU header (§5.8)
_STAP_A, _FU_A = 24, 28
_IDR, _SPS, _PPS, _AUD, _FILLER = 5, 7, 8, 9, 12
_DROP = frozenset({0, _AUD, _FILLER, 24, 25, 26, 27, 28, 29, 30, 31})
_MARKER = 0x80
_MASK32 = 0xFFFFFFFF


class H264Packetizer:
    """RTP packets for one H.264 source; `packetize` is called once per access unit."""

    __slots__ = ("payload_type", "ssrc", "mtu", "packets", "octets", "_seq", "_max")

    def __init__(self, payload_type: int, ssrc: int, mtu: int = 1200,
                 initial_sequence: int | None = None) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type {payload_type} is not 0-127")
        if mtu < 12 + 16:
            raise ValueError(f"mtu {mtu} leaves no room for a payload")
        self.payload_type = payload_type
        self.ssrc = ssrc & _MASK32
        self.mtu = mtu  # the whole RTP packet, header included (before SRTP's tag)
        self.packets = 0  # sent so far, for RTCP sender reports (RFC 3550 §6.4.1)
        self.octets = 0  # payload octets sent so far, likewise
        self._seq = (secrets.randbits(16) if initial_sequence is None
                     else initial_sequence) & 0xFFFF
        self._max = mtu - _RTP.size  # the largest payload

    @property
    def next_sequence(self) -> int:
        return self._seq

    def packetize(self, nalus: list[bytes], timestamp_90k: int, is_key: bool, sps: bytes,
                  pps: bytes) -> list[bytes]:
        """The RTP packets of one access unit; `sps`/`pps` are the current configuration's."""
        units: list[bytes] = []
        in_band: list[bytes] = []
        key = is_key
        for nal in nalus:
            if not nal:
                continue
            kind = nal[0] & 0x1F
            if kind in _DROP:
                continue
            if kind == _SPS or kind == _PPS:
                in_band.append(nal)
                continue
            if kind == _IDR:
                key = True  # an IDR even if the FLV tag did not say so
            units.append(nal)
        if key:
            # the access unit's own SPS and PPS, being the newer, else the configuration's
            params = ([n for n in in_band if n[0] & 0x1F == _SPS] or [sps]) \
                + ([n for n in in_band if n[0] & 0x1F == _PPS] or [pps])
            params = [p for p in params if p]
            if params:
                units[:0] = self._parameter_sets(params)
        elif in_band:
            units[:0] = in_band  # new parameter sets mid-GOP: send them as they came
        if not units:
            return []

        out: list[bytes] = []
        ts = timestamp_90k & _MASK32
        pt, ssrc, seq, largest = self.payload_type, self.ssrc, self._seq, self._max
        octets = 0
        last = len(units) - 1
        for i, nal in enumerate(units):
            size = len(nal)
            if size <= largest:  # a single NAL unit packet (§5.6), or the prebuilt STAP-A
                out.append(_RTP.pack(0x80, pt | (_MARKER if i == last else 0), seq, ts, ssrc)
                           + nal)
                seq = (seq + 1) & 0xFFFF
                octets += size
                continue
            # FU-A (§5.8): the NAL header's F and NRI go in the FU indicator, its type in the
            # FU header with S on the first fragment and E on the last; the header byte itself
            # is not sent. Fragment sizes differ by one byte at most: no runt at the end.
            indicator = (nal[0] & 0xE0) | _FU_A
            kind = nal[0] & 0x1F
            body = memoryview(nal)[1:]
            total = size - 1
            room = largest - 2
            count = -(-total // room)
            step, longer = divmod(total, count)  # the first `longer` fragments get a byte more
            end = 0
            for n in range(count):
                start = end
                end = start + step + (1 if n < longer else 0)
                final = n == count - 1
                header = kind | (0x80 if start == 0 else 0) | (0x40 if final else 0)
                marker = _MARKER if final and i == last else 0
                out.append(_RTP_FU.pack(0x80, pt | marker, seq, ts, ssrc, indicator, header)
                           + body[start:end])
                seq = (seq + 1) & 0xFFFF
            octets += total + 2 * count
        self._seq = seq
        self.packets += len(out)
        self.octets += octets
        return out

    def _parameter_sets(self, params: list[bytes]) -> list[bytes]:
        """The STAP-A (§5.7.1) of SPS and PPS, or the units alone if it would not fit one packet."""
        size = 1 + sum(2 + len(p) for p in params)
        if size > self._max or any(len(p) > 0xFFFF for p in params):
            return params
        # F is the OR of the units' F bits, NRI the largest of their NRIs (§5.7.1)
        f = 0
        nri = 0
        for p in params:
            f |= p[0] & 0x80
            nri = max(nri, p[0] & 0x60)
        parts = [bytes([f | nri | _STAP_A])]
        for p in params:
            parts.append(len(p).to_bytes(2, "big"))
            parts.append(p)
        return [b"".join(parts)]
