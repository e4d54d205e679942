"""AAC to Opus with real codecs: PyAV's AAC encoder makes the input, PyAV's Opus decoder checks
what comes out (the tone, the packet count, the RTP timeline)."""

from __future__ import annotations

import fractions
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from hubbub.client.analysis import dominant_frequency
from hubbub.ingest.aac_opus import OPUS_FRAME, AacToOpus

Packets = list[tuple[bytes, int]]


def make_aac(seconds: float, rate: int = 44100, channels: int = 2,
             hz: float = 440.0) -> tuple[bytes, list[tuple[bytes, int]]]:
    """The ASC and the raw AAC frames of a sine, each with its FLV timestamp (ms, from 0)."""
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.format, enc.bit_rate = rate, "fltp", 96000
    enc.layout = "stereo" if channels == 2 else "mono"
    enc.time_base = fractions.Fraction(1, rate)
    n = int(rate * seconds)
    tone = (0.5 * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.float32)
    raw = []
    for i in range(0, n - 1023, 1024):
        frame = av.AudioFrame.from_ndarray(np.stack([tone[i:i + 1024]] * channels),
                                           format="fltp", layout=enc.layout.name)
        frame.sample_rate, frame.pts = rate, i
        raw += enc.encode(frame)
    raw += enc.encode(None)
    start = raw[0].pts  # negative: the encoder's priming; FLV starts at 0 anyway
    frames = [(bytes(p), round((p.pts - start) * 1000 / rate)) for p in raw]
    return bytes(enc.extradata), frames


@pytest.fixture(scope="module")
def stereo_44k() -> tuple[bytes, list[tuple[bytes, int]]]:
    return make_aac(2.0)


def decode_opus(packets: Packets) -> np.ndarray:
    dec = av.CodecContext.create("opus", "r")
    pcm = []
    for payload, _ in packets:
        for frame in dec.decode(av.Packet(payload)):
            pcm.append(frame.to_ndarray().reshape(-1, frame.samples)[0])
    return np.concatenate(pcm)


def steps(packets: Packets) -> list[int]:
    return [(b[1] - a[1]) & 0xFFFFFFFF for a, b in zip(packets, packets[1:], strict=False)]


def test_tone_survives_on_the_flv_clock(stereo_44k: tuple[bytes, list[tuple[bytes, int]]]) -> None:
    asc, frames = stereo_44k
    transcoder = AacToOpus(asc, 44100, 2)
    packets: Packets = []
    for payload, ms in frames:
        packets += transcoder.feed(payload, ms + 5000)
    packets += transcoder.flush()
    # 2 s and a frame of AAC make 101 Opus frames, plus the encoder's lookahead drained
    assert 100 <= len(packets) <= 103
    # the first timestamp is the first frame's ms × 48, less Opus's pre-skip; then 960 each
    assert packets[0][1] == 5000 * 48 - 312
    assert set(steps(packets)) == {OPUS_FRAME}
    pcm = decode_opus(packets)
    assert abs(dominant_frequency(pcm[4800:-4800], 48000) - 440) < 5
    assert transcoder.errors == 0 and transcoder.resyncs == 0


def test_a_gap_resyncs_and_a_bad_frame_is_skipped(
        stereo_44k: tuple[bytes, list[tuple[bytes, int]]]) -> None:
    asc, frames = stereo_44k
    transcoder = AacToOpus(asc, 44100, 2)
    packets: Packets = []
    half = len(frames) // 2
    for payload, ms in frames[:half]:
        packets += transcoder.feed(payload, ms)
    before = len(packets)
    packets += transcoder.feed(b"\xff\xf1garbage" * 20, frames[half][1])  # not AAC
    assert transcoder.errors == 1
    assert transcoder.feed(b"", frames[half][1]) == [] and transcoder.errors == 1  # ignored
    resumed = frames[half][1] + 1000  # a second of silence from the encoder
    for payload, ms in frames[half:]:
        packets += transcoder.feed(payload, ms + 1000)
    assert transcoder.resyncs == 1
    jumps = [i for i, step in enumerate(steps(packets)) if step != OPUS_FRAME]
    assert len(jumps) == 1 and jumps[0] >= before - 1
    # the new timeline starts where the resumed frames say, less the new encoder's pre-skip
    assert packets[jumps[0] + 1][1] == resumed * 48 - 312
    assert abs(dominant_frequency(decode_opus(packets)[4800:-4800], 48000) - 440) < 5


def test_timestamps_wrap_modulo_2_32() -> None:
    asc, frames = make_aac(0.5)
    transcoder = AacToOpus(asc, 44100, 2)
    base = 2**32 - 200  # RTMP's ms clock wraps here, 200 ms in
    packets: Packets = []
    for payload, ms in frames:
        packets += transcoder.feed(payload, (base + ms) & 0xFFFFFFFF)
    assert transcoder.resyncs == 0 and set(steps(packets)) == {OPUS_FRAME}
    assert packets[0][1] == (base * 48 - 312) & 0xFFFFFFFF


def test_a_new_asc_rebuilds_the_decoder() -> None:
    asc, frames = make_aac(0.5)
    mono_asc, mono = make_aac(1.0, rate=48000, channels=1, hz=880)
    transcoder = AacToOpus(asc, 44100, 2)
    assert transcoder.configure(asc, 44100, 2) == []  # the same header again: no change
    packets: Packets = []
    for payload, ms in frames:
        packets += transcoder.feed(payload, ms)
    tail = transcoder.configure(mono_asc, 48000, 1)
    assert tail  # the stereo stream's last samples
    after: Packets = []
    for payload, ms in mono:
        after += transcoder.feed(payload, 600 + ms)
    assert after[0][1] == 600 * 48 - 312 and set(steps(after)) == {OPUS_FRAME}
    assert abs(dominant_frequency(decode_opus(after)[4800:-4800], 48000) - 880) < 5
    assert transcoder.errors == 0


def split_adts(data: bytes) -> tuple[bytes, list[bytes]]:
    """Raw AAC frames out of an ADTS stream, and the 2-byte ASC its headers describe."""
    frames, pos, asc = [], 0, b""
    while pos + 7 <= len(data):
        assert data[pos] == 0xFF and data[pos + 1] & 0xF0 == 0xF0, "lost ADTS sync"
        header = 7 if data[pos + 1] & 1 else 9  # protection_absent
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        if not asc:
            profile, index = data[pos + 2] >> 6, (data[pos + 2] >> 2) & 0xF
            channels = ((data[pos + 2] & 1) << 2) | (data[pos + 3] >> 6)
            asc = ((profile + 1) << 11 | index << 7 | channels << 3).to_bytes(2, "big")
        frames.append(data[pos + header:pos + length])
        pos += length
    return asc, frames


@pytest.mark.slow
def test_ffmpeg_aac_from_adts(tmp_path: Path) -> None:
    out = f"{tmp_path}/sine.aac"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100:duration=2", "-ac", "2", "-c:a", "aac",
                    "-b:a", "128k", "-f", "adts", out], check=True, timeout=60)
    with open(out, "rb") as f:
        asc, frames = split_adts(f.read())
    assert asc == bytes.fromhex("1210")  # AAC-LC, 44.1 kHz, stereo
    transcoder = AacToOpus(asc, 44100, 2)
    packets: Packets = []
    for i, frame in enumerate(frames):
        packets += transcoder.feed(frame, i * 1024 * 1000 // 44100)
    packets += transcoder.flush()
    assert 99 <= len(packets) <= 104 and set(steps(packets)) == {OPUS_FRAME}
    assert packets[0][1] == -312 & 0xFFFFFFFF
    assert abs(dominant_frequency(decode_opus(packets)[4800:-4800], 48000) - 440) < 5
    assert transcoder.errors == 0


def test_a_clock_going_back_resyncs_too() -> None:
    asc, frames = make_aac(0.5)
    transcoder = AacToOpus(asc, 44100, 2)
    packets: Packets = []
    for payload, ms in frames:
        packets += transcoder.feed(payload, 10_000 + ms)
    for payload, ms in frames:  # the encoder restarted its clock
        packets += transcoder.feed(payload, ms)
    assert transcoder.resyncs == 1 and transcoder.errors == 0
    back = [i for i, step in enumerate(steps(packets)) if step != OPUS_FRAME]
    assert len(back) == 1 and packets[back[0] + 1][1] == -312 & 0xFFFFFFFF


def test_each_packet_has_a_level() -> None:
    asc, frames = make_aac(1.0)  # a 0.5-amplitude sine: RMS -9 dBov
    silent_asc, silence = make_aac(0.5, hz=0.0)
    bridge = AacToOpus(asc, 44100, 2)
    levels = []
    for frame, ms in frames:
        for _ in bridge.feed(frame, ms):
            levels.append(bridge.next_level())
    assert len(levels) >= 45 and set(levels[2:-2]) <= {8, 9, 10}, levels
    quiet = AacToOpus(silent_asc, 44100, 2)
    out = [quiet.next_level() for frame, ms in silence for _ in quiet.feed(frame, ms)]
    assert out and set(out) == {127}, out
