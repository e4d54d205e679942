"""Transport-wide congestion control feedback for publishers
(draft-holmer-rmcat-transport-wide-cc-extensions-01).

A browser that negotiated transport-cc estimates its send rate from our feedback alone; without it
its estimate never leaves the start rate. The receiver's job is small: note the arrival time of
every transport-wide sequence number and report them every ~100 ms (§2: "feedback... sent
periodically, e.g. once per 100 ms"). The sender computes delays and loss from that.
"""

from __future__ import annotations

import struct

from hubbub.media import rtcp, rtp

_SEQ = struct.Struct("!H")

MAX_PACKETS_PER_FEEDBACK = 4096
"""A gap wider than this (a long stall or a seq jump) restarts the report window."""


class TwccResponder:
    """Per transport: records transport-wide seq arrivals, builds feedback packets."""

    def __init__(self, ext_id: int, sender_ssrc: int) -> None:
        self.ext_id = ext_id
        self.sender_ssrc = sender_ssrc
        self.media_ssrc = 0
        self._arrivals: dict[int, int] = {}  # extended seq -> arrival µs
        self._highest = -1  # highest extended seq seen
        self._next_base = -1  # first seq the next feedback covers
        self._fb_count = 0

    def record(self, packet: bytes, arrival_us: int) -> None:
        """Hot path: one decrypted RTP packet from the peer."""
        try:
            found = rtp.find_extension(packet, self.ext_id)
        except ValueError:
            return
        if found is None or found[1] != 2:
            return
        seq = _SEQ.unpack_from(packet, found[0])[0]
        if self._highest < 0:
            ext = seq
            self._next_base = seq
        else:
            # Unwrap against the highest seen (RFC 3550 A.1 style, 16-bit serial arithmetic).
            delta = (seq - self._highest) & 0xFFFF
            ext = self._highest + delta if delta < 0x8000 else self._highest + delta - 0x10000
        if ext > self._highest:
            self._highest = ext
        self._arrivals[ext] = arrival_us
        if self.media_ssrc == 0:
            self.media_ssrc = struct.unpack_from("!I", packet, 8)[0]

    def build(self) -> bytes | None:
        """Feedback for everything since the last call, or None if nothing arrived."""
        if not self._arrivals:
            return None
        # Start where the last report ended so packets lost in between are reported lost;
        # reordered packets older than that were already reported and are dropped.
        base = self._next_base
        if self._highest - base >= MAX_PACKETS_PER_FEEDBACK:
            base = self._highest - MAX_PACKETS_PER_FEEDBACK + 1
        arrivals = [self._arrivals.get(s) for s in range(base, self._highest + 1)]
        self._arrivals.clear()
        self._next_base = self._highest + 1
        if all(a is None for a in arrivals):
            return None
        try:
            feedback = rtcp.TransportCC.from_arrivals(
                base,
                arrivals,
                self._fb_count,
                sender_ssrc=self.sender_ssrc,
                media_ssrc=self.media_ssrc,
            )
        except ValueError:
            return None  # arrivals more than ~8 s apart: skip this window
        self._fb_count = (self._fb_count + 1) & 0xFF
        return feedback.serialize()
