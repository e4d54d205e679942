"""Voice activity from RFC 6464 audio levels: a per-Track meter and the per-Stream ranking.

No decoding: each publisher audio packet carries its level in -dBov (RFC 6464 §3, 0 loudest,
127 silence). The meter smooths the linear amplitude with a fast attack and a slow release; a
source that sends nothing (DTX, muted, gone) decays exactly as if it sent silence.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hubbub.sfu.config import MultiplexerConfig

if TYPE_CHECKING:
    from hubbub.sfu.track import Track

# RFC 6464 level -> linear amplitude relative to full scale; 127 means digital silence.
_LINEAR = tuple(10.0 ** (-level / 20.0) for level in range(127)) + (0.0,)
# Longest step one packet may take: a gap beyond it is a DTX pause or loss, which the tick's
# staleness decay already accounts for.
_MAX_STEP = 0.06


def to_linear(dbov: float) -> float:
    """Amplitude of a dBov level (<= -127 is silence: 0.0)."""
    return 0.0 if dbov <= -127 else 10.0 ** (dbov / 20.0)


def to_dbov(amplitude: float) -> float:
    """dBov of a linear amplitude, floored at -127."""
    return -127.0 if amplitude <= 10.0 ** (-127 / 20.0) else 20.0 * math.log10(amplitude)


class ActivityMeter:
    """Smoothed amplitude of one audio Track and its speaking state (with hysteresis).

    `update` runs per packet: O(1), a few float operations, no containers. `decay` runs per
    tick and makes a source without recent packets fall towards silence.
    """

    __slots__ = ("value", "time", "packet_time", "speaking", "since", "_attack", "_release",
                 "_on", "_off", "_stale")

    def __init__(self, config: MultiplexerConfig) -> None:
        self.value = 0.0  # smoothed linear amplitude
        self.time = float("-inf")  # when `value` was last brought up to date
        self.packet_time = float("-inf")  # arrival of the last packet with a level
        self.speaking = False
        self.since = float("-inf")  # when `speaking` last became True
        self._attack = config.attack
        self._release = config.release
        self._on = to_linear(config.speech_on_dbov)
        self._off = to_linear(config.speech_off_dbov)
        self._stale = config.stale_after

    def update(self, level: int, now: float) -> bool:
        """One packet's RFC 6464 level (0..127); True when this packet starts speech."""
        target = _LINEAR[level]
        step = now - self.packet_time  # the audio this packet stands for, ~ its frame length
        if step > _MAX_STEP:
            step = _MAX_STEP
        elif step < 0.0:
            step = 0.0
        value = self.value
        tau = self._attack if target > value else self._release
        value += (target - value) * (1.0 - math.exp(-step / tau))
        self.value = value
        self.time = now
        self.packet_time = now
        if not self.speaking and value >= self._on:
            self.speaking = True
            self.since = now
            return True
        return False

    def decay(self, now: float) -> None:
        """Per tick: no packet for `stale_after` counts as silence; leave speech below the
        lower threshold."""
        if now - self.packet_time > self._stale and now > self.time:
            self.value *= math.exp(-(now - self.time) / self._release)
            self.time = now
        if self.speaking and self.value < self._off:
            self.speaking = False

    @property
    def dbov(self) -> float:
        return to_dbov(self.value)


class Ranking:
    """One Stream's speaking audio Tracks, most active first; recomputed once per tick for all
    viewers. `version` changes whenever the order does, so viewers with nothing pending can skip
    their slot pass."""

    def __init__(self) -> None:
        self.order: list[Track] = []
        self.version = 0

    def update(self, tracks: Iterable[Track], now: float) -> bool:
        """Decay every meter, order the speaking ones by smoothed level; True on a change."""
        speaking: list[Track] = []
        for track in tracks:
            meter = track.activity
            meter.decay(now)
            if meter.speaking:
                speaking.append(track)
        speaking.sort(key=_level, reverse=True)
        if speaking == self.order:
            return False
        self.order = speaking
        self.version += 1
        return True


def _level(track: Track) -> float:
    return track.activity.value
