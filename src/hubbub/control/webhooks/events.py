"""What a webhook carries: the envelope and the payload of each event (docs/WEBHOOKS.md).

The body is Millicast's shape, `{"type", "event", "timestamp", "data"}`, `timestamp` in
milliseconds since the Unix epoch (when the event happened); times inside `data` are
milliseconds too.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field

FEEDS = "feeds"
VIEWER_CONNECTION = "viewerConnection"
RECORDINGS = "recordings"
TOKENS = "tokens"
TEST = "test"  # `ping`, sent on request only (POST /api/webhooks/{id}/test), to any webhook

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    # started/ended: one publisher source (per sourceId); live/offline: the stream as a whole.
    FEEDS: ("started", "ended", "live", "offline"),
    VIEWER_CONNECTION: ("count",),
    RECORDINGS: ("done",),
    TOKENS: ("created", "updated", "deleted", "revoked"),
}
"""Every type and its events; a webhook subscribes to types."""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class WebhookEvent:
    """One occurrence; the same id reaches every receiver and every retry (for dedupe)."""

    type: str
    event: str
    data: dict[str, object]
    timestamp: int = field(default_factory=now_ms)
    id: str = field(default_factory=lambda: secrets.token_hex(12))

    def body(self) -> bytes:
        """The exact bytes POSTed and signed (compact JSON, keys in envelope order)."""
        envelope = {"type": self.type, "event": self.event, "timestamp": self.timestamp,
                    "data": self.data}
        return json.dumps(envelope, separators=(",", ":"), default=str).encode()


# --- payloads (the `data` of each event; docs/WEBHOOKS.md lists them) ----------------------


def feed(account_id: str, name: str, source_id: str | None, feed_id: str, started: int,
         ended: int | None = None) -> dict[str, object]:
    """feeds/started and feeds/ended: one publisher source. `sourceId` null is the stream's
    default (unnamed) source; `feedId` is unique per publication (a republish gets a new one)."""
    data: dict[str, object] = {
        "feedId": feed_id, "accountId": account_id, "name": name,
        "streamId": f"{account_id}/{name}", "sourceId": source_id,
        "started": started, "active": ended is None,
    }
    if ended is not None:
        data["ended"] = ended
    return data


def stream_state(account_id: str, name: str, live: bool, sources: int) -> dict[str, object]:
    """feeds/live (first source started) and feeds/offline (last source ended)."""
    return {"accountId": account_id, "name": name, "streamId": f"{account_id}/{name}",
            "live": live, "sources": sources}


def viewer_count(account_id: str, name: str, viewers: int,
                 node_id: str) -> dict[str, object]:
    """viewerConnection/count: the stream's viewers on node `nodeId` (each node of a cluster
    sends its own; a stream's total is their sum), at most one per stream per interval."""
    return {"accountId": account_id, "name": name, "streamId": f"{account_id}/{name}",
            "viewers": viewers, "nodeId": node_id}


def recording_done(account_id: str, name: str, source_id: str | None, recording_id: str,
                   file: str, media_type: str, size: int, started: int, ended: int,
                   duration: float) -> dict[str, object]:
    """recordings/done: a source's recording is closed and complete. `file` is its name in
    the recordings API (GET /api/recordings/{recordingId}/file downloads it); `mediaType`
    e.g. "video/webm" or "video/mp4"; `size` in bytes; `duration` in seconds."""
    return {"recordingId": recording_id, "accountId": account_id, "name": name,
            "streamId": f"{account_id}/{name}", "sourceId": source_id, "file": file,
            "mediaType": media_type, "size": size, "started": started, "ended": ended,
            "duration": duration}

