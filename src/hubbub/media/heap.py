"""Giving freed C heap back to the operating system.

Each peer's OpenSSL DTLS connection (~140 KB) is freed after the handshake
(`DtlsEndpoint.release`), but glibc's malloc keeps freed memory in its arenas, so the
process's RSS would stay at its join-storm high-water mark. `malloc_trim(0)` returns free
pages anywhere in the heap (glibc ≥ 2.8, madvise). It costs a few milliseconds on a large
heap, so it runs lazily: once enough was freed, at most every `min_interval` seconds, from
the event loop. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from collections.abc import Callable

_trim: Callable[[int], int] | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
except (OSError, AttributeError):  # pragma: no cover - not glibc
    _trim = None


class Trimmer:
    def __init__(self, threshold: int = 4 * 1024 * 1024, min_interval: float = 5.0) -> None:
        self.threshold = threshold
        self.min_interval = min_interval
        self.trims = 0
        self._pending = 0
        self._last = float("-inf")
        self._due: asyncio.TimerHandle | None = None

    def freed(self, nbytes: int) -> None:
        """`nbytes` of C heap were just freed (an estimate is enough)."""
        if _trim is None:
            return
        self._pending += nbytes
        if self._pending < self.threshold or self._due is not None:
            return
        wait = max(0.0, self._last + self.min_interval - time.monotonic())
        self._due = asyncio.get_running_loop().call_later(wait, self._run)

    def _run(self) -> None:
        self._due = None
        self._pending = 0
        self._last = time.monotonic()
        if _trim is not None:
            _trim(0)
            self.trims += 1


TRIMMER = Trimmer()
