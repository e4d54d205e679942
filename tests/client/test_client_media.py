from __future__ import annotations

import asyncio
import fractions
import time

import numpy as np
import pytest
from aiortc.codecs import get_decoder, get_encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import AudioFrame, VideoFrame

from hubbub.client.analysis import dominant_frequency, rms
from hubbub.client.media import (
    AudioRecorder,
    PatternTrack,
    ToneTrack,
    VideoCounter,
    file_tracks,
    to_mono,
)

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2)


async def test_tone_track_yields_paced_20ms_s16_frames_of_the_tone() -> None:
    track = ToneTrack(440)
    started = time.monotonic()
    frames = [await track.recv() for _ in range(10)]
    elapsed = time.monotonic() - started
    assert 0.16 <= elapsed < 0.4  # 9 frame intervals of 20 ms, paced in real time
    assert all(isinstance(f, AudioFrame) for f in frames)
    first = frames[0]
    assert isinstance(first, AudioFrame)
    assert (first.format.name, first.layout.name, first.samples) == ("s16", "mono", 960)
    assert [f.pts for f in frames] == [960 * i for i in range(10)]
    assert first.time_base == fractions.Fraction(1, 48000)
    samples = np.concatenate([to_mono(f) for f in frames if isinstance(f, AudioFrame)])
    assert abs(dominant_frequency(samples, 48000) - 440) < 1
    assert rms(samples) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)
    # phase continuity: no jump at frame boundaries (max step of a 440 Hz sine at 0.3)
    assert np.max(np.abs(np.diff(samples))) < 0.3 * 2 * np.pi * 440 / 48000 * 1.01


async def test_tone_track_survives_an_opus_round_trip() -> None:
    track = ToneTrack(1000, amplitude=0.5)
    encoder, decoder = get_encoder(OPUS), get_decoder(OPUS)
    decoded = []
    for _ in range(25):
        frame = track.next_samples()
        audio = AudioFrame.from_ndarray(frame.reshape(1, -1), format="s16", layout="mono")
        audio.sample_rate = 48000
        audio.pts = 0
        audio.time_base = fractions.Fraction(1, 48000)
        payloads, _ = encoder.encode(audio)
        for out in decoder.decode(JitterFrame(data=payloads[0], timestamp=0)):
            assert isinstance(out, AudioFrame)
            decoded.append(to_mono(out))
    samples = np.concatenate(decoded)[4800:]  # skip the codec's start-up
    assert abs(dominant_frequency(samples, 48000) - 1000) < 1
    # aiortc upmixes mono to stereo at -3 dB per channel, so the level drops by 1/sqrt(2)
    assert rms(samples) == pytest.approx(0.5 / np.sqrt(2) / np.sqrt(2), rel=0.1)


def test_tone_track_amplitude_zero_is_silence_and_rate_is_checked() -> None:
    track = ToneTrack(440, amplitude=0.0)
    assert not track.next_samples().any()
    with pytest.raises(ValueError, match="whole 20 ms frames"):
        ToneTrack(440, sample_rate=44110)


async def test_stopped_tracks_raise_media_stream_error() -> None:
    for track in (ToneTrack(440), PatternTrack()):
        track.stop()
        with pytest.raises(MediaStreamError):
            await track.recv()


async def test_pattern_track_moves_and_keeps_its_size_and_rate() -> None:
    track = PatternTrack(64, 48, fps=50)
    frames = [await track.recv() for _ in range(3)]
    images = [f.to_ndarray(format="gray") for f in frames if isinstance(f, VideoFrame)]
    assert len(images) == 3 and images[0].shape == (48, 64)
    assert not np.array_equal(images[0], images[1])
    assert [f.pts for f in frames] == [0, 1800, 3600]  # 90 kHz / 50 fps
    with pytest.raises(ValueError, match="positive and even"):
        PatternTrack(33, 48)


async def test_audio_recorder_keeps_the_last_seconds_as_mono_floats() -> None:
    recorder = AudioRecorder(ToneTrack(880, amplitude=0.5), seconds=0.1).start()
    await recorder.wait_for_frames(8, timeout=2)
    assert recorder.sample_rate == 48000
    assert recorder.total_samples == 960 * recorder.frames
    kept = recorder.samples()
    assert 4800 <= len(kept) < 4800 + 960  # 0.1 s kept, in whole frames
    assert len(recorder.samples(0.05)) == 2400
    assert np.max(np.abs(kept)) == pytest.approx(0.5, rel=0.01)
    assert abs(dominant_frequency(kept, 48000) - 880) < 1
    recorder.clear()
    assert len(recorder.samples()) == 0
    await recorder.stop()


def test_to_mono_averages_packed_stereo() -> None:
    left_right = np.array([[1000, 3000, -2000, 0]], dtype=np.int16)  # L R L R
    frame = AudioFrame.from_ndarray(left_right, format="s16", layout="stereo")
    assert to_mono(frame).tolist() == [2000 / 32768, -1000 / 32768]


async def test_video_counter_counts_frames_and_ends_with_the_track() -> None:
    track = PatternTrack(32, 16, fps=100)
    counter = VideoCounter(track).start()
    await counter.wait_for_frames(4, timeout=2)
    assert counter.sizes[(32, 16)] == counter.frames and counter.last_size == (32, 16)
    track.stop()
    await asyncio.sleep(0.05)
    assert counter.ended
    with pytest.raises(EOFError, match="track ended after"):
        await counter.wait_for_frames(10_000, timeout=1)


def test_file_tracks_of_a_missing_file_raise() -> None:
    with pytest.raises(Exception, match="No such file"):
        file_tracks("/nonexistent/file.wav")


async def test_file_tracks_play_a_wav_file(tmp_path: pytest.TempPathFactory) -> None:
    import wave

    path = f"{tmp_path}/tone.wav"
    samples = np.round(np.sin(2 * np.pi * 750 * np.arange(24000) / 48000) * 16000)
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(samples.astype("<i2").tobytes())
    (track,) = file_tracks(path)
    assert track.kind == "audio"
    recorder = AudioRecorder(track).start()
    await recorder.wait_for_frames(10, timeout=3)
    assert abs(dominant_frequency(recorder.samples(), recorder.sample_rate) - 750) < 1
    track.stop()
    await recorder.stop()


def test_an_empty_opus_frame_does_not_end_the_decoder() -> None:
    """A padding-only RTP packet (forwarded by the SFU) reaches aiortc's Opus decoder as an
    empty frame; PyAV takes it as a flush and then fails every later frame with EOF. The
    client's guard (hubbub.client.patches, installed by every session) skips it."""
    import fractions

    import av
    import numpy as np
    from aiortc.codecs.opus import OpusDecoder, OpusEncoder
    from aiortc.jitterbuffer import JitterFrame

    from hubbub.client.patches import use_empty_frame_guard

    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1920), dtype="int16"), format="s16",
                                       layout="stereo")
    frame.sample_rate, frame.pts = 48000, 0
    frame.time_base = fractions.Fraction(1, 48000)
    payload = OpusEncoder().encode(frame)[0][0]
    use_empty_frame_guard()
    decoder = OpusDecoder()
    assert len(decoder.decode(JitterFrame(data=payload, timestamp=0))) == 1
    assert decoder.decode(JitterFrame(data=b"", timestamp=960)) == []
    assert len(decoder.decode(JitterFrame(data=payload, timestamp=1920))) == 1
