"""Audio/video placement on the file's timeline: by SRs when every track has one, else by
arrival; through SourceRecorder's RTCP path too."""

from __future__ import annotations

from pathlib import Path

from hubbub.media import rtcp
from hubbub.recording.depacketize import payload_format
from hubbub.recording.recorder import SourceRecorder, TrackRecorder
from hubbub.recording.sync import NTP_ONE_SECOND, Timeline

A0, V0 = 1000, 5_000_000  # the two RTP clocks' random origins
DELAY = 0.3  # video arrives this much later than audio captured at the same time
NTP0 = 3_900_000_000  # the publisher's NTP seconds at capture time 0


def ntp(t: float) -> int:
    return int((NTP0 + t) * NTP_ONE_SECOND)


def test_srs_undo_a_network_delay_between_tracks() -> None:
    line = Timeline()
    audio, video = line.add(48000), line.add(90000)
    line.first_frame(audio, A0, 100.0)
    line.first_frame(video, V0, 100.0 + DELAY)
    line.sender_report(audio, ntp(0.5), A0 + 24000, 100.5)
    line.sender_report(video, ntp(0.5), V0 + 45000, 100.5 + DELAY)
    assert line.synced
    line.start()
    # Captured at t = 1 s on both: the same place in the file.
    assert line.pts(audio, A0 + 48000) / 48000 == line.pts(video, V0 + 90000) / 90000 == 1.0


def test_without_srs_arrival_places_the_tracks() -> None:
    line = Timeline()
    audio, video = line.add(48000), line.add(90000)
    line.first_frame(audio, A0, 100.0)
    line.first_frame(video, V0, 100.0 + DELAY)
    assert not line.synced
    line.start()
    assert line.pts(audio, A0) == 0
    assert abs(line.pts(video, V0) / 90000 - DELAY) < 1e-6


def test_srs_on_different_clocks_are_not_trusted() -> None:
    line = Timeline()
    audio, video = line.add(48000), line.add(90000)
    line.first_frame(audio, A0, 100.0)
    line.first_frame(video, V0, 100.0)
    line.sender_report(audio, ntp(0.5), A0 + 24000, 100.5)
    line.sender_report(video, ntp(3600.5), V0 + 45000, 100.5)  # an hour off: another clock
    line.start()
    assert line.pts(audio, A0) == line.pts(video, V0) == 0


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def test_recorder_reads_the_feeds_srs(tmp_path: Path) -> None:
    clock = Clock()
    opus, vp8 = payload_format("opus"), payload_format("vp8")
    assert opus is not None and vp8 is not None
    tracks = {1: TrackRecorder("audio", "opus", 48000, opus, lambda: None),
              2: TrackRecorder("video", "vp8", 90000, vp8, lambda: None)}
    recorder = SourceRecorder(str(tmp_path / "s.webm"), "webm", tracks, clock)
    recorder.send_rtp(bytes((0x80, 111, 0, 1)) + A0.to_bytes(4, "big") + (1).to_bytes(4, "big")
                      + b"opus")
    report = rtcp.SenderReport(2, ntp(0.5), V0 + 45000, 1, 1).serialize()
    recorder.send_rtcp(report + rtcp.SenderReport(1, ntp(0.5), A0 + 24000, 1, 1).serialize())
    anchor = tracks[2].anchor
    assert anchor is not None and anchor.sr == (ntp(0.5), V0 + 45000, 100.0)
    assert recorder.finish() is not None
    assert recorder.writer is not None
    recorder.writer.close()
