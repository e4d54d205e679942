"""Redis names of the cluster registry and its channels, in one place.

    hubbub:nodes                      SET of node ids
    hubbub:node:<id>                  STRING, JSON NodeRecord, expires after the heartbeat TTL
    hubbub:epoch                      STRING counter: every source claim takes the next value
    hubbub:stream:<name>:sources      HASH sourceId (JSON-encoded, "null" = main) -> SourceClaim
    hubbub:stream:<name>:viewers      HASH node id -> that node's viewer count
    hubbub:ch:stream:<name>           channel: claims, releases and viewer counts of a stream
    hubbub:ch:node:<id>               channel: requests to one node (an edge's wanted streams)

Stream names are limited to [A-Za-z0-9_.-~:@+] by control, so they are safe in keys.
"""

from __future__ import annotations

import json

PREFIX = "hubbub:"
NODES = PREFIX + "nodes"
EPOCH = PREFIX + "epoch"


def node(node_id: str) -> str:
    return f"{PREFIX}node:{node_id}"


def sources(stream: str) -> str:
    return f"{PREFIX}stream:{stream}:sources"


def viewers(stream: str) -> str:
    return f"{PREFIX}stream:{stream}:viewers"


def stream_channel(stream: str) -> str:
    return f"{PREFIX}ch:stream:{stream}"


STREAM_CHANNEL_PREFIX = f"{PREFIX}ch:stream:"


def node_channel(node_id: str) -> str:
    return f"{PREFIX}ch:node:{node_id}"


def source_field(source_id: str | None) -> str:
    """The hash field of a sourceId: JSON, so the main source ("null") and any id differ."""
    return json.dumps(source_id)
