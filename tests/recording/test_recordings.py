"""The Recordings registry in process, on a real sfu Stream: a feed of the Source (as the
relays have), republish continuity, the end of the source, the files and their sidecars."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import replace
from pathlib import Path

import av
import pytest

from hubbub.media import rtp
from hubbub.recording.recordings import DONE, RECORDING, RecordingError, RecordingInfo, Recordings
from hubbub.sfu.source import Source
from hubbub.sfu.stream import Stream
from tests.recording.rtp_media import FPS, opus_frames, video_frames, vp8_payloads
from tests.sfu.fakes import FakeSink, audio_params, make_streams, video_params

OPUS_PT, VP8_PT = 111, 96


def send_media(source: Source, seconds: float, audio_ssrc: int, video_ssrc: int,
               seq0: int = 0) -> None:
    """`seconds` of a tone and VP8 (starting with a keyframe) into the Source."""
    audio = opus_frames(int(seconds * 50))
    video = video_frames("libvpx", int(seconds * FPS))
    seq = seq0
    packets: list[tuple[float, bytes]] = []
    for i, payload in enumerate(audio):
        packets.append((i * 0.02, rtp.build_packet(OPUS_PT, (seq0 + i) & 0xFFFF, i * 960,
                                                   audio_ssrc, payload, False, [])))
    for i, (frame, _) in enumerate(video):
        parts = vp8_payloads(frame, 900)
        for n, part in enumerate(parts):
            packets.append((i / FPS, rtp.build_packet(VP8_PT, seq & 0xFFFF, i * 3000, video_ssrc,
                                                      part, n == len(parts) - 1, [])))
            seq += 1
    for _, packet in sorted(packets, key=lambda p: p[0]):
        source.on_rtp(packet)


def publish(stream: Stream, audio_ssrc: int, video_ssrc: int) -> Source:
    return stream.publish("cam", [audio_params(audio_ssrc, "0"),
                                  video_params(video_ssrc, "1", pt=VP8_PT)], FakeSink())


def counts(path: Path) -> tuple[int, int]:
    """(audio frames, video frames) decoded."""
    with av.open(str(path)) as container:
        audio = sum(1 for _ in container.decode(audio=0))
    with av.open(str(path)) as container:
        video = sum(1 for _ in container.decode(video=0))
    return audio, video


async def test_a_recording_follows_a_republish_and_ends_with_its_source(
        tmp_path: Path) -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    done: list[RecordingInfo] = []
    recordings = Recordings(tmp_path, streams, on_done=done.append)
    first = publish(stream, 1111, 2222)
    info = recordings.start("s", "cam")
    assert recordings.start("s", "cam") is info  # already recording
    assert [i.state for i in recordings.list()] == [RECORDING]
    with pytest.raises(RecordingError) as busy:
        recordings.delete(info.id)
    assert busy.value.status == 409
    send_media(first, 1.0, 1111, 2222)
    second = publish(stream, 3333, 4444)  # the same sourceId again: replaces the first
    send_media(second, 1.0, 3333, 4444, seq0=500)
    stream.unpublish(second)
    for _ in range(40):
        if done:
            break
        await asyncio.sleep(0.1)
    assert [d.id for d in done] == [info.id]
    assert done[0].state == DONE and done[0].error is None
    assert 1.8 < done[0].duration < 2.3
    audio, video = counts(tmp_path / info.file)
    assert audio >= 95 and video >= 2 * FPS - 2
    assert streams.get("s") is None  # the feed went with the recording
    sidecar = json.loads((tmp_path / f"{info.id}.json").read_text())
    assert sidecar["state"] == DONE and sidecar["size"] == (tmp_path / info.file).stat().st_size
    assert recordings.delete(info.id).id == info.id
    assert recordings.list() == [] and not (tmp_path / info.file).exists()


async def test_start_refuses_what_cannot_be_recorded(tmp_path: Path) -> None:
    streams, _, _, _ = make_streams()
    recordings = Recordings(tmp_path, streams)
    with pytest.raises(RecordingError) as missing:
        recordings.start("nothing", None)
    assert missing.value.status == 404
    stream = streams.get_or_create("s")
    stream.publish(None, [video_params(5, "0", codec="AV1", pt=45)], FakeSink())
    with pytest.raises(RecordingError) as codec:
        recordings.start("s", None)
    assert codec.value.status == 409
    off = Recordings(tmp_path, streams, enabled=False)
    with pytest.raises(RecordingError) as disabled:
        off.start("s", None)
    assert disabled.value.status == 409
    with pytest.raises(RecordingError):
        await recordings.stop("s", None)  # not recording
    assert recordings.get("../../etc/passwd") is None
    with pytest.raises(RecordingError):
        recordings.delete("rec_0000000000000000")


async def test_a_sidecar_left_recording_is_listed_as_interrupted(tmp_path: Path) -> None:
    streams, _, _, _ = make_streams()
    (tmp_path / "rec_00000000000000aa.webm").write_bytes(b"x" * 100)
    (tmp_path / "rec_00000000000000aa.json").write_text(json.dumps({
        "id": "rec_00000000000000aa", "stream": "s", "source_id": None,
        "file": "rec_00000000000000aa.webm", "format": "webm", "media_type": "video/webm",
        "started": 1000.0, "state": "recording"}))
    # A sidecar pointing elsewhere is not ours: never listed, never served.
    (tmp_path / "rec_00000000000000bb.json").write_text(json.dumps({
        "id": "rec_00000000000000bb", "stream": "s", "source_id": None,
        "file": "../../secret", "format": "webm", "media_type": "video/webm",
        "started": 1000.0}))
    (info,) = Recordings(tmp_path, streams).list()
    assert info.state == DONE and info.interrupted and info.size == 100


async def test_a_sibling_workers_recording_stays_recording(tmp_path: Path) -> None:
    streams, _, _, _ = make_streams()
    (tmp_path / "rec_00000000000000cc.json").write_text(json.dumps({
        "id": "rec_00000000000000cc", "stream": "s", "source_id": None,
        "file": "rec_00000000000000cc.webm", "format": "webm", "media_type": "video/webm",
        "started": 1000.0, "state": "recording", "owner": os.getppid()}))  # alive, not us
    recordings = Recordings(tmp_path, streams)
    (info,) = recordings.list()
    assert info.state == RECORDING and not info.interrupted
    with pytest.raises(RecordingError) as busy:
        recordings.delete(info.id)
    assert busy.value.status == 409


async def test_a_simulcast_source_records_its_largest_layer(tmp_path: Path) -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    params = replace(video_params(ssrc=None, pt=VP8_PT), layer_ssrcs=[11, 22])
    source = stream.publish(None, [params], FakeSink())
    (track,) = source.tracks
    track.layers[0].width, track.layers[0].height = 160, 120
    track.layers[1].width, track.layers[1].height = 320, 240
    recordings = Recordings(tmp_path, streams)
    info = recordings.start("s", None)
    (recorded,) = recordings._active[("s", None)].recorder.tracks.values()
    feed = recordings._active[("s", None)].feed
    assert [d.track for d in feed.down_tracks] == [None, track.layers[1]]  # the other: idle
    seq = 0
    for i, (frame, _) in enumerate(video_frames("libvpx", FPS)):
        for n, part in enumerate(parts := vp8_payloads(frame, 900)):
            for ssrc in (11, 22):
                source.on_rtp(rtp.build_packet(VP8_PT, seq, i * 3000, ssrc, part,
                                               n == len(parts) - 1, []))
            seq += 1
    done = await recordings.stop("s", None)
    assert done.id == info.id and recorded.assembler.frames == FPS
    assert counts_video(tmp_path / info.file) == FPS


def counts_video(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))
