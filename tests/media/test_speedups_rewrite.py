"""C rewrite (hubbub._speedups.rewrite via rtp.rewrite_packet_c) is byte-identical to the
Python rewrite_packet, raises the same errors; the C PacketCache behaves like the Python one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.media import rtp
from hubbub.sfu.packet_cache import PacketCache

speedups = pytest.importorskip("hubbub._speedups")


def python_rewrite(*args: object) -> bytes | str:
    try:
        return rtp._rewrite(*args)  # type: ignore[arg-type]
    except ValueError as exc:
        return f"ValueError: {exc}"


def c_rewrite(*args: object) -> bytes | str:
    try:
        return rtp.rewrite_packet_c(*args)  # type: ignore[arg-type]
    except ValueError as exc:
        return f"ValueError: {exc}"


one_byte_elements = st.lists(st.tuples(st.integers(0, 15), st.binary(min_size=1, max_size=16)),
                             max_size=6)


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    """Mostly well-formed RTP with one-byte (sometimes two-byte or odd) extension blocks,
    padding and CSRCs; sometimes cut short or with a byte flipped."""
    csrcs = draw(st.integers(0, 3))
    marker = draw(st.booleans())
    form = draw(st.sampled_from(["one", "one", "one", "two", "none", "other"]))
    body = b""
    if form == "one":
        for i, v in draw(one_byte_elements):
            body += bytes(((i << 4) | (len(v) - 1),)) + v
            body += b"\x00" * draw(st.integers(0, 2))
    elif form == "two":
        for i, v in draw(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=20)),
                                  max_size=4)):
            body += bytes((i, len(v))) + v
    elif form == "other":
        body = draw(st.binary(max_size=12))
    body += b"\x00" * (-len(body) & 3)
    profile = {"one": 0xBEDE, "two": 0x1000 | draw(st.integers(0, 15)), "other": 0x1234}
    ext = b""
    if form != "none":
        ext = profile[form].to_bytes(2, "big") + (len(body) // 4).to_bytes(2, "big") + body
    payload = draw(st.binary(max_size=60))
    padding = draw(st.integers(0, 5))
    if padding:
        payload += bytes(padding - 1) + bytes((padding,))
    b0 = 0x80 | (0x10 if ext else 0) | (0x20 if padding else 0) | csrcs
    b1 = (0x80 if marker else 0) | draw(st.integers(0, 127))
    data = bytes((b0, b1)) + draw(st.binary(min_size=10, max_size=10))
    data += draw(st.binary(min_size=4 * csrcs, max_size=4 * csrcs)) + ext + payload
    mutation = draw(st.sampled_from(["none", "none", "none", "cut", "flip"]))
    if mutation == "cut":
        data = data[:draw(st.integers(0, len(data)))]
    elif mutation == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        data = data[:i] + bytes((draw(st.integers(0, 255)),)) + data[i + 1:]
    return data


ext_maps = st.one_of(
    st.lists(st.integers(0, 14), min_size=256, max_size=256).map(bytes),
    st.lists(st.integers(0, 255), min_size=256, max_size=256).map(bytes),
    st.just(bytes(range(15)) + bytes(241)),
)


@settings(max_examples=600, deadline=None)
@given(packets(), st.integers(0, 127), st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF),
       st.integers(0, 0xFFFFFFFF), ext_maps, st.integers(0, 16), st.binary(max_size=18),
       st.sampled_from([0, 0, 3, 7, 14, 15, 16]))
def test_c_rewrite_is_byte_identical(data: bytes, pt: int, seq: int, ts: int, ssrc: int,
                                     ext_map: bytes, mid_id: int, mid: bytes,
                                     twcc_id: int) -> None:
    args = (data, pt, seq, ts, ssrc, ext_map, mid_id, mid, twcc_id)
    assert c_rewrite(*args) == python_rewrite(*args)


def test_a_transport_seq_is_reserved_then_stamped() -> None:
    """draft-holmer-rmcat-transport-wide-cc-extensions-01 §2: a two-byte element the sender
    fills; the publisher's own transport seq (mapped to the same id) is never carried over."""
    ext_map = bytearray(256)
    ext_map[1], ext_map[4] = 5, 7  # the publisher's element 4 would land on the viewer's 7
    pkt = rtp.build_packet(96, 7, 960, 1111, b"\x10payload", False,
                           [(1, b"\x9e"), (4, b"\xab\xcd")])
    for rewrite in (rtp.rewrite_packet_c, rtp._rewrite):
        out = rewrite(pkt, 120, 8, 1920, 0xB0000001, bytes(ext_map), 9, b"v0", 7)
        assert rtp.read_extensions(out) == [(5, b"\x9e"), (9, b"v0"), (7, b"\x00\x00")]
        stamped = rtp.stamp_transport_seq(out, 7, 0xBEEF)
        assert stamped is not None
        assert rtp.read_extensions(stamped)[-1] == (7, b"\xbe\xef")
        assert stamped[:4] == out[:4] and stamped.endswith(b"\x10payload")
    assert rtp.stamp_transport_seq(pkt, 9, 1) is None  # no such element: nothing to stamp


def test_the_common_case_is_done_in_c() -> None:
    ext_map = bytearray(256)
    ext_map[1], ext_map[2] = 5, 2
    pkt = rtp.build_packet(111, 7, 960, 1111, b"\xfcpayload", True,
                           [(1, b"\x9e"), (2, b"\x01\x02\x03"), (3, b"m0")])
    out = speedups.rewrite(pkt, 109, 8, 1920, 0xA0000001, bytes(ext_map), 9, b"a0")
    assert out == rtp._rewrite(pkt, 109, 8, 1920, 0xA0000001, bytes(ext_map), 9, b"a0")
    assert rtp.read_header(out) == (109, True, 8, 1920, 0xA0000001)
    assert rtp.read_extensions(out) == [(5, b"\x9e"), (2, b"\x01\x02\x03"), (9, b"a0")]
    # Two-byte form needed (MID id 15): left to Python.
    assert speedups.rewrite(pkt, 109, 8, 1920, 1, bytes(ext_map), 15, b"a0") is None
    with pytest.raises(ValueError, match="ext_map must have 256 entries"):
        speedups.rewrite(pkt, 109, 8, 1920, 1, b"\x00", 9, b"a0")
    with pytest.raises(ValueError, match="RTP packet shorter than 12 bytes"):
        speedups.rewrite(pkt[:11], 109, 8, 1920, 1, bytes(ext_map), 9, b"a0")


ops = st.lists(st.tuples(st.sampled_from(["put", "get", "sent_at", "take"]),
                         st.integers(0, 70), st.floats(0, 10)), max_size=80)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([1, 2, 8, 16]), ops)
def test_c_packet_cache_behaves_like_the_python_one(size: int,
                                                    script: list[tuple[str, int, float]]) -> None:
    py, c = PacketCache(size), speedups.PacketCache(size)
    assert c.size == py.size == size
    for op, seq, now in script:
        if op == "put":
            packet = seq.to_bytes(2, "big") * 3
            py.put(seq, packet, now)
            c.put(seq, packet, now)
        elif op == "get":
            assert c.get(seq) == py.get(seq)
        elif op == "sent_at":
            assert c.sent_at(seq) == py.sent_at(seq)
        else:
            assert c.take_for_resend(seq, now, 1.0) == py.take_for_resend(seq, now, 1.0)


@pytest.mark.parametrize("size", [0, 3, -4])
def test_c_packet_cache_size_must_be_a_power_of_two(size: int) -> None:
    with pytest.raises(ValueError, match=f"cache size must be a power of two, got {size}"):
        speedups.PacketCache(size)
