"""Upstream loss recovery: NACK the publisher for video packets that never arrived.

Viewers NACK us and we answer from our cache, but a packet lost between the publisher and us
is lost for every viewer unless we ask the publisher again (RFC 4585 §6.2.1 generic NACK; a
sender without RTX resends the original packet, RFC 4588 is not needed). Like libwebrtc's
receiver we ask once as soon as a gap appears, then retry on a timer until the packet arrives,
it gets too old to be useful, or the retry budget is spent.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_GAP = 256
"""A jump larger than this is a restart or a reordering storm, not loss: start over."""


@dataclass(frozen=True)
class NackConfig:
    retry_interval: float = 0.05
    """Seconds between requests for the same packet (≈ an RTT on good paths; lite servers
    usually see 10–100 ms)."""

    max_retries: int = 8
    max_age: float = 1.0
    """Give up on a packet after this long: the viewer's jitter buffer will have moved on."""

    max_pending: int = 512


class NackGenerator:
    """Per publisher video Track. `on_seq` runs per packet; `due` on the ticker."""

    __slots__ = ("_config", "_expected", "_missing", "requested", "recovered")

    def __init__(self, config: NackConfig | None = None) -> None:
        self._config = config or NackConfig()
        self._expected = -1
        # seq -> [first_missed_at, next_request_at, requests_sent]
        self._missing: dict[int, list[float]] = {}
        self.requested = 0
        self.recovered = 0

    def on_seq(self, seq: int, now: float) -> list[int] | None:
        """Note an arrival. Returns the seqs to NACK right away when a new gap opened."""
        expected = self._expected
        if expected < 0 or seq == expected:
            self._expected = (seq + 1) & 0xFFFF
            return None
        gap = (seq - expected) & 0xFFFF
        if gap >= 0x8000:
            # Older than expected: a retransmission or a reordered packet.
            if self._missing.pop(seq, None) is not None:
                self.recovered += 1
            return None
        if gap > MAX_GAP or len(self._missing) + gap > self._config.max_pending:
            self._missing.clear()
            self._expected = (seq + 1) & 0xFFFF
            return None
        lost = [(expected + i) & 0xFFFF for i in range(gap)]
        retry_at = now + self._config.retry_interval
        for s in lost:
            self._missing[s] = [now, retry_at, 1.0]
        self._expected = (seq + 1) & 0xFFFF
        self.requested += len(lost)
        return lost

    def due(self, now: float) -> list[int]:
        """Seqs to ask for again now; forgets those too old or asked too often."""
        if not self._missing:
            return []
        config = self._config
        out: list[int] = []
        for seq, entry in list(self._missing.items()):
            first, next_at, sent = entry
            if now - first > config.max_age or sent >= config.max_retries:
                del self._missing[seq]
            elif now >= next_at:
                entry[1] = now + config.retry_interval
                entry[2] = sent + 1
                out.append(seq)
        self.requested += len(out)
        return out

    def is_missing(self, seq: int) -> bool:
        """`seq` is a gap we are still asking the publisher for."""
        return seq in self._missing

    @property
    def pending(self) -> int:
        return len(self._missing)
