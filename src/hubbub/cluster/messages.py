"""Messages on the cluster's channels: one JSON object each, its kind in "t".

On a stream's channel (`keys.stream_channel`): `claim` (a SourceClaim, as written to the
registry), `release` (that claim ended), `count` (a node's viewer count). On a node's channel
(`keys.node_channel`): `wants` (an edge's full list of the streams it pulls from that node)
and `stop` (end a hosted source: the admin API of another node). `decode` checks every field:
a malformed message is refused with the reason, never half-applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hubbub.cluster import keys
from hubbub.cluster.records import SourceClaim


@dataclass(frozen=True)
class Claimed:
    claim: SourceClaim


@dataclass(frozen=True)
class Released:
    stream: str
    source_id: str | None
    node: str
    epoch: int


@dataclass(frozen=True)
class Counted:
    stream: str
    node: str
    count: int


@dataclass(frozen=True)
class Wants:
    edge: str
    streams: frozenset[str]


@dataclass(frozen=True)
class Stop:
    stream: str
    source_id: str
    reason: str


Message = Claimed | Released | Counted | Wants | Stop


def _encode(kind: str, **fields: Any) -> str:
    return json.dumps({"t": kind, **fields}, separators=(",", ":"))


def claim(text: str) -> str:
    """`text`: the claim's JSON exactly as written to the registry."""
    return _encode("claim", claim=text)


def release(c: SourceClaim) -> str:
    return _encode("release", source_id=c.source_id, node=c.node, epoch=c.epoch)


def count(node: str, n: int) -> str:
    return _encode("count", node=node, n=n)


def wants(edge: str, streams: list[str]) -> str:
    return _encode("wants", edge=edge, streams=streams)


def stop(stream: str, source_id: str, reason: str) -> str:
    return _encode("stop", stream=stream, source_id=source_id, reason=reason)


def _field(body: dict[str, Any], name: str, kind: type) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name} must be {kind.__name__}")
    return value


def decode(channel: str, text: str) -> Message:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    kind = body.get("t")
    if channel.startswith(keys.STREAM_CHANNEL_PREFIX):
        stream = channel[len(keys.STREAM_CHANNEL_PREFIX):]
        if kind == "claim":
            found = SourceClaim.from_json(_field(body, "claim", str))
            if found.stream != stream:
                raise ValueError("claim for another stream")
            return Claimed(found)
        if kind == "release":
            source_id = body.get("source_id")
            if source_id is not None and not isinstance(source_id, str):
                raise ValueError("source_id must be a string or null")
            return Released(stream, source_id, _field(body, "node", str),
                            _field(body, "epoch", int))
        if kind == "count":
            return Counted(stream, _field(body, "node", str), max(0, _field(body, "n", int)))
    elif kind == "wants":
        streams = _field(body, "streams", list)
        if not all(isinstance(s, str) for s in streams):
            raise ValueError("streams must be strings")
        return Wants(_field(body, "edge", str), frozenset(streams))
    elif kind == "stop":
        return Stop(_field(body, "stream", str), _field(body, "source_id", str),
                    str(body.get("reason") or "stopped"))
    raise ValueError(f"unknown message {kind!r} on {channel}")
