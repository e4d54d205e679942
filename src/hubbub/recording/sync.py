"""Where each track's frames go on the file's timeline: audio/video sync.

Each track has its own RTP clock with a random origin. RTCP SRs (RFC 3550 §6.4.1) tie each to
the sender's NTP clock, the same for all tracks of one publisher: with an SR per track, frames
are placed by the publisher's own clock, as a browser does for lip sync. The recording's feed
gets SRs translated to its timestamps (`DownTrack.sr_packet`); the file waits for them, up to
`SourceRecorder`'s SYNC_WAIT. A track without an SR by then is placed by its first frame's
arrival time instead (off by the two network legs' difference, tens of ms).

The mapping is fixed when the file starts: pts = unwrapped RTP timestamp + a per-track offset,
in 1/clock_rate s, so later SRs (and clock drift) never make timestamps jump.
"""

from __future__ import annotations

from dataclasses import dataclass

NTP_ONE_SECOND = 1 << 32
MAX_SKEW_SPREAD = 1.0  # s: SR-placed tracks further apart than this vs arrival: not trusted


@dataclass
class Anchor:
    """One track's clock: its first frame and its latest SR, until `Timeline.start`."""

    clock_rate: int
    first_ts: int | None = None  # unwrapped RTP timestamp of the first frame
    first_arrival: float = 0.0  # monotonic seconds
    sr: tuple[int, int, float] | None = None  # latest SR: (64-bit NTP, unwrapped RTP, arrival)
    offset: int | None = None  # pts = ts + offset, once fixed


class Timeline:
    def __init__(self) -> None:
        self.anchors: list[Anchor] = []
        self._start: float | None = None  # monotonic time of pts 0
        self._ref: tuple[int, float] | None = None  # (NTP, monotonic arrival) of one SR

    def add(self, clock_rate: int) -> Anchor:
        anchor = Anchor(clock_rate)
        self.anchors.append(anchor)
        return anchor

    def first_frame(self, anchor: Anchor, ts: int, now: float) -> None:
        if anchor.first_ts is None:
            anchor.first_ts = ts
            anchor.first_arrival = now

    def sender_report(self, anchor: Anchor, ntp: int, rtp_ts: int, now: float) -> None:
        if self._start is None:  # else fixed already
            anchor.sr = (ntp, rtp_ts, now)

    @property
    def synced(self) -> bool:
        """Every track that has frames also has an SR."""
        return all(a.sr is not None for a in self.anchors if a.first_ts is not None)

    @property
    def by_sender_reports(self) -> bool:
        """The tracks with an SR are placed by it (after `start`)."""
        return self._ref is not None

    @property
    def started(self) -> bool:
        return self._start is not None

    def _wall(self, anchor: Anchor, ts: int) -> float:
        """Monotonic seconds of RTP time `ts` of `anchor` (by its SR, else its arrival)."""
        rate = anchor.clock_rate
        if anchor.sr is not None and self._ref is not None:
            ntp, rtp_ts, _ = anchor.sr
            ref_ntp, ref_now = self._ref
            return ref_now + (ntp - ref_ntp) / NTP_ONE_SECOND + (ts - rtp_ts) / rate
        assert anchor.first_ts is not None
        return anchor.first_arrival + (ts - anchor.first_ts) / rate

    def start(self) -> None:
        """Fix the mapping: pts 0 is the earliest first frame of any track."""
        reported = [a for a in self.anchors if a.sr is not None and a.first_ts is not None]
        if reported:
            ntp, _, arrival = reported[0].sr  # type: ignore[misc]
            self._ref = (ntp, arrival)
            # SRs on different clocks (the feed extrapolates on ours until the publisher's
            # first SR): the SR times disagree with arrival by different amounts. Then
            # arrival it is, for every track.
            skews = [self._wall(a, a.first_ts) - a.first_arrival  # type: ignore[arg-type]
                     for a in reported]
            if max(skews) - min(skews) > MAX_SKEW_SPREAD:
                self._ref = None
        walls = [self._wall(a, a.first_ts) for a in self.anchors if a.first_ts is not None]
        self._start = min(walls) if walls else 0.0

    def pts(self, anchor: Anchor, ts: int) -> int:
        """`ts` (unwrapped) in 1/clock_rate s from the file's start (never negative)."""
        if anchor.offset is None:
            assert self._start is not None and anchor.first_ts is not None
            first = anchor.first_ts
            anchor.offset = round((self._wall(anchor, first) - self._start)
                                  * anchor.clock_rate) - first
        return max(0, ts + anchor.offset)
