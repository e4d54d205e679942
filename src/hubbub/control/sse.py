"""A session's events as a server-sent event stream (the WHEP SSE extension).

The WebSocket's events, one SSE record each (WHATWG HTML §9.2): `event: <name>` and
`data: <the WebSocket event's data as JSON>`. Records wait in a bounded queue while no GET
reads them, so an EventSource that reconnects misses nothing; a reader that does not keep up
loses the queue and its stream is ended (the browser reconnects), as a WebSocket that does not
read is closed: a client must not hold the server's memory. After such a loss the stream starts
over with `active` for every live source, what a new reader needs to know.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

HEARTBEAT = 15.0
"""Seconds between comment lines on an idle stream, so proxies keep it open."""

_HEARTBEAT_RECORD = b": keep-alive\n\n"


def record(name: str, data: dict[str, Any] | None) -> bytes:
    payload = json.dumps(data if data is not None else {}, separators=(",", ":"))
    return f"event: {name}\ndata: {payload}\n\n".encode()


class EventChannel:
    """Bounded SSE records of one session, read by at most one GET at a time."""

    def __init__(self, max_bytes: int, snapshot: Callable[[], list[bytes]]) -> None:
        self.max_bytes = max_bytes
        self._snapshot = snapshot
        self._records: deque[bytes] = deque(snapshot())
        self._bytes = sum(len(r) for r in self._records)
        self._wakeup = asyncio.Event()
        self._reader = 0  # the GET that reads now; an older one ends
        self.closed = False
        self.overflows = 0

    def push(self, data: bytes) -> None:
        if self.closed:
            return
        if self._bytes + len(data) > self.max_bytes:
            # The reader does not keep up: end its stream; the next one starts from a snapshot.
            self.overflows += 1
            self._records = deque(self._snapshot())
            self._bytes = sum(len(r) for r in self._records)
            self._reader += 1
        else:
            self._records.append(data)
            self._bytes += len(data)
        self._wakeup.set()

    def close(self) -> None:
        """No more records; a reader still gets those queued (e.g. the `error` event that
        says why the session ended), then its stream ends."""
        self.closed = True
        self._wakeup.set()

    async def stream(self) -> AsyncIterator[bytes]:
        """The body of one GET: queued records, then new ones as they come."""
        self._reader += 1
        me = self._reader
        self._wakeup.set()  # a reader this one replaces wakes up and ends
        yield b"retry: 2000\n\n"  # the reconnection delay (WHATWG HTML §9.2.6)
        while me == self._reader:
            if self._records:
                batch = b"".join(self._records)
                self._records.clear()
                self._bytes = 0
                yield batch
                continue
            if self.closed:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), HEARTBEAT)
            except TimeoutError:
                yield _HEARTBEAT_RECORD
