"""The origin side: sources published on this node, and their relay feeds to edges.

An edge asks for whole streams ("wants"); every source of such a stream hosted here is fed to
it, including sources published later. One feed per source per edge: a node's viewers never
cost the origin more than one copy of each packet.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field

from hubbub.cluster.links import Links
from hubbub.cluster.records import NodeRecord, SourceClaim
from hubbub.sfu.relay import RelayFeed, relayed_track_params
from hubbub.sfu.source import Source
from hubbub.sfu.stream import Streams
from hubbub.sfu.types import TrackParams

log = logging.getLogger(__name__)

SourceKey = tuple[str, str | None]  # (stream, sourceId)


@dataclass
class Hosted:
    """A local publisher's Source and how the cluster knows it."""

    stream: str
    source: Source
    ssrcs: list[int]  # relay SSRC per layer (`Source.all_tracks`), unique on this node
    claim: SourceClaim | None = None  # as written to Redis (None until then)
    text: str = ""  # the claim's JSON exactly as written (compare-and-delete on release)
    feeds: dict[str, RelayFeed] = field(default_factory=dict)  # edge id -> feed

    @property
    def shape(self) -> list[tuple[str, list[str]]]:
        return _shape(self.source)

    def claim_tracks(self) -> list[TrackParams]:
        """The claim's tracks: what edges need to pull every layer under its relay SSRC."""
        return relayed_track_params(self.source, self.ssrcs)


def _shape(source: Source) -> list[tuple[str, list[str]]]:
    """Kind and layer encoding ids per m-line: a republish of the same shape keeps the relay
    SSRCs (each relay DownTrack moves to the same layer of the new Source)."""
    return [(t.kind, [layer.encoding_id for layer in t.layers]) for t in source.tracks]


class Origin:
    def __init__(self, streams: Streams, links: Links) -> None:
        self._streams = streams
        self._links = links
        self.hosted: dict[SourceKey, Hosted] = {}
        self.wants: dict[str, set[str]] = {}  # edge id -> streams it pulls from us
        self._ssrcs: set[int] = set()

    def _new_ssrc(self) -> int:
        while True:
            ssrc = secrets.randbits(32)
            if ssrc and ssrc not in self._ssrcs:
                self._ssrcs.add(ssrc)
                return ssrc

    def published(self, stream: str, source: Source, edges: dict[str, NodeRecord]) -> Hosted:
        """A local Source went live. Republishing a sourceId hosted here keeps its relay SSRCs
        and feeds: the Stream moved the feeds' DownTracks onto the new Tracks, so edges see one
        continuous stream, as local viewers do."""
        key = (stream, source.source_id)
        old = self.hosted.get(key)
        if old is not None and old.shape == _shape(source):
            old.source = source
            return old
        if old is not None:
            self._drop(key)
        hosted = Hosted(stream, source, [self._new_ssrc() for _ in source.all_tracks])
        self.hosted[key] = hosted
        for edge_id, wanted in self.wants.items():
            record = edges.get(edge_id)
            if stream in wanted and record is not None:
                self._feed(hosted, record)
        return hosted

    def unpublished(self, stream: str, source: Source) -> Hosted | None:
        """A local Source ended; its Hosted entry if it was the current one."""
        key = (stream, source.source_id)
        hosted = self.hosted.get(key)
        if hosted is None or hosted.source is not source:
            return None
        return self._drop(key)

    def give_up(self, key: SourceKey) -> Hosted | None:
        """Another node took the sourceId over: stop feeding it (edges follow the new claim)."""
        return self._drop(key)

    def _drop(self, key: SourceKey) -> Hosted | None:
        hosted = self.hosted.pop(key, None)
        if hosted is None:
            return None
        for edge_id in list(hosted.feeds):
            self._unfeed(hosted, edge_id)
        self._ssrcs.difference_update(hosted.ssrcs)
        return hosted

    def set_wants(self, edge: NodeRecord, streams: set[str]) -> None:
        """An edge's full list of the streams it pulls from us."""
        self.wants[edge.id] = streams
        for hosted in self.hosted.values():
            if hosted.stream in streams:
                self._feed(hosted, edge)
            elif edge.id in hosted.feeds:
                self._unfeed(hosted, edge.id)
        if not streams:
            del self.wants[edge.id]

    def edge_gone(self, edge_id: str) -> None:
        self.wants.pop(edge_id, None)
        for hosted in self.hosted.values():
            if edge_id in hosted.feeds:
                self._unfeed(hosted, edge_id)

    def _feed(self, hosted: Hosted, edge: NodeRecord) -> None:
        if edge.id in hosted.feeds:
            return
        stream = self._streams.get(hosted.stream)
        if stream is None or stream.sources.get(hosted.source.source_id) is not hosted.source:
            return
        link = self._links.get(edge)
        feed = stream.add_relay(hosted.source, hosted.ssrcs, link)
        hosted.feeds[edge.id] = feed
        for ssrc in hosted.ssrcs:
            link.rtcp_routes[ssrc] = feed.on_rtcp
        log.info("relay %s/%s -> %s", hosted.stream, hosted.source.source_id, edge.id)

    def _unfeed(self, hosted: Hosted, edge_id: str) -> None:
        feed = hosted.feeds.pop(edge_id)
        link = self._links.find(edge_id)
        if link is not None:
            for ssrc in hosted.ssrcs:
                link.rtcp_routes.pop(ssrc, None)
        stream = self._streams.get(hosted.stream)
        if stream is not None:
            stream.remove_relay(feed)
        else:
            feed.close()
        log.info("relay %s/%s -> %s stopped", hosted.stream, hosted.source.source_id, edge_id)

    def stats(self) -> list[dict[str, object]]:
        return [
            {"stream": h.stream, "sourceId": h.source.source_id,
             "epoch": h.claim.epoch if h.claim else None,
             "packets": sum(t.packets for t in h.source.all_tracks),
             "feeds": {edge: f.packets_sent for edge, f in sorted(h.feeds.items())}}
            for h in self.hosted.values()
        ]
