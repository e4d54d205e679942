"""Node: one hubbub process — the media port, the stream registry, events and the ticker."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import replace

from hubbub.config import Config
from hubbub.control import messages
from hubbub.control.coordination import Coordinator, SingleNode
from hubbub.control.events import EventHub
from hubbub.control.metrics import NodeMetrics
from hubbub.control.recordings import create_recordings
from hubbub.control.stream_stats import RateMeter
from hubbub.control.webhooks import Webhooks
from hubbub.ingest.rtmp import RtmpServer
from hubbub.media.udp import MediaPort
from hubbub.sfu.stream import Stream, Streams

log = logging.getLogger(__name__)

# Stream names travel in URLs and JWT claims: keep them printable and bounded.
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_.\-~:@+]{1,128}$")

TICK_INTERVAL = 0.1
PACE_INTERVAL = 0.005  # probe padding granularity: 100 ms clusters in ~20 steps


class Node:
    """`coordinator` links the node to its cluster (default: none, `SingleNode`)."""

    def __init__(self, config: Config, coordinator: Coordinator | None = None) -> None:
        self.config = config
        self.account_id = "hubbub"
        self.coordinator: Coordinator = coordinator or SingleNode()
        self.cluster_id = self.coordinator.node_id
        self.port = MediaPort(config.media)
        self.hub = EventHub(
            self.stream_id, self.coordinator, config.control.viewercount_interval
        )
        self.streams = Streams(
            listener=self.hub,
            config=replace(config.sfu, media_timeout=config.control.media_timeout),
        )
        self.webhooks = Webhooks(config.webhooks)
        """Webhooks to the operator's backend: `emit(type, event, data)` only enqueues (never
        awaits or raises); control/webhooks/, docs/WEBHOOKS.md."""
        self.recordings = create_recordings(self)
        """Server-side recording (recording/, control/recordings.py)."""
        self.rtmp: RtmpServer | None = None
        """RTMP ingest (control/rtmp.py `attach_rtmp`), started and stopped with the node."""
        self._ticker: asyncio.Task[None] | None = None
        self._pacer: asyncio.Task[None] | None = None
        self.metrics = NodeMetrics(self)
        """Prometheus registry of this node, read by GET /metrics (control/metrics/)."""
        self.rates = RateMeter()
        """Bitrate and loss per Track for GET /api/streams (control/stream_stats.py)."""
        self.coordinator.attach(self)

    async def start(self) -> None:
        await self.port.start()
        if self.rtmp is not None:
            try:
                await self.rtmp.start()
            except OSError as exc:
                await self.port.stop()
                message = (f"cannot listen for RTMP on {self.rtmp.host}:{self.rtmp.port}: "
                           f"{exc.strerror or exc} (choose another --rtmp-port, or off)")
                log.error("%s", message)
                raise RuntimeError(message) from None
        self._ticker = asyncio.get_running_loop().create_task(self._tick())
        self.metrics.start()
        self.rates.start(self)
        await self.coordinator.start()

    async def stop(self) -> None:
        if self.rtmp is not None:
            await self.rtmp.close()  # encoders' sources unpublish while the sfu still runs
        await self.recordings.close()  # files finished before the media stops
        await self.coordinator.stop()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._pacer is not None:
            self._pacer.cancel()
        self.metrics.stop()
        self.rates.stop()
        await self.port.stop()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            try:
                self.streams.tick(time.monotonic())
                if self.streams.pace(time.monotonic()) and self._pacer is None:
                    self._pacer = asyncio.get_running_loop().create_task(self._pace())
            except Exception:
                log.exception("sfu tick failed")

    async def _pace(self) -> None:
        """Bandwidth probes leave at their rate, a packet every few ms, not as one burst
        per tick (sfu Viewer.pace); runs only while a probe is under way."""
        try:
            while True:
                await asyncio.sleep(PACE_INTERVAL)
                if not self.streams.pace(time.monotonic()):
                    return
        except Exception:
            log.exception("sfu probe pacing failed")
        finally:
            self._pacer = None

    def discard_if_empty(self, stream: Stream) -> None:
        """Forget a stream that a session created but never used (e.g. ICE never completed)."""
        self.streams.discard_if_empty(stream)

    # --- naming --------------------------------------------------------------------------

    def stream_id(self, name: str) -> str:
        return f"{self.account_id}/{name}"

    def strip_account(self, name: str) -> str:
        account, sep, rest = name.partition("/")
        return rest if sep and rest else name

    def check_stream_name(self, name: str) -> None:
        if not _STREAM_NAME.match(name):
            raise messages.ProtocolError(
                "invalid stream name: 1-128 characters of letters, digits and _.-~:@+"
            )
