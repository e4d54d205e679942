"""Pre-encoded Opus frames for the bots: a tone, a silence frame, and a per-bot tag.

Bots never encode per packet: `encode_tone` runs libopus (PyAV) once at start. Every frame is
re-wrapped as a code-3 Opus packet with padding that carries (bot id, frame index)
(RFC 6716 §3.2.5: the decoder MUST accept any padding value), so the payload stays valid Opus
for browsers and aiortc while every bot's frames are distinct bytes, even when two bots share
a frequency or send identical silence.
"""

from __future__ import annotations

import fractions
import math
import struct
from dataclasses import dataclass

import av
import numpy as np

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
_TAG = struct.Struct("!IH")  # bot id, frame index


def tag_frame(packet: bytes, bot_id: int, index: int) -> bytes:
    """Turn a one-frame code-0 Opus packet into a code-3 packet whose padding is the tag.

    RFC 6716 §3.2.5: byte 1 = v|p|M (here CBR, padding, one frame), then the padding length,
    then the frame, then the padding bytes.
    """
    if len(packet) < 1:
        raise ValueError("empty Opus packet")
    toc = packet[0]
    if toc & 0x03 != 0:
        raise ValueError(f"expected a code-0 Opus packet, got code {toc & 0x03}")
    tag = _TAG.pack(bot_id, index)
    return bytes((toc | 0x03, 0x40 | 1, len(tag))) + packet[1:] + tag


def read_tag(payload: bytes) -> tuple[int, int] | None:
    """(bot id, frame index) of a frame made by `tag_frame`, else None."""
    if len(payload) < 3 + _TAG.size or payload[0] & 0x03 != 3 or payload[1] != 0x41:
        return None
    if payload[2] != _TAG.size:
        return None
    bot_id, index = _TAG.unpack_from(payload, len(payload) - _TAG.size)
    return int(bot_id), int(index)


def level_of(samples: np.ndarray) -> int:
    """RFC 6464 §3 audio level of float samples in [-1, 1]: -dBov, clamped to 0..127."""
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64))))) if samples.size else 0.0
    if rms <= 0.0:
        return 127
    return max(0, min(127, round(-20.0 * math.log10(rms))))


@dataclass(frozen=True)
class FrameSet:
    """One bot's payloads: `tone[i]` while talking (cycled), `silence` in non-DTX silence."""

    bot_id: int
    frequency: float
    tone: tuple[bytes, ...]
    silence: bytes
    level: int  # RFC 6464 level of the tone (0 = loudest, 127 = silence)


def _encoder(bitrate: int) -> av.AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    assert isinstance(codec, av.AudioCodecContext)
    codec.sample_rate = SAMPLE_RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, SAMPLE_RATE)
    return codec


def _encode(codec: av.AudioCodecContext, samples: np.ndarray, pts: int) -> list[bytes]:
    pcm = np.clip(samples * 32767.0, -32768, 32767).astype(np.int16).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
    return [bytes(p) for p in codec.encode(frame)]


def encode_tone(
    bot_id: int,
    frequency: float,
    frames: int = 50,
    amplitude: float = 0.1,
    bitrate: int = 32000,
) -> FrameSet:
    """Encode `frames` 20 ms Opus frames of a sine, to be sent in a cycle.

    An integer frequency completes whole periods in one second, so 50 frames loop without a
    phase jump; the first cycle is encoded and dropped so the kept frames start from a
    warmed-up encoder state that matches the state at the loop point. amplitude 0.1 is
    about -23 dBov (RFC 6464 level 23): a loud talker.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    codec = _encoder(bitrate)
    t = np.arange(2 * frames * FRAME_SAMPLES) / SAMPLE_RATE
    wave = amplitude * np.sin(2 * np.pi * frequency * t)
    packets: list[bytes] = []
    for i in range(2 * frames):
        chunk = wave[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES]
        packets += _encode(codec, chunk, i * FRAME_SAMPLES)
    # A fresh encoder: after a tone libopus spends many frames on the decaying tail, while
    # a silence frame of a settled encoder is 3 bytes, like a browser's non-DTX silence.
    quiet = _encoder(bitrate)
    silent: list[bytes] = []
    for i in range(5):
        silent += _encode(quiet, np.zeros(FRAME_SAMPLES), i * FRAME_SAMPLES)
    if len(packets) < 2 * frames or not silent:
        raise RuntimeError("libopus returned fewer packets than frames")
    kept = packets[frames : 2 * frames]
    tone = tuple(tag_frame(p, bot_id, i) for i, p in enumerate(kept))
    return FrameSet(
        bot_id=bot_id,
        frequency=frequency,
        tone=tone,
        silence=tag_frame(silent[-1], bot_id, frames),
        level=level_of(wave[: FRAME_SAMPLES * frames]),
    )
