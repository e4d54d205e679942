"""The stream model: Streams, Stream, Source, Track, Viewer, DownTrack — no I/O of its own."""

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
