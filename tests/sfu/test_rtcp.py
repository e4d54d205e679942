"""RTCP both ways: NACK answered from the cache, PLI/FIR upstream, SR to viewers, RR upstream."""

import struct

from hubbub.media import rtcp
from hubbub.sfu import Source, Stream, Streams, Viewer
from tests.sfu.fakes import (
    FakeClock,
    FakeNtp,
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    down_video,
    make_streams,
    video_packet,
    video_params,
)

SERVER = 0x48554242
VIEWER_SSRC = 0x5EEEEEEE


def setup(**config: float | int) -> tuple[
    Streams, Stream, Source, FakeSink, Viewer, FakeSink, FakeClock, FakeNtp
]:
    streams, _, clock, ntp = make_streams(**config)
    stream = streams.get_or_create("s")
    pub = FakeSink()
    source = stream.publish(None, [audio_params(ssrc=1), video_params(ssrc=2)], pub)
    sink = FakeSink()
    viewer = stream.add_viewer([down_audio(), down_video()], sink)
    return streams, stream, source, pub, viewer, sink, clock, ntp


def test_nack_resends_exactly_the_cached_packets_once_per_guard() -> None:
    _, _, source, _, viewer, sink, clock, _ = setup(nack_resend_guard=0.1)
    for seq in range(100, 110):
        source.on_rtp(audio_packet(seq, seq * 960, ssrc=1))
    sent = {p[2:4]: p for p in sink.rtp_out}
    sink.rtp_out.clear()
    nack = rtcp.Nack(sender_ssrc=VIEWER_SSRC, media_ssrc=0xA0000001,
                     lost=[102, 105, 106, 300])  # 300 was never sent
    viewer.on_rtcp(nack.serialize())
    assert sink.rtp_out == [sent[struct.pack("!H", s)] for s in (102, 105, 106)]
    clock.advance(0.05)
    viewer.on_rtcp(nack.serialize())  # within the guard: no storm
    assert len(sink.rtp_out) == 3
    clock.advance(0.06)
    viewer.on_rtcp(nack.serialize())
    assert len(sink.rtp_out) == 6
    assert viewer.down_tracks[0].packets_resent == 6


def test_nack_for_unknown_media_ssrc_is_ignored() -> None:
    _, _, source, _, viewer, sink, _, _ = setup()
    source.on_rtp(audio_packet(1, 960, ssrc=1))
    sink.rtp_out.clear()
    viewer.on_rtcp(rtcp.Nack(sender_ssrc=1, media_ssrc=0xDEAD, lost=[1]).serialize())
    assert sink.rtp_out == []


def test_pli_from_viewer_becomes_rate_limited_pli_to_publisher() -> None:
    _, _, _, pub, viewer, _, clock, _ = setup(keyframe_min_interval=0.3)
    pub.rtcp_out.clear()
    clock.advance(1.0)
    pli = rtcp.Pli(sender_ssrc=VIEWER_SSRC, media_ssrc=0xB0000001).serialize()
    viewer.on_rtcp(pli)
    viewer.on_rtcp(pli)
    assert len(pub.rtcp_out) == 1
    got = rtcp.Pli.parse(pub.rtcp_out[0])
    assert (got.sender_ssrc, got.media_ssrc) == (SERVER, 2)
    clock.advance(0.31)
    viewer.on_rtcp(rtcp.Fir(sender_ssrc=VIEWER_SSRC, entries=[(0xB0000001, 1)]).serialize())
    assert len(pub.rtcp_out) == 2
    # A PLI for the audio DownTrack asks nothing of the publisher.
    clock.advance(1.0)
    viewer.on_rtcp(rtcp.Pli(sender_ssrc=VIEWER_SSRC, media_ssrc=0xA0000001).serialize())
    assert len(pub.rtcp_out) == 2


def test_malformed_rtcp_from_viewer_is_counted() -> None:
    _, _, _, _, viewer, _, _, _ = setup()
    viewer.on_rtcp(b"\x81\xcd\x00\x05\x00")
    assert viewer.rtcp_malformed == 1


def test_sender_report_extrapolates_from_last_forwarded_packet() -> None:
    streams, _, source, _, viewer, sink, clock, ntp = setup(sr_interval=1.0)
    for seq in range(10):
        source.on_rtp(audio_packet(seq, 1000 + seq * 960, ssrc=1))
    clock.advance(0.25)
    ntp.value = (3_900_000_123, 0x80000000)
    streams.tick(clock.now)
    # Only the audio DownTrack has sent anything, so exactly one SR + SDES compound.
    assert len(sink.rtcp_out) == 1
    packets = list(rtcp.iter_compound(sink.rtcp_out[0]))
    assert [p[0] for p in packets] == [200, 202]
    sr = rtcp.SenderReport.parse(sink.rtcp_out[0][packets[0][2]:packets[0][3]])
    assert sr.ssrc == 0xA0000001
    assert sr.ntp_timestamp == (3_900_000_123 << 32) | 0x80000000
    assert sr.rtp_timestamp == 1000 + 9 * 960 + 12000  # + 0.25 s at 48 kHz
    assert (sr.packet_count, sr.octet_count) == (10, 10 * 31)
    sdes = rtcp.SourceDescription.parse(sink.rtcp_out[0][packets[1][2]:packets[1][3]])
    assert sdes.chunks == [(0xA0000001, [(1, b"hubbub")])]
    streams.tick(clock.now + 0.5)  # before the interval: nothing
    assert len(sink.rtcp_out) == 1
    streams.tick(clock.now + 1.0)
    assert len(sink.rtcp_out) == 2


def test_sender_report_translates_the_publisher_mapping_after_a_switch() -> None:
    streams, stream, old, _, viewer, sink, clock, _ = setup()
    old.on_rtp(audio_packet(5, 50_000, ssrc=1))
    clock.advance(0.1)
    new = stream.publish(None, [audio_params(ssrc=7), video_params(ssrc=8)], FakeSink())
    new.on_rtp(audio_packet(900, 1_000_000, ssrc=7))
    ts_offset = (50_000 + 4800 - 1_000_000) & 0xFFFFFFFF
    publisher_ntp = (3_800_000_000 << 32) | 0x40000000
    new.on_rtcp(rtcp.SenderReport(ssrc=7, ntp_timestamp=publisher_ntp, rtp_timestamp=999_040,
                                  packet_count=1, octet_count=1, reports=[]).serialize())
    clock.advance(0.5)
    streams.tick(clock.now)
    start, end = next((s, e) for pt, _, s, e in rtcp.iter_compound(sink.rtcp_out[0]) if pt == 200)
    sr = rtcp.SenderReport.parse(sink.rtcp_out[0][start:end])
    # The publisher's pair, moved into our timestamp space and advanced by the same 0.5 s.
    assert sr.ntp_timestamp == publisher_ntp + (1 << 31)
    assert sr.rtp_timestamp == (999_040 + ts_offset + 24000) & 0xFFFFFFFF
    assert (sr.packet_count, sr.octet_count) == (2, 62)


def test_receiver_report_block_is_recorded_with_rtt() -> None:
    streams, _, source, _, viewer, sink, clock, ntp = setup()
    source.on_rtp(audio_packet(1, 960, ssrc=1))
    ntp.value = (3_900_000_000, 0x00010000)
    streams.tick(clock.now)  # the SR carries this NTP time
    lsr = ((3_900_000_000 << 32 | 0x00010000) >> 16) & 0xFFFFFFFF
    clock.advance(0.3)
    block = rtcp.ReportBlock(ssrc=0xA0000001, fraction_lost=25, packets_lost=3,
                             highest_sequence=1, jitter=40, lsr=lsr, dlsr=0x1000)  # held 1/16 s
    viewer.on_rtcp(rtcp.ReceiverReport(ssrc=VIEWER_SSRC, reports=[block]).serialize())
    down = viewer.down_tracks[0]
    assert (down.fraction_lost, down.cumulative_lost, down.jitter) == (25, 3, 40)
    assert abs(down.rtt - (0.3 - 0.0625)) < 1e-9
    # A block whose LSR we never sent leaves the RTT alone.
    block.lsr, block.dlsr = 0x12345678, 0
    viewer.on_rtcp(rtcp.ReceiverReport(ssrc=VIEWER_SSRC, reports=[block]).serialize())
    assert abs(down.rtt - (0.3 - 0.0625)) < 1e-9


def test_receiver_report_to_publisher_with_loss_jitter_and_lsr() -> None:
    streams, _, source, pub, _, _, clock, _ = setup(rr_interval=1.0)
    pub.rtcp_out.clear()
    # seqs 65534, 65535, (0 lost), 1, 2: one wrap, one loss; perfectly paced -> jitter 0.
    for seq, n in ((65534, 0), (65535, 1), (1, 3), (2, 4)):
        clock.now = 2000.0 + n * 0.02
        source.on_rtp(audio_packet(seq, 100_000 + n * 960, ssrc=1))
    source.on_rtcp(rtcp.SenderReport(ssrc=1, ntp_timestamp=0x1122334455667788,
                                     rtp_timestamp=5, packet_count=1, octet_count=1,
                                     reports=[]).serialize())
    clock.advance(0.5)
    streams.tick(clock.now)
    assert len(pub.rtcp_out) == 1  # audio only: the video track has received nothing
    (rr_at, sdes_at) = [(s, e) for _, _, s, e in rtcp.iter_compound(pub.rtcp_out[0])]
    rr = rtcp.ReceiverReport.parse(pub.rtcp_out[0][rr_at[0]:rr_at[1]])
    sdes = rtcp.SourceDescription.parse(pub.rtcp_out[0][sdes_at[0]:sdes_at[1]])
    assert sdes.chunks == [(SERVER, [(1, b"hubbub")])]
    assert rr.ssrc == SERVER
    (block,) = rr.reports
    assert block.ssrc == 1
    assert block.fraction_lost == 256 // 5
    assert block.packets_lost == 1
    assert block.highest_sequence == 0x10002
    assert block.jitter == 0
    assert block.lsr == 0x33445566
    assert block.dlsr == 0x8000
    clock.advance(0.5)
    streams.tick(clock.now)
    streams.tick(clock.now + 0.5)
    assert len(pub.rtcp_out) == 2
    start, end = next((s, e) for pt, _, s, e in rtcp.iter_compound(pub.rtcp_out[1]) if pt == 201)
    second = rtcp.ReceiverReport.parse(pub.rtcp_out[1][start:end]).reports[0]
    assert (second.fraction_lost, second.packets_lost) == (0, 1)


def test_jitter_follows_rfc3550_a8() -> None:
    from hubbub.sfu.receive_stats import ReceiveStats

    stats = ReceiveStats()
    stats.update(1, 0, 0.0, 8000)
    stats.update(2, 160, 0.03, 8000)  # 10 ms late: D = 80 units
    assert stats.jitter == 80 / 16
    stats.update(3, 320, 0.04, 8000)  # 10 ms early relative to the previous: D = 80
    assert stats.jitter == 5 + (80 - 5) / 16


def test_idle_down_tracks_send_no_sender_report() -> None:
    streams, _, _, _, _, sink, clock, _ = setup()
    streams.tick(clock.now)
    assert sink.rtcp_out == []


def test_video_keyframe_then_sr_counts_only_forwarded_packets() -> None:
    streams, _, source, _, viewer, sink, clock, _ = setup()
    source.on_rtp(video_packet(1, 0, ssrc=2))  # dropped: waiting for a keyframe
    source.on_rtp(video_packet(2, 0, ssrc=2, key=True))
    streams.tick(clock.now)
    (compound,) = sink.rtcp_out
    start, end = next((s, e) for pt, _, s, e in rtcp.iter_compound(compound) if pt == 200)
    sr = rtcp.SenderReport.parse(compound[start:end])
    assert (sr.ssrc, sr.packet_count, sr.octet_count) == (0xB0000001, 1, 25)
