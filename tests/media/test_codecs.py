"""Keyframe detection on RTP payloads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.media import codecs
from hubbub.media.codecs import is_keyframe

# VP8 (RFC 7741). Chrome: X=1 S=1 PID=0, I=1 with a 15-bit PictureID, then the frame tag whose
# lowest bit is the inverse key frame flag (0x50: key, show_frame; 0x31: inter frame).
VP8_KEY_CHROME = bytes.fromhex("9080" "8123" "500200" "9d012a" "8002e001")
VP8_DELTA_CHROME = bytes.fromhex("9080" "8124" "31f100")


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (VP8_KEY_CHROME, True),
        (VP8_DELTA_CHROME, False),
        (bytes.fromhex("10" "50"), True),  # no X: descriptor is one byte
        (bytes.fromhex("10" "51"), False),
        (bytes.fromhex("00" "50"), False),  # S=0: not the start of a partition
        (bytes.fromhex("11" "50"), False),  # PID 1: not the first partition
        (bytes.fromhex("90" "40" "07" "50"), True),  # L: TL0PICIDX
        (bytes.fromhex("90" "20" "e0" "50"), True),  # T: TID/Y/KEYIDX
        (bytes.fromhex("90" "10" "e0" "50"), True),  # K
        (bytes.fromhex("90" "f0" "7f" "07" "e0" "50"), True),  # I (7-bit), L, T, K
        (bytes.fromhex("90" "f0" "ff7f" "07" "e0" "51"), False),
        (bytes.fromhex("90" "f0" "ff7f" "07" "e0"), False),  # no payload header
        (bytes.fromhex("90" "80" "80"), False),  # 15-bit PictureID cut short
        (bytes.fromhex("90" "80"), False),
        (bytes.fromhex("90"), False),
        (bytes.fromhex("10"), False),
        (b"", False),
    ],
)
def test_vp8(payload: bytes, key: bool) -> None:
    assert is_keyframe("VP8", payload) is key


# VP9 (draft-ietf-payload-vp9): |I|P|L|F|B|E|V|Z|
@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (bytes.fromhex("8a" "8001" "18" "0280" "01e0" "0101" "82"), True),  # I, B, V + SS (Chrome)
        (bytes.fromhex("c8" "8002" "82"), False),  # P set: inter frame
        (bytes.fromhex("84" "8002" "82"), False),  # B clear: not the first packet of the frame
        (bytes.fromhex("08" "82"), True),  # no optional fields
        (bytes.fromhex("a8" "05" "00" "07" "82"), True),  # L non-flexible: TID/SID byte + TL0PICIDX
        (bytes.fromhex("a8" "05" "02" "07" "82"), False),  # SID 1: upper spatial layer
        (bytes.fromhex("b8" "05" "00" "82"), True),  # L flexible: one layer byte
        (bytes.fromhex("a8" "05" "00" "07"), False),  # nothing after the descriptor
        (bytes.fromhex("a8" "05"), False),  # layer byte missing
        (bytes.fromhex("88" "80"), False),  # 15-bit PictureID cut short
        (bytes.fromhex("88"), False),
        (bytes.fromhex("08"), False),
        (b"", False),
    ],
)
def test_vp9(payload: bytes, key: bool) -> None:
    assert is_keyframe("VP9", payload) is key


def stap_a(*nals: bytes) -> bytes:
    return b"\x78" + b"".join(len(n).to_bytes(2, "big") + n for n in nals)


SPS = bytes.fromhex("6742c01fda01400169b01100")
PPS = bytes.fromhex("68ce3c80")
IDR = bytes.fromhex("6588840021")
SLICE = bytes.fromhex("419a2438")


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (IDR, True),
        (SPS, True),
        (PPS, False),
        (SLICE, False),
        (bytes.fromhex("06050b"), False),  # SEI
        (stap_a(SPS, PPS, IDR), True),  # what Chrome sends before an IDR
        (stap_a(PPS, IDR), True),
        (stap_a(PPS, SLICE), False),
        (stap_a(PPS)[:-1], False),  # NAL size overruns the packet
        (b"\x78\x00\x00\x65", False),  # zero-size NAL unit
        (b"\x78\x00", False),
        (bytes.fromhex("7c85" "b80000"), True),  # FU-A start of an IDR
        (bytes.fromhex("7c45" "b80000"), False),  # FU-A end fragment
        (bytes.fromhex("7c05" "b80000"), False),  # FU-A middle fragment
        (bytes.fromhex("7c81" "9a0000"), False),  # FU-A start of a non-IDR slice
        (bytes.fromhex("7c87"), True),  # FU-A start of an SPS
        (bytes.fromhex("7c"), False),
        (bytes.fromhex("7d85"), False),  # FU-B is not handled
        (b"", False),
    ],
)
def test_h264(payload: bytes, key: bool) -> None:
    assert is_keyframe("H264", payload) is key


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (bytes.fromhex("18" "0a0b"), True),  # W=1 N=1: new coded video sequence
        (bytes.fromhex("10" "320f"), False),
        (bytes.fromhex("80" "00"), False),  # Z only: continuation of an OBU
        (b"\x08", True),
        (b"", False),
    ],
)
def test_av1(payload: bytes, key: bool) -> None:
    assert is_keyframe("AV1", payload) is key


def test_codec_names_are_case_insensitive_and_may_carry_a_suffix() -> None:
    assert is_keyframe("vp8", VP8_KEY_CHROME)
    assert is_keyframe("h264", IDR)
    assert is_keyframe("H264/42e01f", IDR)
    assert is_keyframe("video/VP8", VP8_KEY_CHROME)
    assert is_keyframe("Av1", b"\x08")


@pytest.mark.parametrize("codec", ["opus", "OPUS", "PCMU", "G722", "", "rtx", "red"])
def test_audio_and_unknown_codecs_are_never_keyframes(codec: str) -> None:
    assert is_keyframe(codec, IDR) is False
    assert is_keyframe(codec, b"\x08\x10\x50") is False


@settings(max_examples=500)
@given(st.sampled_from(["VP8", "VP9", "H264", "AV1", "opus", "x"]), st.binary(max_size=40))
def test_random_payloads_never_raise(codec: str, payload: bytes) -> None:
    assert is_keyframe(codec, payload) in (True, False)


# SPS NAL units written by libx264 (ffmpeg -profile:v high 320x180, baseline 1920x1080: the
# latter crops 1088 coded lines to 1080, §7.4.2.1.1).
SPS_HIGH_320x180 = bytes.fromhex("6764000dacd941419f9f0110000003001000000303c0f1429960")
SPS_BASE_1920x1080 = bytes.fromhex("6742c028d900780227e5c044000003000400000300f03c60c920")


def test_h264_keyframe_size_comes_from_the_sps() -> None:
    assert codecs.h264_sps_size(SPS_HIGH_320x180) == (320, 180)
    assert codecs.h264_sps_size(SPS_BASE_1920x1080) == (1920, 1080)
    pps = bytes.fromhex("68ebe3cb22c0")
    stap_a = (b"\x18" + len(SPS_HIGH_320x180).to_bytes(2, "big") + SPS_HIGH_320x180
              + len(pps).to_bytes(2, "big") + pps)
    assert codecs.keyframe_size("H264", stap_a) == (320, 180)
    assert codecs.keyframe_size("H264", SPS_BASE_1920x1080) == (1920, 1080)
    assert codecs.keyframe_size("H264", b"\x65\x88") is None  # an IDR slice says nothing
    for cut in range(len(SPS_HIGH_320x180)):
        codecs.h264_sps_size(SPS_HIGH_320x180[:cut])  # truncated: None or a size, no raise
    assert codecs.h264_sps_size(b"\x67" + b"\x00" * 12) is None


def test_vp8_keyframe_size() -> None:
    key = b"\x10" + b"\x00\x00\x00" + b"\x9d\x01\x2a" + (640).to_bytes(2, "little") + \
        (360).to_bytes(2, "little") + b"x" * 8
    assert codecs.keyframe_size("VP8", key) == (640, 360)
    assert codecs.keyframe_size("VP8", key[:9]) is None
    assert codecs.keyframe_size("opus", key) is None


def test_the_cheap_filter_never_hides_a_keyframe() -> None:
    """may_start_keyframe reads in place; whatever is_keyframe says is a keyframe passes."""
    vp8_key = b"\x10\x00\x9d\x01\x2a" + b"k" * 8
    vp8_cont = b"\x00\x00" + b"k" * 8  # not the start of partition 0
    fu_start = bytes((0x7C, 0x85)) + b"x" * 8  # FU-A, S bit, IDR
    fu_middle = bytes((0x7C, 0x05)) + b"x" * 8
    for codec, payload, can in [("VP8", vp8_key, True), ("VP8", vp8_cont, False),
                                ("H264", fu_start, True), ("H264", fu_middle, False),
                                ("H264", SPS_HIGH_320x180, True), ("VP9", b"\x08", True)]:
        packet = b"\x80" * 12 + payload
        assert codecs.may_start_keyframe(codec, packet, 12) is can, (codec, payload)
        if is_keyframe(codec, payload):
            assert can
    assert not codecs.may_start_keyframe("VP8", b"\x80" * 12, 12)
