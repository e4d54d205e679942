"""Real encoded media (PyAV encoders) cut into RTP packets, for the recorder's tests."""

from __future__ import annotations

import struct
from fractions import Fraction
from typing import Any

import av
import numpy as np

from hubbub.recording.depacketize import nal_units

WIDTH, HEIGHT, FPS = 320, 240, 30


def video_frames(encoder: str, count: int, gop: int = 30) -> list[tuple[bytes, bool]]:
    """`count` frames of a moving bar: (encoded bytes, keyframe)."""
    cc: Any = av.CodecContext.create(encoder, "w")
    cc.width, cc.height, cc.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    cc.time_base = Fraction(1, FPS)
    cc.framerate = FPS
    cc.gop_size = gop
    if encoder == "libx264":
        cc.options = {"tune": "zerolatency", "bframes": "0", "repeat-headers": "1"}
    out: list[tuple[bytes, bool]] = []
    for i in range(count):
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[:, (i * 5) % (WIDTH - 20):(i * 5) % (WIDTH - 20) + 20] = 255
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += [(bytes(p), bool(p.is_keyframe)) for p in cc.encode(frame)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in cc.encode(None)]
    return out


def opus_frames(count: int, freq: float = 440.0) -> list[bytes]:
    """`count` 20 ms Opus packets of a sine tone."""
    cc: Any = av.CodecContext.create("libopus", "w")
    cc.sample_rate, cc.layout, cc.format = 48000, "stereo", "s16"
    t = np.arange(960 * count) / 48000
    tone = (np.sin(2 * np.pi * freq * t) * 10000).astype(np.int16)
    out: list[bytes] = []
    for i in range(count):
        chunk = tone[i * 960:(i + 1) * 960]
        stereo = np.stack([chunk, chunk], axis=1).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(stereo, format="s16", layout="stereo")
        frame.sample_rate = 48000
        frame.pts = i * 960
        out += [bytes(p) for p in cc.encode(frame)]
    return out


def rtp(seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False, pt: int = 96) -> bytes:
    return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def vp8_payloads(frame: bytes, mtu: int = 1000) -> list[bytes]:
    """RFC 7741: a one-byte descriptor (S on the first packet)."""
    chunks = [frame[i:i + mtu] for i in range(0, len(frame), mtu)]
    return [bytes((0x10 if n == 0 else 0x00,)) + c for n, c in enumerate(chunks)]


def h264_payloads(frame: bytes, mtu: int = 1000) -> list[bytes]:
    """RFC 6184: SPS+PPS in a STAP-A, small NAL units alone, big ones in FU-A."""
    out: list[bytes] = []
    units = nal_units(frame)
    params = [u for u in units if u[0] & 0x1F in (7, 8)]
    if params:
        out.append(bytes((0x18,)) + b"".join(len(u).to_bytes(2, "big") + u for u in params))
    for unit in units:
        if unit[0] & 0x1F in (7, 8):
            continue
        if len(unit) <= mtu:
            out.append(unit)
            continue
        header, body = unit[0], unit[1:]
        pieces = [body[i:i + mtu] for i in range(0, len(body), mtu)]
        for n, piece in enumerate(pieces):
            fu = (header & 0x1F) | (0x80 if n == 0 else 0) | (0x40 if n == len(pieces) - 1 else 0)
            out.append(bytes(((header & 0xE0) | 28, fu)) + piece)
    return out


def vp9_payloads(frame: bytes, mtu: int = 1000) -> list[bytes]:
    """RFC 9628 without PictureID or layers: B on the first packet, E on the last, P on
    inter frames."""
    chunks = [frame[i:i + mtu] for i in range(0, len(frame), mtu)]
    inter = 0x40 if frame[0] & 0x04 else 0  # VP9 frame_type bit (profile 0): 1 = inter
    return [bytes((inter | (0x08 if n == 0 else 0) | (0x04 if n == len(chunks) - 1 else 0),))
            + c for n, c in enumerate(chunks)]
