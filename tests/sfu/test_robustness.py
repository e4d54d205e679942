"""Hostile or odd input never escapes as an exception; bookkeeping stays consistent."""

from hypothesis import given, settings
from hypothesis import strategies as st

from hubbub.media import rtp
from hubbub.sfu import DownTrackParams
from tests.sfu.fakes import (
    VIEW_EXT,
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    down_video,
    make_streams,
    video_packet,
    video_params,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_into_source_and_viewer_never_raise(data: bytes) -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params(ssrc=None), video_params(ssrc=None)], FakeSink())
    viewer = stream.add_viewer([down_audio(), down_video()], FakeSink())
    source.on_rtp(data)
    source.on_rtcp(data)
    viewer.on_rtcp(data)
    streams.tick(2000.0)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=12, max_size=120), st.integers(0, 0xFFFF))
def test_random_rtp_with_a_valid_header_is_forwarded_or_counted(payload: bytes, seq: int) -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params(ssrc=1)], FakeSink())
    sink = FakeSink()
    stream.add_viewer([down_audio()], sink)
    packet = bytes((0x80 | (payload[0] & 0x3F), 111)) + seq.to_bytes(2, "big") + bytes(
        (0, 0, 0, 1, 0, 0, 0, 1)) + payload[1:]
    source.on_rtp(packet)
    track = source.tracks[0]
    down = stream.viewers[0].down_tracks[0]
    # Every packet is accounted for exactly once: rejected by the Source or taken by the Track,
    # and every taken packet is sent or counted as unrewritable.
    assert source.packets_malformed + source.packets_dropped + track.packets == 1
    assert len(sink.rtp_out) + down.dropped_malformed == track.packets
    for out in sink.rtp_out:
        assert rtp.read_header(out)[2:] == (seq, 1, 0xA0000001)


def test_unbinding_while_waiting_for_a_keyframe_releases_the_waiter() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [video_params()], FakeSink())
    track = source.tracks[0]
    v1 = stream.add_viewer([down_video()], FakeSink())
    v2 = stream.add_viewer([down_video(0xB2)], FakeSink())
    assert track.keyframe_waiters == 2
    stream.remove_viewer(v1)
    assert track.keyframe_waiters == 1
    source.on_rtp(video_packet(1, 0, key=True))
    assert track.keyframe_waiters == 0
    assert not v2.down_tracks[0].waiting_keyframe
    assert track.down_tracks == [v2.down_tracks[0]]


def test_binding_to_a_track_of_another_kind_is_refused() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params()], FakeSink())
    viewer = stream.add_viewer([down_video()], FakeSink())
    try:
        viewer.down_tracks[0].bind(source.tracks[0])
    except ValueError as exc:
        assert str(exc) == "cannot bind a audio track to a video DownTrack"
    else:
        raise AssertionError("bind accepted a track of the wrong kind")


def test_each_viewer_gets_its_own_ssrc_pt_and_mid() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(
        None, [video_params(codec="H264", pt=102,
                            fmtp="profile-level-id=42e01f;packetization-mode=1")], FakeSink())
    sinks = [FakeSink(), FakeSink()]
    stream.add_viewer([DownTrackParams("video", "x", 0x1111, {"H264/42e01f/1": 125},
                                       dict(VIEW_EXT))], sinks[0])
    stream.add_viewer([DownTrackParams("video", "yy", 0x2222, {"H264/4d001f/1": 100,
                                                               "H264/42001f/1": 127},
                                       dict(VIEW_EXT))], sinks[1])
    idr = b"\x65\x88\x84" + b"i" * 10  # NAL type 5 (IDR)
    source.on_rtp(rtp.build_packet(102, 9, 90, 2222, idr))
    (a,), (b,) = (s.rtp_out for s in sinks)
    assert rtp.read_header(a) == (125, False, 9, 90, 0x1111)
    assert rtp.read_header(b) == (127, False, 9, 90, 0x2222)
    assert a.endswith(idr) and b.endswith(idr)


def test_audio_packet_without_level_keeps_previous_level() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params()], FakeSink())
    source.on_rtp(audio_packet(1, 960, level=20))
    source.on_rtp(rtp.build_packet(111, 2, 1920, 1111, b"\xfc\x00"))
    assert source.tracks[0].audio_level == 20
