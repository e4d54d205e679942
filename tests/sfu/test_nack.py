"""Upstream NACKs: video packets lost on the way from the publisher are asked for again."""

from __future__ import annotations

from dataclasses import replace

from hubbub.media import rtcp
from hubbub.sfu.nack import NackConfig, NackGenerator
from tests.sfu.fakes import FakeSink, make_streams, video_packet, video_params


def test_gap_is_reported_at_once_and_retried_until_recovered() -> None:
    gen = NackGenerator(NackConfig(retry_interval=0.05, max_retries=3, max_age=1.0))
    assert gen.on_seq(100, 0.0) is None
    assert gen.on_seq(101, 0.01) is None
    assert gen.on_seq(104, 0.02) == [102, 103]
    assert gen.due(0.03) == []  # not yet time to retry
    assert gen.due(0.08) == [102, 103]
    assert gen.on_seq(102, 0.09) is None  # the resend arrived
    assert gen.recovered == 1
    assert gen.due(0.14) == [103]
    assert gen.due(0.20) == []  # 3 requests were the budget
    assert gen.pending == 0


def test_wrap_reorder_and_restart() -> None:
    gen = NackGenerator()
    gen.on_seq(65534, 0.0)
    assert gen.on_seq(1, 0.01) == [65535, 0]
    assert gen.on_seq(0, 0.02) is None  # reordered, not a new gap
    assert gen.on_seq(5000, 0.03) is None  # a jump this big is a restart, not loss
    assert gen.pending == 0
    assert gen.on_seq(5001, 0.04) is None


def test_old_losses_are_forgotten() -> None:
    gen = NackGenerator(NackConfig(max_age=0.5, max_retries=100))
    gen.on_seq(1, 0.0)
    gen.on_seq(3, 0.0)
    assert gen.due(0.4) == [2]
    assert gen.due(0.6) == []
    assert gen.pending == 0


def test_track_sends_nack_to_the_publisher_and_retries_from_tick() -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    sink = FakeSink()
    params = replace(video_params(ssrc=2222), rtcp_fbs=["nack", "nack pli"])
    source = stream.publish(None, [params], sink)
    source.on_rtp(video_packet(10, 0, key=True))
    source.on_rtp(video_packet(13, 3000))
    nacks = [p for p in sink.rtcp_out if p[1] == rtcp.RTPFB]
    assert len(nacks) == 1
    parsed = rtcp.Nack.parse(nacks[0])
    assert (parsed.media_ssrc, parsed.lost) == (2222, [11, 12])
    sink.rtcp_out.clear()
    clock.advance(0.2)
    streams.tick()
    retry = [rtcp.Nack.parse(p) for p in sink.rtcp_out if p[1] == rtcp.RTPFB]
    assert [n.lost for n in retry] == [[11, 12]]


def test_no_nack_without_negotiated_feedback() -> None:
    streams, _, _, _ = make_streams()
    sink = FakeSink()
    source = streams.get_or_create("s").publish(None, [video_params(ssrc=2222)], sink)
    source.on_rtp(video_packet(10, 0, key=True))
    source.on_rtp(video_packet(13, 3000))
    assert not [p for p in sink.rtcp_out if p[1] == rtcp.RTPFB]
