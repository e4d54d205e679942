"""Relays: a Source's Tracks, every simulcast layer included, sent on to another worker or node
(origin side, `RelayFeed`; what it announces: `relayed_track_params`), and the parameters the
receiving side gives its copy of that Source (`edge_track_params`).

On the edge the copy is an ordinary Source fed by the relay instead of a publisher, so
forwarding, multiplexing, projection and events work there exactly as on the origin.
"""

from __future__ import annotations

import dataclasses

from hubbub.sfu.config import SfuConfig
from hubbub.sfu.mapping import NOT_FORWARDED, codec_key
from hubbub.sfu.source import Source
from hubbub.sfu.types import Clock, DownTrackParams, RtpSink, TrackParams
from hubbub.sfu.viewer import Viewer


def relayed_extensions(ext_ids: dict[str, int]) -> dict[str, int]:
    """The publisher's extensions a relay carries, under the publisher's ids (MID, RIDs and
    transport-wide seq numbers belong to the publisher's transport and are never carried)."""
    return {uri: i for uri, i in ext_ids.items() if uri not in NOT_FORWARDED}


def relayed_track_params(source: Source, ssrcs: list[int]) -> list[TrackParams]:
    """What an edge needs to know of `source` relayed under `ssrcs` (one per layer, in
    `all_tracks` order): per m-line the publisher's codec, PT and extension ids with the relay
    SSRC of its first-shown layer and, for simulcast, every layer's encoding id and relay SSRC
    (`rids` and `layer_ssrcs` of the result). RTX and RIDs stay on the publisher's transport."""
    if len(ssrcs) != len(source.all_tracks):
        raise ValueError("a relay needs one SSRC per layer")
    relay_ssrc = dict(zip(source.all_tracks, ssrcs, strict=True))
    out: list[TrackParams] = []
    for track in source.tracks:
        layers = track.layers if track.simulcast else []
        out.append(dataclasses.replace(
            track.params,
            ssrcs=[relay_ssrc[track]],
            rids=[t.encoding_id for t in layers],
            layer_ssrcs=[relay_ssrc[t] for t in layers],
            rtx_payload_type=0,
            repair_ssrcs={},
        ))
    return out


def edge_track_params(params: TrackParams) -> TrackParams:
    """The Track of an edge's copy of a Source from the claimed `params` (see
    `relayed_track_params`): the publisher's codec, PT and extension ids, the relay's SSRCs,
    simulcast layers by SSRC under the origin's encoding ids. Video asks the origin for lost
    packets (generic NACK, RFC 4585)."""
    return dataclasses.replace(
        params,
        ext_ids=relayed_extensions(params.ext_ids),
        rtcp_fbs=["nack"] if params.kind == "video" else [],
        rtx_payload_type=0,
        repair_ssrcs={},
    )


class RelayFeed(Viewer):
    """One Source forwarded to one edge: a DownTrack per layer (every Track of `all_tracks`:
    each simulcast layer is relayed, so the edge's viewers choose among them as the origin's
    do), with the publisher's PT and extension ids and an SSRC of the relay's own. It is a
    Viewer the Stream does not choose sources or layers for: each DownTrack stays on its
    layer, also when the sourceId is republished on this node (the Stream moves it to the same
    layer of the new Source, keeping seq/ts continuous), and the edge's NACKs, PLIs and RRs
    are answered per layer as a viewer's are (`Viewer.on_rtcp`)."""

    def __init__(
        self,
        source: Source,
        ssrcs: list[int],
        sink: RtpSink,
        config: SfuConfig,
        clock: Clock,
    ) -> None:
        if len(ssrcs) != len(source.all_tracks):
            raise ValueError("a relay needs one SSRC per layer")
        params = [
            DownTrackParams(
                kind=t.kind,
                mid=t.mid,
                ssrc=ssrc,
                payload_types={codec_key(t.params): t.params.payload_type},
                ext_ids=relayed_extensions(t.params.ext_ids),
                nack=t.kind == "video",
            )
            for t, ssrc in zip(source.all_tracks, ssrcs, strict=True)
        ]
        super().__init__(params, sink, None, [], config, clock)
        self.source_id = source.source_id
        for down, track in zip(self.down_tracks, source.all_tracks, strict=True):
            down.bind(track)

    @property
    def ssrcs(self) -> list[int]:
        return [d.ssrc for d in self.down_tracks]

    @property
    def packets_sent(self) -> int:
        return sum(d.packets_sent for d in self.down_tracks)
