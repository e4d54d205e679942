"""Fakes and builders for the sfu tests: recording sinks, a manual clock, packet makers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hubbub.media import rtp
from hubbub.sfu import DownTrackParams, SfuConfig, Source, Stream, Streams, TrackParams, Viewer

MID_IN = 3  # publisher's MID extension id
LEVEL_IN = 1  # publisher's audio-level extension id
ABS_IN = 2  # publisher's abs-send-time id
MID_OUT = 9  # viewer's MID extension id
LEVEL_OUT = 5
ABS_OUT = 4

OPUS_PT = 111
VP8_PT = 96

VP8_KEY = b"\x10\x00\x9d\x01\x2a" + b"k" * 20  # S=1, PID=0, P=0 -> keyframe
VP8_DELTA = b"\x10\x01" + b"d" * 20  # P=1 -> interframe
OPUS = b"\xfc" + b"o" * 30


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeNtp:
    def __init__(self, seconds: int = 3_900_000_000, fraction: int = 0) -> None:
        self.value = (seconds, fraction)

    def __call__(self) -> tuple[int, int]:
        return self.value


@dataclass
class FakeSink:
    rtp_out: list[bytes] = field(default_factory=list)
    rtcp_out: list[bytes] = field(default_factory=list)

    def send_rtp(self, data: bytes) -> None:
        self.rtp_out.append(data)

    def send_rtcp(self, data: bytes) -> None:
        self.rtcp_out.append(data)

    def headers(self) -> list[tuple[int, bool, int, int, int]]:
        return [rtp.read_header(p) for p in self.rtp_out]


class Recorder:
    """StreamListener that records (event, stream name, source id or count)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []

    def source_active(self, stream: Stream, source: Source) -> None:
        self.events.append(("active", stream.name, source.source_id))

    def source_inactive(self, stream: Stream, source: Source) -> None:
        self.events.append(("inactive", stream.name, source.source_id))

    def stopped(self, stream: Stream) -> None:
        self.events.append(("stopped", stream.name, None))

    def viewer_count(self, stream: Stream, count: int) -> None:
        self.events.append(("viewers", stream.name, count))

    def source_timed_out(self, stream: Stream, source: Source) -> None:
        self.events.append(("timeout", stream.name, source.source_id))

    def slot_changed(
        self, stream: Stream, viewer: Viewer, mid: str, source_id: str | None
    ) -> None:
        self.events.append(("slot", stream.name, (mid, source_id)))

    def layers(self, stream: Stream, viewer: Viewer, mid: str, entry: dict[str, Any]) -> None:
        self.events.append(("layers", stream.name, (mid, entry)))


PUB_EXT = {rtp.SDES_MID: MID_IN, rtp.AUDIO_LEVEL: LEVEL_IN, rtp.ABS_SEND_TIME: ABS_IN}
VIEW_EXT = {rtp.SDES_MID: MID_OUT, rtp.AUDIO_LEVEL: LEVEL_OUT, rtp.ABS_SEND_TIME: ABS_OUT}


def audio_params(ssrc: int | None = 1111, mid: str = "0") -> TrackParams:
    return TrackParams("audio", mid, "opus", OPUS_PT, 48000, "minptime=10;useinbandfec=1",
                       [ssrc] if ssrc is not None else [], dict(PUB_EXT))


def video_params(ssrc: int | None = 2222, mid: str = "1", codec: str = "VP8",
                 pt: int = VP8_PT, fmtp: str = "") -> TrackParams:
    return TrackParams("video", mid, codec, pt, 90000, fmtp,
                       [ssrc] if ssrc is not None else [], dict(PUB_EXT))


def down_audio(ssrc: int = 0xA0000001, mid: str = "a0") -> DownTrackParams:
    return DownTrackParams("audio", mid, ssrc, {"opus": 109}, dict(VIEW_EXT))


def down_video(ssrc: int = 0xB0000001, mid: str = "v0") -> DownTrackParams:
    return DownTrackParams("video", mid, ssrc, {"VP8": 120, "H264/42e01f/1": 125},
                           dict(VIEW_EXT))


def audio_packet(seq: int, ts: int, ssrc: int = 1111, level: int = 30,
                 mid: bytes | None = None, pt: int = OPUS_PT) -> bytes:
    ext = [(LEVEL_IN, bytes((0x80 | level,))), (ABS_IN, b"\x01\x02\x03")]
    if mid is not None:
        ext.append((MID_IN, mid))
    return rtp.build_packet(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, OPUS, False, ext)


def video_packet(seq: int, ts: int, ssrc: int = 2222, key: bool = False,
                 mid: bytes | None = None, marker: bool = False) -> bytes:
    ext = [(ABS_IN, b"\x04\x05\x06")]
    if mid is not None:
        ext.append((MID_IN, mid))
    return rtp.build_packet(VP8_PT, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc,
                            VP8_KEY if key else VP8_DELTA, marker, ext)


def make_streams(**config: float | int) -> tuple[Streams, Recorder, FakeClock, FakeNtp]:
    recorder = Recorder()
    clock = FakeClock()
    ntp = FakeNtp()
    streams = Streams(recorder, SfuConfig(**config), clock, ntp)  # type: ignore[arg-type]
    return streams, recorder, clock, ntp


def extension(data: bytes, ext_id: int) -> bytes | None:
    found = rtp.find_extension(data, ext_id)
    return None if found is None else data[found[0]:found[0] + found[1]]
