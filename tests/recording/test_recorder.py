"""SourceRecorder in process: RTP in (shuffled a little), a file out that FFmpeg decodes."""

from __future__ import annotations

import random
from pathlib import Path

import av
import numpy as np
import pytest

from hubbub.recording.depacketize import payload_format
from hubbub.recording.recorder import SourceRecorder, TrackRecorder
from hubbub.recording.writer import MediaWriter, StreamSpec, recover
from tests.recording.rtp_media import (
    FPS,
    h264_payloads,
    opus_frames,
    rtp,
    video_frames,
    vp8_payloads,
    vp9_payloads,
)

VIDEO_SSRC, AUDIO_SSRC = 1111, 2222
SECONDS = 3


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _packets(codec: str) -> list[tuple[float, bytes]]:
    """(send time, RTP packet) for SECONDS of video and a 440 Hz tone, seq/ts near the wrap."""
    encoder = {"vp8": "libvpx", "vp9": "libvpx-vp9", "h264": "libx264"}[codec]
    cut = {"vp8": vp8_payloads, "vp9": vp9_payloads, "h264": h264_payloads}[codec]
    out: list[tuple[float, bytes]] = []
    seq, ts0 = 65500, 0xFFFFFFFF - 90000  # both wrap during the recording
    for i, (frame, _) in enumerate(video_frames(encoder, SECONDS * FPS)):
        payloads = cut(frame, 300)
        for n, payload in enumerate(payloads):
            out.append((i / FPS, rtp(seq, ts0 + i * 3000, VIDEO_SSRC, payload,
                                     n == len(payloads) - 1)))
            seq += 1
    for i, payload in enumerate(opus_frames(SECONDS * 50)):
        out.append((i * 0.02, rtp(7 + i, 12345 + i * 960, AUDIO_SSRC, payload, i == 0, 111)))
    out.sort(key=lambda p: p[0])
    rng = random.Random(7)
    for i in range(10, len(out) - 3, 10):  # swap neighbours now and then: reordering
        j = i + rng.randint(1, 3)
        out[i], out[j] = out[j], out[i]
    return out


def _recorder(path: Path, codec: str, extension: str, clock: FakeClock) -> SourceRecorder:
    asked: list[int] = []
    tracks = {
        VIDEO_SSRC: TrackRecorder("video", codec, 90000, payload_format(codec),  # type: ignore[arg-type]
                                  lambda: asked.append(1)),
        AUDIO_SSRC: TrackRecorder("audio", "opus", 48000, payload_format("opus"),  # type: ignore[arg-type]
                                  lambda: None),
    }
    return SourceRecorder(str(path), extension, tracks, clock)


def dominant_frequency(path: Path) -> float:
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    samples = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * 48000 / len(samples))


def decoded_video_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.parametrize(("codec", "extension"), [("vp8", "webm"), ("vp9", "webm"),
                                                   ("h264", "mkv"), ("h264", "mp4")])
def test_recorded_file_decodes_with_tone_and_frames(tmp_path: Path, codec: str,
                                                    extension: str) -> None:
    clock = FakeClock()
    path = tmp_path / f"r.{extension}"
    recorder = _recorder(path, codec, extension, clock)
    start = clock.now
    for at, packet in _packets(codec):
        clock.now = start + at
        recorder.send_rtp(packet)
    writer = recorder.finish()
    assert writer is not None
    writer.close()
    assert writer.error is None
    assert 0.9 * SECONDS < writer.duration < SECONDS + 0.2
    with av.open(str(path)) as container:
        assert {s.codec_context.name for s in container.streams} == {codec, "opus"}
        assert container.streams.video[0].codec_context.width == 320
    assert abs(dominant_frequency(path) - 440) < 5
    assert decoded_video_frames(path) >= SECONDS * FPS * 0.95


def test_bad_packets_are_counted_not_raised(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path / "x.webm", "vp8", "webm", FakeClock())
    recorder.send_rtp(b"\x00\x01")
    # Extension bit set but no extension block.
    recorder.send_rtp(b"\x90\x60\x00\x01" + bytes(4) + VIDEO_SSRC.to_bytes(4, "big"))
    recorder.send_rtp(rtp(1, 1, 999, b"other ssrc"))
    assert recorder.malformed == 2
    assert recorder.finish() is None  # nothing to write: no file
    assert not (tmp_path / "x.webm").exists()


def test_a_writer_far_behind_drops_and_resumes_video_at_a_keyframe(tmp_path: Path) -> None:
    writer = MediaWriter(str(tmp_path / "w.webm"), "webm",
                         [StreamSpec("vp8", 90000, 320, 240), StreamSpec("opus", 48000)],
                         max_queued=0)
    frames = video_frames("libvpx", 4, gop=2)  # key, delta, key, delta
    writer.write(0, frames[0][0], 0, True)  # the muxer is "behind": dropped
    writer.max_queued = 1_000_000
    writer.write(0, frames[1][0], 3000, False)  # a delta after a drop: dropped too
    writer.write(1, opus_frames(1)[0], 0, True)  # audio resumes at once
    writer.write(0, frames[2][0], 6000, True)
    writer.write(0, frames[3][0], 9000, False)
    writer.close()
    assert writer.dropped == 2 and writer.error is None
    assert decoded_video_frames(tmp_path / "w.webm") == 2


def test_a_cut_short_file_plays_and_recover_gives_it_a_duration(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "whole.webm"
    recorder = _recorder(path, "vp8", "webm", clock)
    start = clock.now
    for at, packet in _packets("vp8"):
        clock.now = start + at
        recorder.send_rtp(packet)
    writer = recorder.finish()
    assert writer is not None
    writer.close()
    cut = tmp_path / "cut.webm"
    cut.write_bytes(path.read_bytes()[:path.stat().st_size * 2 // 3])  # as a crash leaves it
    assert decoded_video_frames(cut) > FPS  # readable as it is
    whole = tmp_path / "recovered.webm"
    recover(str(cut), str(whole))
    with av.open(str(whole)) as container:
        assert container.duration is not None and container.duration > 1_000_000
    assert decoded_video_frames(whole) > FPS


def test_unrepaired_video_loss_asks_for_a_keyframe_and_resumes_there(tmp_path: Path) -> None:
    asked: list[float] = []
    clock = FakeClock()
    vp8 = payload_format("vp8")
    assert vp8 is not None
    tracks = {VIDEO_SSRC: TrackRecorder("video", "vp8", 90000, vp8,
                                        lambda: asked.append(clock.now))}
    recorder = SourceRecorder(str(tmp_path / "l.webm"), "webm", tracks, clock)
    seq = 0
    for i, (frame, _) in enumerate(video_frames("libvpx", 60, gop=40)):
        clock.now += 1 / FPS
        for n, payload in enumerate(vp8_payloads(frame, 200)):
            if not (i == 10 and n == 0):  # one packet of frame 10 never comes
                recorder.send_rtp(rtp(seq, i * 3000, VIDEO_SSRC, payload, False))
            seq += 1
    writer = recorder.finish()
    assert writer is not None
    writer.close()
    assert asked  # the publisher was asked for a keyframe once the hole was given up
    assert tracks[VIDEO_SSRC].reorder.lost == 1
    # Frames 0-9, then from the keyframe at 40: nothing undecodable in between.
    assert decoded_video_frames(tmp_path / "l.webm") == 10 + 20


def test_padding_packets_are_no_loss(tmp_path: Path) -> None:
    clock = FakeClock()
    vp8 = payload_format("vp8")
    assert vp8 is not None
    tracks = {VIDEO_SSRC: TrackRecorder("video", "vp8", 90000, vp8, lambda: None)}
    recorder = SourceRecorder(str(tmp_path / "p.webm"), "webm", tracks, clock)
    seq = 0
    for i, (frame, _) in enumerate(video_frames("libvpx", 20, gop=100)):
        for payload in vp8_payloads(frame, 500):
            recorder.send_rtp(rtp(seq, i * 3000, VIDEO_SSRC, payload, False))
            seq += 1
        # A probe: padding only (P bit, the last byte counts the padding).
        recorder.send_rtp(b"\xa0" + rtp(seq, i * 3000, VIDEO_SSRC, bytes(9) + b"\x0a")[1:])
        seq += 1
    writer = recorder.finish()
    assert writer is not None
    writer.close()
    assert tracks[VIDEO_SSRC].assembler.dropped == 0
    assert decoded_video_frames(tmp_path / "p.webm") == 20
