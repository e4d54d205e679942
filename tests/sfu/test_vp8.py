"""VP8 payload descriptor parsing and PictureID/TL0PICIDX munging (RFC 7741 §4.2)."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.media import rtp
from hubbub.sfu.vp8 import SeqGapCloser, Vp8Descriptor, Vp8Munger, parse, parse_descriptor

KEY_HEADER = b"\x10\x02\x00\x9d\x01\x2a"  # VP8 payload header, P bit 0 + keyframe start code
DELTA_HEADER = b"\x31\x01\x00"  # P bit 1: interframe


def descriptor(pid: int | None = None, bits: int = 15, tl0: int | None = None,
               tid: int | None = None, y: bool = False, keyidx: int | None = None,
               start: bool = True, part: int = 0, non_ref: bool = False) -> bytes:
    """A VP8 payload descriptor with the given optional fields (RFC 7741 §4.2)."""
    x = 0
    tail = b""
    if pid is not None:
        x |= 0x80
        tail += bytes([0x80 | pid >> 8, pid & 0xFF]) if bits == 15 else bytes([pid & 0x7F])
    if tl0 is not None:
        x |= 0x40
        tail += bytes([tl0])
    if tid is not None or keyidx is not None:
        x |= (0x20 if tid is not None else 0) | (0x10 if keyidx is not None else 0)
        tail += bytes([((tid or 0) << 6) | (0x20 if y else 0) | (keyidx or 0)])
    b0 = (0x20 if non_ref else 0) | (0x10 if start else 0) | part
    if x:
        return bytes([0x80 | b0, x]) + tail
    return bytes([b0]) + tail


def packet(seq: int, desc: bytes, body: bytes = DELTA_HEADER, ext: bool = False) -> bytes:
    extensions = [(1, b"\x00\x01\x02")] if ext else []
    return rtp.build_packet(96, seq, seq * 100, 1234, desc + body, extensions=extensions)


def munge(m: Vp8Munger, data: bytes) -> bytes | None:
    return m.munge(data, rtp.payload_offset(data))


def fields(data: bytes) -> tuple[int, int, int]:
    """(PictureID, width, TL0PICIDX) of a munged packet."""
    d = parse(data, rtp.payload_offset(data))
    assert d is not None
    return d.picture_id, d.picture_id_bits, d.tl0picidx


# --- parsing ------------------------------------------------------------------------------


def test_parses_15_bit_picture_id_with_all_fields() -> None:
    data = b"\xaa\xbb" + descriptor(0x1234, 15, tl0=77, tid=2, y=True, keyidx=5) + KEY_HEADER
    d = Vp8Descriptor()
    assert parse_descriptor(d, data, 2)
    assert (d.size, d.start, d.partition, d.non_reference) == (6, True, 0, False)
    assert (d.picture_id, d.picture_id_bits, d.picture_id_offset) == (0x1234, 15, 4)
    assert (d.tl0picidx, d.tl0picidx_offset) == (77, 6)
    assert (d.tid, d.layer_sync, d.keyidx, d.keyframe) == (2, True, 5, True)


def test_parses_7_bit_picture_id_and_missing_fields() -> None:
    d = parse(descriptor(0x55, 7, start=False, part=3, non_ref=True) + DELTA_HEADER)
    assert d is not None
    assert (d.size, d.picture_id, d.picture_id_bits, d.picture_id_offset) == (3, 0x55, 7, 2)
    assert (d.start, d.partition, d.non_reference) == (False, 3, True)
    assert (d.tl0picidx, d.tid, d.keyidx, d.keyframe) == (-1, -1, -1, False)


def test_parses_minimal_descriptor_and_k_without_t() -> None:
    d = parse(descriptor() + KEY_HEADER)
    assert d is not None
    assert (d.size, d.picture_id, d.keyframe) == (1, -1, True)
    d = parse(descriptor(keyidx=9, start=True) + DELTA_HEADER)
    assert d is not None
    assert (d.size, d.tid, d.keyidx, d.keyframe) == (3, -1, 9, False)


def test_keyframe_needs_start_of_partition_zero() -> None:
    d = parse(descriptor(5, start=True, part=1) + KEY_HEADER)
    assert d is not None and not d.keyframe
    d = parse(descriptor(5, start=False) + KEY_HEADER)
    assert d is not None and not d.keyframe


def test_every_truncation_cannot_parse() -> None:
    full = descriptor(0x1234, 15, tl0=1, tid=1, keyidx=1)
    d = Vp8Descriptor()
    for cut in range(len(full) + 1):  # the descriptor alone, no VP8 payload, is malformed too
        assert not parse_descriptor(d, full[:cut], 0)
        assert d.size == 0
    assert not parse_descriptor(d, full + b"\x00", 0, len(full))  # `end` bounds the parse
    assert not parse_descriptor(d, full + b"\x00", -1)
    assert not parse_descriptor(d, full + b"\x00", 100)
    assert parse_descriptor(d, full + b"\x00", 0, 1000)  # end past the buffer: clamped


@given(st.binary(max_size=24), st.integers(-4, 30), st.integers(-4, 30))
def test_parse_never_raises(data: bytes, offset: int, end: int) -> None:
    d = Vp8Descriptor()
    ok = parse_descriptor(d, data, offset, end)
    assert ok == (d.size > 0)
    if ok:
        assert offset + d.size < (len(data) if end < 0 else min(end, len(data)))


@given(st.one_of(st.none(), st.integers(0, 0x7FFF)), st.sampled_from([7, 15]),
       st.one_of(st.none(), st.integers(0, 255)), st.one_of(st.none(), st.integers(0, 3)),
       st.booleans(), st.one_of(st.none(), st.integers(0, 31)), st.booleans(),
       st.integers(0, 7))
def test_parse_round_trips_built_descriptors(pid: int | None, bits: int, tl0: int | None,
                                            tid: int | None, y: bool, keyidx: int | None,
                                            start: bool, part: int) -> None:
    if pid is not None and bits == 7:
        pid &= 0x7F
    d = parse(descriptor(pid, bits, tl0, tid, y, keyidx, start, part) + DELTA_HEADER)
    assert d is not None
    assert d.picture_id == (-1 if pid is None else pid)
    assert d.picture_id_bits == (0 if pid is None else bits)
    assert d.tl0picidx == (-1 if tl0 is None else tl0)
    assert d.tid == (-1 if tid is None else tid)
    assert d.layer_sync == (tid is not None and y)
    assert d.keyidx == (-1 if keyidx is None else keyidx)
    assert (d.start, d.partition) == (start, part)


# --- a simulated publisher -----------------------------------------------------------------

L1T3_TID = (0, 2, 1, 2)
# libwebrtc's 3-layer pattern: TL1 references only `last` (TL0), as does the TL2 right after a
# TL0; the second TL2 also references TL1's golden buffer, so it is not a sync frame.
L1T3_SYNC = (False, True, True, False)


@dataclass
class Frame:
    pid: int
    tl0: int
    tid: int
    packets: list[bytes]


class Layer:
    """One simulcast layer: its own seq, PictureID and TL0PICIDX sequences."""

    def __init__(self, pid: int, tl0: int, seq: int, bits: int = 15, temporal: bool = True,
                 packets_per_frame: int = 3) -> None:
        self.pid, self.tl0, self.seq, self.bits = pid, tl0, seq, bits
        self.temporal = temporal
        self.per_frame = packets_per_frame
        self.index = 0

    def frame(self, keyframe: bool = False) -> Frame:
        if keyframe:
            self.index = 0
        tid = L1T3_TID[self.index % 4] if self.temporal else 0
        sync = L1T3_SYNC[self.index % 4] if self.temporal else False
        if tid == 0 and self.temporal:
            self.tl0 = (self.tl0 + 1) & 0xFF
        packets = []
        for k in range(self.per_frame):
            desc = descriptor(self.pid, self.bits, self.tl0 if self.temporal else None,
                              tid if self.temporal else None, sync, start=k == 0)
            body = KEY_HEADER if keyframe else DELTA_HEADER
            packets.append(packet(self.seq, desc, body, ext=k == 1))
            self.seq = (self.seq + 1) & 0xFFFF
        frame = Frame(self.pid, self.tl0, tid, packets)
        self.pid = (self.pid + 1) & ((1 << self.bits) - 1)
        self.index += 1
        return frame


def send_frame(m: Vp8Munger, frame: Frame) -> tuple[int, int, int] | None:
    """Munge a frame's packets: its one (PictureID, width, TL0PICIDX), or None if dropped."""
    outs = [munge(m, p) for p in frame.packets]
    if outs[0] is None:
        assert all(o is None for o in outs)
        return None
    assert all(o is not None for o in outs)
    got = {fields(o) for o in outs if o is not None}
    assert len(got) == 1  # every packet of a frame carries the same IDs
    for p, o in zip(frame.packets, outs, strict=True):
        assert o is not None and len(o) == len(p)
        d = parse(p, rtp.payload_offset(p))
        assert d is not None
        # Only the PictureID and TL0PICIDX octets may differ.
        changed = {i for i in range(len(p)) if p[i] != o[i]}
        allowed = {d.picture_id_offset, d.picture_id_offset + 1, d.tl0picidx_offset}
        assert changed <= allowed
    return got.pop()


def assert_continuous(ids: list[tuple[int, int, int]]) -> None:
    for (a, bits_a, _), (b, bits_b, _) in zip(ids, ids[1:], strict=False):
        width = 1 << min(bits_a, bits_b)
        assert (b - a) % width == 1, ids


def test_first_layer_is_forwarded_unchanged() -> None:
    m = Vp8Munger()
    layer = Layer(pid=500, tl0=9, seq=1)
    frames = [layer.frame(keyframe=True)] + [layer.frame() for _ in range(8)]
    m.rebase(parse(frames[0].packets[0], rtp.payload_offset(frames[0].packets[0])))
    for f in frames:
        for p in f.packets:
            assert munge(m, p) == p
    assert m.packets_munged == 27


def test_switch_between_simulcast_layers_is_continuous() -> None:
    m = Vp8Munger()
    low = Layer(pid=1000, tl0=50, seq=100)
    high = Layer(pid=0x7FFA, tl0=250, seq=40_000)  # wraps both PictureID and TL0PICIDX
    out = [send_frame(m, low.frame(keyframe=True))] + [send_frame(m, low.frame())
                                                         for _ in range(9)]
    for _ in range(5):
        high.frame()  # the other layer runs on meanwhile
    key = high.frame(keyframe=True)
    first = key.packets[0]
    m.rebase(parse(first, rtp.payload_offset(first)))
    out += [send_frame(m, key)] + [send_frame(m, high.frame()) for _ in range(12)]
    m.rebase(None)  # and back, rebased lazily at the first packet
    out += [send_frame(m, low.frame(keyframe=True))] + [send_frame(m, low.frame())
                                                          for _ in range(4)]
    ids = [o for o in out if o is not None]
    assert len(ids) == len(out) == 28
    assert_continuous(ids)
    assert ids[0] == (1000, 15, 51)
    tl0s = [t for _, _, t in ids]
    # TL0PICIDX: + 1 at each TL0 frame (every 4th), + 1 at each switch's keyframe.
    assert all((b - a) % 256 in (0, 1) for a, b in zip(tl0s, tl0s[1:], strict=False))
    assert tl0s[10] == (tl0s[9] + 1) % 256 and tl0s[23] == (tl0s[22] + 1) % 256


def test_switch_from_15_bit_to_7_bit_layer_keeps_each_width() -> None:
    m = Vp8Munger()
    wide = Layer(pid=20_000, tl0=0, seq=1, temporal=False)
    narrow = Layer(pid=120, tl0=0, seq=9000, bits=7, temporal=False)
    out = [send_frame(m, wide.frame(keyframe=True)), send_frame(m, wide.frame())]
    m.rebase(None)
    out += [send_frame(m, narrow.frame(keyframe=True))] + [send_frame(m, narrow.frame())
                                                             for _ in range(200)]
    m.rebase(None)
    out += [send_frame(m, wide.frame(keyframe=True))]
    ids = [o for o in out if o is not None]
    assert [b for _, b, _ in ids[:3]] == [15, 15, 7]
    assert ids[2][0] == 20_002 & 0x7F  # the low bits of the continuing 15-bit counter
    assert_continuous(ids)
    assert ids[-1] == ((20_002 + 201) & 0x7FFF, 15, -1)


def test_picture_id_width_change_without_rebase_is_refused() -> None:
    m = Vp8Munger()
    assert munge(m, packet(1, descriptor(300, 15) + KEY_HEADER)) is not None
    assert munge(m, packet(2, descriptor(45, 7))) is None
    assert m.dropped_old == 1
    assert munge(m, packet(3, descriptor(301, 15))) is not None


def test_packets_from_before_the_switch_point_are_dropped() -> None:
    m = Vp8Munger()
    a = Layer(pid=10, tl0=0, seq=1)
    send_frame(m, a.frame(keyframe=True))
    b = Layer(pid=5000, tl0=0, seq=500)
    early = b.frame()
    key = b.frame(keyframe=True)
    m.rebase(parse(key.packets[0], rtp.payload_offset(key.packets[0])))
    assert send_frame(m, key) is not None
    assert all(munge(m, p) is None for p in early.packets)  # late, from before the keyframe
    assert m.dropped_old == 3
    assert send_frame(m, b.frame()) == (12, 15, 2)


def run_temporal(cap: int | None, frames: int = 24) -> tuple[list[Frame], list[tuple[int, int,
                                                                                      int]]]:
    m = Vp8Munger()
    m.set_max_temporal_layer(cap)
    layer = Layer(pid=0x7FF0, tl0=200, seq=65_500)
    sent: list[Frame] = []
    ids = []
    for i in range(frames):
        f = layer.frame(keyframe=i == 0)
        got = send_frame(m, f)
        if got is not None:
            sent.append(f)
            ids.append(got)
    assert m.frames_dropped_temporal == frames - len(sent)
    assert m.packets_dropped_temporal == 3 * (frames - len(sent))
    return sent, ids


def test_temporal_cap_drops_upper_layers_with_contiguous_picture_ids() -> None:
    for cap, share in ((0, 4), (1, 2), (2, 1), (None, 1)):
        sent, ids = run_temporal(cap)
        assert len(sent) == 24 // share
        assert all(f.tid <= (3 if cap is None else cap) for f in sent)
        assert_continuous(ids)
        assert ids[0][0] == 0x7FF0
        # TL0PICIDX untouched: TL0 frames are never dropped.
        assert [t for _, _, t in ids] == [f.tl0 for f in sent]


def test_raising_the_cap_waits_for_layer_sync_frames() -> None:
    m = Vp8Munger()
    m.set_max_temporal_layer(0)
    layer = Layer(pid=100, tl0=0, seq=1)
    frames = [layer.frame(keyframe=True)] + [layer.frame() for _ in range(5)]
    for f in frames:  # TID 0 2 1 2 0 2
        send_frame(m, f)
    m.set_max_temporal_layer(None)
    assert m.max_temporal_layer == 0 and m.target_temporal_layer is None
    caps = []
    sent = []
    for _ in range(8):  # TID 1(Y) 2 0 2(Y) 1(Y) 2 0 2(Y)
        f = layer.frame()
        got = send_frame(m, f)
        caps.append(m.max_temporal_layer)
        if got is not None:
            sent.append((f.tid, got[0]))
    # TL1 at its sync frame; TL2 at the next TL2 sync frame, not at the TL0 before it.
    assert caps == [1, 1, 1, None, None, None, None, None]
    assert [t for t, _ in sent] == [1, 0, 2, 1, 2, 0, 2]
    pids = [p for _, p in sent]
    assert pids == list(range(pids[0], pids[0] + 7))


def test_raising_the_cap_needs_the_layers_in_order() -> None:
    m = Vp8Munger()
    m.set_max_temporal_layer(0)
    layer = Layer(pid=100, tl0=0, seq=1)
    send_frame(m, layer.frame(keyframe=True))
    m.set_max_temporal_layer(2)
    f = layer.frame()  # TL2 with Y: depends on TL0 only, but later TL2 frames use TL1
    assert f.tid == 2 and send_frame(m, f) is None
    assert m.max_temporal_layer == 0
    assert send_frame(m, layer.frame()) is not None  # TL1 with Y
    assert m.max_temporal_layer == 1
    assert send_frame(m, layer.frame()) is None  # TL2 without Y
    assert send_frame(m, layer.frame()) is not None  # TL0
    assert send_frame(m, layer.frame()) is not None  # TL2 with Y
    assert m.max_temporal_layer == 2


def test_keyframe_raises_the_cap_at_once() -> None:
    m = Vp8Munger()
    m.set_max_temporal_layer(0)
    layer = Layer(pid=100, tl0=0, seq=1)
    for i in range(3):
        send_frame(m, layer.frame(keyframe=i == 0))
    m.set_max_temporal_layer(2)
    send_frame(m, layer.frame(keyframe=True))
    assert m.max_temporal_layer == 2


def test_lowering_the_cap_keeps_the_current_frame_whole() -> None:
    m = Vp8Munger()
    layer = Layer(pid=100, tl0=0, seq=1)
    send_frame(m, layer.frame(keyframe=True))
    f = layer.frame()  # TL2
    assert munge(m, f.packets[0]) is not None
    m.set_max_temporal_layer(0)
    assert m.max_temporal_layer == 0
    assert all(munge(m, p) is not None for p in f.packets[1:])
    assert send_frame(m, layer.frame()) is None  # the next TL1 is dropped
    assert send_frame(m, layer.frame()) is None
    assert send_frame(m, layer.frame()) == (102, 15, 2)


def test_retransmissions_map_as_the_first_time() -> None:
    m = Vp8Munger()
    m.set_max_temporal_layer(1)
    layer = Layer(pid=0x7FF8, tl0=3, seq=1)
    frames = [layer.frame(keyframe=i == 0) for i in range(20)]
    first = {p: munge(m, p) for f in frames for p in f.packets}
    for f in reversed(frames[8:]):  # NACKed ones, in any order
        for p in f.packets:
            assert munge(m, p) == first[p]
    nxt = layer.frame()
    assert nxt.tid == 0
    got = send_frame(m, nxt)
    last = [fields(o) for o in first.values() if o is not None][-1]
    assert got is not None and got[0] == (last[0] + 1) & 0x7FFF


def test_late_frame_takes_its_place_in_the_gap() -> None:
    m = Vp8Munger()
    layer = Layer(pid=10, tl0=0, seq=1, temporal=False)
    f0, f1, f2, f3 = (layer.frame(keyframe=i == 0) for i in range(4))
    assert [send_frame(m, f) for f in (f0, f2, f1, f3)] == [
        (10, 15, -1), (12, 15, -1), (11, 15, -1), (13, 15, -1)]


def test_lost_frames_still_leave_a_gap() -> None:
    m = Vp8Munger()
    m.set_max_temporal_layer(0)
    layer = Layer(pid=10, tl0=0, seq=1)
    frames = [layer.frame(keyframe=i == 0) for i in range(13)]
    lost = frames[4]  # a TL0 frame lost upstream: the decoder must see that
    ids = [send_frame(m, f) for f in frames if f is not lost]
    assert [i[0] for i in ids if i is not None] == [10, 12, 13]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 8), min_size=20, max_size=60), st.sampled_from([0, 1, 2, None]),
       st.sampled_from([7, 15]), st.lists(st.integers(0, 3), max_size=8))
def test_reordered_and_repeated_delivery_keeps_frames_whole_and_ordered(
        delays: list[int], cap: int | None, bits: int, cap_changes: list[int]) -> None:
    layer = Layer(pid=0x7F - 5 if bits == 7 else 0x7FFF - 5, tl0=254, seq=65_530, bits=bits,
                  packets_per_frame=2)
    frames = [layer.frame(keyframe=i == 0) for i in range(len(delays))]
    packets = [(i, p) for i, f in enumerate(frames) for p in f.packets]
    # Each packet arrives up to `delay` frames late (the keyframe first); some twice.
    order = sorted(range(len(packets)),
                   key=lambda k: (k > 0, packets[k][0] + delays[packets[k][0]], k))
    order += order[len(order) // 2:len(order) // 2 + 5]
    m = Vp8Munger()
    m.set_max_temporal_layer(cap)
    out: dict[int, tuple[int, int, int] | None] = {}
    for n, k in enumerate(order):
        if cap_changes and n % 7 == 0:
            m.set_max_temporal_layer(cap_changes[n // 7 % len(cap_changes)])
        index, p = packets[k]
        o = munge(m, p)
        got = fields(o) if o is not None else None
        assert out.setdefault(index, got) == got  # one answer per frame, repeats included
    sent = sorted((i, v) for i, v in out.items() if v is not None)
    assert sent and sent[0][0] == 0
    width = 1 << bits
    # Sent frames keep the input order and never share an output ID.
    steps = [(b[1][0] - a[1][0]) % width for a, b in zip(sent, sent[1:], strict=False)]
    assert all(0 < s <= b[0] - a[0] for s, a, b in zip(steps, sent, sent[1:], strict=False))
    assert all(v[2] == frames[i].tl0 for i, v in sent)  # first layer: TL0PICIDX as is


# --- malformed input ---------------------------------------------------------------------------


def test_malformed_packets_are_dropped_and_padding_passes() -> None:
    m = Vp8Munger()
    good = packet(1, descriptor(7, tl0=1, tid=0) + KEY_HEADER)
    assert m.munge(good, 12) == good
    assert m.munge(b"", 0) is None
    assert m.munge(good[:11], 12) is None
    assert m.munge(good, 5) is None
    assert m.munge(good, len(good) + 1) is None
    assert m.munge(packet(2, b"\x90\xe0\x80", b""), 12) is None  # PictureID cut short
    padded = bytearray(packet(3, b"", b""))
    padded[0] |= 0x20
    padded += b"\x00\x00\x03"
    assert m.munge(bytes(padded), 12) == bytes(padded)  # padding only: no descriptor
    assert m.packets_passed_empty == 1
    padded[-1] = 200
    assert m.munge(bytes(padded), 12) is None  # padding longer than the packet
    assert m.dropped_malformed == 6


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=0, max_size=30), st.integers(-2, 40)),
                max_size=20),
       st.one_of(st.none(), st.integers(0, 3)))
def test_munge_never_raises(packets: list[tuple[bytes, int]], cap: int | None) -> None:
    m = Vp8Munger()
    m.set_max_temporal_layer(cap)
    for data, offset in packets:
        for buf in (data, bytearray(data)):
            out = m.munge(buf, offset)
            assert out is None or len(out) == len(data)
        if len(data) > 4 and data[0] & 1:
            m.rebase(parse(data, 0))


def test_input_bytearray_is_not_modified() -> None:
    m = Vp8Munger()
    m.rebase(None)
    send_frame(m, Layer(pid=1, tl0=0, seq=1).frame(keyframe=True))
    m.rebase(None)
    data = bytearray(packet(50, descriptor(900, tl0=9, tid=0) + KEY_HEADER))
    copy = bytes(data)
    out = m.munge(data, 12)
    assert out is not None and out != copy and bytes(data) == copy


# --- sequence numbers ----------------------------------------------------------------------------


def test_seq_gap_closer_skips_dropped_packets() -> None:
    c = SeqGapCloser()
    assert c.forward(65_533) == 65_533  # the first binding keeps the publisher's numbers
    assert c.drop(65_534) == -1
    assert c.drop(65_535) == -1
    assert [c.forward(s) for s in (0, 1)] == [65_534, 65_535]
    assert c.drop(2) == -1
    assert c.forward(3) == 0
    assert c.forward(1) == 65_535  # a retransmission: same output, the cache has it
    assert c.forward(2) == -1  # a dropped one has no output seq: never send it
    c.rebase(30_000)  # the next layer
    assert [c.forward(s) for s in (30_000, 30_001)] == [1, 2]
    assert c.forward(29_999) == -1  # from before the switch point
    assert c.packets_dropped == 3


def test_seq_gap_closer_late_packets_keep_their_place() -> None:
    c = SeqGapCloser()
    assert c.forward(100) == 100
    assert c.forward(103) == 103  # 101, 102 missing upstream so far
    assert c.forward(102) == 102
    assert c.drop(101) == 101  # dropped late: its seq stays a hole (padding could fill it)
    assert c.holes == 1
    assert c.drop(104) == -1
    assert c.forward(105) == 104


def test_seq_gap_closer_follows_a_restarted_numbering() -> None:
    c = SeqGapCloser()
    for s in range(10, 20):
        c.forward(s)
    outs = [c.forward(s) for s in range(40_000, 40_020)]  # no rebase: unknown at first
    assert outs[:15] == [-1] * 15
    assert outs[15:] == [20, 21, 22, 23, 24]


@given(st.lists(st.booleans(), min_size=1, max_size=300), st.integers(0, 0xFFFF))
def test_seq_gap_closer_in_order_output_is_contiguous(sends: list[bool], start: int) -> None:
    c = SeqGapCloser()
    c.rebase(start)
    outs = [c.forward((start + i) & 0xFFFF) if s else c.drop((start + i) & 0xFFFF)
            for i, s in enumerate(sends)]
    sent = [o for o, s in zip(outs, sends, strict=True) if s]
    assert all(o == -1 for o, s in zip(outs, sends, strict=True) if not s)
    assert sent == [(start + i) & 0xFFFF for i in range(len(sent))]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=1, max_size=200))
def test_seq_gap_closer_reordered_outputs_never_collide(packets: list[tuple[bool, int]]) -> None:
    c = SeqGapCloser()
    c.rebase(65_500)
    order = sorted(range(len(packets)), key=lambda i: (i > 0, i + packets[i][1]))
    outs: dict[int, int] = {}
    for i in order:
        seq = (65_500 + i) & 0xFFFF
        if packets[i][0]:
            outs[i] = c.forward(seq)
        else:
            c.drop(seq)
    values = [(i, o) for i, o in sorted(outs.items())]
    assert all(o >= 0 for _, o in values)
    assert len({o for _, o in values}) == len(values)  # no two packets share an output seq
    steps = [((b - a) & 0xFFFF, j - i) for (i, a), (j, b) in zip(values, values[1:],
                                                                   strict=False)]
    assert all(0 < s <= gap for s, gap in steps)  # input order kept
