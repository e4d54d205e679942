"""Stream stats for the admin API (GET /api/streams, /api/streams/{name}; admin_streams.py).

What a stream is made of right now, from the sfu's own counters: its sources (tracks, codec,
simulcast layers), their bitrate and loss, its viewers per node, its uptime. Bitrates and loss
are over the last `RATE_WINDOW` seconds: `RateMeter` samples every live Track's byte and
sequence counters that often (a few integer reads per Track, off the media path), so a reply
shows what flows now rather than an average since the start.

The pydantic models are the OpenAPI schema of the replies (/openapi.json, /docs).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from hubbub.control.node import Node
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream
    from hubbub.sfu.track import Track

RATE_WINDOW = 2.0  # seconds between two samples of the Tracks' counters


class LayerStats(BaseModel):
    encodingId: str = Field(description="RID, or the index in the SSRC group")
    bitrate: int = Field(description="bit/s of media over the last seconds")
    width: int = Field(description="of the last keyframe; 0 = not known")
    height: int
    active: bool = Field(description="packets arrived within the last second")


class TrackStats(BaseModel):
    mid: str
    kind: str = Field(description="audio or video")
    codec: str = Field(description="e.g. opus, vp8, h264")
    bitrate: int = Field(description="bit/s of media over the last seconds (all layers)")
    packets: int = Field(description="RTP packets received since the source started")
    packetsLost: int = Field(description="RTP packets never received (RFC 3550 A.3)")
    fractionLost: float = Field(description="share of packets lost over the last seconds")
    layers: list[LayerStats] = Field(description="simulcast layers; empty for one encoding")


class SourceStats(BaseModel):
    sourceId: str | None = Field(description="null for the main source")
    started: float = Field(description="when it went live, Unix time in seconds")
    uptime: float = Field(description="seconds since it went live")
    tracks: list[TrackStats]


class ViewerStats(BaseModel):
    total: int = Field(description="viewers of the stream on every node known here")
    nodes: dict[str, int] = Field(description="viewers per node id (this node's always shown)")


class StreamStats(BaseModel):
    streamName: str
    live: bool = Field(description="at least one source is live")
    uptime: float = Field(description="seconds since its first live source went live; 0 when "
                          "not live")
    sources: list[SourceStats]
    viewers: ViewerStats


class StreamStatsReply(BaseModel):
    status: str = "success"
    data: StreamStats


class StreamList(BaseModel):
    streams: list[StreamStats]


class StreamListReply(BaseModel):
    status: str = "success"
    data: StreamList


class RateMeter:
    """Per Track: media bit/s and loss over the last sample window (see the module doc)."""

    def __init__(self) -> None:
        # Track -> (media bytes, expected, received, at) of the last sample, and the rates.
        self._last: weakref.WeakKeyDictionary[Track, tuple[int, int, int, float]] = (
            weakref.WeakKeyDictionary())
        self._rates: weakref.WeakKeyDictionary[Track, tuple[int, float]] = (
            weakref.WeakKeyDictionary())
        self._task: asyncio.Task[None] | None = None

    def sample(self, node: Node, now: float) -> None:
        for stream in node.streams:
            for source in stream.sources.values():
                for track in source.all_tracks:
                    self._sample(track, now)

    def _sample(self, track: Track, now: float) -> None:
        media = track.bytes - track.padding_bytes
        expected = _expected(track)
        received = track.receive.received
        last = self._last.get(track)
        self._last[track] = (media, expected, received, now)
        if last is None or now <= last[3]:
            return
        elapsed = now - last[3]
        bitrate = int((media - last[0]) * 8 / elapsed)
        expected_delta = expected - last[1]
        lost = expected_delta - (received - last[2])
        fraction = lost / expected_delta if expected_delta > 0 and lost > 0 else 0.0
        self._rates[track] = (bitrate, round(fraction, 4))

    def rates(self, track: Track) -> tuple[int, float]:
        """(bit/s, fraction lost) of the last window; (0, 0.0) before the second sample."""
        return self._rates.get(track, (0, 0.0))

    def start(self, node: Node) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(node))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self, node: Node) -> None:
        while True:
            self.sample(node, time.monotonic())
            await asyncio.sleep(RATE_WINDOW)


def _expected(track: Track) -> int:
    receive = track.receive
    return receive.extended_max - receive.base_seq + 1 if receive.started else 0


def track_stats(track: Track, meter: RateMeter, now: float) -> TrackStats:
    layers = track.layers if track.simulcast else [track]
    bitrate = 0
    packets = lost = 0
    fractions: list[float] = []
    layer_stats: list[LayerStats] = []
    for layer in layers:
        layer_bitrate, fraction = meter.rates(layer)
        bitrate += layer_bitrate
        packets += layer.packets
        lost += max(0, _expected(layer) - layer.receive.received)
        fractions.append(fraction)
        if track.simulcast:
            layer_stats.append(LayerStats(
                encodingId=layer.encoding_id, bitrate=layer_bitrate, width=layer.width,
                height=layer.height, active=layer.active(now)))
    return TrackStats(mid=track.mid, kind=track.kind, codec=track.codec, bitrate=bitrate,
                      packets=packets, packetsLost=lost, fractionLost=max(fractions),
                      layers=layer_stats)


def source_stats(source: Source, meter: RateMeter, now: float, wall: float) -> SourceStats:
    uptime = max(0.0, now - source.started_at)
    return SourceStats(sourceId=source.source_id, started=round(wall - uptime, 3),
                       uptime=round(uptime, 3),
                       tracks=[track_stats(t, meter, now) for t in source.tracks])


def stream_stats(node: Node, stream: Stream, meter: RateMeter) -> StreamStats:
    now, wall = time.monotonic(), time.time()
    nodes = dict(node.coordinator.remote_viewers(stream.name))
    nodes[node.cluster_id] = len(stream.viewers)
    live = bool(stream.sources)
    return StreamStats(
        streamName=stream.name, live=live,
        uptime=round(max(0.0, now - stream.live_since), 3) if live else 0.0,
        sources=[source_stats(s, meter, now, wall)
                 for s in sorted(stream.sources.values(), key=lambda s: s.order)],
        viewers=ViewerStats(total=sum(nodes.values()), nodes=nodes),
    )
