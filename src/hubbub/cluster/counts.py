"""Stream-wide viewer counts: this node's own count per stream, and the other nodes' counts of
the streams this node has sessions of (from the registry, then from `count` messages)."""

from __future__ import annotations

from collections.abc import Callable


class ViewerCounts:
    """`report(stream, total)` is called whenever a stream-wide total may have changed."""

    def __init__(self, node_id: str, report: Callable[[str, int], None]) -> None:
        self._node_id = node_id
        self._report = report
        self.local: dict[str, int] = {}
        self.remote: dict[str, dict[str, int]] = {}  # watched stream -> node -> count
        self.dirty: set[str] = set()  # local counts not yet written to Redis

    def total(self, stream: str) -> int:
        return self.local.get(stream, 0) + sum(self.remote.get(stream, {}).values())

    def set_local(self, stream: str, count: int) -> None:
        if count > 0:
            self.local[stream] = count
        else:
            self.local.pop(stream, None)
        self.dirty.add(stream)
        self._report(stream, self.total(stream))

    def take_dirty(self) -> dict[str, int]:
        """Local counts to write (0 = remove this node's entry)."""
        out = {stream: self.local.get(stream, 0) for stream in self.dirty}
        self.dirty.clear()
        return out

    def watch(self, stream: str, counts: dict[str, int], live: set[str]) -> None:
        """Start following `stream` with the registry's counts of live nodes."""
        self.remote[stream] = {n: c for n, c in counts.items()
                               if n != self._node_id and n in live and c > 0}
        self._report(stream, self.total(stream))

    def unwatch(self, stream: str) -> None:
        self.remote.pop(stream, None)

    def on_message(self, stream: str, node_id: str, count: int) -> None:
        remote = self.remote.get(stream)
        if remote is None or node_id == self._node_id:
            return
        if count > 0:
            remote[node_id] = count
        else:
            remote.pop(node_id, None)
        self._report(stream, self.total(stream))

    def node_gone(self, node_id: str) -> None:
        for stream, remote in self.remote.items():
            if remote.pop(node_id, None) is not None:
                self._report(stream, self.total(stream))
