"""A DownTrack munging VP8 (sfu/vp8.py): one continuous PictureID / TL0PICIDX / seq stream
across a simulcast layer switch, and temporal layers dropped without seq holes; on the C
fan-out and the pure-Python path alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.media import rtp
from hubbub.sfu import Source, Viewer
from hubbub.sfu.downtrack import DownTrack
from hubbub.sfu.layers import LayerRequest, temporal_cap
from hubbub.sfu.vp8 import parse, shift_descriptor
from tests.sfu.fakes import (
    ABS_IN,
    VP8_PT,
    FakeClock,
    FakeSink,
    down_video,
    make_streams,
    video_params,
)
from tests.sfu.test_vp8 import DELTA_HEADER, KEY_HEADER, descriptor

LOW, HIGH = 11, 22


@pytest.fixture(params=["c", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "python":
        monkeypatch.setenv("HUBBUB_NO_SPEEDUPS", "1")
    elif rtp.speedups() is None:
        pytest.skip("C extension not built")
    yield request.param


def vp8(seq: int, ts: int, ssrc: int, pid: int, tl0: int, tid: int = 0, key: bool = False,
        y: bool = False, start: bool = True) -> bytes:
    desc = descriptor(pid=pid, tl0=tl0, tid=tid, y=y, start=start)
    body = (KEY_HEADER if key else DELTA_HEADER) + b"x" * 30
    return rtp.build_packet(VP8_PT, seq & 0xFFFF, ts, ssrc, desc + body, False,
                            [(ABS_IN, b"\x04\x05\x06")])


def setup_viewer() -> tuple[Source, Viewer, FakeSink, FakeClock]:
    """A two-layer SIM publisher (LOW, HIGH) and one viewer that negotiated NACK."""
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    params = replace(video_params(ssrc=None), layer_ssrcs=[LOW, HIGH], rtcp_fbs=["nack"])
    source = stream.publish(None, [params], FakeSink())
    sink = FakeSink()
    viewer = stream.add_viewer([replace(down_video(), nack=True)], sink)
    return source, viewer, sink, clock


def setup() -> tuple[Source, DownTrack, FakeSink, FakeClock]:
    source, viewer, sink, clock = setup_viewer()
    down = viewer.main_video
    assert down is not None
    return source, down, sink, clock


def sent(sink: FakeSink) -> list[tuple[int, int, int, int]]:
    """(seq, PictureID, TL0PICIDX, TID) of each media packet sent (padding: PID -1)."""
    out = []
    for data in sink.rtp_out:
        seq = (data[2] << 8) | data[3]
        desc = parse(data, rtp.payload_offset(data)) if not data[0] & 0x20 else None
        if desc is None:
            out.append((seq, -1, -1, -1))
        else:
            out.append((seq, desc.picture_id, desc.tl0picidx, desc.tid))
    return out


def test_a_layer_switch_keeps_picture_id_tl0picidx_and_seq_continuous(path: str) -> None:
    source, down, sink, clock = setup()
    low, high = source.tracks[0].layers
    down.bind(low)
    source.on_rtp(vp8(100, 0, LOW, pid=300, tl0=40, key=True))
    source.on_rtp(vp8(101, 3000, LOW, pid=301, tl0=41))
    assert down._st.slow is (path == "python")  # before a switch the C fan-out forwards
    down.switch_to(high)
    clock.advance(0.033)
    source.on_rtp(vp8(7000, 90_000, HIGH, pid=20_000, tl0=200, key=True))
    source.on_rtp(vp8(7001, 90_000, HIGH, pid=20_000, tl0=200, key=True, start=False))
    source.on_rtp(vp8(7002, 93_000, HIGH, pid=20_001, tl0=201))
    source.on_rtp(vp8(102, 6000, LOW, pid=302, tl0=42))  # the old layer: no longer sent
    # Offsets do it: the C fan-out forwards the new layer too.
    assert down.track is high and down.switches == 1 and down._st.slow is (path == "python")
    assert down.vp8 is None and down._st.vp8_shift
    assert sent(sink) == [(100, 300, 40, 0), (101, 301, 41, 0), (102, 302, 42, 0),
                          (103, 302, 42, 0), (104, 303, 43, 0)]
    # A NACK is answered with the bytes sent: the munged ones.
    sink.rtp_out.clear()
    assert down.on_nack([103], clock.now + 1) == 1
    assert sent(sink) == [(103, 302, 42, 0)]


def test_a_second_switch_continues_from_the_munged_numbers(path: str) -> None:
    source, down, sink, clock = setup()
    low, high = source.tracks[0].layers
    down.bind(high)
    source.on_rtp(vp8(5, 0, HIGH, pid=10, tl0=1, key=True))
    for target, ssrc, seq, pid, tl0 in ((low, LOW, 50, 9000, 90), (high, HIGH, 6, 11, 2)):
        down.switch_to(target)
        clock.advance(0.033)
        source.on_rtp(vp8(seq, 3000, ssrc, pid=pid, tl0=tl0, key=True))
        source.on_rtp(vp8(seq + 1, 6000, ssrc, pid=pid + 1, tl0=tl0))
    assert [s[:3] for s in sent(sink)] == [(5, 10, 1), (6, 11, 2), (7, 12, 2), (8, 13, 3),
                                           (9, 14, 3)]


def t3_tid(frame: int) -> int:
    """libwebrtc's three temporal layers: TID 0, 2, 1, 2, 0, ..."""
    return (0, 2, 1, 2)[frame % 4]


def test_a_temporal_cap_drops_upper_layers_without_seq_holes(path: str) -> None:
    source, down, sink, _ = setup()
    low, _ = source.tracks[0].layers
    down.bind(low)
    source.on_rtp(vp8(1000, 0, LOW, pid=500, tl0=7, key=True))
    down.set_max_temporal_layer(0)
    assert down._st.slow
    seq = 1001
    for frame in range(1, 12):
        tid = t3_tid(frame)
        tl0 = 7 + frame // 4
        for part in range(2):  # two packets per frame
            source.on_rtp(vp8(seq, frame * 3000, LOW, pid=500 + frame, tl0=tl0, tid=tid,
                              y=tid > 0, start=part == 0))
            seq += 1
    out = sent(sink)
    assert {s[3] for s in out} == {0}
    assert [s[0] for s in out] == list(range(1000, 1000 + len(out)))  # no hole
    assert [s[1] for s in out] == [500, 501, 501, 502, 502]  # PictureIDs of sent frames only
    assert down.vp8 is not None and down.vp8.frames_dropped_temporal == 9
    # Lifting the cap takes TID 1 at its next frame with Y set (RFC 7741 §4.2), then 2.
    down.set_max_temporal_layer(None)
    for frame in range(12, 16):
        tid = t3_tid(frame)
        source.on_rtp(vp8(seq, frame * 3000, LOW, pid=500 + frame, tl0=10, tid=tid, y=True))
        seq += 1
    assert [s[3] for s in sent(sink)[5:]] == [0, 1, 2]  # frame 13's TID 2 waits for 1


def test_a_late_packet_of_a_dropped_frame_fills_its_seq_with_padding(path: str) -> None:
    source, down, sink, _ = setup()
    low, _ = source.tracks[0].layers
    down.bind(low)
    source.on_rtp(vp8(10, 0, LOW, pid=1, tl0=1, key=True))
    down.set_max_temporal_layer(0)
    source.on_rtp(vp8(12, 3000, LOW, pid=2, tl0=1, tid=2, y=True, start=False))  # 11 late
    source.on_rtp(vp8(13, 6000, LOW, pid=3, tl0=1, tid=1, y=True))
    source.on_rtp(vp8(14, 9000, LOW, pid=4, tl0=1, tid=2, y=True))
    source.on_rtp(vp8(15, 12000, LOW, pid=5, tl0=2, tid=0))
    # 11 is missing, so it keeps seq 11; frames 2-4 are dropped, frame 5 follows as 12.
    assert [s[:2] for s in sent(sink)] == [(10, 1), (12, 2)]
    # 11 arrives late, of a dropped frame: its reserved seq is filled with padding, which
    # the viewer's receiver counts as received instead of NACKing it.
    source.on_rtp(vp8(11, 3000, LOW, pid=2, tl0=1, tid=2, y=True))
    assert [s[:2] for s in sent(sink)] == [(10, 1), (12, 2), (11, -1)]


def test_temporal_cap_follows_the_budget_on_the_smallest_layer_with_headroom() -> None:
    source, _, _, _ = setup()
    low, _ = source.tracks[0].layers
    low.bitrate = 200_000
    assert temporal_cap(low, 250_000, None, 1.15) is None  # it all fits
    assert temporal_cap(low, 150_000, None, 1.15) == 1  # TIDs 0-1: 60 %
    assert temporal_cap(low, 100_000, None, 1.15) == 0  # TID 0: 40 %
    assert temporal_cap(low, 10_000, None, 1.15) == 0  # nothing less to send
    # Back up only with room: 200 kb/s needs 230 kb/s to lift a cap, 60 % needs 138 kb/s.
    assert temporal_cap(low, 210_000, 1, 1.15) == 1
    assert temporal_cap(low, 230_000, 1, 1.15) is None
    assert temporal_cap(low, 130_000, 0, 1.15) == 0
    assert temporal_cap(low, 140_000, 0, 1.15) == 1


def test_select_with_a_temporal_layer_id_reaches_the_downtrack(path: str) -> None:
    source, viewer, sink, _ = setup_viewer()
    down = viewer.main_video
    low, _ = source.tracks[0].layers
    assert down is not None
    down.bind(low)
    source.on_rtp(vp8(1, 0, LOW, pid=9, tl0=3, key=True))
    viewer.request_layer(down.mid, LayerRequest("0", 0))
    assert down.max_temporal_layer == 0
    source.on_rtp(vp8(2, 3000, LOW, pid=10, tl0=3, tid=2, y=True))
    source.on_rtp(vp8(3, 6000, LOW, pid=11, tl0=3, tid=1, y=True))
    source.on_rtp(vp8(4, 9000, LOW, pid=12, tl0=4))
    viewer.request_layer(down.mid, LayerRequest("0"))
    assert down.max_temporal_layer is None
    source.on_rtp(vp8(5, 12000, LOW, pid=13, tl0=4, tid=1, y=True))
    assert [s[:2] for s in sent(sink)] == [(1, 9), (2, 10), (3, 11)]


@settings(max_examples=300, deadline=None)
@given(pid=st.one_of(st.none(), st.integers(0, 0x7FFF)), bits=st.sampled_from([7, 15]),
       tl0=st.one_of(st.none(), st.integers(0, 255)), tid=st.one_of(st.none(), st.integers(0, 3)),
       pid_offset=st.integers(0, 0x7FFF), tl0_offset=st.integers(0, 255),
       cut=st.integers(0, 8), padding=st.booleans())
def test_the_c_shift_matches_shift_descriptor(pid: int | None, bits: int, tl0: int | None,
                                              tid: int | None, pid_offset: int, tl0_offset: int,
                                              cut: int, padding: bool) -> None:
    """The C fan-out's VP8 offsets (DownState.vp8_shift) and vp8.shift_descriptor give the
    same bytes, for every descriptor shape, truncated ones and padded packets included."""
    c = rtp.speedups()
    if c is None:
        pytest.skip("C extension not built")
    desc = descriptor(pid=pid, bits=bits, tl0=tl0, tid=tid)
    payload = (desc + DELTA_HEADER)[:max(1, len(desc) + 3 - cut)]
    data = rtp.build_packet(VP8_PT, 7, 9000, 1234, payload, False, [(ABS_IN, b"\x01\x02\x03")])
    if padding:
        data = bytes((data[0] | 0x20,)) + data[1:] + bytes(3) + b"\x04"
    sink = FakeSink()
    state = c.DownState()
    state.pt, state.ssrc, state.slow = 120, 0xB1, False
    state.ext_map = bytes(256)
    state.sink_send = sink.send_rtp
    state.vp8_pid_offset, state.vp8_tl0_offset, state.vp8_shift = pid_offset, tl0_offset, True
    assert c.fanout([state], data, 7, 9000, len(payload), 1.0) is None
    plain = rtp.rewrite_packet(data, 120, 7, 9000, 0xB1, bytes(256), 0, b"", 0)
    assert sink.rtp_out == [shift_descriptor(plain, pid_offset, tl0_offset)]
    if pid is not None and cut == 0:
        out = parse(sink.rtp_out[0], rtp.payload_offset(sink.rtp_out[0]))
        assert out is not None
        assert out.picture_id == (pid + pid_offset) % (1 << bits) if bits == 15 else \
            out.picture_id == (pid + pid_offset) % 128


def test_a_cap_after_a_switch_and_a_switch_after_the_cap_keep_the_numbering(path: str) -> None:
    """Offsets (C path) → munger (temporal cap) → offsets again, one PictureID sequence."""
    source, down, sink, clock = setup()
    low, high = source.tracks[0].layers
    down.bind(low)
    source.on_rtp(vp8(1, 0, LOW, pid=100, tl0=10, key=True))
    down.switch_to(high)
    clock.advance(0.033)
    source.on_rtp(vp8(500, 3000, HIGH, pid=7000, tl0=70, key=True))  # -> PID 101, TL0 11
    down.set_max_temporal_layer(0)  # the munger takes over from the offsets
    source.on_rtp(vp8(501, 6000, HIGH, pid=7001, tl0=70, tid=2, y=True))  # dropped
    source.on_rtp(vp8(502, 9000, HIGH, pid=7002, tl0=71))  # -> PID 102, TL0 12, seq 3
    down.set_max_temporal_layer(None)
    down.switch_to(low)  # no cap left: back to offsets at the switch
    clock.advance(0.033)
    source.on_rtp(vp8(2, 12000, LOW, pid=101, tl0=10, key=True))  # -> PID 103, TL0 13
    source.on_rtp(vp8(3, 15000, LOW, pid=102, tl0=10, tid=2, y=True))  # -> PID 104
    assert [s[:3] for s in sent(sink)] == [(1, 100, 10), (2, 101, 11), (3, 102, 12),
                                           (4, 103, 13), (5, 104, 13)]
    assert down.vp8 is None and down._st.slow is (path == "python")


def test_a_raise_with_no_sync_frame_asks_for_a_keyframe_and_takes_every_layer_there(
        path: str) -> None:
    source, down, sink, _ = setup()
    low, _ = source.tracks[0].layers
    down.bind(low)
    source.on_rtp(vp8(1, 0, LOW, pid=1, tl0=1, key=True))
    down.set_max_temporal_layer(0, 10.0)
    source.on_rtp(vp8(2, 3000, LOW, pid=2, tl0=1, tid=2))  # dropped
    down.set_max_temporal_layer(None, 11.0)
    asked = down.keyframe_requests
    for seq, now in ((3, 11.5), (4, 12.0), (5, 12.4)):  # TID 2 frames without the Y bit
        source.on_rtp(vp8(seq, seq * 3000, LOW, pid=seq, tl0=1, tid=2))
        down.set_max_temporal_layer(None, now)
    assert down.keyframe_requests == asked  # 1 s not over yet (the raise was seen at 11.5)
    down.set_max_temporal_layer(None, 12.6)
    assert down.keyframe_requests == asked + 1
    source.on_rtp(vp8(6, 18000, LOW, pid=6, tl0=2, key=True))
    source.on_rtp(vp8(7, 21000, LOW, pid=7, tl0=2, tid=2))
    assert [s[1:] for s in sent(sink)][-2:] == [(2, 2, 0), (3, 2, 2)]  # PIDs contiguous
    assert down.vp8 is not None and not down.vp8.raise_pending


def test_nacks_for_the_layer_left_behind_are_not_answered(path: str) -> None:
    """After a move down (the path got narrower), resending the larger layer's losses would
    only flood it: the decoder starts over at the new layer's keyframe anyway."""
    source, down, sink, clock = setup()
    low, high = source.tracks[0].layers
    down.bind(high)
    source.on_rtp(vp8(1, 0, HIGH, pid=1, tl0=1, key=True))
    source.on_rtp(vp8(2, 3000, HIGH, pid=2, tl0=1))
    down.switch_to(low)
    clock.advance(0.033)
    source.on_rtp(vp8(40, 6000, LOW, pid=70, tl0=9, key=True))  # out seq 3
    source.on_rtp(vp8(41, 9000, LOW, pid=71, tl0=9))
    sink.rtp_out.clear()
    assert down.on_nack([1, 2, 3, 4], clock.now + 1) == 2
    assert [s[0] for s in sent(sink)] == [3, 4] and down.nacks_ignored == 2
