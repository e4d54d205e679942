"""FeedEvents: the sfu's stream changes as `feeds` and `viewerConnection` webhook events.

EventHub (control/events.py) forwards its StreamListener calls here. A feed is a sourceId
live in a stream, as viewers see it (`active` ... `inactive`): a publisher taking over a live
sourceId (Stream.publish replaces without events) continues the feed. It is started only by a
source published on this node: a relayed copy on an edge (its sink is a RelayLink) fires
nothing, so in a cluster each feed's `started`/`ended` come once, from the node its publisher
was on when it started (if the publisher moves to another node, that node's relayed copy keeps
the feed here until it ends). `live` and `offline` follow this node's feeds of the stream;
viewer counts are this node's viewers (`nodeId` says which), at most one event per stream per
`interval`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hubbub.control.webhooks import events
from hubbub.media.relay_link import RelayLink

if TYPE_CHECKING:
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream

log = logging.getLogger(__name__)

MAX_REMEMBERED = 10_000  # streams whose last count time is kept after their last viewer left


class Sender(Protocol):
    def wants(self, type: str) -> bool: ...
    def emit(self, type: str, event: str, data: dict[str, object]) -> None: ...


@dataclass
class _Feed:
    feed_id: str
    started: int


class FeedEvents:
    def __init__(self, sender: Sender, account_id: str, node_id: str, interval: float) -> None:
        self.sender = sender
        self.account_id = account_id
        self.node_id = node_id
        self.interval = interval
        self._feeds: dict[tuple[str, str | None], _Feed] = {}  # (stream, sourceId) -> feed
        self._live: dict[str, int] = {}        # stream -> sources of it published here
        self._counts: dict[str, int] = {}
        self._sent: dict[str, int] = {}
        self._sent_at: dict[str, float] = {}
        self._due: dict[str, asyncio.TimerHandle] = {}

    def source_active(self, stream: Stream, source: Source) -> None:
        try:
            if isinstance(source.sink, RelayLink):
                return
            key = (stream.name, source.source_id)
            if key in self._feeds:
                return
            feed = self._feeds[key] = _Feed(secrets.token_hex(8), events.now_ms())
            self.sender.emit(events.FEEDS, "started", events.feed(
                self.account_id, stream.name, source.source_id, feed.feed_id, feed.started))
            count = self._live[stream.name] = self._live.get(stream.name, 0) + 1
            if count == 1:
                self.sender.emit(events.FEEDS, "live", events.stream_state(
                    self.account_id, stream.name, True, count))
        except Exception:
            log.exception("feeds webhook for %s not queued", stream.name)

    def source_inactive(self, stream: Stream, source: Source) -> None:
        try:
            feed = self._feeds.pop((stream.name, source.source_id), None)
            if feed is None:
                return  # started as a relayed copy: its origin node reports it
            self.sender.emit(events.FEEDS, "ended", events.feed(
                self.account_id, stream.name, source.source_id, feed.feed_id, feed.started,
                events.now_ms()))
            count = self._live.get(stream.name, 1) - 1
            if count > 0:
                self._live[stream.name] = count
                return
            self._live.pop(stream.name, None)
            self.sender.emit(events.FEEDS, "offline", events.stream_state(
                self.account_id, stream.name, False, 0))
        except Exception:
            log.exception("feeds webhook for %s not queued", stream.name)

    def viewer_count(self, stream: str, count: int) -> None:
        """This node's viewers of `stream`: sent at once if none was sent in the last
        `interval`, else once the interval is over, with the count then."""
        try:
            self._counts[stream] = count
            if stream in self._due or not self.sender.wants(events.VIEWER_CONNECTION):
                return
            loop = asyncio.get_running_loop()
            wait = self._sent_at.get(stream, -self.interval) + self.interval - loop.time()
            self._due[stream] = loop.call_later(max(wait, 0.0), self._send_count, stream)
        except Exception:
            log.exception("viewer webhook for %s not queued", stream)

    def _send_count(self, stream: str) -> None:
        self._due.pop(stream, None)
        count = self._counts.get(stream, 0)
        if self._sent.get(stream) != count:
            self._sent[stream] = count
            self._sent_at[stream] = asyncio.get_running_loop().time()
            self.sender.emit(events.VIEWER_CONNECTION, "count", events.viewer_count(
                self.account_id, stream, count, self.node_id))
        if count == 0:  # forget the stream but when it was last sent (the interval holds)
            self._counts.pop(stream, None)
            self._sent.pop(stream, None)
            if len(self._sent_at) > MAX_REMEMBERED:
                now = asyncio.get_running_loop().time()
                for name, at in list(self._sent_at.items()):
                    if now - at > self.interval and name not in self._counts:
                        del self._sent_at[name]
