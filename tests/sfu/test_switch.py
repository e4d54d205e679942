"""Rebinding a DownTrack: same SSRC, continuous seq, monotonic ts advanced by wall time."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sfu.fakes import (
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    down_video,
    make_streams,
    video_packet,
    video_params,
)


def test_republish_keeps_ssrc_seq_continuous_and_ts_advanced_by_elapsed_time() -> None:
    streams, recorder, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    old = stream.publish("a", [audio_params(ssrc=1)], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_audio()], sink)
    for i in range(5):
        old.on_rtp(audio_packet(100 + i, 10_000 + i * 960, ssrc=1))
        clock.advance(0.02)
    events_before = list(recorder.events)
    clock.advance(0.5)  # the new publisher starts 0.52 s after the last packet
    new = stream.publish("a", [audio_params(ssrc=2)], FakeSink())
    for i in range(3):
        new.on_rtp(audio_packet(40_000 + i, 7_000_000 + i * 960, ssrc=2))
    assert recorder.events == events_before  # no inactive/active pair
    headers = sink.headers()
    assert {h[4] for h in headers} == {0xA0000001}
    assert [h[2] for h in headers] == list(range(100, 108))
    ts = [h[3] for h in headers]
    assert ts[5] - ts[4] == round(0.52 * 48000)
    assert ts[6] - ts[5] == 960 and ts[7] - ts[6] == 960


def test_gap_shorter_than_a_frame_still_advances_one_frame() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    old = stream.publish("a", [audio_params(ssrc=1)], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_audio()], sink)
    old.on_rtp(audio_packet(1, 5000, ssrc=1))
    new = stream.publish("a", [audio_params(ssrc=2)], FakeSink())
    new.on_rtp(audio_packet(9, 1, ssrc=2))
    assert [h[3] for h in sink.headers()] == [5000, 5960]


def test_seq_and_ts_wrap_across_a_switch() -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    old = stream.publish("a", [audio_params(ssrc=1)], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_audio()], sink)
    old.on_rtp(audio_packet(65534, 0xFFFFFFFF - 1000, ssrc=1))
    old.on_rtp(audio_packet(65535, 0xFFFFFFFF - 40, ssrc=1))
    clock.advance(0.02)
    new = stream.publish("a", [audio_params(ssrc=2)], FakeSink())
    new.on_rtp(audio_packet(300, 0xFFFFFF00, ssrc=2))
    new.on_rtp(audio_packet(301, 0xFFFFFF00 + 960, ssrc=2))  # incoming ts wraps too
    headers = sink.headers()
    assert [h[2] for h in headers] == [65534, 65535, 0, 1]
    assert [h[3] for h in headers] == [0xFFFFFFFF - 1000, 0xFFFFFFFF - 40, 919, 1879]


def test_video_switch_waits_for_keyframe_from_the_new_publisher() -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    old = stream.publish(None, [video_params(ssrc=1)], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_video()], sink)
    old.on_rtp(video_packet(10, 3000, ssrc=1, key=True))
    old.on_rtp(video_packet(11, 3000, ssrc=1))
    clock.advance(1.0)
    new_pub = FakeSink()
    new = stream.publish(None, [video_params(ssrc=2)], new_pub)
    assert len(new_pub.rtcp_out) == 1  # PLI to the new publisher at once
    new.on_rtp(video_packet(500, 0, ssrc=2))
    new.on_rtp(video_packet(501, 3000, ssrc=2, key=True))
    new.on_rtp(video_packet(500, 0, ssrc=2))  # a late packet from before the sync point
    new.on_rtp(video_packet(502, 3000, ssrc=2))
    headers = sink.headers()
    assert [h[2] for h in headers] == [10, 11, 12, 13]
    assert [h[3] for h in headers] == [3000, 3000, 3000 + 90000, 3000 + 90000]


def test_idle_then_rebound_continues_the_same_stream() -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    first = stream.publish(None, [audio_params(ssrc=1)], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_audio()], sink)
    first.on_rtp(audio_packet(7, 700, ssrc=1))
    stream.unpublish(first)
    clock.advance(2.0)
    second = stream.publish(None, [audio_params(ssrc=2)], FakeSink())
    second.on_rtp(audio_packet(1234, 99, ssrc=2))
    assert [(h[2], h[3], h[4]) for h in sink.headers()] == [
        (7, 700, 0xA0000001), (8, 700 + 96000, 0xA0000001)]


segments = st.lists(
    st.tuples(
        st.integers(0, 0xFFFF),  # first incoming seq of the publisher
        st.integers(0, 0xFFFFFFFF),  # first incoming ts
        st.integers(1, 30),  # packets
        st.floats(0.0, 3.0),  # wall-clock gap before this publisher
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(segments)
def test_random_switches_keep_output_seq_strictly_continuous(
    plan: list[tuple[int, int, int, float]],
) -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    sink = FakeSink()
    stream.add_viewer([down_audio()], sink)
    for n, (seq0, ts0, count, gap) in enumerate(plan):
        clock.advance(gap)
        source = stream.publish("a", [audio_params(ssrc=n + 1)], FakeSink())
        for i in range(count):
            source.on_rtp(audio_packet(seq0 + i, ts0 + i * 960, ssrc=n + 1))
            clock.advance(0.02)
    headers = sink.headers()
    assert len(headers) == sum(p[2] for p in plan)
    assert {h[4] for h in headers} == {0xA0000001}
    seqs = [h[2] for h in headers]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    ts = [h[3] for h in headers]
    steps = [(b - a) & 0xFFFFFFFF for a, b in zip(ts, ts[1:], strict=False)]
    assert all(0 < s < 0x80000000 for s in steps)  # strictly monotonic modulo 2^32
