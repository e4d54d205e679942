"""DownTrack forwarding: header rewrite, codec mapping, keyframe gating."""

from hubbub.media import rtp
from hubbub.sfu import DownTrackParams
from tests.sfu.fakes import (
    ABS_OUT,
    LEVEL_OUT,
    MID_OUT,
    OPUS,
    VIEW_EXT,
    VP8_KEY,
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    down_video,
    extension,
    make_streams,
    video_packet,
    video_params,
)


def test_forwarding_rewrites_ssrc_pt_ext_ids_and_always_writes_mid() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params()], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_audio()], sink)
    pkt = audio_packet(1000, 48000, level=42)
    source.on_rtp(pkt)
    assert len(sink.rtp_out) == 1
    out = sink.rtp_out[0]
    assert rtp.read_header(out) == (109, False, 1000, 48000, 0xA0000001)
    assert extension(out, MID_OUT) == b"a0"
    assert extension(out, LEVEL_OUT) == bytes((0x80 | 42,))
    assert extension(out, ABS_OUT) == b"\x01\x02\x03"
    assert out[rtp.payload_offset(out):] == OPUS
    # Publisher ids that the viewer did not map are gone (MID id 3 must not leak through).
    assert {i for i, _ in rtp.read_extensions(out)} == {LEVEL_OUT, ABS_OUT, MID_OUT}


def test_mid_is_written_even_when_publisher_sends_none() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params()], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_audio(mid="7")], sink)
    source.on_rtp(rtp.build_packet(111, 5, 960, 1111, OPUS))
    assert extension(sink.rtp_out[0], MID_OUT) == b"7"


def test_viewer_without_matching_codec_gets_nothing_and_it_is_counted() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    pub = FakeSink()
    source = stream.publish(None, [video_params()], pub)
    sink = FakeSink()
    viewer = stream.add_viewer(
        [DownTrackParams("video", "v", 77, {"VP9": 98}, dict(VIEW_EXT))], sink)
    source.on_rtp(video_packet(1, 0, key=True))
    assert sink.rtp_out == []
    assert viewer.down_tracks[0].dropped_no_codec == 1
    assert pub.rtcp_out == []  # no keyframe wait (and no PLI) for a codec we cannot send


def test_video_waits_for_keyframe_and_requests_one_rate_limited() -> None:
    streams, _, clock, _ = make_streams(keyframe_min_interval=0.3)
    stream = streams.get_or_create("s")
    pub = FakeSink()
    source = stream.publish(None, [video_params()], pub)
    source.on_rtp(video_packet(1, 0, key=True))  # a keyframe nobody waits for yet
    sink = FakeSink()
    viewer = stream.add_viewer([down_video()], sink)
    assert len(pub.rtcp_out) == 1  # bind asks for a keyframe at once
    for i in range(2, 12):
        clock.advance(0.05)
        source.on_rtp(video_packet(i, i * 3000))
    assert sink.rtp_out == []
    assert viewer.down_tracks[0].dropped_waiting_keyframe == 10
    # 0.5 s of waiting at one PLI per 300 ms: the bind PLI plus one more.
    assert len(pub.rtcp_out) == 2
    clock.advance(0.05)
    source.on_rtp(video_packet(12, 36000, key=True))
    source.on_rtp(video_packet(13, 36000))
    assert [h[2] for h in sink.headers()] == [12, 13]
    assert sink.rtp_out[0][rtp.payload_offset(sink.rtp_out[0]):] == VP8_KEY
    assert not viewer.down_tracks[0].waiting_keyframe


def test_pli_to_publisher_names_the_publisher_ssrc() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    pub = FakeSink()
    stream.publish(None, [video_params(ssrc=0x01020304)], pub)
    stream.add_viewer([down_video()], FakeSink())
    assert pub.rtcp_out == [
        # V=2 FMT=1, PT=206, length 2; sender = server SSRC, media = publisher SSRC.
        bytes.fromhex("81ce0002") + (0x48554242).to_bytes(4, "big") + bytes.fromhex("01020304")
    ]


def test_audio_is_forwarded_immediately_and_out_of_order_packets_keep_their_offset() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params()], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_audio()], sink)
    for seq in (10, 12, 11, 13):
        source.on_rtp(audio_packet(seq, seq * 960))
    assert [(h[2], h[3]) for h in sink.headers()] == [
        (10, 9600), (12, 11520), (11, 10560), (13, 12480)]


def test_marker_and_padding_survive_the_rewrite() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [video_params()], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_video()], sink)
    key = video_packet(1, 0, key=True, marker=True)
    padded = bytearray(key)
    padded[0] |= 0x20
    padded += b"\x00\x00\x03"
    source.on_rtp(bytes(padded))
    out = sink.rtp_out[0]
    assert rtp.read_header(out)[1] is True
    assert out[0] & 0x20 and out[-3:] == b"\x00\x00\x03"
    assert out[rtp.payload_offset(out):-3] == VP8_KEY
