"""Log output an attacker can neither grow nor flood.

- `clip(value)`: a client-supplied value for a log line or an error reply: printable, escaped
  (no newlines to forge entries with), and truncated with the size of what was cut.
- `BoundedFormatter`: every message is escaped and cut to `MAX_MESSAGE` characters, whatever
  its arguments carried (tracebacks, which only server faults produce, stay multi-line).
- `FloodFilter`: a cause (logger, level, message template) is logged `burst` times per
  `interval`; further occurrences are counted and reported once per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

MAX_MESSAGE = 2000
BURST = 5
INTERVAL = 60.0

_ESCAPES = {i: f"\\x{i:02x}" for i in range(32)} | {0x7F: "\\x7f"}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def clip(value: object, limit: int = 120) -> str:
    """`value` as one bounded, printable line."""
    text = value if isinstance(value, str) else repr(value)
    escaped = text[:limit].translate(_ESCAPES)
    if len(text) <= limit and len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}…({len(text)} chars in all)"  # escapes are longer: cut again


class BoundedFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging API)
        record.message = clip(record.message, MAX_MESSAGE)
        return super().formatMessage(record)


Key = tuple[str, int, str]


class FloodFilter(logging.Filter):
    def __init__(self, burst: int = BURST, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start: dict[Key, float] = {}
        self._seen: dict[Key, int] = {}
        self._suppressed: dict[Key, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            start = self._window_start.get(key)
            if start is None or now - start >= self._interval:
                suppressed = self._suppressed.pop(key, 0)
                self._window_start[key] = now
                self._seen[key] = 1
                if suppressed:
                    # One line says what the flood was, then this occurrence is logged.
                    record.msg = (f"{record.msg} [and {suppressed} more like this in the "
                                  f"previous {self._interval:.0f} s, not logged]")
                if len(self._window_start) > 10_000:
                    self._forget_old(now)
                return True
            self._seen[key] += 1
            if self._seen[key] <= self._burst:
                return True
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False

    def _forget_old(self, now: float) -> None:
        for key, start in list(self._window_start.items()):
            if now - start >= self._interval and key not in self._suppressed:
                del self._window_start[key]
                self._seen.pop(key, None)


def install(level: str) -> None:
    """Root logging for `hubbub serve`: bounded lines, floods aggregated (uvicorn's too)."""
    logging.basicConfig(level=level.upper())
    formatter = BoundedFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    flood = FloodFilter()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
        handler.addFilter(flood)
