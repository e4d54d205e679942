"""What the cluster keeps in Redis: node records and source claims, as JSON.

Everything read back from Redis is checked (`ValueError` with the reason): another node's
bug or an operator's stray key must not take this node down.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from hubbub.sfu.types import TrackParams

UP = "up"
DRAINING = "draining"
LEFT = "left"  # written once by a node that stops cleanly: gone, no need to wait for the TTL


def _obj(text: str | bytes) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _int(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    return value


@dataclass(frozen=True)
class NodeRecord:
    """One node (one worker process) as the others see it."""

    id: str
    url: str  # ws(s)://host:port the Director sends clients to
    media: tuple[str, int]  # where other nodes send relayed media
    link_key: bytes  # X25519 public key for relay links (media.relay_link.LinkKey)
    jwk: dict[str, str]  # public key its Director JWTs are signed with
    state: str = UP
    load: int = 0  # peer connections on the node
    capacity: int = 500
    host: str = ""
    worker: int = 0

    def to_json(self) -> str:
        data = asdict(self)
        data["media"] = list(self.media)
        data["link_key"] = base64.b64encode(self.link_key).decode()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> NodeRecord:
        data = _obj(text)
        media = data.get("media")
        if (not isinstance(media, list) or len(media) != 2 or not isinstance(media[0], str)
                or isinstance(media[1], bool) or not isinstance(media[1], int)):
            raise ValueError("media must be [host, port]")
        jwk = data.get("jwk")
        if not isinstance(jwk, dict) or not all(isinstance(v, str) for v in jwk.values()):
            raise ValueError("jwk must be an object of strings")
        try:
            link_key = base64.b64decode(_str(data, "link_key"), validate=True)
        except ValueError:
            raise ValueError("link_key must be base64") from None
        state = _str(data, "state")
        if state not in (UP, DRAINING, LEFT):
            raise ValueError(f"unknown state {state!r}")
        return cls(
            id=_str(data, "id"), url=_str(data, "url"), media=(media[0], media[1]),
            link_key=link_key, jwk=dict(jwk), state=state, load=_int(data, "load"),
            capacity=max(1, _int(data, "capacity")), host=_str(data, "host"),
            worker=_int(data, "worker"),
        )

    @property
    def healthy(self) -> bool:
        return self.state == UP


MAX_LAYERS = 16  # simulcast layers of one relayed track (the origin's SDP keeps 4)
_LAYER_ID = re.compile(r"[!-~]{1,64}")  # an encoding id: a RID (an SDP token) or "0", "1", ...


def _track_json(t: TrackParams) -> dict[str, Any]:
    """The fields an edge reads; a simulcast track adds `layers` (encoding id and relay SSRC
    of each, the origin's order), which older nodes skip: they pull the `ssrcs` layer only."""
    data: dict[str, Any] = {
        "kind": t.kind, "mid": t.mid, "codec": t.codec, "payload_type": t.payload_type,
        "clock_rate": t.clock_rate, "fmtp": t.fmtp, "ssrcs": t.ssrcs, "ext_ids": t.ext_ids,
        "rtcp_fbs": t.rtcp_fbs,
    }
    if t.layer_ssrcs:
        data["layers"] = [{"id": i, "ssrc": s}
                          for i, s in zip(t.rids, t.layer_ssrcs, strict=True)]
    return data


def _ssrc(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**32


def _layers(data: dict[str, Any], kind: str) -> tuple[list[str], list[int]]:
    """The encoding ids and relay SSRCs of a simulcast track; ([], []) for one encoding.
    (Claims written before layers were relayed carry the publisher's `rids` and `layer_ssrcs`,
    which mean nothing here: only `layers` is read.)"""
    layers = data.get("layers")
    if layers is None:
        return [], []
    if kind != "video" or not isinstance(layers, list) or not 2 <= len(layers) <= MAX_LAYERS:
        raise ValueError(f"layers must be a list of 2-{MAX_LAYERS} layers of a video track")
    ids: list[str] = []
    ssrcs: list[int] = []
    for layer in layers:
        if not isinstance(layer, dict):
            raise ValueError("layer must be an object")
        layer_id = _str(layer, "id")
        if not _LAYER_ID.fullmatch(layer_id):
            raise ValueError("layer id must be 1-64 visible ASCII characters")
        if not _ssrc(layer.get("ssrc")):
            raise ValueError("layer ssrc must be a 32-bit SSRC")
        ids.append(layer_id)
        ssrcs.append(layer["ssrc"])
    if len(set(ids)) != len(ids):
        raise ValueError("layer ids must be unique")
    return ids, ssrcs


def _track(data: Any) -> TrackParams:
    if not isinstance(data, dict):
        raise ValueError("track must be an object")
    kind = _str(data, "kind")
    if kind not in ("audio", "video"):
        raise ValueError(f"track kind {kind!r}")
    ssrcs = data.get("ssrcs")
    ext_ids = data.get("ext_ids")
    fbs = data.get("rtcp_fbs")
    if not isinstance(ssrcs, list) or not all(_ssrc(s) for s in ssrcs):
        raise ValueError("ssrcs must be a list of 32-bit SSRCs")
    if not isinstance(ext_ids, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and 0 < v < 256 for k, v in ext_ids.items()
    ):
        raise ValueError("ext_ids must map URIs to ids 1..255")
    if not isinstance(fbs, list) or not all(isinstance(f, str) for f in fbs):
        raise ValueError("rtcp_fbs must be a list of strings")
    pt = _int(data, "payload_type")
    if not 0 <= pt < 128:
        raise ValueError("payload_type must be 0..127")
    rids, layer_ssrcs = _layers(data, kind)
    if layer_ssrcs and not set(ssrcs) <= set(layer_ssrcs):
        raise ValueError("a simulcast track's ssrcs must be among its layers'")
    return TrackParams(
        kind=kind, mid=_str(data, "mid"), codec=_str(data, "codec"), payload_type=pt,
        clock_rate=_int(data, "clock_rate"), fmtp=_str(data, "fmtp"), ssrcs=list(ssrcs),
        ext_ids=dict(ext_ids), rtcp_fbs=list(fbs), rids=rids, layer_ssrcs=layer_ssrcs,
    )


@dataclass(frozen=True)
class SourceClaim:
    """"`source_id` of `stream` is published on `node`": the publisher's Track parameters
    with the relay SSRCs that node sends them under (one per simulcast layer: see
    `sfu.relay.relayed_track_params`). The highest `epoch` wins: a republish
    of a live sourceId on another node takes the source over."""

    stream: str
    source_id: str | None
    node: str
    epoch: int
    tracks: list[TrackParams] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({
            "stream": self.stream, "source_id": self.source_id, "node": self.node,
            "epoch": self.epoch, "tracks": [_track_json(t) for t in self.tracks],
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> SourceClaim:
        return cls.from_dict(_obj(text))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceClaim:
        source_id = data.get("source_id")
        if source_id is not None and not isinstance(source_id, str):
            raise ValueError("source_id must be a string or null")
        tracks = data.get("tracks")
        if not isinstance(tracks, list) or not tracks or len(tracks) > 16:
            raise ValueError("tracks must be a list of 1-16 tracks")
        parsed = [_track(t) for t in tracks]
        if any(len(t.ssrcs) != 1 for t in parsed):
            raise ValueError("each relayed track has exactly one SSRC")
        relayed = [s for t in parsed for s in (t.layer_ssrcs or t.ssrcs)]
        if len(set(relayed)) != len(relayed):
            raise ValueError("relay SSRCs must be unique")  # each routes to one layer
        return cls(stream=_str(data, "stream"), source_id=source_id, node=_str(data, "node"),
                   epoch=_int(data, "epoch"), tracks=parsed)

    @property
    def ssrcs(self) -> list[int]:
        """Every relay SSRC: one per layer of each track."""
        return [s for t in self.tracks for s in (t.layer_ssrcs or t.ssrcs)]
