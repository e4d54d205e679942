"""SourceRecorder: the RtpSink a recording's feed sends to; packets → frames → `MediaWriter`.

Runs on the event loop, once per packet of a recorded source only (the feed is an ordinary
consumer of the Source's Tracks; unrecorded streams have none). Per packet: the header read,
a dict lookup, the reorder buffer, the depacketizer; a finished frame is one queue put to the
muxer thread.

Audio/video sync: by the feed's SRs, else by arrival (`sync.py`). The feed's DownTracks
rebase timestamps on republish, so a replaced publisher continues the same timeline.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hubbub.media import codecs, rtcp, rtp
from hubbub.recording.depacketize import (
    START_CODE,
    FrameAssembler,
    PayloadFormat,
    nal_units,
)
from hubbub.recording.jitter import ReorderBuffer, TimestampUnwrapper
from hubbub.recording.sync import Anchor, Timeline
from hubbub.recording.writer import MediaWriter, StreamSpec

log = logging.getLogger(__name__)

VIDEO_REORDER_DEPTH = 128  # packets held past a hole (~1 s of 1 Mbit/s video: NACK retries)
AUDIO_REORDER_DEPTH = 16  # ~320 ms of 20 ms Opus packets
OPEN_TIMEOUT = 10.0  # s to wait for every video track's first keyframe before writing without
SYNC_WAIT = 5.5  # s after the first frame to wait for an SR of every track (browsers send
# one every 5 s for audio, 1 s for video); frames wait meanwhile, none is lost
PENDING_LIMIT = 2000  # frames held while waiting (audio first: 40 s of Opus)

Packet = tuple[int, bool, bytes]  # (rtp timestamp, marker, payload)


@dataclass
class TrackRecorder:
    """One recorded Track (of a simulcast m-line: the layer largest at the start)."""

    kind: str
    codec: str  # lower case, as `depacketize.FORMATS`
    clock_rate: int
    fmt: PayloadFormat
    request_keyframe: Callable[[], object]
    has_sender_report: Callable[[], bool] = lambda: True
    """Whether the feed's SRs carry the publisher's clock yet (before its first SR the feed
    makes them up from ours, which would tell nothing about sync)."""
    index: int = -1  # stream index in the file; -1 = not in the file
    assembler: FrameAssembler = field(init=False)
    reorder: ReorderBuffer[Packet] = field(init=False)
    timestamps: TimestampUnwrapper = field(default_factory=TimestampUnwrapper)
    anchor: Anchor | None = None  # its clock on the file's timeline (SourceRecorder)
    gap_pending: bool = False  # packets were lost before a padding packet
    spec: StreamSpec | None = None  # known once the first (key)frame came

    def __post_init__(self) -> None:
        self.assembler = FrameAssembler(self.fmt)
        self.reorder = ReorderBuffer(
            VIDEO_REORDER_DEPTH if self.kind == "video" else AUDIO_REORDER_DEPTH)
        if self.kind == "audio":  # nothing to learn from the first frame
            self.spec = StreamSpec(self.codec, self.clock_rate)


class SourceRecorder:
    """Records the Tracks in `tracks` (by the SSRC their feed sends under) into `path`.

    The file is opened when every video track has given its first keyframe (its size, and
    H.264's SPS/PPS for the container header) and every track an SR (or SYNC_WAIT passed), or
    after OPEN_TIMEOUT; frames before that wait.
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
        self._first_frame = -1.0  # arrival of the first frame of the recording
        self.timeline = Timeline()
        self._pending: list[tuple[TrackRecorder, int, bytes, bool]] = []
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
        # A padding-only packet (a probe) goes through the reorder buffer too: its sequence
        # number is no loss.
        payload = data[start:end] if end > start else b""
        for (rtp_ts, mark, body), gap in track.reorder.push(seq, (ts, marker, payload)):
            self._packet(track, rtp_ts, mark, body, gap)

    def send_rtcp(self, data: bytes) -> None:
        """The feed's SRs (the publisher's, translated to the feed's timestamps): sync."""
        if self.closed or self.timeline.started:
            return
        try:
            for pt, _, start, end in rtcp.iter_compound(data):
                if pt == rtcp.SR:
                    report = rtcp.SenderReport.parse(data[start:end])
                    track = self.tracks.get(report.ssrc)
                    if track is not None and track.has_sender_report():
                        ts = track.timestamps.nearest(report.rtp_timestamp)
                        self.timeline.sender_report(self._anchor(track), report.ntp_timestamp,
                                                    ts, self._clock())
        except ValueError:
            return  # our own feed's RTCP: cannot be malformed in practice

    def _anchor(self, track: TrackRecorder) -> Anchor:
        if track.anchor is None:
            track.anchor = self.timeline.add(track.clock_rate)
        return track.anchor

    # --- frames ---------------------------------------------------------------------------

    def _packet(self, track: TrackRecorder, ts: int, marker: bool, payload: bytes,
                gap: bool) -> None:
        if not payload:  # padding: a loss just before it belongs to the next real packet
            track.gap_pending |= gap
            return
        gap, track.gap_pending = gap or track.gap_pending, False
        waiting = track.assembler.needs_keyframe
        frames = track.assembler.push(track.timestamps.unwrap(ts), marker, payload, gap)
        if track.assembler.needs_keyframe and (gap or not waiting or not frames):
            track.request_keyframe()  # rate-limited by the Track (one PLI per 300 ms)
        for frame in frames:
            self._frame(track, frame.timestamp, frame.data, frame.keyframe)

    def _frame(self, track: TrackRecorder, ts: int, data: bytes, keyframe: bool) -> None:
        now = self._clock()
        if self._first_frame < 0:
            self._first_frame = now
        anchor = self._anchor(track)
        if anchor.first_ts is None:
            self.timeline.first_frame(anchor, ts, now)
            if track.spec is None:
                track.spec = _spec(track, data)
        if self.writer is not None:
            self._write(track, ts, data, keyframe)
            return
        self._pending.append((track, ts, data, keyframe))
        if len(self._pending) > PENDING_LIMIT:
            del self._pending[0]
        if self._open(now):
            self._write_pending()

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, []
        for track, ts, data, keyframe in pending:
            self._write(track, ts, data, keyframe)

    def _write(self, track: TrackRecorder, ts: int, data: bytes, keyframe: bool) -> None:
        if track.index >= 0 and self.writer is not None and track.anchor is not None:
            self.writer.write(track.index, data, self.timeline.pts(track.anchor, ts), keyframe)

    def _open(self, now: float, force: bool = False) -> bool:
        """Start the file once every video track is known and synced (see the class doc)."""
        tracks = list(self.tracks.values())
        if not force and now - self._created < OPEN_TIMEOUT:
            if not all(t.spec is not None for t in tracks if t.kind == "video"):
                return False
            if not self.timeline.synced and now - self._first_frame < SYNC_WAIT:
                return False
        specs: list[StreamSpec] = []
        for t in tracks:
            if t.spec is not None and t.anchor is not None and t.anchor.first_ts is not None:
                t.index = len(specs)
                specs.append(t.spec)
            elif t.kind == "video":
                log.warning("recording %s: no keyframe of %s video yet: recorded without it",
                            self.path, t.codec)
        if not specs:
            return False
        self.timeline.start()
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.writer = MediaWriter(self.path, self.extension, specs)
        log.info("recording %s: writing %s, synced by %s", self.path,
                 "+".join(spec.codec for spec in specs),
                 "sender reports" if self.timeline.by_sender_reports else "arrival")
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
        if self.writer is None and self._pending and self._open(self._clock(), force=True):
            self._write_pending()  # what we have
        return self.writer


def _spec(track: TrackRecorder, first: bytes) -> StreamSpec:
    """The stream's container parameters from its first frame (a keyframe, for video)."""
    width = height = 0
    extradata = None
    if track.codec == "vp8" and len(first) >= 10 and first[3:6] == b"\x9d\x01\x2a":
        width = (first[6] | first[7] << 8) & 0x3FFF
        height = (first[8] | first[9] << 8) & 0x3FFF
    elif track.codec == "vp9":
        width, height = vp9_keyframe_size(first) or (0, 0)
    elif track.codec == "h264":
        params = [n for n in nal_units(first) if n[0] & 0x1F in (7, 8)]
        sps = next((n for n in params if n[0] & 0x1F == 7), None)
        size = codecs.h264_sps_size(sps) if sps is not None else None
        if size is not None:
            width, height = size
        extradata = b"".join(START_CODE + n for n in params) or None
    return StreamSpec(track.codec, track.clock_rate, width, height, extradata=extradata)


def vp9_keyframe_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) from a VP9 key frame's uncompressed header (VP9 bitstream spec §6.2:
    frame marker, profile, flags, sync code 49 83 42, color config, frame size minus 1)."""
    bits = int.from_bytes(frame[:12], "big")
    total = 8 * min(len(frame), 12)

    def read(pos: int, n: int) -> int:
        return (bits >> (total - pos - n)) & ((1 << n) - 1)

    if total < 96 or read(0, 2) != 2:
        return None
    profile = read(2, 1) | read(3, 1) << 1
    pos = 5 if profile == 3 else 4  # profile 3 has a reserved bit
    if read(pos, 1) or read(pos + 1, 1):  # show_existing_frame, or not a key frame
        return None
    pos += 4  # show_existing, frame_type, show_frame, error_resilient
    if read(pos, 24) != 0x498342:
        return None
    pos += 24
    if profile >= 2:
        pos += 1  # ten_or_twelve_bit
    color_space = read(pos, 3)
    pos += 3
    if color_space != 7:  # not sRGB: color_range, then (profiles 1, 3) subsampling + reserved
        pos += 1 + (3 if profile in (1, 3) else 0)
    elif profile in (1, 3):
        pos += 1
    return read(pos, 16) + 1, read(pos + 16, 16) + 1
