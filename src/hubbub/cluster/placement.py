"""Where the Director sends a client: the least-loaded healthy node, and among the nodes about
as lightly loaded as that one, a node that already carries the stream (a viewer or publisher
there costs no new relay)."""

from __future__ import annotations

from collections.abc import Iterable

from hubbub.cluster.records import NodeRecord


def choose(
    nodes: Iterable[NodeRecord],
    loads: dict[str, int],
    carriers: set[str],
    slack: float,
    prefer: str,
) -> NodeRecord | None:
    """`loads` are current peer-connection counts by node id (a record's own `load` is a
    heartbeat old); `prefer` (this node) wins exact ties, so a lone node places on itself."""
    healthy = [n for n in nodes if n.healthy]
    if not healthy:
        return None

    def score(n: NodeRecord) -> float:
        return loads.get(n.id, n.load) / n.capacity

    best = min(score(n) for n in healthy)
    pool = [n for n in healthy if score(n) <= best + slack]
    return min(pool, key=lambda n: (n.id not in carriers, score(n), n.id != prefer, n.id))
