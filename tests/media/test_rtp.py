"""RTP header read/rewrite: exact bytes, truncation, fuzzing, rewrite round trips."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.media import rtp

# A Chromium-style Opus packet: PT 111, one-byte extensions audio-level (id 1, V=1 level 30),
# abs-send-time (id 2), transport-cc (id 3, seq 44), mid (id 4, "0"), one padding byte.
CHROME_OPUS = bytes.fromhex(
    "906f1a2b0000bb805e0c2f9a"  # V=2 X=1, PT 111, seq 0x1a2b, ts 48000, SSRC
    "bede0003"  # one-byte form, 3 words
    "109e" "228f4c3a" "31002c" "4030" "00"
    "780be4c136ecc58d8c494699"  # Opus payload (TOC 0x78)
)
OPUS_PAYLOAD = bytes.fromhex("780be4c136ecc58d8c494699")


def ext_map(**pairs: int) -> bytes:
    """ext_map(i1=1, i3=5): incoming id -> outgoing id, 0 elsewhere."""
    table = bytearray(256)
    for key, value in pairs.items():
        table[int(key[1:])] = value
    return bytes(table)


def raw_packet(
    *,
    pt: int = 96,
    marker: bool = False,
    seq: int = 1,
    ts: int = 2,
    ssrc: int = 3,
    csrcs: list[int] | None = None,
    ext_profile: int | None = None,
    ext_body: bytes = b"",
    payload: bytes = b"",
    padding: int = 0,
) -> bytes:
    """Build an arbitrary RTP packet by hand (independent of rtp.build_packet)."""
    csrcs = csrcs or []
    b0 = 0x80 | (0x20 if padding else 0) | (0x10 if ext_profile is not None else 0) | len(csrcs)
    out = struct.pack("!BBHII", b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    out += b"".join(struct.pack("!I", c) for c in csrcs)
    if ext_profile is not None:
        body = ext_body + b"\x00" * (-len(ext_body) & 3)
        out += struct.pack("!HH", ext_profile, len(body) // 4) + body
    out += payload
    if padding:
        out += b"\x00" * (padding - 1) + bytes((padding,))
    return out


# --- reading --------------------------------------------------------------------------------


def test_read_header_of_chrome_opus_packet() -> None:
    assert rtp.read_header(CHROME_OPUS) == (111, False, 0x1A2B, 48000, 0x5E0C2F9A)


def test_payload_offset_and_extensions_of_chrome_opus_packet() -> None:
    assert rtp.payload_offset(CHROME_OPUS) == 28
    assert CHROME_OPUS[28:] == OPUS_PAYLOAD
    assert rtp.read_extensions(CHROME_OPUS) == [
        (1, b"\x9e"),
        (2, b"\x8f\x4c\x3a"),
        (3, b"\x00\x2c"),
        (4, b"0"),
    ]
    assert rtp.find_extension(CHROME_OPUS, 2) == (19, 3)
    assert rtp.find_extension(CHROME_OPUS, 4) == (26, 1)
    assert rtp.find_extension(CHROME_OPUS, 5) is None


def test_audio_level_ignores_the_voice_activity_bit() -> None:
    assert rtp.audio_level(CHROME_OPUS, 1) == 30
    assert rtp.audio_level(CHROME_OPUS, 7) == -1
    assert rtp.audio_level(CHROME_OPUS, 0) == -1
    silent = raw_packet(ext_profile=0xBEDE, ext_body=b"\x10\x7f")
    assert rtp.audio_level(silent, 1) == 127


def test_audio_level_absent_without_extension_block_or_with_empty_element() -> None:
    assert rtp.audio_level(raw_packet(payload=b"x"), 1) == -1
    two_byte_empty = raw_packet(ext_profile=0x1000, ext_body=b"\x01\x00")
    assert rtp.audio_level(two_byte_empty, 1) == -1


def test_two_byte_form_elements_padding_and_zero_length() -> None:
    body = b"\x00" + b"\x17\x00" + b"\x00\x00" + b"\xc8\x03abc" + b"\x01\x01z"
    pkt = raw_packet(ext_profile=0x1003, ext_body=body, payload=b"P")  # appbits 3
    assert rtp.read_extensions(pkt) == [(23, b""), (200, b"abc"), (1, b"z")]
    assert rtp.find_extension(pkt, 200) == (12 + 4 + 7, 3)


def test_one_byte_form_id_15_stops_parsing() -> None:
    pkt = raw_packet(ext_profile=0xBEDE, ext_body=b"\x10\x01\xf0\x20\x02")
    assert rtp.read_extensions(pkt) == [(1, b"\x01")]
    assert rtp.find_extension(pkt, 2) is None


def test_unknown_profile_means_no_elements() -> None:
    pkt = raw_packet(ext_profile=0x1234, ext_body=b"\x10\x01\x00\x00", payload=b"pp")
    assert rtp.read_extensions(pkt) == []
    assert rtp.find_extension(pkt, 1) is None
    assert rtp.payload_offset(pkt) == 20


def test_payload_offset_skips_csrcs_and_validates_padding() -> None:
    pkt = raw_packet(csrcs=[7, 8], payload=b"abc", padding=4)
    assert rtp.payload_offset(pkt) == 20
    assert pkt[20 : len(pkt) - pkt[-1]] == b"abc"
    bad = pkt[:-1] + b"\x08"  # counts more padding than the payload holds
    with pytest.raises(ValueError, match=r"^RTP padding invalid$"):
        rtp.payload_offset(bad)
    zero = pkt[:-1] + b"\x00"
    with pytest.raises(ValueError, match=r"^RTP padding invalid$"):
        rtp.payload_offset(zero)


def test_version_must_be_2() -> None:
    bad = bytes((0x40,)) + CHROME_OPUS[1:]
    for fn in (rtp.read_header, rtp.payload_offset, rtp.read_extensions):
        with pytest.raises(ValueError, match=r"^RTP version must be 2$"):
            fn(bad)
    with pytest.raises(ValueError, match=r"^RTP version must be 2$"):
        rtp.rewrite_packet(bad, 1, 1, 1, 1, bytes(256), 0, b"")


def test_element_overrunning_block_is_rejected() -> None:
    pkt = raw_packet(ext_profile=0xBEDE, ext_body=b"\x10\x01\x2f\x00\x00", payload=b"xyz")
    # id 2 claims 16 bytes but only 5 are left in the 8-byte block
    assert rtp.find_extension(pkt, 1) == (17, 1)
    for call in (
        lambda: rtp.find_extension(pkt, 2),
        lambda: rtp.read_extensions(pkt),
        lambda: rtp.rewrite_packet(pkt, 1, 1, 1, 1, ext_map(i1=1, i2=2), 0, b""),
    ):
        with pytest.raises(ValueError, match=r"^RTP header extension element truncated$"):
            call()
    two = raw_packet(ext_profile=0x1000, ext_body=b"\x00\x00\x00\x05")  # id, no length byte
    with pytest.raises(ValueError, match=r"^RTP header extension element truncated$"):
        rtp.read_extensions(two)


def test_truncation_loop_exact_messages() -> None:
    for n in range(len(CHROME_OPUS)):
        data = CHROME_OPUS[:n]
        expected = "RTP packet shorter than 12 bytes" if n < 12 else None
        if 12 <= n < 28:
            expected = "RTP header extension truncated"
        if expected is None:
            assert rtp.payload_offset(data) == 28
            continue
        calls: list[tuple[Callable[..., object], tuple[object, ...]]] = [
            (rtp.payload_offset, (data,)),
            (rtp.find_extension, (data, 1)),
            (rtp.audio_level, (data, 1)),
            (rtp.rewrite_packet, (data, 1, 1, 1, 1, ext_map(i1=1), 3, b"m")),
        ]
        for fn, args in calls:
            with pytest.raises(ValueError) as info:
                fn(*args)
            assert str(info.value) == expected, n
        if n < 12:
            with pytest.raises(ValueError, match=r"^RTP packet shorter than 12 bytes$"):
                rtp.read_header(data)


def test_truncated_csrc_list() -> None:
    pkt = raw_packet(csrcs=[1, 2], payload=b"x")
    for n in range(12, 20):
        with pytest.raises(ValueError, match=r"^RTP CSRC list truncated$"):
            rtp.payload_offset(pkt[:n])
        with pytest.raises(ValueError, match=r"^RTP CSRC list truncated$"):
            rtp.rewrite_packet(pkt[:n], 1, 1, 1, 1, bytes(256), 0, b"")


def test_is_rtcp_by_second_byte() -> None:
    assert rtp.is_rtcp(bytes.fromhex("80c8"))  # SR
    assert rtp.is_rtcp(bytes.fromhex("81cd"))  # RTPFB
    assert rtp.is_rtcp(bytes.fromhex("80c0"))  # 192
    assert rtp.is_rtcp(bytes.fromhex("80df"))  # 223
    assert not rtp.is_rtcp(bytes.fromhex("80e0"))
    assert not rtp.is_rtcp(CHROME_OPUS)  # PT 111
    assert not rtp.is_rtcp(bytes.fromhex("80ef"))  # PT 111 with marker
    assert not rtp.is_rtcp(b"\x80")


@pytest.mark.parametrize(
    ("a", "b", "newer"),
    [
        (1, 0, True),
        (0, 1, False),
        (0, 65535, True),
        (65535, 0, False),
        (100, 65500, True),
        (0x7FFF, 0, True),
        (0x8000, 0, True),  # exactly half apart: the larger one wins
        (0, 0x8000, False),
        (5, 5, False),
    ],
)
def test_seq_newer(a: int, b: int, newer: bool) -> None:
    assert rtp.seq_newer(a, b) is newer


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_seq_newer_is_antisymmetric(a: int, b: int) -> None:
    if a == b:
        assert not rtp.seq_newer(a, b)
    else:
        assert rtp.seq_newer(a, b) != rtp.seq_newer(b, a)


def test_uri_constants() -> None:
    assert rtp.AUDIO_LEVEL == "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
    assert rtp.SDES_MID == "urn:ietf:params:rtp-hdrext:sdes:mid"
    assert rtp.TRANSPORT_CC.endswith("draft-holmer-rmcat-transport-wide-cc-extensions-01")
    assert rtp.ABS_SEND_TIME.endswith("/abs-send-time")
    assert rtp.RID.endswith("sdes:rtp-stream-id")
    assert rtp.REPAIRED_RID.endswith("sdes:repaired-rtp-stream-id")
    assert rtp.PLAYOUT_DELAY.endswith("/playout-delay")
    assert rtp.DEPENDENCY_DESCRIPTOR.endswith("#dependency-descriptor-rtp-header-extension")
    assert rtp.VIDEO_ORIENTATION == "urn:3gpp:video-orientation"
    assert rtp.TOFFSET == "urn:ietf:params:rtp-hdrext:toffset"


# --- building and rewriting ------------------------------------------------------------


def test_build_packet_exact_bytes() -> None:
    pkt = rtp.build_packet(111, 0x1A2B, 48000, 0x5E0C2F9A, OPUS_PAYLOAD, False,
                           [(1, b"\x9e"), (2, b"\x8f\x4c\x3a"), (3, b"\x00\x2c"), (4, b"0")])
    assert pkt == CHROME_OPUS
    assert rtp.build_packet(0, 0, 0, 0, b"", marker=True) == bytes.fromhex("8080" + "00" * 10)


def test_build_packet_uses_two_byte_form_when_needed() -> None:
    pkt = rtp.build_packet(96, 1, 2, 3, b"p", extensions=[(1, b"a"), (15, b"bc")])
    assert pkt[12:] == bytes.fromhex("10000002" "010161" "0f026263" "00") + b"p"
    with pytest.raises(ValueError, match=r"^RTP header extension id or length out of range$"):
        rtp.build_packet(96, 1, 2, 3, b"", extensions=[(1, b"x" * 256)])


def test_rewrite_chrome_packet_exact_bytes() -> None:
    out = rtp.rewrite_packet(CHROME_OPUS, 111, 7, 0x01020304, 0xDEADBEEF,
                             ext_map(i1=1, i3=5), 9, b"a1")
    assert out == bytes.fromhex(
        "906f0007" "01020304" "deadbeef" "bede0002" "109e" "51002c" "916131"
    ) + OPUS_PAYLOAD


def test_rewrite_keeps_marker_and_padding_and_drops_csrcs() -> None:
    pkt = raw_packet(pt=100, marker=True, csrcs=[0xAAAA, 0xBBBB], payload=b"vp8data", padding=3)
    out = rtp.rewrite_packet(pkt, 96, 65535, 0xFFFFFFFF, 1, bytes(256), 0, b"")
    assert out == bytes.fromhex("a0e0ffffffffffff00000001") + b"vp8data" + b"\x00\x00\x03"
    assert rtp.read_header(out) == (96, True, 65535, 0xFFFFFFFF, 1)


def test_rewrite_drops_block_when_nothing_is_kept() -> None:
    out = rtp.rewrite_packet(CHROME_OPUS, 111, 1, 2, 3, bytes(256), 0, b"")
    assert out == bytes.fromhex("806f00010000000200000003") + OPUS_PAYLOAD


def test_rewrite_drops_incoming_element_mapped_to_mid_id() -> None:
    out = rtp.rewrite_packet(CHROME_OPUS, 111, 1, 2, 3, ext_map(i4=4, i1=1), 4, b"xy")
    assert rtp.read_extensions(out) == [(1, b"\x9e"), (4, b"xy")]


def test_rewrite_switches_to_two_byte_form() -> None:
    # mapped id above 14
    out = rtp.rewrite_packet(CHROME_OPUS, 111, 1, 2, 3, ext_map(i1=1, i2=20), 3, b"m")
    assert out[12:16] == bytes.fromhex("10000003")
    assert rtp.read_extensions(out) == [(1, b"\x9e"), (20, b"\x8f\x4c\x3a"), (3, b"m")]
    assert out[rtp.payload_offset(out) :] == OPUS_PAYLOAD
    # MID longer than 16 bytes, or empty
    long_mid = b"m" * 17
    out = rtp.rewrite_packet(CHROME_OPUS, 111, 1, 2, 3, ext_map(i1=1), 3, long_mid)
    assert out[12:14] == b"\x10\x00"
    assert rtp.read_extensions(out) == [(1, b"\x9e"), (3, long_mid)]
    out = rtp.rewrite_packet(CHROME_OPUS, 111, 1, 2, 3, ext_map(i1=1), 3, b"")
    assert rtp.read_extensions(out) == [(1, b"\x9e"), (3, b"")]


def test_rewrite_two_byte_input_to_one_byte_output() -> None:
    pkt = raw_packet(ext_profile=0x1000, ext_body=b"\x21\x02ab\x00\x30\x01c", payload=b"P")
    out = rtp.rewrite_packet(pkt, 96, 1, 2, 3, ext_map(i33=2, i48=14), 1, b"0")
    assert out[12:] == bytes.fromhex("bede0002" "216162" "e063" "1030" "00") + b"P"


def test_rewrite_mid_of_16_bytes_fits_one_byte_form() -> None:
    mid = b"0123456789abcdef"
    out = rtp.rewrite_packet(CHROME_OPUS, 111, 1, 2, 3, bytes(256), 14, mid)
    assert out[12:16] == bytes.fromhex("bede0005")
    assert out[16] == 0xEF
    assert rtp.read_extensions(out) == [(14, mid)]


def test_rewrite_skips_padding_bytes_and_stops_at_id_15() -> None:
    body = b"\x00\x10\x05\x00\x00\x20\x06\xf3\x30\x07"
    pkt = raw_packet(ext_profile=0xBEDE, ext_body=body, payload=b"Z")
    out = rtp.rewrite_packet(pkt, 96, 1, 2, 3, ext_map(i1=1, i2=2, i3=3), 0, b"")
    assert rtp.read_extensions(out) == [(1, b"\x05"), (2, b"\x06")]
    assert out[12:] == bytes.fromhex("bede0001" "10052006") + b"Z"


def test_rewrite_fan_out_reuses_work_but_not_results() -> None:
    # the same input packet for several viewers: only the fixed header differs
    first = rtp.rewrite_packet(CHROME_OPUS, 111, 7, 0x01020304, 0xDEADBEEF,
                               ext_map(i1=1, i3=5), 9, b"a1")
    again = rtp.rewrite_packet(CHROME_OPUS, 100, 8, 5, 6, ext_map(i1=1, i3=5), 9, b"a1")
    assert first[12:] == again[12:]
    assert again[:12] == bytes.fromhex("9064000800000005" "00000006")
    other = rtp.rewrite_packet(CHROME_OPUS, 100, 8, 5, 6, ext_map(i1=2), 9, b"a1")
    assert rtp.read_extensions(other) == [(2, b"\x9e"), (9, b"a1")]
    other = rtp.rewrite_packet(CHROME_OPUS, 100, 8, 5, 6, ext_map(i1=2), 10, b"a1")
    assert rtp.read_extensions(other) == [(2, b"\x9e"), (10, b"a1")]
    other = rtp.rewrite_packet(CHROME_OPUS, 100, 8, 5, 6, ext_map(i1=2), 10, b"a2")
    assert rtp.read_extensions(other) == [(2, b"\x9e"), (10, b"a2")]
    # mutable inputs (outside the typed contract, but possible) are never remembered
    rewrite: Callable[..., bytes] = rtp.rewrite_packet
    buf = bytearray(CHROME_OPUS)
    table = bytearray(ext_map(i1=1))
    assert rtp.read_extensions(rewrite(buf, 111, 1, 2, 3, table, 0, b"")) == [
        (1, b"\x9e")
    ]
    buf[17] = 0x11
    table[1] = 3
    assert rtp.read_extensions(rewrite(buf, 111, 1, 2, 3, table, 0, b"")) == [
        (3, b"\x11")
    ]


# --- fuzzing --------------------------------------------------------------------------------------


@settings(max_examples=400)
@given(st.binary(max_size=80), st.integers(0, 255))
def test_random_bytes_raise_only_value_error(data: bytes, ext_id: int) -> None:
    calls = (
        lambda: rtp.read_header(data),
        lambda: rtp.payload_offset(data),
        lambda: rtp.find_extension(data, ext_id),
        lambda: rtp.read_extensions(data),
        lambda: rtp.audio_level(data, ext_id),
        lambda: rtp.rewrite_packet(data, 96, 1, 2, 3, ext_map(i1=1, i2=20), 5, b"m"),
    )
    for call in calls:
        try:
            call()
        except ValueError:
            pass


@settings(max_examples=300)
@given(st.binary(min_size=4, max_size=40), st.binary(max_size=30))
def test_random_extension_blocks_raise_only_value_error(block: bytes, tail: bytes) -> None:
    # a valid fixed header with a random extension block behind it reaches the element walkers
    for profile in (0xBEDE, 0x1000):
        pkt = raw_packet(ext_profile=profile, ext_body=block) + tail
        table = bytes((i * 7) % 256 for i in range(256))
        calls: list[tuple[Callable[..., object], tuple[object, ...]]] = [
            (rtp.read_extensions, (pkt,)),
            (rtp.find_extension, (pkt, 9)),
            (rtp.rewrite_packet, (pkt, 96, 1, 2, 3, table, 4, b"m")),
        ]
        for fn, args in calls:
            try:
                fn(*args)
            except ValueError:
                pass


one_byte_elements = st.lists(
    st.tuples(st.integers(1, 14), st.binary(min_size=1, max_size=16)), max_size=6
)
two_byte_elements = st.lists(
    st.tuples(st.integers(1, 255), st.binary(min_size=0, max_size=20)), max_size=6
)


def encode_elements(elements: list[tuple[int, bytes]], two_byte: bool) -> bytes:
    if two_byte:
        return b"".join(bytes((i, len(v))) + v for i, v in elements)
    return b"".join(bytes(((i << 4) | (len(v) - 1),)) + v for i, v in elements)


@settings(max_examples=400)
@given(
    data=st.data(),
    two_byte=st.booleans(),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=3),
    payload=st.binary(max_size=40),
    padding=st.integers(0, 8),
    new=st.tuples(st.integers(0, 127), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
                  st.integers(0, 0xFFFFFFFF)),
    mid_id=st.integers(0, 255),
    mid=st.binary(max_size=20),
)
def test_rewrite_round_trip(
    data: st.DataObject,
    two_byte: bool,
    marker: bool,
    csrcs: list[int],
    payload: bytes,
    padding: int,
    new: tuple[int, int, int, int],
    mid_id: int,
    mid: bytes,
) -> None:
    elements = data.draw(two_byte_elements if two_byte else one_byte_elements)
    table = bytes(data.draw(st.lists(st.integers(0, 255), min_size=256, max_size=256)))
    pkt = raw_packet(
        marker=marker,
        csrcs=csrcs,
        ext_profile=(0x1000 if two_byte else 0xBEDE) if elements else None,
        ext_body=encode_elements(elements, two_byte),
        payload=payload,
        padding=padding,
    )
    pt, seq, ts, ssrc = new
    out = rtp.rewrite_packet(pkt, pt, seq, ts, ssrc, table, mid_id, mid)

    assert rtp.read_header(out) == (pt, marker, seq, ts, ssrc)
    assert out[0] & 0x0F == 0  # CSRCs dropped
    expected = [(table[i], v) for i, v in elements if table[i] and table[i] != mid_id]
    if mid_id:
        expected.append((mid_id, mid))
    assert rtp.read_extensions(out) == expected
    if expected:
        one = all(i <= 14 and 1 <= len(v) <= 16 for i, v in expected)
        assert out[12:14] == (b"\xbe\xde" if one else b"\x10\x00")
        for i, _ in expected:  # find_extension returns the first element with that id
            first = next(val for j, val in expected if j == i)
            found = rtp.find_extension(out, i)
            assert found is not None
            assert out[found[0] : found[0] + found[1]] == first
    else:
        assert not out[0] & 0x10
    # a second viewer with equal (not identical) mapping: same bytes after the fixed header
    again = rtp.rewrite_packet(pkt, pt ^ 1, seq ^ 1, ts, ssrc, bytes(bytearray(table)), mid_id,
                               bytes(bytearray(mid)))
    assert again[12:] == out[12:]
    assert rtp.read_header(again) == (pt ^ 1, marker, seq ^ 1, ts, ssrc)
    start = rtp.payload_offset(out)
    assert out[start:] == pkt[rtp.payload_offset(pkt) :]  # payload and padding unchanged
    assert bool(out[0] & 0x20) == bool(padding)
