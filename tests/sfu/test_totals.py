"""Node totals (sfu/totals.py): live objects plus those gone, so metrics never go backwards."""

from hubbub.sfu.totals import Totals, node_totals
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


def test_counts_survive_viewers_leaving_and_sources_stopping() -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params(), video_params()], FakeSink())
    viewer = stream.add_viewer([down_audio(), down_video()], FakeSink())
    for i in range(10):
        source.on_rtp(audio_packet(i, i * 960))
        clock.advance(0.02)
    source.on_rtp(video_packet(0, 0, key=True))
    live = node_totals(streams.retired, streams)
    assert (live.audio_packets_in, live.video_packets_in) == (10, 1)
    assert (live.audio_packets_out, live.video_packets_out) == (10, 1)
    assert live.bytes_in == sum(t.bytes for t in source.all_tracks)
    assert live.payload_bytes_out > 0

    stream.remove_viewer(viewer)
    after_leave = node_totals(streams.retired, streams)
    assert after_leave == live  # the viewer's counts stayed with the node

    stream.unpublish(source)
    assert streams.get("s") is None  # nothing left: the stream is gone too
    assert node_totals(streams.retired, streams) == live


def test_a_replaced_source_keeps_its_counts() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    first = stream.publish("a", [audio_params()], FakeSink())
    for i in range(5):
        first.on_rtp(audio_packet(i, i * 960))
    second = stream.publish("a", [audio_params()], FakeSink())
    second.on_rtp(audio_packet(100, 96000))
    assert node_totals(streams.retired, streams).audio_packets_in == 6


def test_nacks_and_retransmissions_are_counted() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [video_params()], FakeSink())
    viewer = stream.add_viewer([down_video()], FakeSink())
    source.on_rtp(video_packet(0, 0, key=True))
    source.on_rtp(video_packet(1, 0))
    down = viewer.down_tracks[0]
    down.on_nack([down.last_seq], 1.0)
    totals = node_totals(streams.retired, streams)
    assert totals.nacks_received == 1
    assert totals.retransmissions == down.packets_resent == 1


def test_add_sums_every_field() -> None:
    a = Totals(audio_packets_in=1, plis_sent=2, multiplexer_switches=3)
    a.add(Totals(audio_packets_in=10, plis_sent=20, multiplexer_switches=30))
    assert (a.audio_packets_in, a.plis_sent, a.multiplexer_switches) == (11, 22, 33)
