"""Viewer.tick: one SR time per viewer, the SRs of all its sending DownTracks aggregated into
compound packets (SR, SR, ..., SDES), split under the size limit, RTT still per DownTrack."""

from __future__ import annotations

from hubbub.media import rtcp
from hubbub.sfu import SfuConfig, Source, Viewer
from hubbub.sfu.downtrack import DownTrack
from hubbub.sfu.rtcp_io import MAX_COMPOUND
from tests.sfu.fakes import (
    FakeClock,
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    make_streams,
)

NTP = (3_900_000_000 << 32) | 0x40000000
SLOT_SSRCS = [0xA0000001 + i for i in range(4)]  # main audio + 3 multiplexed slots
PAYLOAD = 31  # fakes.OPUS


def room(sources: int = 4) -> tuple[list[Source], Viewer, FakeSink, FakeClock]:
    """`sources` audio publishers (SSRC 1..n) and a viewer with 4 audio DownTracks that is not
    registered with the Stream, so no multiplexer rebinds them behind the test's back."""
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("room")
    pubs = [stream.publish(f"p{k}", [audio_params(ssrc=k + 1)], FakeSink())
            for k in range(sources)]
    sink = FakeSink()
    params = [down_audio(ssrc, f"a{i}") for i, ssrc in enumerate(SLOT_SSRCS)]
    viewer = Viewer(params, sink, None, [], SfuConfig(), clock)
    return pubs, viewer, sink, clock


def bind(viewer_down: DownTrack, source: Source) -> None:
    track = source.track("audio")
    assert track is not None
    viewer_down.bind(track)


def feed(source: Source, count: int, first_ts: int = 1000) -> int:
    """`count` packets 20 ms apart on the source's SSRC; returns the last timestamp."""
    ssrc = source.tracks[0].params.ssrcs[0]
    for n in range(count):
        source.on_rtp(audio_packet(n, first_ts + n * 960, ssrc=ssrc))
    return first_ts + (count - 1) * 960


def split(compound: bytes) -> tuple[list[rtcp.SenderReport], rtcp.SourceDescription]:
    *srs, sdes = rtcp.parse_compound(compound)
    assert all(isinstance(p, rtcp.SenderReport) for p in srs)
    assert isinstance(sdes, rtcp.SourceDescription)
    return [p for p in srs if isinstance(p, rtcp.SenderReport)], sdes


def test_four_sending_down_tracks_make_one_compound_per_interval() -> None:
    pubs, viewer, sink, clock = room()
    last_ts = []
    for k, (down, pub) in enumerate(zip(viewer.down_tracks, pubs, strict=True)):
        bind(down, pub)
        last_ts.append(feed(pub, k + 1, first_ts=10_000 * (k + 1)))
    clock.advance(0.25)
    viewer.tick(clock.now, NTP, 1.0)
    (compound,) = sink.rtcp_out
    srs, sdes = split(compound)
    assert [sr.ssrc for sr in srs] == SLOT_SSRCS
    for k, sr in enumerate(srs):
        assert sr.ntp_timestamp == NTP
        assert sr.rtp_timestamp == last_ts[k] + 12_000  # + 0.25 s at 48 kHz
        assert (sr.packet_count, sr.octet_count) == (k + 1, (k + 1) * PAYLOAD)
        assert sr.reports == []
    assert sdes.chunks == [(ssrc, [(1, b"hubbub")]) for ssrc in SLOT_SSRCS]
    # Exactly what each DownTrack would send alone, SDES aside.
    alone = [down.build_sender_report(clock.now, NTP) or b"" for down in viewer.down_tracks]
    assert compound[:4 * 28] == b"".join(report[:28] for report in alone)
    # One due time for the viewer: nothing until the interval is over, then one compound.
    viewer.tick(clock.now + 0.5, NTP, 1.0)
    viewer.tick(clock.now + 0.99, NTP, 1.0)
    assert len(sink.rtcp_out) == 1
    viewer.tick(clock.now + 1.0, NTP, 1.0)
    assert len(sink.rtcp_out) == 2
    assert [sr.ssrc for sr in split(sink.rtcp_out[1])[0]] == SLOT_SSRCS


def test_idle_unstarted_and_resyncing_down_tracks_are_left_out() -> None:
    pubs, viewer, sink, clock = room()
    main, slot1, slot2, slot3 = viewer.down_tracks
    bind(main, pubs[0])
    bind(slot1, pubs[1])
    bind(slot2, pubs[2])  # bound, but its source sends nothing
    feed(pubs[0], 3)
    feed(pubs[1], 2)
    bind(slot1, pubs[3])  # rebound after sending: resyncing until pubs[3] sends
    viewer.tick(clock.now, NTP, 1.0)
    (compound,) = sink.rtcp_out
    srs, sdes = split(compound)
    assert [sr.ssrc for sr in srs] == [main.ssrc]
    assert sdes.chunks == [(main.ssrc, [(1, b"hubbub")])]
    assert slot3.track is None


def test_nothing_is_sent_while_every_down_track_is_idle_and_the_schedule_holds() -> None:
    pubs, viewer, sink, clock = room()
    viewer.tick(clock.now, NTP, 1.0)
    assert sink.rtcp_out == []
    bind(viewer.down_tracks[2], pubs[0])
    feed(pubs[0], 1)
    viewer.tick(clock.now + 0.5, NTP, 1.0)  # the viewer's interval is still running
    assert sink.rtcp_out == []
    viewer.tick(clock.now + 1.0, NTP, 1.0)
    (compound,) = sink.rtcp_out
    assert [sr.ssrc for sr in split(compound)[0]] == [SLOT_SSRCS[2]]
    viewer.close()
    viewer.tick(clock.now + 5.0, NTP, 1.0)
    assert len(sink.rtcp_out) == 1


def test_many_projected_down_tracks_split_into_valid_compounds_under_the_limit() -> None:
    pubs, viewer, sink, clock = room()
    for down, pub in zip(viewer.down_tracks, pubs, strict=True):
        bind(down, pub)
    projected = [viewer.add_down_track(down_audio(0xC0000000 + i, f"p{i}")) for i in range(40)]
    for down in projected:
        bind(down, pubs[0])
    for pub in pubs:
        feed(pub, 2)
    viewer.tick(clock.now, NTP, 1.0)
    # 44 SSRCs at 44 bytes each (28-byte SR + 16-byte CNAME chunk): 27 fit in 1200 bytes.
    assert len(sink.rtcp_out) == 2
    ssrcs: list[int] = []
    for compound in sink.rtcp_out:
        assert len(compound) <= MAX_COMPOUND
        srs, sdes = split(compound)
        assert [c[0] for c in sdes.chunks] == [sr.ssrc for sr in srs]
        ssrcs.extend(sr.ssrc for sr in srs)
    assert [len(split(c)[0]) for c in sink.rtcp_out] == [27, 17]
    assert ssrcs == SLOT_SSRCS + [d.ssrc for d in projected]


def test_rtt_is_computed_from_blocks_answering_an_aggregated_sr() -> None:
    pubs, viewer, sink, clock = room()
    for down, pub in zip(viewer.down_tracks, pubs, strict=True):
        bind(down, pub)
        feed(pub, 1)
    # The first publisher's own SR: its DownTrack reports a translated, different NTP time.
    publisher_ntp = (3_800_000_000 << 32) | 0x10000000
    pubs[0].on_rtcp(rtcp.SenderReport(ssrc=1, ntp_timestamp=publisher_ntp, rtp_timestamp=1000,
                                      packet_count=1, octet_count=1, reports=[]).serialize())
    viewer.tick(clock.now, NTP, 1.0)
    srs, _ = split(sink.rtcp_out[0])
    lsr = {sr.ssrc: sr.lsr for sr in srs}
    assert lsr[SLOT_SSRCS[0]] == (publisher_ntp >> 16) & 0xFFFFFFFF
    assert lsr[SLOT_SSRCS[1]] == (NTP >> 16) & 0xFFFFFFFF
    clock.advance(0.2)
    blocks = [
        rtcp.ReportBlock(ssrc=SLOT_SSRCS[0], lsr=lsr[SLOT_SSRCS[0]], dlsr=0x2000),  # 1/8 s
        rtcp.ReportBlock(ssrc=SLOT_SSRCS[3], lsr=lsr[SLOT_SSRCS[3]], dlsr=0x1000),  # 1/16 s
        # An LSR this DownTrack never sent (it is another SSRC's): no RTT.
        rtcp.ReportBlock(ssrc=SLOT_SSRCS[2], lsr=lsr[SLOT_SSRCS[0]], dlsr=0),
    ]
    viewer.on_rtcp(rtcp.ReceiverReport(ssrc=0x5EEEEEEE, reports=blocks).serialize())
    downs = viewer.down_tracks
    assert abs(downs[0].rtt - (0.2 - 0.125)) < 1e-9
    assert abs(downs[3].rtt - (0.2 - 0.0625)) < 1e-9
    assert downs[2].rtt == -1.0
    assert downs[1].rtt == -1.0


def test_a_down_track_alone_still_sends_its_own_sr_and_sdes() -> None:
    pubs, viewer, _, clock = room()
    own = FakeSink()
    down = DownTrack(down_audio(0xD0000001, "solo"), own, SfuConfig(cname="solo-cname"))
    bind(down, pubs[0])
    last_ts = feed(pubs[0], 5)
    clock.advance(0.5)
    down.tick(clock.now, NTP, 1.0)
    down.tick(clock.now + 0.5, NTP, 1.0)
    (compound,) = own.rtcp_out
    expected = rtcp.SenderReport(
        ssrc=0xD0000001, ntp_timestamp=NTP, rtp_timestamp=last_ts + 24_000, packet_count=5,
        octet_count=5 * PAYLOAD, reports=[],
    ).serialize() + rtcp.SourceDescription(
        chunks=[(0xD0000001, [(1, b"solo-cname")])]
    ).serialize()
    assert compound == expected
    down.tick(clock.now + 1.0, NTP, 1.0)
    assert len(own.rtcp_out) == 2
