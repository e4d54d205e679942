"""Totals: the sfu's counters summed over a node, for metrics read at scrape time.

A Source, Viewer or Stream takes its counters with it when it goes, so a node-wide sum over the
live objects alone would go backwards. `Streams.retired` absorbs each one's counts as it leaves
(`Stream.unpublish`, a replaced Source, `Stream.remove_viewer`/`remove_relay`, a projected
DownTrack removed, a Stream dropped), and `node_totals` adds the live ones: every counter here
only grows. Nothing runs per packet: the objects count as they always did, this reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubbub.sfu.downtrack import DownTrack
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream
    from hubbub.sfu.track import Track
    from hubbub.sfu.viewer import Viewer


@dataclass(slots=True)
class Totals:
    audio_packets_in: int = 0  # RTP packets accepted by publisher Tracks (relay copies too)
    video_packets_in: int = 0
    bytes_in: int = 0  # those packets' RTP bytes (header and payload, SRTP removed)
    audio_packets_out: int = 0  # RTP packets forwarded by DownTracks (viewers and relay feeds)
    video_packets_out: int = 0
    payload_bytes_out: int = 0  # their payload octets, as SRs count them (RFC 3550 §6.4.1)
    nacks_received: int = 0  # NACK feedback messages from viewers and edges
    retransmissions: int = 0  # packets resent from a DownTrack's cache for those NACKs
    nack_requests_sent: int = 0  # lost sequence numbers asked of publishers (sfu/nack.py)
    keyframe_requests_received: int = 0  # PLI/FIR from viewers
    plis_sent: int = 0  # PLIs sent to publishers (after the per-Track rate limit)
    multiplexer_switches: int = 0  # a slot's source changed (sfu/multiplexer.py)

    def add(self, other: Totals) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def add_track(self, track: Track) -> None:
        if track.kind == "audio":
            self.audio_packets_in += track.packets
        else:
            self.video_packets_in += track.packets
        self.bytes_in += track.bytes
        self.plis_sent += track.keyframes.requests
        if track.nacks is not None:
            self.nack_requests_sent += track.nacks.requested

    def add_source(self, source: Source) -> None:
        for track in source.all_tracks:
            self.add_track(track)

    def add_down(self, down: DownTrack) -> None:
        if down.kind == "audio":
            self.audio_packets_out += down.packets_sent
        else:
            self.video_packets_out += down.packets_sent
        self.payload_bytes_out += down.octets_sent
        self.nacks_received += down.nacks_received
        self.retransmissions += down.packets_resent
        self.keyframe_requests_received += down.keyframe_requests

    def add_viewer(self, viewer: Viewer) -> None:
        """A Viewer or RelayFeed: its DownTracks, projected ones and those it removed."""
        for down in viewer.down_tracks:
            self.add_down(down)
        for down in viewer.projected.values():
            self.add_down(down)
        self.add(viewer.retired)

    def add_stream(self, stream: Stream) -> None:
        """What a Stream holds now (not what its departed objects counted: see `retired`)."""
        for source in stream.sources.values():
            self.add_source(source)
        for viewer in stream.viewers:
            self.add_viewer(viewer)
        for feed in stream.relays:
            self.add_viewer(feed)
        self.multiplexer_switches += stream.multiplexer.switches


def node_totals(retired: Totals, streams: Iterable[Stream]) -> Totals:
    """Everything counted since the start: what left (`retired`) plus what is live."""
    out = Totals()
    out.add(retired)
    for stream in streams:
        out.add_stream(stream)
    return out
