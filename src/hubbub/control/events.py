"""EventHub: turns sfu stream changes into protocol events for the sessions of each stream.

It is the sfu's StreamListener. Payloads follow PROTOCOL.md "events" exactly.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hubbub.control.node import Node
    from hubbub.control.publish import PublisherSession
    from hubbub.control.view import ViewerSession
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream
    from hubbub.sfu.viewer import Viewer

log = logging.getLogger(__name__)


class EventHub:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._viewers: dict[str, set[ViewerSession]] = {}
        self._publishers: dict[str, set[PublisherSession]] = {}
        self._owners: dict[int, PublisherSession] = {}  # id(Source) -> its publisher session
        # id(media transport) -> session: an sfu Viewer's sink is its session's transport, known
        # before the Viewer exists (the first slots are filled inside Stream.add_viewer).
        self._by_sink: dict[int, ViewerSession] = {}
        self._counts: dict[str, int] = {}
        self._count_due: dict[str, asyncio.TimerHandle] = {}
        self._count_sent: dict[str, int] = {}
        self._count_time: dict[str, float] = {}

    # --- session registry ----------------------------------------------------------------

    def add_viewer(self, stream: str, session: ViewerSession) -> None:
        self._viewers.setdefault(stream, set()).add(session)
        if session.transport is not None:
            self._by_sink[id(session.transport)] = session

    def remove_viewer(self, stream: str, session: ViewerSession) -> None:
        if session.transport is not None and self._by_sink.get(id(session.transport)) is session:
            del self._by_sink[id(session.transport)]
        sessions = self._viewers.get(stream)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._viewers[stream]

    def add_publisher(self, stream: str, session: PublisherSession) -> None:
        self._publishers.setdefault(stream, set()).add(session)

    def remove_publisher(self, stream: str, session: PublisherSession) -> None:
        sessions = self._publishers.get(stream)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._publishers[stream]

    def bind_source(self, source: Source, session: PublisherSession) -> None:
        self._owners[id(source)] = session

    def unbind_source(self, source: Source) -> None:
        self._owners.pop(id(source), None)

    def owner_of(self, source: Source) -> PublisherSession | None:
        """The publisher session feeding `source`, if it is still bound."""
        return self._owners.get(id(source))

    def viewer_sessions(self, stream: str) -> list[ViewerSession]:
        """Every viewer session of a stream, connected or still negotiating."""
        return list(self._viewers.get(stream, ()))

    # --- payloads ------------------------------------------------------------------------

    def active_payload(self, stream: Stream, source: Source) -> dict[str, Any]:
        return {
            "streamId": self.node.stream_id(stream.name),
            "sourceId": source.source_id,
            "tracks": [{"trackId": t.mid, "media": t.kind} for t in source.tracks],
        }

    def _to_viewers(self, stream: Stream, name: str, data: dict[str, Any] | None) -> None:
        for session in list(self._viewers.get(stream.name, ())):
            session.send_event(name, data)

    # --- StreamListener ------------------------------------------------------------------

    def source_active(self, stream: Stream, source: Source) -> None:
        self._to_viewers(stream, "active", self.active_payload(stream, source))

    def source_inactive(self, stream: Stream, source: Source) -> None:
        self._to_viewers(
            stream,
            "inactive",
            {"streamId": self.node.stream_id(stream.name), "sourceId": source.source_id},
        )

    def stopped(self, stream: Stream) -> None:
        self._to_viewers(stream, "stopped", {"streamId": self.node.stream_id(stream.name)})

    def source_timed_out(self, stream: Stream, source: Source) -> None:
        owner = self._owners.get(id(source))
        log.info("source %r of %s sent no media: ending it", source.source_id, stream.name)
        if owner is not None:
            owner.terminate("no media received")
        else:
            stream.unpublish(source)

    def slot_changed(
        self, stream: Stream, viewer: Viewer, mid: str, source_id: str | None
    ) -> None:
        """PROTOCOL.md `vad`: to that viewer only, when a multiplexed track changes source."""
        session = self._by_sink.get(id(viewer.sink))
        if session is not None:
            session.send_event("vad", {"mediaId": mid, "sourceId": source_id})

    def viewer_count(self, stream: Stream, count: int) -> None:
        previous = self._counts.get(stream.name, 0)
        self._counts[stream.name] = count
        # On a publisher socket, active/inactive mean first viewer joined / last viewer left.
        if previous == 0 and count > 0:
            for pub in list(self._publishers.get(stream.name, ())):
                pub.send_event("active", {"streamId": self.node.stream_id(stream.name)})
        elif previous > 0 and count == 0:
            for pub in list(self._publishers.get(stream.name, ())):
                pub.send_event("inactive", {"streamId": self.node.stream_id(stream.name)})
        if stream.name in self._count_due:
            return
        # Coalesce: at most one viewercount per interval (PROTOCOL.md), with the latest value.
        loop = asyncio.get_running_loop()
        interval = self.node.config.control.viewercount_interval
        wait = self._count_time.get(stream.name, -interval) + interval - loop.time()
        self._count_due[stream.name] = loop.call_later(max(wait, 0.0), self._send_count, stream)

    def _send_count(self, stream: Stream) -> None:
        self._count_due.pop(stream.name, None)
        self._count_time[stream.name] = asyncio.get_running_loop().time()
        count = self._counts.get(stream.name, 0)
        if self._count_sent.get(stream.name) == count:
            return
        self._count_sent[stream.name] = count
        data = {"viewercount": count}
        self._to_viewers(stream, "viewercount", data)
        for pub in list(self._publishers.get(stream.name, ())):
            pub.send_event("viewercount", data)
        if count == 0 and stream.name not in self._viewers:
            self._counts.pop(stream.name, None)
            self._count_sent.pop(stream.name, None)
            self._count_time.pop(stream.name, None)
