"""Membership: which nodes are alive, as this node sees them.

Each heartbeat writes our record with a TTL and reads everyone's. A node whose record expired
is dead, but only once we have been connected to Redis for a whole TTL: right after Redis
restarted (empty) or after our own outage, absent records are refilling, not dead. A node
that stopped cleanly wrote state "left" and is gone at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from hubbub.cluster.records import LEFT, NodeRecord
from hubbub.cluster.store import Store

log = logging.getLogger(__name__)


@dataclass
class Changes:
    left: list[str] = field(default_factory=list)  # stopped cleanly since the last read
    dead: list[str] = field(default_factory=list)  # known to us, record expired
    expired: list[str] = field(default_factory=list)  # in the node set, record expired


class Membership:
    def __init__(self, store: Store, node_id: str, ttl: float) -> None:
        self._store = store
        self._node_id = node_id
        self._ttl = ttl
        self.nodes: dict[str, NodeRecord] = {}
        self.healthy = False
        self._healthy_since = 0.0
        self._beats = 0

    def lost(self) -> None:
        """Redis failed us (any command): the next successful beat starts a new TTL."""
        self.healthy = False

    def settled(self) -> bool:
        """Connected for a whole TTL: a node missing from the registry is dead."""
        return self.healthy and time.monotonic() - self._healthy_since >= self._ttl

    async def beat(self, record: NodeRecord) -> bool:
        """Write our record; True when our part of the registry must be written again
        (Redis came back, or others took us for dead after a stall past the TTL)."""
        was_there = await self._store.heartbeat(record, self._ttl)
        self._beats += 1
        if not self.healthy:
            self.healthy = True
            self._healthy_since = time.monotonic()
            if self._beats > 1:
                log.info("Redis reachable again: writing this node's part of the registry")
                return True
        elif not was_there:
            log.warning("this node's registry record had expired: writing its part again")
            return True
        return False

    async def read(self) -> Changes:
        live, expired = await self._store.nodes()
        before = self.nodes
        changes = Changes(expired=expired)
        for node_id, record in list(live.items()):
            if record.state == LEFT and node_id != self._node_id:
                del live[node_id]
                if node_id in before:
                    changes.left.append(node_id)
        changes.dead = [n for n in before if n not in live and n != self._node_id
                        and n not in changes.left]
        if not self.settled():
            for node_id in changes.dead:
                live[node_id] = before[node_id]
            changes.dead, changes.expired = [], []
        self.nodes = live
        for node_id in changes.left:
            log.info("node %s left the cluster", node_id)
        for node_id in changes.dead:
            log.warning("node %s left the cluster (no heartbeat for %.0f s)", node_id,
                        self._ttl)
        return changes
