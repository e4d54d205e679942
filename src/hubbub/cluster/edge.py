"""The edge side: copies of other nodes' sources for the streams this node has viewers of.

A copy is an ordinary sfu Source fed by a relay link (one relay SSRC per simulcast layer,
under the origin's encoding ids), published into the local Stream under the same sourceId,
so forwarding, layer choice, multiplexing, projection and the `active` / `inactive` /
`stopped` events are the single-node code paths. A newer claim for a sourceId (republished on
another node) is published over the copy: the Stream moves the viewers' DownTracks, seamless
as a local replacement.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hubbub.cluster.links import Links
from hubbub.cluster.records import NodeRecord, SourceClaim
from hubbub.media.relay_link import RelayLink
from hubbub.sfu.relay import edge_track_params
from hubbub.sfu.source import Source
from hubbub.sfu.stream import Streams

log = logging.getLogger(__name__)


@dataclass
class Copy:
    claim: SourceClaim
    source: Source
    link: RelayLink


class Edge:
    def __init__(self, streams: Streams, links: Links) -> None:
        self._streams = streams
        self._links = links
        self.pulled: dict[str, dict[str | None, Copy]] = {}  # stream -> sourceId -> copy

    def is_copy(self, stream: str, source: Source) -> bool:
        copy = self.pulled.get(stream, {}).get(source.source_id)
        return copy is not None and copy.source is source

    def current(self, stream: str, source_id: str | None) -> Copy | None:
        return self.pulled.get(stream, {}).get(source_id)

    def origins(self) -> dict[str, set[str]]:
        """Origin node id -> the pulled streams it hosts sources of."""
        out: dict[str, set[str]] = {}
        for stream, copies in self.pulled.items():
            for copy in copies.values():
                out.setdefault(copy.claim.node, set()).add(stream)
        return out

    def start(self, stream: str) -> None:
        self.pulled.setdefault(stream, {})

    def apply(self, claim: SourceClaim, origin: NodeRecord) -> bool:
        """Follow `claim` if this node pulls its stream and it is newer than what we have;
        True when the local Stream now carries the claimed source from `origin`."""
        copies = self.pulled.get(claim.stream)
        if copies is None:
            return False
        current = copies.get(claim.source_id)
        if current is not None:
            if current.claim.epoch >= claim.epoch:
                return False
            if current.claim.node == claim.node and current.claim.ssrcs == claim.ssrcs:
                current.claim = claim  # the same feed, claimed again (e.g. Redis restarted)
                return True
        stream = self._streams.get_or_create(claim.stream)
        link = self._links.get(origin)
        params = [edge_track_params(t) for t in claim.tracks]
        # Replaces a local source or an older copy without viewers noticing (Stream.publish).
        source = stream.publish(claim.source_id, params, link)
        copy = Copy(claim, source, link)
        source.on_replaced = lambda: self._replaced(copy)
        copies[claim.source_id] = copy
        for ssrc in claim.ssrcs:
            link.rtp_routes[ssrc] = source.on_rtp
            link.rtcp_routes[ssrc] = source.on_rtcp
        log.info("pulling %s/%s from %s (epoch %d)", claim.stream, claim.source_id,
                 claim.node, claim.epoch)
        return True

    def _replaced(self, copy: Copy) -> None:
        """A newer copy or a local publisher took the sourceId over in the Stream."""
        self._unroute(copy)
        copies = self.pulled.get(copy.claim.stream)
        if copies is not None and copies.get(copy.claim.source_id) is copy:
            del copies[copy.claim.source_id]

    def _unroute(self, copy: Copy) -> None:
        for ssrc in copy.claim.ssrcs:
            if copy.link.rtp_routes.get(ssrc) == copy.source.on_rtp:
                del copy.link.rtp_routes[ssrc]
            if copy.link.rtcp_routes.get(ssrc) == copy.source.on_rtcp:
                del copy.link.rtcp_routes[ssrc]

    def release(self, stream: str, source_id: str | None, node: str, epoch: int) -> bool:
        """The origin ended the source: `inactive` here too. True if we had that copy."""
        copy = self.current(stream, source_id)
        if copy is None or copy.claim.node != node or copy.claim.epoch != epoch:
            return False
        self._remove(copy)
        return True

    def _remove(self, copy: Copy) -> None:
        self._unroute(copy)
        copies = self.pulled.get(copy.claim.stream)
        if copies is not None and copies.get(copy.claim.source_id) is copy:
            del copies[copy.claim.source_id]
        stream = self._streams.get(copy.claim.stream)
        if stream is not None:
            stream.unpublish(copy.source)  # `inactive`, and `stopped` for the last one

    def node_gone(self, node_id: str) -> list[SourceClaim]:
        """Every copy from a dead node ends; the claims it held, for cleanup."""
        gone = [c for copies in self.pulled.values() for c in copies.values()
                if c.claim.node == node_id]
        for copy in gone:
            self._remove(copy)
        return [c.claim for c in gone]

    def stop(self, stream: str) -> None:
        """The last local viewer left: drop the copies (the origins stop their feeds when
        they get our new wants)."""
        for copy in list(self.pulled.get(stream, {}).values()):
            self._remove(copy)
        self.pulled.pop(stream, None)

    def stats(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for stream, copies in sorted(self.pulled.items()):
            for copy in copies.values():
                out.append({"stream": stream, "sourceId": copy.claim.source_id,
                            "origin": copy.claim.node, "epoch": copy.claim.epoch,
                            "packets": sum(t.packets for t in copy.source.all_tracks)})
        return out
