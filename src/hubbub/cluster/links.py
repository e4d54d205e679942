"""Relay links of this node, one per peer node, made on first use from the peer's record."""

from __future__ import annotations

import logging

from hubbub.cluster.records import NodeRecord
from hubbub.media.relay_link import LinkKey, RelayLink
from hubbub.media.udp import MediaPort

log = logging.getLogger(__name__)


class Links:
    def __init__(self, port: MediaPort, node_id: str, key: LinkKey) -> None:
        self._port = port
        self._node_id = node_id
        self._key = key
        self._links: dict[str, tuple[NodeRecord, RelayLink]] = {}

    def get(self, peer: NodeRecord) -> RelayLink:
        """The link to `peer`; a new one if the peer restarted or moved (new key, address)."""
        known = self._links.get(peer.id)
        if known is not None:
            record, link = known
            if (record.link_key == peer.link_key and record.media == peer.media
                    and not link.closed):
                return link
            link.close("peer record changed")
        keys = self._key.srtp_keys(self._node_id, peer.id, peer.link_key)
        link = RelayLink(self._port, peer.media, keys, peer.id)
        self._links[peer.id] = (peer, link)
        log.info("relay link to %s at %s:%d", peer.id, *peer.media)
        return link

    def find(self, peer_id: str) -> RelayLink | None:
        known = self._links.get(peer_id)
        return known[1] if known is not None else None

    def drop(self, peer_id: str, reason: str) -> None:
        known = self._links.pop(peer_id, None)
        if known is not None:
            known[1].close(reason)

    def close(self) -> None:
        for peer_id in list(self._links):
            self.drop(peer_id, "node stopping")

    def stats(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for peer_id, (_record, link) in sorted(self._links.items()):
            s = link.stats
            out.append({"peer": peer_id, "rtpIn": s.rtp_in, "rtpOut": s.rtp_out,
                        "rtcpIn": s.rtcp_in, "rtcpOut": s.rtcp_out,
                        "srtpErrors": s.srtp_errors, "unrouted": link.unrouted})
        return out
