"""Which simulcast layer a viewer's video DownTrack carries, and how the layers are described.

A publisher's simulcast m-line arrives as one Track per encoding (Source). Each video
DownTrack bound to one of them has a `LayerRequest`: the application's choice (`select`, or a
`project` entry's `layer`, PROTOCOL.md) or automatic. Automatic takes the best active layer
that fits the viewer's budget (its bandwidth estimate, once there is one), else the best
active layer. The move itself waits for a keyframe of the new layer (DownTrack.switch_to).

Layers are ranked lowest first by their last keyframe's size where the codec shows it (VP8),
then by measured bitrate: RID names (`q`/`h`/`f`, `l`/`m`/`h`) and their order in the offer
differ between clients, so neither says which is larger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hubbub.sfu.track import Track

NO_LAYER = 255  # PROTOCOL.md `layers`: no spatial/temporal (SVC) layer id
ACTIVE_WITHIN = 1.0  # seconds: a layer that sent nothing for this long is inactive


@dataclass(frozen=True)
class LayerRequest:
    """`encoding_id` pins a layer (automatic when None or when that layer is inactive);
    `temporal_layer_id` caps the temporal layers forwarded (VP8 TID; None: automatic)."""

    encoding_id: str | None = None
    temporal_layer_id: int | None = None

    @property
    def automatic(self) -> bool:
        return self.encoding_id is None


AUTOMATIC = LayerRequest()


def ranked(layers: list[Track]) -> list[Track]:
    """The layers lowest first (size, then bitrate; the offer's order breaks ties)."""
    return sorted(layers, key=lambda t: (t.width * t.height, t.bitrate))


def choose(layers: list[Track], request: LayerRequest, now: float,
           budget_bps: float | None = None) -> Track | None:
    """The layer to carry, or None when no layer is active (keep what there is), but for a
    pinned one: a viewer that joins before media flows (an edge's new copy) starts there."""
    active = [t for t in ranked(layers) if t.active(now, ACTIVE_WITHIN)]
    if request.encoding_id is not None:
        pinned = next((t for t in layers if t.encoding_id == request.encoding_id), None)
        if pinned is not None and (pinned in active or not active):
            return pinned
    if not active:
        return None
    if budget_bps is None:
        return active[-1]
    # A layer not measured yet (its first second) is not known to fit: the lowest is safe.
    fitting = [t for t in active if 0 < t.bitrate <= budget_bps]
    return fitting[-1] if fitting else active[0]


# libwebrtc's VP8 rate split over three temporal layers: TID 0 takes 40 % of the layer's
# bitrate, TIDs 0-1 60 % (its temporal-layers rate allocation; facts, not code).
TEMPORAL_SHARE = (0.4, 0.6)


def temporal_cap(layer: Track, budget_bps: float, current: int | None,
                 headroom: float) -> int | None:
    """The TID cap that brings `layer` (the smallest) under `budget_bps`, None when all of
    it fits; raising the cap needs `headroom` over the share (no flapping at a boundary)."""
    if not layer.bitrate:
        return current
    for tid in (None, 1, 0):
        share = 1.0 if tid is None else TEMPORAL_SHARE[tid]
        raising = current is not None and (tid is None or tid > current)
        if layer.bitrate * share * (headroom if raising else 1.0) <= budget_bps:
            return tid
    return 0


def describe(layers: list[Track], now: float) -> dict[str, Any]:
    """One mid's entry of a `layers` event (PROTOCOL.md): active encodings with bitrate and,
    where known, size; inactive ones (a layer counts as active once its bitrate is measured);
    and the flat `layers` list with no SVC ids."""
    order = ranked(layers)
    active: list[dict[str, Any]] = []
    inactive: list[dict[str, Any]] = []
    flat: list[dict[str, Any]] = []
    for index, track in enumerate(order):
        entry: dict[str, Any] = {"id": track.encoding_id, "simulcastIdx": index}
        if not track.active(now, ACTIVE_WITHIN) or not track.bitrate:
            inactive.append(entry)  # stopped, or in its first second (no bitrate yet)
            continue
        entry["bitrate"] = track.bitrate
        if track.width and track.height:
            entry["width"], entry["height"] = track.width, track.height
        entry["layers"] = []
        active.append(entry)
        flat.append({"encodingId": track.encoding_id, "simulcastIdx": index,
                     "spatialLayerId": NO_LAYER, "temporalLayerId": NO_LAYER,
                     "bitrate": track.bitrate})
    return {"active": active, "inactive": inactive, "layers": flat}


def active_ids(layers: list[Track], now: float) -> tuple[tuple[str, bool], ...]:
    """What a `layers` event is sent again for when it changes: the active layers, in rank
    order, and whether their bitrate is measured yet (the first second it is not)."""
    return tuple((t.encoding_id, t.bitrate > 0) for t in ranked(layers)
                 if t.active(now, ACTIVE_WITHIN))
