"""Source demux (SSRC, MID ext, PT) and Track receive state."""

from hubbub.media import rtp
from hubbub.sfu import SfuConfig, Source
from tests.sfu.fakes import (
    OPUS,
    FakeClock,
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    down_video,
    make_streams,
    video_packet,
    video_params,
)


def make_source(*params_list: object, **config: int) -> tuple[Source, FakeClock]:
    clock = FakeClock()
    source = Source(None, list(params_list), FakeSink(), SfuConfig(**config),  # type: ignore[arg-type]
                    clock, 1)
    return source, clock


def test_known_ssrc_goes_to_its_track() -> None:
    source, _ = make_source(audio_params(ssrc=1), video_params(ssrc=2))
    source.on_rtp(audio_packet(1, 960, ssrc=1))
    source.on_rtp(video_packet(1, 3000, ssrc=2))
    source.on_rtp(video_packet(2, 3000, ssrc=2))
    assert [t.packets for t in source.tracks] == [1, 2]


def test_unknown_ssrc_is_bound_by_mid_extension() -> None:
    # Two tracks with the same PT: only the MID can tell them apart.
    a = audio_params(ssrc=None, mid="a")
    b = audio_params(ssrc=None, mid="b")
    source, _ = make_source(a, b)
    source.on_rtp(audio_packet(1, 960, ssrc=0xBBB, mid=b"b"))
    source.on_rtp(audio_packet(2, 1920, ssrc=0xBBB))  # learned: no MID needed any more
    source.on_rtp(audio_packet(7, 960, ssrc=0xAAA, mid=b"a"))
    assert [t.packets for t in source.tracks] == [1, 2]
    assert source.tracks[1].media_ssrc == 0xBBB
    assert source.tracks[0].media_ssrc == 0xAAA


def test_unknown_ssrc_falls_back_to_unique_payload_type() -> None:
    source, _ = make_source(audio_params(ssrc=None), video_params(ssrc=None))
    source.on_rtp(video_packet(1, 0, ssrc=0x77))
    assert source.tracks[1].packets == 1
    assert source.packets_unknown == 0


def test_unknown_ssrc_with_ambiguous_pt_and_no_mid_is_dropped_and_counted() -> None:
    source, _ = make_source(audio_params(ssrc=None, mid="a"), audio_params(ssrc=None, mid="b"))
    source.on_rtp(audio_packet(1, 960, ssrc=0x99))
    source.on_rtp(audio_packet(2, 960, ssrc=0x99, mid=b"zz"))
    assert source.packets_unknown == 2
    assert [t.packets for t in source.tracks] == [0, 0]


def test_ssrc_learning_is_bounded() -> None:
    source, _ = make_source(audio_params(ssrc=None), max_learned_ssrcs=2)
    for ssrc in (10, 11, 12, 13):
        source.on_rtp(audio_packet(1, 960, ssrc=ssrc))
    assert source.tracks[0].packets == 2
    assert source.packets_unknown == 2


def test_rtx_payload_type_is_dropped_but_padding_only_packets_keep_their_seq() -> None:
    source, _ = make_source(audio_params(ssrc=1))
    source.on_rtp(audio_packet(1, 960, ssrc=1, pt=97))
    assert source.packets_dropped == 1
    assert source.tracks[0].packets == 0
    # A bandwidth probe holds a sequence number: dropping it would leave a hole downstream.
    padding_only = bytearray(rtp.build_packet(111, 2, 960, 1, b"\x00\x00\x00\x04"))
    padding_only[0] |= 0x20
    source.on_rtp(bytes(padding_only))
    assert source.packets_dropped == 1
    assert source.tracks[0].packets == 1


def test_malformed_rtp_is_counted_not_raised() -> None:
    source, _ = make_source(audio_params(ssrc=1))
    for bad in (b"", b"\x80\x6f", b"\x40" + bytes(11), b"\x90\x6f" + bytes(10)):
        source.on_rtp(bad)
    assert source.packets_malformed == 4


def test_track_keeps_counts_level_and_last_values() -> None:
    source, clock = make_source(audio_params(ssrc=1))
    clock.now = 5.0
    pkt = audio_packet(65535, 4_294_967_000, ssrc=1, level=17)
    source.on_rtp(pkt)
    track = source.tracks[0]
    assert (track.packets, track.bytes) == (1, len(pkt))
    assert (track.last_seq, track.last_ts, track.last_arrival) == (65535, 4_294_967_000, 5.0)
    assert (track.audio_level, track.audio_level_time) == (17, 5.0)
    assert source.last_packet_time == 5.0


def test_keyframe_state_is_tracked_for_video() -> None:
    source, clock = make_source(video_params(ssrc=2))
    track = source.tracks[0]
    source.on_rtp(video_packet(1, 0, ssrc=2))
    assert not track.keyframe_seen
    clock.now = 7.0
    source.on_rtp(video_packet(2, 3000, ssrc=2, key=True))
    assert track.keyframe_seen and track.last_keyframe_time == 7.0


def test_publisher_sender_report_gives_the_track_its_mapping() -> None:
    from hubbub.media import rtcp

    source, clock = make_source(audio_params(ssrc=1), video_params(ssrc=2))
    clock.now = 3.0
    sr = rtcp.SenderReport(ssrc=2, ntp_timestamp=(5 << 32) | 7, rtp_timestamp=123456,
                           packet_count=1, octet_count=2, reports=[])
    source.on_rtcp(sr.serialize())
    video = source.tracks[1]
    assert (video.sr_ntp, video.sr_rtp, video.sr_arrival) == ((5 << 32) | 7, 123456, 3.0)
    assert source.tracks[0].sr_ntp == -1
    source.on_rtcp(b"\x80\xc8\x00\x09")  # truncated compound
    assert source.rtcp_malformed == 1


def test_closed_source_ignores_media() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish("x", [audio_params()], FakeSink())
    stream.unpublish(source)
    source.on_rtp(audio_packet(1, 960))
    assert source.tracks[0].packets == 0


def test_payload_passes_through_byte_identical() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params(), video_params()], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_video(), down_audio()], sink)
    source.on_rtp(audio_packet(3, 960))
    out = sink.rtp_out[0]
    assert out[rtp.payload_offset(out):] == OPUS
