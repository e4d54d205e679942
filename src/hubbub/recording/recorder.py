"""SourceRecorder: the RtpSink a recording's feed sends to; packets → frames → `MediaWriter`.

Runs on the event loop, once per packet of a recorded source only (the feed is an ordinary
consumer of the Source's Tracks; unrecorded streams have none). Per packet: the header read,
a dict lookup, the reorder buffer, the depacketizer; a finished frame is one queue put to the
muxer thread.

Audio/video sync: each track's RTP clock is anchored at its first packet's arrival, relative
to the first packet of the recording (the feed's DownTracks rebase timestamps on republish,
so a replaced publisher continues the same timeline). Arrival anchoring is off by the two
legs' jitter, a few tens of ms; the translated SRs the feed also sends are not used.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hubbub.media import codecs, rtp
from hubbub.recording.depacketize import (
    START_CODE,
    FrameAssembler,
    PayloadFormat,
    nal_units,
    payload_format,
)
from hubbub.recording.jitter import ReorderBuffer, TimestampUnwrapper
from hubbub.recording.writer import MediaWriter, StreamSpec

log = logging.getLogger(__name__)

VIDEO_REORDER_DEPTH = 128  # packets held past a hole (~1 s of 1 Mbit/s video: NACK retries)
AUDIO_REORDER_DEPTH = 16  # ~320 ms of 20 ms Opus packets
OPEN_TIMEOUT = 10.0  # s to wait for every video track's first keyframe before writing without
PENDING_LIMIT = 2000  # frames held while waiting (audio first: 40 s of Opus)

Packet = tuple[int, bool, bytes]  # (rtp timestamp, marker, payload)


@dataclass
class TrackRecorder:
    """One recorded Track (a simulcast m-line records its first-shown layer)."""

    kind: str
    codec: str  # lower case, as `depacketize.FORMATS`
    clock_rate: int
    fmt: PayloadFormat
    request_keyframe: Callable[[], object]
    index: int = -1  # stream index in the file; -1 = not in the file
    assembler: FrameAssembler = field(init=False)
    reorder: ReorderBuffer[Packet] = field(init=False)
    timestamps: TimestampUnwrapper = field(default_factory=TimestampUnwrapper)
    origin: int | None = None  # unwrapped RTP timestamp of the first frame
    offset: int = 0  # ticks from the recording's start to `origin`
    spec: StreamSpec | None = None  # known once the first (key)frame came

    def __post_init__(self) -> None:
        self.assembler = FrameAssembler(self.fmt)
        self.reorder = ReorderBuffer(
            VIDEO_REORDER_DEPTH if self.kind == "video" else AUDIO_REORDER_DEPTH)
        if self.kind == "audio":  # nothing to learn from the first frame
            self.spec = StreamSpec(self.codec, self.clock_rate)


def recordable(codec: str) -> bool:
    return payload_format(codec) is not None


class SourceRecorder:
    """Records the Tracks in `tracks` (by the SSRC their feed sends under) into `path`.

    The file is opened when every video track has given its first keyframe (its size, and
    H.264's SPS/PPS for the container header) or after OPEN_TIMEOUT; frames before that wait.
    """

    def __init__(self, path: str, extension: str, tracks: dict[int, TrackRecorder],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.extension = extension
        self.tracks = tracks
        self.writer: MediaWriter | None = None
        self.malformed = 0
        self._warned: set[str] = set()
        self._clock = clock
        self._created = clock()
        self._start = -1.0  # arrival of the first frame of the recording
        self._pending: list[tuple[TrackRecorder, bytes, int, bool]] = []
        self.closed = False

    # --- RtpSink --------------------------------------------------------------------------

    def send_rtp(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            _, marker, seq, ts, ssrc = rtp.read_header(data)
            track = self.tracks.get(ssrc)
            if track is None:
                return
            start = rtp.payload_offset(data)
            end = len(data) - data[-1] if data[0] & 0x20 else len(data)
        except ValueError as exc:
            self.malformed += 1
            if str(exc) not in self._warned:  # once per cause per recording
                self._warned.add(str(exc))
                log.warning("recording %s: bad RTP packet dropped: %s", self.path, exc)
            return
        if end <= start:
            return  # padding only (probes)
        for (pts, mark, payload), gap in track.reorder.push(seq, (ts, marker, data[start:end])):
            self._packet(track, pts, mark, payload, gap)

    def send_rtcp(self, data: bytes) -> None:
        """The feed's SRs (translated to its timestamps): not needed, see the module doc."""

    # --- frames ---------------------------------------------------------------------------

    def _packet(self, track: TrackRecorder, ts: int, marker: bool, payload: bytes,
                gap: bool) -> None:
        waiting = track.assembler.needs_keyframe
        frames = track.assembler.push(track.timestamps.unwrap(ts), marker, payload, gap)
        if track.assembler.needs_keyframe and (gap or not waiting or not frames):
            track.request_keyframe()  # rate-limited by the Track (one PLI per 300 ms)
        for frame in frames:
            self._frame(track, frame.timestamp, frame.data, frame.keyframe)

    def _frame(self, track: TrackRecorder, ts: int, data: bytes, keyframe: bool) -> None:
        now = self._clock()
        if self._start < 0:
            self._start = now
        if track.origin is None:
            track.origin = ts
            track.offset = round((now - self._start) * track.clock_rate)
            if track.spec is None:
                track.spec = _spec(track, data)
        pts = ts - track.origin + track.offset
        if self.writer is None:
            self._pending.append((track, data, pts, keyframe))
            if len(self._pending) > PENDING_LIMIT:
                del self._pending[0]
            if not self._open(now):
                return
            pending, self._pending = self._pending, []
            for t, d, p, k in pending:
                self._write(t, d, p, k)
            return
        self._write(track, data, pts, keyframe)

    def _write(self, track: TrackRecorder, data: bytes, pts: int, keyframe: bool) -> None:
        if track.index >= 0 and self.writer is not None:
            self.writer.write(track.index, data, pts, keyframe)

    def _open(self, now: float) -> bool:
        """Start the file once every video track is known (or waiting took too long)."""
        tracks = list(self.tracks.values())
        videos_ready = all(t.spec is not None for t in tracks if t.kind == "video")
        if not videos_ready and now - self._created < OPEN_TIMEOUT:
            return False
        specs: list[StreamSpec] = []
        for t in tracks:
            if t.spec is not None:
                t.index = len(specs)
                specs.append(t.spec)
        if not specs:
            return False
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.writer = MediaWriter(self.path, self.extension, specs)
        return True

    def finish(self) -> MediaWriter | None:
        """Stop taking packets and queue what is held; the caller closes the writer (in a
        thread: it waits for the file to be finished)."""
        if self.closed:
            return self.writer
        for track in self.tracks.values():
            for (ts, marker, payload), gap in track.reorder.flush():
                self._packet(track, ts, marker, payload, gap)
            for frame in track.assembler.flush():
                self._frame(track, frame.timestamp, frame.data, frame.keyframe)
        self.closed = True
        if self.writer is None and self._pending:
            self._created = -OPEN_TIMEOUT  # write what we have
            pending, self._pending = self._pending, []
            if self._open(self._clock()):
                for t, d, p, k in pending:
                    self._write(t, d, p, k)
        return self.writer


def _spec(track: TrackRecorder, first: bytes) -> StreamSpec:
    """The stream's container parameters from its first frame (a keyframe, for video)."""
    width = height = 0
    extradata = None
    if track.codec == "vp8" and len(first) >= 10 and first[3:6] == b"\x9d\x01\x2a":
        width = (first[6] | first[7] << 8) & 0x3FFF
        height = (first[8] | first[9] << 8) & 0x3FFF
    elif track.codec == "h264":
        params = [n for n in nal_units(first) if n[0] & 0x1F in (7, 8)]
        sps = next((n for n in params if n[0] & 0x1F == 7), None)
        size = codecs.h264_sps_size(sps) if sps is not None else None
        if size is not None:
            width, height = size
        extradata = b"".join(START_CODE + n for n in params) or None
    return StreamSpec(track.codec, track.clock_rate, width, height, extradata=extradata)
