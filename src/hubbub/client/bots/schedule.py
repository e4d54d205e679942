"""Scripted talk/silence schedules: sorted, non-overlapping (start_s, end_s) talk intervals."""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterable


class Schedule:
    """When a bot talks, in seconds from its start. `Schedule.always()` never stops."""

    def __init__(self, intervals: Iterable[tuple[float, float]]) -> None:
        spans = sorted((float(a), float(b)) for a, b in intervals)
        for a, b in spans:
            if not b > a >= 0:
                raise ValueError(f"bad talk interval ({a}, {b}): need 0 <= start < end")
        for (_, b1), (a2, _) in zip(spans, spans[1:], strict=False):
            if a2 < b1:
                raise ValueError(f"talk intervals overlap at {a2}")
        self.intervals = spans
        self._starts = [a for a, _ in spans]

    @classmethod
    def always(cls) -> Schedule:
        return cls([(0.0, float("inf"))])

    @classmethod
    def never(cls) -> Schedule:
        return cls([])

    def talking(self, t: float) -> bool:
        i = bisect.bisect_right(self._starts, t) - 1
        return i >= 0 and t < self.intervals[i][1]


def alternating(talk: float, silence: float, duration: float, offset: float = 0.0) -> Schedule:
    """Talk `talk` s, be silent `silence` s, repeated from `offset` until `duration`."""
    if talk <= 0 or silence < 0:
        raise ValueError("talk must be > 0 and silence >= 0")
    spans = []
    t = offset
    while t < duration:
        spans.append((t, min(t + talk, duration)))
        t += talk + silence
    return Schedule(spans)


def conversation(
    duration: float,
    seed: int = 1,
    turn: tuple[float, float] = (2.0, 5.0),
    overlap: tuple[float, float] = (0.2, 0.8),
    pause: tuple[float, float] = (0.2, 1.0),
    overlap_share: float = 0.4,
    start: float = 1.0,
) -> tuple[Schedule, Schedule]:
    """Two speakers taking turns of `turn` s; a turn either overlaps the previous one's end by
    `overlap` s (with probability `overlap_share`) or follows a `pause` of silence."""
    rng = random.Random(seed)
    spans: tuple[list[tuple[float, float]], list[tuple[float, float]]] = ([], [])
    t = start
    who = 0
    while t < duration:
        end = min(t + rng.uniform(*turn), duration)
        spans[who].append((t, end))
        if rng.random() < overlap_share:
            t = end - rng.uniform(*overlap)
        else:
            t = end + rng.uniform(*pause)
        who = 1 - who
        # the next turn of the same speaker must start after their previous turn ended
        if spans[who] and t < spans[who][-1][1]:
            t = spans[who][-1][1]
    return Schedule(spans[0]), Schedule(spans[1])
