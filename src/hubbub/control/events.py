"""EventHub: turns sfu stream changes into protocol events for the sessions of each stream.

It is the sfu's StreamListener. Payloads follow PROTOCOL.md "events" exactly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hubbub.control.coordination import Coordinator
    from hubbub.control.publish import PublisherSession
    from hubbub.control.view import ViewerSession
    from hubbub.control.webhooks.feeds import FeedEvents
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream
    from hubbub.sfu.viewer import Viewer

log = logging.getLogger(__name__)


class SourceOwner(Protocol):
    """What feeds a local Source: a WebRTC `PublisherSession` or an RTMP publication
    (control/rtmp.py); the admin API and the cluster end it through these."""

    def terminate(self, reason: str) -> None:
        """End the publication (its Source unpublishes) and disconnect the publisher."""

    def replaced(self) -> None:
        """The Source was taken over (here or on another node): drop the feed quietly."""


class EventHub:
    """`stream_id` names a stream in payloads ("account/name"); viewer counts go through the
    `coordinator`, which answers with the stream-wide total (`total_viewers`)."""

    def __init__(
        self,
        stream_id: Callable[[str], str],
        coordinator: Coordinator,
        viewercount_interval: float,
    ) -> None:
        self.stream_id = stream_id
        self.coordinator = coordinator
        self.viewercount_interval = viewercount_interval
        self._viewers: dict[str, set[ViewerSession]] = {}
        self._publishers: dict[str, set[PublisherSession]] = {}
        self._owners: dict[int, SourceOwner] = {}  # id(Source) -> what feeds it
        # id(media transport) -> session: an sfu Viewer's sink is its session's transport, known
        # before the Viewer exists (the first slots are filled inside Stream.add_viewer).
        self._by_sink: dict[int, ViewerSession] = {}
        self._counts: dict[str, int] = {}
        self._count_due: dict[str, asyncio.TimerHandle] = {}
        self._count_sent: dict[str, int] = {}
        self._count_time: dict[str, float] = {}
        self.feeds: FeedEvents | None = None
        """Webhook events of these changes (control/webhooks/feeds.py), when attached."""

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

    def bind_source(self, source: Source, owner: SourceOwner) -> None:
        self._owners[id(source)] = owner

    def unbind_source(self, source: Source) -> None:
        self._owners.pop(id(source), None)

    def owner_of(self, source: Source) -> SourceOwner | None:
        """The publisher session (or RTMP publication) feeding `source`, if still bound."""
        return self._owners.get(id(source))

    def viewer_sessions(self, stream: str) -> list[ViewerSession]:
        """Every viewer session of a stream, connected or still negotiating."""
        return list(self._viewers.get(stream, ()))

    # --- payloads ------------------------------------------------------------------------

    def active_payload(self, stream: Stream, source: Source) -> dict[str, Any]:
        return {
            "streamId": self.stream_id(stream.name),
            "sourceId": source.source_id,
            "tracks": [{"trackId": t.mid, "media": t.kind} for t in source.tracks],
        }

    def _to_viewers(self, stream: Stream, name: str, data: dict[str, Any] | None) -> None:
        for session in list(self._viewers.get(stream.name, ())):
            session.send_event(name, data)

    # --- StreamListener ------------------------------------------------------------------

    def source_active(self, stream: Stream, source: Source) -> None:
        self._to_viewers(stream, "active", self.active_payload(stream, source))
        if self.feeds is not None:
            self.feeds.source_active(stream, source)

    def source_inactive(self, stream: Stream, source: Source) -> None:
        self._to_viewers(
            stream,
            "inactive",
            {"streamId": self.stream_id(stream.name), "sourceId": source.source_id},
        )
        if self.feeds is not None:
            self.feeds.source_inactive(stream, source)

    def stopped(self, stream: Stream) -> None:
        self._to_viewers(stream, "stopped", {"streamId": self.stream_id(stream.name)})

    def source_timed_out(self, stream: Stream, source: Source) -> None:
        owner = self._owners.get(id(source))
        if owner is None and self.coordinator.source_timed_out(stream, source):
            return  # a relayed copy: its origin decides when it ends
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

    def layers(self, stream: Stream, viewer: Viewer, mid: str, entry: dict[str, Any]) -> None:
        """PROTOCOL.md `layers`: the simulcast layers that viewer's video `mid` can get."""
        session = self._by_sink.get(id(viewer.sink))
        if session is not None:
            session.send_event("layers", {"medias": {mid: entry}})

    def viewer_count(self, stream: Stream, count: int) -> None:
        self.coordinator.viewers_changed(stream.name, count)
        if self.feeds is not None:
            self.feeds.viewer_count(stream.name, count)

    def total_viewers(self, stream: str, count: int) -> None:
        """The stream-wide viewer count (all nodes): publisher `active`/`inactive` and the
        coalesced `viewercount` event."""
        previous = self._counts.get(stream, 0)
        self._counts[stream] = count
        # On a publisher socket, active/inactive mean first viewer joined / last viewer left.
        if previous == 0 and count > 0:
            for pub in list(self._publishers.get(stream, ())):
                pub.send_event("active", {"streamId": self.stream_id(stream)})
        elif previous > 0 and count == 0:
            for pub in list(self._publishers.get(stream, ())):
                pub.send_event("inactive", {"streamId": self.stream_id(stream)})
        if stream in self._count_due:
            return
        # Coalesce: at most one viewercount per interval (PROTOCOL.md), with the latest value.
        loop = asyncio.get_running_loop()
        interval = self.viewercount_interval
        wait = self._count_time.get(stream, -interval) + interval - loop.time()
        self._count_due[stream] = loop.call_later(max(wait, 0.0), self._send_count, stream)

    def _send_count(self, stream: str) -> None:
        self._count_due.pop(stream, None)
        self._count_time[stream] = asyncio.get_running_loop().time()
        count = self._counts.get(stream, 0)
        if self._count_sent.get(stream) == count:
            return
        self._count_sent[stream] = count
        data = {"viewercount": count}
        for session in list(self._viewers.get(stream, ())):
            session.send_event("viewercount", data)
        for pub in list(self._publishers.get(stream, ())):
            pub.send_event("viewercount", data)
        if count == 0 and stream not in self._viewers and stream not in self._publishers:
            self._counts.pop(stream, None)
            self._count_sent.pop(stream, None)
            self._count_time.pop(stream, None)
