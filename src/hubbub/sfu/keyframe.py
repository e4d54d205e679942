"""Rate-limited keyframe requests towards a publisher."""

from __future__ import annotations


class KeyframeLimiter:
    """Lets one request through per `min_interval` seconds.

    Viewers joining at once, or one viewer's decoder asking repeatedly, collapse into one PLI
    per interval, so the publisher's encoder is not forced into back-to-back keyframes
    (RFC 4585 §6.3.1 leaves PLI pacing to the sender of the PLI).
    """

    __slots__ = ("min_interval", "_last", "requests", "suppressed")

    def __init__(self, min_interval: float) -> None:
        self.min_interval = min_interval
        self._last = float("-inf")
        self.requests = 0
        self.suppressed = 0

    def allow(self, now: float) -> bool:
        if now - self._last < self.min_interval:
            self.suppressed += 1
            return False
        self._last = now
        self.requests += 1
        return True
