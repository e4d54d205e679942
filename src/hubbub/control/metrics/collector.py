"""NodeCollector: the node's counters as Prometheus metrics, read when `/metrics` is scraped.

Nothing here runs per packet. The media and sfu layers count with plain ints as they always
did (`PortStats`, `TcpStats`, transport stats, Track/DownTrack counts); this reads them at
scrape time, summed over the node with the counts of objects already gone (sfu/totals.py,
`MediaPort.traffic`), so every counter only grows. The names are listed in
docs/OPERATIONS.md; the Grafana dashboard (deploy/grafana/) queries them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

import hubbub
from hubbub.media.udp import DROP_COUNTERS, TCP_DROP_COUNTERS
from hubbub.sfu.totals import node_totals

if TYPE_CHECKING:
    from prometheus_client import Metric

    from hubbub.control.auth.refusals import Refusals
    from hubbub.control.node import Node


def _counter(name: str, doc: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _by_label(name: str, doc: str, label: str,
              values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


def _count(listed: object) -> int:
    return len(listed) if isinstance(listed, list) else 0


class NodeCollector(Collector):
    """Gauges and counters of one Node (and of its Auth's refusals, once attached)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.refusals: Refusals | None = None

    def describe(self) -> list[Metric]:
        return []  # metrics are known only at collect time; the registry needs no names

    def collect(self) -> Iterator[Metric]:
        yield from self._gauges()
        yield from self._media()
        yield from self._drops()
        hooks = self.node.webhooks.stats
        yield _by_label("hubbub_webhook_events", "Webhook events: emitted (queued for a "
                        "receiver), delivered, failed (given up after the last attempt), "
                        "retried (attempts after the first), dropped (a full queue's oldest).",
                        "outcome", {"emitted": hooks.emitted, "delivered": hooks.delivered,
                                    "failed": hooks.failed, "retried": hooks.retried,
                                    "dropped": hooks.dropped})
        refusals = self.refusals
        if refusals is not None:
            yield _by_label("hubbub_token_refusals", "Credentials refused (WebSocket JWTs, "
                            "Director, WHIP/WHEP and RTMP tokens), by reason.", "reason",
                            refusals.counts)

    def _gauges(self) -> Iterator[Metric]:
        node = self.node
        streams = list(node.streams)
        info = InfoMetricFamily("hubbub", "This hubbub process.")
        info.add_metric([], {"version": getattr(hubbub, "__version__", "0"),
                             "node": node.cluster_id})
        yield info
        yield GaugeMetricFamily("hubbub_streams", "Streams known here (live, or with viewers "
                                "waiting for a source).", value=len(streams))
        yield GaugeMetricFamily("hubbub_live_streams", "Streams with at least one live source.",
                                value=sum(1 for s in streams if s.sources))
        yield GaugeMetricFamily("hubbub_sources", "Live sources on this node (relayed copies "
                                "from other nodes included).",
                                value=sum(len(s.sources) for s in streams))
        yield GaugeMetricFamily("hubbub_viewers", "Viewers connected to this node.",
                                value=sum(len(s.viewers) for s in streams))
        yield GaugeMetricFamily("hubbub_peer_connections", "WebRTC peer connections (ICE "
                                "transports) of this node, connected or not yet.",
                                value=len(node.port.transports))
        relays = GaugeMetricFamily("hubbub_relays", "Cluster relays: sources this node pulls "
                                   "from others (in), and feeds it sends to others (out).",
                                   labels=["direction"])
        cluster = node.coordinator.stats()
        relays.add_metric(["in"], _count(cluster.get("pulled")))
        relays.add_metric(["out"], sum(len(s.relays) for s in streams))
        yield relays
        yield GaugeMetricFamily("hubbub_relay_links", "SRTP links to other nodes of the "
                                "cluster (one per peer node in use).",
                                value=_count(cluster.get("links")))

    def _media(self) -> Iterator[Metric]:
        node = self.node
        t = node_totals(node.streams.retired, node.streams)
        yield _by_label("hubbub_packets_received", "RTP media packets accepted from publishers "
                        "(and relays), by kind.", "kind",
                        {"audio": t.audio_packets_in, "video": t.video_packets_in})
        yield _by_label("hubbub_packets_sent", "RTP media packets forwarded to viewers (and "
                        "relays), by kind; retransmissions not included.", "kind",
                        {"audio": t.audio_packets_out, "video": t.video_packets_out})
        wire = node.port.traffic()
        yield _counter("hubbub_bytes_received", "SRTP and SRTCP bytes received by peer "
                       "connections and relay links.", wire.bytes_in)
        yield _counter("hubbub_bytes_sent", "SRTP bytes sent by peer connections and relay "
                       "links (RTP; RTCP is not counted in bytes).", wire.bytes_out)
        yield _by_label("hubbub_rtcp_packets", "RTCP packets, by direction.", "direction",
                        {"in": wire.rtcp_in, "out": wire.rtcp_out})
        yield _counter("hubbub_srtp_errors", "Packets that failed SRTP protect or unprotect.",
                       wire.srtp_errors)
        yield _counter("hubbub_media_bytes_received", "RTP bytes (header and payload) of "
                       "the media packets accepted.", t.bytes_in)
        yield _counter("hubbub_nacks_received", "NACK feedback messages from viewers and "
                       "edges.", t.nacks_received)
        yield _counter("hubbub_retransmissions", "Packets resent from the cache in answer to "
                       "NACKs.", t.retransmissions)
        yield _counter("hubbub_nack_requests_sent", "Lost packets asked of publishers again "
                       "(sequence numbers in NACKs sent upstream).", t.nack_requests_sent)
        yield _counter("hubbub_plis_received", "Keyframe requests (PLI, FIR) from viewers.",
                       t.keyframe_requests_received)
        yield _counter("hubbub_plis_sent", "PLIs sent to publishers (after rate limiting).",
                       t.plis_sent)
        yield _counter("hubbub_multiplexer_switches", "Multiplexed audio slots given to "
                       "another source.", t.multiplexer_switches)

    def _drops(self) -> Iterator[Metric]:
        port = self.node.port
        drops = {name: int(getattr(port.stats, name)) for name in DROP_COUNTERS}
        tcp = port.tcp
        for name in TCP_DROP_COUNTERS:
            drops[f"tcp_{name}"] = int(getattr(tcp.stats, name)) if tcp is not None else 0
        yield _counter("hubbub_ice_tcp_connections", "ICE-TCP connections accepted.",
                       tcp.stats.accepted if tcp is not None else 0)
        yield _by_label("hubbub_dropped_datagrams", "Datagrams (and ICE-TCP connections or "
                        "frames: tcp_*) the media port dropped, by reason.", "reason", drops)
