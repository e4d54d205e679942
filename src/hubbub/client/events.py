"""An ordered log of signaling events that tests can wait on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]


class EventLog:
    """Keeps every event received, in order, and wakes ``wait_for`` callers on each new one."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.on_event: Callable[[str, dict[str, Any]], None] | None = None
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False

    def append(self, name: str, data: dict[str, Any]) -> None:
        self.events.append((name, data))
        if self.on_event is not None:
            self.on_event(name, data)
        self._wake()

    def close(self) -> None:
        """No more events will come: pending waiters fail instead of timing out."""
        self._closed = True
        self._wake()

    async def wait_for(
        self,
        name: str,
        predicate: Predicate | None = None,
        *,
        since: int = 0,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """Return the data of the first event named ``name`` (at index >= ``since``) for which
        ``predicate(data)`` is true, waiting up to ``timeout`` seconds for it to arrive.

        ``since=0`` also matches events that arrived before the call; pass ``len(log.events)``
        to wait for a new one. Raises ``TimeoutError``, or ``ConnectionError`` once closed.
        """
        try:
            async with asyncio.timeout(timeout):
                return await self._wait(name, predicate, since)
        except TimeoutError:
            seen = [event_name for event_name, _ in self.events[since:]]
            raise TimeoutError(
                f"no matching {name!r} event within {timeout} s (received since: {seen})"
            ) from None

    async def _wait(self, name: str, predicate: Predicate | None, index: int) -> dict[str, Any]:
        while True:
            while index < len(self.events):
                event_name, data = self.events[index]
                index += 1
                if event_name == name and (predicate is None or predicate(data)):
                    return data
            if self._closed:
                raise ConnectionError(f"signaling closed before a matching {name!r} event")
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
