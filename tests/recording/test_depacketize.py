"""Depacketizers and the reorder buffer, in process: reordering, loss, FU-A, wrap."""

from __future__ import annotations

from hubbub.recording.depacketize import (
    START_CODE,
    FrameAssembler,
    H264Format,
    OpusFormat,
    Vp8Format,
    Vp9Format,
    nal_types,
)
from hubbub.recording.jitter import ReorderBuffer, SeqUnwrapper, TimestampUnwrapper
from tests.recording.rtp_media import h264_payloads, video_frames, vp8_payloads


def test_reorder_gives_packets_back_in_order_across_the_seq_wrap() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(depth=8)
    out: list[tuple[int, bool]] = []
    for seq in (65533, 65535, 65534, 1, 0, 2):
        out += buf.push(seq, seq)
    assert out == [(65533, False), (65534, False), (65535, False), (0, False), (1, False),
                   (2, False)]
    assert buf.push(65535, 65535) == []  # late duplicate
    assert buf.late == 1


def test_reorder_gives_up_a_hole_when_full_and_flags_the_gap() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(depth=3)
    out: list[tuple[int, bool]] = []
    for seq in (10, 12, 13, 14):  # 11 is lost
        out += buf.push(seq, seq)
    assert out == [(10, False)]
    out += buf.push(15, 15)
    assert out == [(10, False), (12, True), (13, False), (14, False), (15, False)]
    assert buf.lost == 1
    assert buf.push(11, 11) == []  # too late now


def test_flush_returns_what_is_held() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(depth=10)
    buf.push(1, 1)
    buf.push(3, 3)
    assert buf.flush() == [(3, True)]


def test_unwrappers_go_past_the_wrap_both_ways() -> None:
    ts = TimestampUnwrapper()
    assert [ts.unwrap(v) for v in (0xFFFFFF00, 0x100, 0xFFFFFFF0, 0x200)] == [
        0xFFFFFF00, 0x100000100, 0xFFFFFFF0, 0x100000200]
    seqs = SeqUnwrapper()
    assert [seqs.unwrap(v) for v in (65535, 0, 65534, 1)] == [65535, 65536, 65534, 65537]


def _assemble(fmt: object, packets: list[tuple[int, bool, bytes, bool]]) -> FrameAssembler:
    assert isinstance(fmt, Vp8Format | H264Format | OpusFormat | Vp9Format)
    asm = FrameAssembler(fmt)
    asm.out = []  # type: ignore[attr-defined]
    for ts, marker, payload, gap in packets:
        asm.out += asm.push(ts, marker, payload, gap)  # type: ignore[attr-defined]
    return asm


def test_vp8_frames_are_rebuilt_byte_for_byte() -> None:
    frames = video_frames("libvpx", 10)
    packets = []
    for i, (frame, _) in enumerate(frames):
        payloads = vp8_payloads(frame, mtu=300)
        packets += [(i * 3000, n == len(payloads) - 1, p, False) for n, p in enumerate(payloads)]
    asm = _assemble(Vp8Format(), packets)
    out = asm.out  # type: ignore[attr-defined]
    assert [f.data for f in out] == [f for f, _ in frames]
    assert [f.keyframe for f in out] == [k for _, k in frames]


def test_vp8_loss_drops_to_the_next_keyframe() -> None:
    frames = video_frames("libvpx", 40, gop=30)
    packets = []
    gap = False
    for i, (frame, _) in enumerate(frames):
        payloads = vp8_payloads(frame, mtu=100)
        for n, p in enumerate(payloads):
            if i == 5 and n == 0:
                gap = True  # frame 5's first packet is lost
                continue
            packets.append((i * 3000, n == len(payloads) - 1, p, gap))
            gap = False
    asm = _assemble(Vp8Format(), packets)
    got = [f.timestamp // 3000 for f in asm.out]  # type: ignore[attr-defined]
    assert got == list(range(5)) + list(range(30, 40))  # frames 5-29 need the lost reference
    assert asm.out[5].keyframe  # type: ignore[attr-defined]


def test_h264_stap_a_and_fu_a_rebuild_the_access_unit() -> None:
    frames = video_frames("libx264", 5)
    packets = []
    for i, (frame, _) in enumerate(frames):
        payloads = h264_payloads(frame, mtu=200)
        packets += [(i * 3000, n == len(payloads) - 1, p, False) for n, p in enumerate(payloads)]
    assert any(p[0] & 0x1F == 28 for _, _, p, _ in packets)  # FU-A is exercised
    assert any(p[0] & 0x1F == 24 for _, _, p, _ in packets)  # and STAP-A
    asm = _assemble(H264Format(), packets)
    out = asm.out  # type: ignore[attr-defined]
    assert len(out) == len(frames)
    assert out[0].keyframe and 7 in nal_types(out[0].data) and 5 in nal_types(out[0].data)
    for got, (frame, _) in zip(out, frames, strict=True):
        assert nal_types(got.data) == nal_types(frame)
        assert got.data.startswith(START_CODE)


def test_h264_lost_fu_a_fragment_drops_the_frame() -> None:
    frames = video_frames("libx264", 3)
    packets = []
    for i, (frame, _) in enumerate(frames):
        payloads = h264_payloads(frame, mtu=200)
        for n, p in enumerate(payloads):
            if i == 0 and n == 2:
                continue
            packets.append((i * 3000, n == len(payloads) - 1, p, i == 0 and n == 3))
    asm = _assemble(H264Format(), packets)
    assert asm.out == []  # type: ignore[attr-defined]
    assert asm.needs_keyframe


def test_marker_lost_frame_ends_at_the_next_timestamp() -> None:
    asm = _assemble(Vp8Format(), [(0, False, b"\x10\x00abc", False),
                                  (3000, True, b"\x10\x01def", False)])
    assert [f.timestamp for f in asm.out] == [0, 3000]  # type: ignore[attr-defined]


def test_opus_is_one_frame_per_packet_and_loss_just_skips() -> None:
    asm = _assemble(OpusFormat(), [(0, True, b"a", False), (960, False, b"b", False),
                                   (2880, False, b"d", True)])
    assert [(f.timestamp, f.data) for f in asm.out] == [  # type: ignore[attr-defined]
        (0, b"a"), (960, b"b"), (2880, b"d")]


def test_vp9_descriptor_and_keyframe() -> None:
    fmt = Vp9Format()
    # I (15-bit PictureID), B, E, V with one spatial layer of 320x240 and no group.
    payload = bytes((0x8E, 0x80, 0x01, 0x10)) + (320).to_bytes(2, "big") + (
        240).to_bytes(2, "big") + bytes((0x82, 0x49, 0x83))
    unpacked = fmt.unpack(payload)
    assert unpacked == (True, bytes((0x82, 0x49, 0x83)))
    assert fmt.is_keyframe(bytes((0x82,)))  # frame_marker 2, profile 0, key frame
    assert not fmt.is_keyframe(bytes((0x86,)))  # frame_type 1: inter frame
    assert fmt.unpack(bytes((0x80,))) is None  # truncated
