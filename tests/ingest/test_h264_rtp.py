"""RFC 6184 packetization of real libx264 output, depacketized by aiortc and decoded by PyAV."""

from __future__ import annotations

import fractions
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc.codecs.h264 import H264Decoder, H264PayloadDescriptor
from aiortc.jitterbuffer import JitterFrame

from hubbub.ingest.h264_rtp import H264Packetizer

WIDTH, HEIGHT, GOP = 320, 240, 5


@dataclass
class AccessUnit:
    nalus: list[bytes]  # as RTMP hands them over: no SPS/PPS, AUD kept (x264's aud=1)
    is_key: bool
    timestamp: int


def split_annexb(data: bytes) -> list[bytes]:
    starts = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        starts.append(pos + 3)
        pos = data.find(b"\x00\x00\x01", pos + 3)
    ends = [s - 3 for s in starts[1:]] + [len(data)]
    return [data[s:e].rstrip(b"\x00") for s, e in zip(starts, ends, strict=True)]


@pytest.fixture(scope="module")
def stream() -> tuple[bytes, bytes, list[AccessUnit]]:
    """12 frames of constrained-baseline 320x240, an IDR every 5, SPS/PPS split off like FLV."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 30)
    ctx.options = {"profile": "baseline", "preset": "ultrafast", "tune": "zerolatency",
                   "x264-params": f"aud=1:keyint={GOP}:min-keyint={GOP}:scenecut=0"}
    rng = np.random.default_rng(16)
    base = np.tile(np.arange(WIDTH, dtype=np.uint8), (HEIGHT, 1))
    packets = []
    for i in range(12):
        img = np.stack([base + i * 8, base[::-1],
                        rng.integers(0, 64, (HEIGHT, WIDTH), dtype=np.uint8)], axis=2)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        frame.pts = i
        packets += ctx.encode(frame)
    packets += ctx.encode(None)
    sps = pps = b""
    units = []
    for i, packet in enumerate(packets):
        nalus = split_annexb(bytes(packet))
        for nal in nalus:
            if nal[0] & 0x1F == 7:
                sps = nal
            elif nal[0] & 0x1F == 8:
                pps = nal
        units.append(AccessUnit([n for n in nalus if n[0] & 0x1F not in (7, 8)],
                                packet.is_keyframe, 3000 * i))
    assert sps and pps and len(units) == 12
    return sps, pps, units


@dataclass
class Rtp:
    marker: bool
    pt: int
    seq: int
    ts: int
    ssrc: int
    payload: bytes


def parse(packet: bytes) -> Rtp:
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", packet)
    assert b0 == 0x80  # version 2, no padding, extension or CSRCs
    return Rtp(bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc, packet[12:])


def test_packets_depacketize_and_decode_at_full_size(
        stream: tuple[bytes, bytes, list[AccessUnit]]) -> None:
    sps, pps, units = stream
    mtu = 300  # forces FU-A on every slice
    packetizer = H264Packetizer(102, 0x1234ABCD, mtu=mtu)
    decoder = H264Decoder()
    expected_seq = packetizer.next_sequence
    decoded = 0
    stap_count = fu_count = 0
    for unit in units:
        packets = [parse(p) for p in
                   packetizer.packetize(unit.nalus, unit.timestamp, unit.is_key, sps, pps)]
        assert all(len(p.payload) + 12 <= mtu for p in packets)
        # sequence numbers continue across calls, one timestamp per access unit, marker last
        assert [p.seq for p in packets] == [(expected_seq + k) & 0xFFFF
                                            for k in range(len(packets))]
        expected_seq = (expected_seq + len(packets)) & 0xFFFF
        assert {(p.ts, p.pt, p.ssrc) for p in packets} == {(unit.timestamp, 102, 0x1234ABCD)}
        assert [p.marker for p in packets] == [False] * (len(packets) - 1) + [True]
        types = [p.payload[0] & 0x1F for p in packets]
        assert 9 not in types  # AUDs dropped
        if unit.is_key:  # §5.7.1: a STAP-A of SPS and PPS first
            assert types[0] == 24
            stap = packets[0].payload
            assert stap[1:3] == len(sps).to_bytes(2, "big") and stap[3:3 + len(sps)] == sps
            rest = stap[3 + len(sps):]
            assert rest == len(pps).to_bytes(2, "big") + pps
            assert stap[0] & 0x60 == max(sps[0] & 0x60, pps[0] & 0x60)
            stap_count += 1
        else:
            assert 24 not in types
        # FU-A (§5.8): S on the first fragment of a unit, E on the last, never both
        open_fu = False
        for p, t in zip(packets, types, strict=True):
            if t != 28:
                assert not open_fu
                continue
            fu_count += 1
            start, end = bool(p.payload[1] & 0x80), bool(p.payload[1] & 0x40)
            assert not (start and end) and p.payload[1] & 0x20 == 0
            assert start != open_fu
            open_fu = not end
        assert not open_fu
        data = b"".join(H264PayloadDescriptor.parse(p.payload)[1] for p in packets)
        frames = decoder.decode(JitterFrame(data=data, timestamp=unit.timestamp))
        for frame in frames:
            assert (frame.width, frame.height) == (WIDTH, HEIGHT)
        decoded += len(frames)
    frames = decoder.codec.decode(None)
    decoded += len(frames)
    assert decoded == len(units)
    assert stap_count == 3 and fu_count > 3 * len(units)
    assert packetizer.packets > 0 and packetizer.octets > 0


def test_small_units_go_single_and_sequence_wraps() -> None:
    packetizer = H264Packetizer(96, 1, initial_sequence=0xFFFF)
    sei, slice_ = bytes([0x06, 5, 1, 0xAA, 0x80]), bytes([0x41]) + bytes(100)
    packets = [parse(p) for p in packetizer.packetize(
        [bytes([0x09, 0xF0]), sei, slice_, bytes([0x0C, 0xFF, 0xFF])], 2**32 + 5, False,
        b"\x67\x42", b"\x68\xce")]
    assert [p.payload for p in packets] == [sei, slice_]  # AUD and filler dropped, SEI kept
    assert [p.seq for p in packets] == [0xFFFF, 0]
    assert [p.ts for p in packets] == [5, 5]
    assert packetizer.packets == 2 and packetizer.octets == len(sei) + len(slice_)
    assert packetizer.packetize([bytes([0x09, 0x10])], 0, False, b"", b"") == []


def test_in_band_parameter_sets_replace_the_configured_ones() -> None:
    packetizer = H264Packetizer(96, 1)
    sps, pps, idr = b"\x67\x42\xc0\x1f\x01", b"\x68\xce\x3c\x80", b"\x65\x88" + bytes(10)
    packets = [parse(p) for p in packetizer.packetize(
        [sps, pps, idr], 0, False, b"\x67\x00", b"\x68\x00")]  # an IDR makes it a keyframe
    assert [p.payload[0] & 0x1F for p in packets] == [24, 5]
    assert packets[0].payload[1:] == b"\x00\x05" + sps + b"\x00\x04" + pps
    # an in-band PPS alone goes with the configured SPS
    packets = [parse(p) for p in packetizer.packetize([pps, idr], 3000, True, b"\x67\x00", b"")]
    assert packets[0].payload[1:] == b"\x00\x02\x67\x00" + b"\x00\x04" + pps


def test_fragments_are_even_and_cover_the_unit() -> None:
    packetizer = H264Packetizer(96, 1, mtu=112)  # 100 bytes of payload, 98 per fragment
    nal = bytes([0x65]) + bytes(range(256)) * 2  # 512 bytes after the header
    packets = [parse(p) for p in packetizer.packetize([nal], 0, False, b"", b"")]
    sizes = [len(p.payload) - 2 for p in packets]
    assert len(packets) == 6 and max(sizes) - min(sizes) <= 1 and sum(sizes) == 512
    assert b"".join(p.payload[2:] for p in packets) == nal[1:]
    assert all(p.payload[0] == 0x60 | 28 for p in packets)  # NRI 3 from the IDR's header


@pytest.mark.slow
def test_ffmpeg_testsrc2_through_rtp(tmp_path: Path) -> None:
    """Debian ffmpeg's libx264 (with its SEI and AUDs) at 640x360, 60 frames, MTU 1200."""
    out = f"{tmp_path}/testsrc2.h264"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=640x360:rate=30:duration=2", "-c:v", "libx264", "-profile:v",
                    "baseline", "-preset", "veryfast", "-tune", "zerolatency", "-g", "30",
                    "-pix_fmt", "yuv420p", "-x264-params", "aud=1", "-bsf:v",
                    "h264_mp4toannexb", "-f", "h264", out], check=True, timeout=60)
    with open(out, "rb") as f:
        nalus = split_annexb(f.read())
    sps = next(n for n in nalus if n[0] & 0x1F == 7)
    pps = next(n for n in nalus if n[0] & 0x1F == 8)
    units: list[list[bytes]] = []
    for nal in nalus:  # an AUD opens each access unit
        if nal[0] & 0x1F == 9:
            units.append([])
        if nal[0] & 0x1F not in (7, 8):
            units[-1].append(nal)
    assert len(units) == 60
    packetizer = H264Packetizer(102, 7)
    decoder = H264Decoder()
    decoded, keys, seis, seq = 0, 0, 0, packetizer.next_sequence
    for i, unit in enumerate(units):
        is_key = any(n[0] & 0x1F == 5 for n in unit)
        packets = [parse(p) for p in packetizer.packetize(unit, i * 3000, is_key, sps, pps)]
        assert [p.seq for p in packets] == [(seq + k) & 0xFFFF for k in range(len(packets))]
        seq = (seq + len(packets)) & 0xFFFF
        seis += sum(p.payload[0] & 0x1F == 6 for p in packets)  # x264's version SEI, kept
        assert packets[-1].marker and not any(p.marker for p in packets[:-1])
        if is_key:
            keys += 1
            assert packets[0].payload[0] & 0x1F == 24
        data = b"".join(H264PayloadDescriptor.parse(p.payload)[1] for p in packets)
        for frame in decoder.decode(JitterFrame(data=data, timestamp=i * 3000)):
            assert (frame.width, frame.height) == (640, 360)
            decoded += 1
    decoded += len(decoder.codec.decode(None))
    assert decoded == 60 and keys == 2 and seis >= 1
