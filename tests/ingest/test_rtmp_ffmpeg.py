"""Debian's ffmpeg publishing to the RTMP floor in-process: what a real encoder sends arrives
at the callbacks, and what we refuse reaches the encoder as "Server error: <reason>"."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from hubbub.ingest.rtmp import BAD_NAME, Refusal, RtmpServer

from .rtmp_helpers import Gate, VideoFrame

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]

VIDEO = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"]
BASELINE = [*VIDEO, "-profile:v", "baseline", "-tune", "zerolatency"]
AAC = ["-c:a", "aac", "-ac", "2"]


async def push(port: int, path: str, codecs: list[str], seconds: float = 2.0) -> tuple[int, str]:
    """ffmpeg pushes testsrc2 and a 440 Hz sine in real time; (exit code, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440",
        *codecs, "-t", str(seconds), "-threads", "1",
        "-f", "flv", f"rtmp://127.0.0.1:{port}/v2/pub/{path}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, stderr.decode(errors="replace")


async def test_ffmpeg_publish_reaches_the_callbacks() -> None:
    gate = Gate()
    async with RtmpServer(gate, "127.0.0.1", 0) as server:
        code, stderr = await push(server.port, "myStream?token=abc&sourceId=cam",
                                  [*BASELINE, *AAC])
        assert code == 0, stderr
        [recorder] = gate.recorders
        await asyncio.wait_for(recorder.ended.wait(), 5)
    [request] = gate.requests
    assert (request.app, request.stream_name, request.token, request.source_id) == (
        "v2/pub", "myStream", "abc", "cam")
    assert request.tc_url == f"rtmp://127.0.0.1:{server.port}/v2/pub"
    assert "Lavf" in request.encoder
    assert recorder.reasons == ["unpublished by the encoder"]

    assert recorder.metadata and recorder.metadata[0]["videocodecid"] == 7.0
    [avc] = recorder.video_configs
    assert avc.profile == 66 and avc.nal_length_size == 4
    assert [s[0] & 0x1F for s in avc.sps] == [7] and [p[0] & 0x1F for p in avc.pps] == [8]

    video = recorder.video
    assert 50 <= len(video) <= 70, len(video)
    assert all(f.cts == 0 for f in video)
    times = [f.ts for f in video]
    assert times == sorted(times) and len(set(times)) == len(times)
    keys = [f for f in video if f.is_key]
    assert video[0].is_key and 5 in video[0].nal_types
    assert all(5 in f.nal_types for f in keys) and not any(5 in f.nal_types for f in video
                                                            if not f.is_key)
    gaps = [b.ts - a.ts for a, b in zip(keys, keys[1:], strict=False)]
    assert gaps and all(950 <= gap <= 1050 for gap in gaps), gaps  # -g 30 at 30 fps

    [aac] = recorder.audio_configs
    assert (aac.object_type, aac.sample_rate, aac.channels) == (2, 44100, 2)
    audio_times = [ts for ts, _ in recorder.audio]
    assert len(audio_times) >= 70  # 1024 samples at 44.1 kHz: 43 frames a second
    assert audio_times == sorted(audio_times) and all(n > 0 for _, n in recorder.audio)


async def test_a_refused_publish_fails_ffmpeg_with_the_reason() -> None:
    gate = Gate(verdict=Refusal("hubbub: token expired", BAD_NAME))
    async with RtmpServer(gate, "127.0.0.1", 0) as server:
        code, stderr = await push(server.port, "myStream?token=old", [*BASELINE, *AAC])
    assert code != 0
    assert "Server error: hubbub: token expired" in stderr, stderr
    assert [r.token for r in gate.requests] == ["old"]


async def test_b_frames_show_as_composition_offsets_and_can_be_refused() -> None:
    def no_b_frames(frame: VideoFrame) -> Refusal | None:
        if frame.cts:
            return Refusal("hubbub: B-frames are not supported (use -bf 0)")
        return None

    gate = Gate(refuse_video=no_b_frames)
    async with RtmpServer(gate, "127.0.0.1", 0) as server:
        code, stderr = await push(server.port, "bframes?token=abc",
                                  [*VIDEO, "-profile:v", "high", "-bf", "2", *AAC])
        [recorder] = gate.recorders
        await asyncio.wait_for(recorder.ended.wait(), 5)
    assert code != 0
    assert "Server error: hubbub: B-frames are not supported (use -bf 0)" in stderr, stderr
    assert recorder.video and recorder.video[-1].cts != 0  # the first one non-zero: refused
    assert recorder.reasons == ["refused: hubbub: B-frames are not supported (use -bf 0)"]


async def test_an_unsupported_codec_is_refused_by_name() -> None:
    gate = Gate()
    async with RtmpServer(gate, "127.0.0.1", 0) as server:
        code, stderr = await push(server.port, "old?token=abc", ["-c:v", "flv1", *AAC], 1.0)
        [recorder] = gate.recorders
        await asyncio.wait_for(recorder.ended.wait(), 5)
    assert code != 0
    assert "Server error: hubbub: Sorenson H.263 video is not supported (use H.264)" in stderr
    assert not recorder.video and recorder.reasons[0].startswith("refused: ")


async def test_timestamps_stay_right_across_the_extended_timestamp_boundary() -> None:
    # ffmpeg's clock starts 215 ms below 0xFFFFFF ms (4.66 h): its chunk headers switch to
    # extended timestamps mid-stream, the case other RTMP servers broke on (chunks.py).
    gate = Gate()
    async with RtmpServer(gate, "127.0.0.1", 0) as server:
        code, stderr = await push(server.port, "long?token=abc",
                                  [*BASELINE, *AAC, "-output_ts_offset", "16777"], 1.5)
        assert code == 0, stderr
        [recorder] = gate.recorders
        await asyncio.wait_for(recorder.ended.wait(), 5)
    times = [f.ts for f in recorder.video]
    assert times[0] == 16_777_000 and times[-1] > 0xFFFFFF + 1000
    assert all(33 <= b - a <= 34 for a, b in zip(times, times[1:], strict=False)), times
    audio = [ts for ts, _ in recorder.audio]
    assert all(22 <= b - a <= 24 for a, b in zip(audio, audio[1:], strict=False)), audio
