"""Settings of a node in a cluster (`hubbub serve --redis ...`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ClusterConfig:
    redis_url: str
    node_id: str
    url: str
    """ws(s)://host:port the Director sends clients to when it places them on this node."""

    relay_host: str = "127.0.0.1"
    """Address other nodes send relayed media to (this node's media port)."""

    heartbeat: float = 1.0
    """Seconds between registry heartbeats (node record, load, liveness of the others)."""

    ttl: float = 5.0
    """A node record expires this long after its last heartbeat: a node killed without
    warning leaves the registry within ttl + heartbeat (6 s with the defaults, ≤ 10 s)."""

    capacity: int = 500
    """Peer connections a node takes before the Director prefers others (placement weight)."""

    placement_slack: float = 0.05
    """Nodes within this fraction of capacity of the least-loaded one count as equally loaded;
    among those the Director prefers nodes that already carry the stream (no new relay)."""

    wants_refresh: float = 5.0
    """Seconds between full re-sends of an edge's wanted streams to its origins (covers
    messages lost while Redis was unreachable)."""

    ready_timeout: float = 2.0
    """Longest a `view` waits for the stream's remote sources before answering anyway."""

    host: str = ""
    worker: int = 0
