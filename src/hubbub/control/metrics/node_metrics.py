"""NodeMetrics: one node's Prometheus registry — the scrape-time collector, the join-time and
event-loop-lag histograms, and the task that measures the lag.

A registry per node, not the library's global one: tests and `--workers` run several nodes,
and each serves its own `/metrics`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from hubbub.control.metrics.collector import NodeCollector

if TYPE_CHECKING:
    from hubbub.control.auth.refusals import Refusals
    from hubbub.control.node import Node

log = logging.getLogger(__name__)

LAG_INTERVAL = 0.5  # seconds between two lag samples
JOIN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class NodeMetrics:
    def __init__(self, node: Node) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = NodeCollector(node)
        self.registry.register(self.collector)
        self.join_seconds = Histogram(
            "hubbub_join_seconds",
            "From a publish or view command (WebSocket, WHIP or WHEP) to its peer connection "
            "connected (ICE and DTLS done: the source is live, the viewer receives media).",
            ["role"], buckets=JOIN_BUCKETS, registry=self.registry,
        )
        for role in ("publish", "view"):
            self.join_seconds.labels(role)  # both series exist before the first join
        self.loop_lag = Histogram(
            "hubbub_event_loop_lag_seconds",
            f"How late the event loop woke a task that slept {LAG_INTERVAL} s (time spent in "
            "callbacks that did not yield: everything on this process waits that long).",
            buckets=LAG_BUCKETS, registry=self.registry,
        )
        self._lag_task: asyncio.Task[None] | None = None

    def count_refusals(self, refusals: Refusals) -> None:
        """Report these credential refusals (the node's Auth) as hubbub_token_refusals."""
        self.collector.refusals = refusals

    def joined(self, role: str, asked_at: float) -> None:
        """A session's peer connection connected; `asked_at` (monotonic) was its command."""
        self.join_seconds.labels(role).observe(max(0.0, time.monotonic() - asked_at))

    def exposition(self) -> bytes:
        """The Prometheus text format of everything (what GET /metrics answers)."""
        return generate_latest(self.registry)

    def start(self) -> None:
        if self._lag_task is None:
            self._lag_task = asyncio.get_running_loop().create_task(self._measure_lag())

    def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            self._lag_task = None

    async def _measure_lag(self) -> None:
        clock = time.monotonic
        while True:
            before = clock()
            await asyncio.sleep(LAG_INTERVAL)
            self.loop_lag.observe(max(0.0, clock() - before - LAG_INTERVAL))
