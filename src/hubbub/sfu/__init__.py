"""The stream model: Streams, Stream, Source, Track, Viewer, DownTrack — no I/O of its own.

    Streams (by name) -> Stream -> Source (by sourceId, None = main) -> Track (per publisher m-line)
                              +-> Viewer -> DownTrack (per viewer m-line, bound to <= 1 Track)

Control feeds bytes in (`Source.on_rtp/on_rtcp`, `Viewer.on_rtcp`), gets bytes out through
`RtpSink`s, hears about changes through a `StreamListener`, and calls `Streams.tick(now)` about
every 100 ms for SRs, RRs and media timeouts. Close cascade: `Stream.unpublish` closes the Source
and idles or rebinds the DownTracks bound to it, then reports `source_inactive` (and `stopped`
for the last one); a replacement (`publish` with a live sourceId) moves the DownTracks, closes
the old Source and calls its `on_replaced`, with no events; `remove_viewer` unbinds all its
DownTracks; a Stream with neither sources nor viewers leaves the registry.
"""

from hubbub.sfu.config import SfuConfig
from hubbub.sfu.downtrack import DownTrack
from hubbub.sfu.packet_cache import PacketCache
from hubbub.sfu.source import Source
from hubbub.sfu.stream import Stream, Streams
from hubbub.sfu.track import Track
from hubbub.sfu.types import DownTrackParams, RtpSink, StreamListener, TrackParams
from hubbub.sfu.viewer import Viewer

__all__ = [
    "DownTrack",
    "DownTrackParams",
    "PacketCache",
    "RtpSink",
    "SfuConfig",
    "Source",
    "Stream",
    "StreamListener",
    "Streams",
    "Track",
    "TrackParams",
    "Viewer",
]
