"""Coordinator: what a node tells the rest of its cluster, and asks of it.

Control calls these hooks at the points where a node's view of a stream matters beyond the
node: a local publisher goes live or away, the local viewer count changes, a socket is about
to view a stream (its remote sources should be here first), the Director places a client.
`SingleNode` is the whole story without a cluster; `hubbub.cluster.ClusterCoordinator`
implements the same hooks over Redis and relays. Dependencies point down: control defines the
hooks, cluster implements them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hubbub.control.node import Node
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream


class Interest(Protocol):
    """A local session's interest in one stream, held from its command until it ends."""

    async def ready(self) -> None:
        """Wait (bounded) until the stream's sources on other nodes are available here."""

    def release(self) -> None:
        """The session is gone; idempotent."""


class Coordinator(Protocol):
    node_id: str
    draining: bool

    def attach(self, node: Node) -> None:
        """Called once by the Node that uses this coordinator."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def begin_drain(self) -> None:
        """SIGTERM: take no new clients (the Director places none here) until the node stops."""

    def interest(self, stream: str, role: str) -> Interest:
        """A `publish` or `view` session on `stream` begins on this node."""

    def source_published(self, stream: Stream, source: Source) -> None:
        """A local publisher's Source went live (also when it replaced a live sourceId)."""

    def source_unpublished(self, stream: Stream, source: Source) -> None:
        """A local publisher's Source ended (not when a newer publish replaced it)."""

    def viewers_changed(self, stream: str, local: int) -> None:
        """This node's viewer count of `stream`; the node's hub hears the stream-wide total
        through `EventHub.total_viewers`."""

    def source_timed_out(self, stream: Stream, source: Source) -> bool:
        """True when `source` is not a local publisher's and the coordinator handles it."""

    async def stop_remote_source(self, stream: str, source_id: str, reason: str) -> bool:
        """Ask the node hosting `source_id` of `stream` to end its publisher; False when no
        other node hosts it."""

    async def place(self, role: str, stream: str) -> str | None:
        """The base URL (ws://host:port) of the node a Director client should use; None for
        this node."""

    def stats(self) -> dict[str, Any]:
        """What the node's admin API shows about the cluster."""

    def remote_viewers(self, stream: str) -> dict[str, int]:
        """Other nodes' viewer counts of `stream` (node id -> count), as far as this node
        follows them (streams it has sessions of); {} without a cluster."""


class _NoInterest:
    async def ready(self) -> None:
        return None

    def release(self) -> None:
        return None


class SingleNode:
    """No cluster: every source is local and the local viewer count is the whole count."""

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self.draining = False
        self._node: Node | None = None

    def attach(self, node: Node) -> None:
        self._node = node

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def begin_drain(self) -> None:
        self.draining = True

    def interest(self, stream: str, role: str) -> Interest:
        return _NoInterest()

    def source_published(self, stream: Stream, source: Source) -> None:
        return None

    def source_unpublished(self, stream: Stream, source: Source) -> None:
        return None

    def viewers_changed(self, stream: str, local: int) -> None:
        if self._node is not None:
            self._node.hub.total_viewers(stream, local)

    def source_timed_out(self, stream: Stream, source: Source) -> bool:
        return False

    async def stop_remote_source(self, stream: str, source_id: str, reason: str) -> bool:
        return False

    async def place(self, role: str, stream: str) -> str | None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"node": self.node_id, "cluster": False}

    def remote_viewers(self, stream: str) -> dict[str, int]:
        return {}
