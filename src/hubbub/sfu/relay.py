"""Relays: a Source's Tracks sent on to another worker or node (origin side, `RelayFeed`), and
the parameters the receiving side gives its copy of that Source (`edge_track_params`).

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


def edge_track_params(params: TrackParams, relay_ssrc: int) -> TrackParams:
    """The Track of an edge's copy of a Source: the publisher's codec, PT and extension ids,
    the relay's SSRC. Video asks the origin for lost packets (generic NACK, RFC 4585)."""
    return dataclasses.replace(
        params,
        ssrcs=[relay_ssrc],
        ext_ids=relayed_extensions(params.ext_ids),
        rtcp_fbs=["nack"] if params.kind == "video" else [],
    )


class RelayFeed(Viewer):
    """One Source forwarded to one edge: a DownTrack per Track, with the publisher's PT and
    extension ids and an SSRC of the relay's own. It is a Viewer the Stream does not choose
    sources for: each DownTrack stays on its Track, also when the sourceId is republished on
    this node (the Stream moves it like any viewer's, keeping seq/ts continuous), and the
    edge's NACKs, PLIs and RRs are answered as a viewer's are (`Viewer.on_rtcp`)."""

    def __init__(
        self,
        source: Source,
        ssrcs: list[int],
        sink: RtpSink,
        config: SfuConfig,
        clock: Clock,
    ) -> None:
        if len(ssrcs) != len(source.tracks):
            raise ValueError("a relay needs one SSRC per Track")
        params = [
            DownTrackParams(
                kind=t.kind,
                mid=t.mid,
                ssrc=ssrc,
                payload_types={codec_key(t.params): t.params.payload_type},
                ext_ids=relayed_extensions(t.params.ext_ids),
                nack=t.kind == "video",
            )
            for t, ssrc in zip(source.tracks, ssrcs, strict=True)
        ]
        super().__init__(params, sink, None, [], config, clock)
        self.source_id = source.source_id
        for down, track in zip(self.down_tracks, source.tracks, strict=True):
            down.bind(track)

    @property
    def ssrcs(self) -> list[int]:
        return [d.ssrc for d in self.down_tracks]

    @property
    def packets_sent(self) -> int:
        return sum(d.packets_sent for d in self.down_tracks)
