"""Projected DownTracks: mids a viewer added by local renegotiation (the Millicast SDK's
addRemoteTrack), bound by control to a chosen source's track, independent of the multiplexer."""

from __future__ import annotations

import pytest

from hubbub.media import rtcp, rtp
from hubbub.sfu import DownTrackParams, Source, Stream, Viewer
from tests.sfu.fakes import (
    MID_OUT,
    VIEW_EXT,
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

PROJECTED_SSRC = 0xC0000001
LOUD = 20


def projected(kind: str, mid: str = "5", ssrc: int = PROJECTED_SSRC) -> DownTrackParams:
    """Cloned like control does: the first answered m-line's PTs and extension ids."""
    first = down_video() if kind == "video" else down_audio()
    return DownTrackParams(kind, mid, ssrc, dict(first.payload_types), dict(first.ext_ids))


def room() -> tuple[Stream, Source, Source, Viewer, FakeSink, FakeSink]:
    """Main source (audio+video), source "b" (audio+video, other SSRCs), one viewer with main
    video "0", main audio "1" and one multiplexed slot "2"."""
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    main = stream.publish(None, [audio_params(1111, "0"), video_params(2222, "1")], FakeSink())
    b_sink = FakeSink()
    b = stream.publish("b", [audio_params(3333, "0"), video_params(4444, "1")], b_sink)
    sink = FakeSink()
    viewer = stream.add_viewer(
        [down_video(mid="0"), down_audio(mid="1"), down_audio(0xA0000002, mid="2")], sink)
    return stream, main, b, viewer, sink, b_sink


def sent_by(sink: FakeSink, ssrc: int) -> list[bytes]:
    return [p for p in sink.rtp_out if rtp.read_header(p)[4] == ssrc]


def test_projected_video_carries_the_bound_track_under_its_own_ssrc_and_mid() -> None:
    stream, main, b, viewer, sink, _ = room()
    down = viewer.add_down_track(projected("video"))
    track = b.track("video")
    assert track is not None
    down.bind(track)
    b.on_rtp(video_packet(500, 9000, ssrc=4444))  # delta: gated until a keyframe
    b.on_rtp(video_packet(501, 9000, ssrc=4444, key=True))
    main.on_rtp(video_packet(70, 1000, ssrc=2222, key=True))
    out = sent_by(sink, PROJECTED_SSRC)
    assert len(out) == 1
    assert rtp.read_header(out[0])[:3] == (120, False, 501)  # viewer's VP8 PT, first seq kept
    assert extension(out[0], MID_OUT) == b"5"
    # The main video m-line still carries the main source only.
    main_out = sent_by(sink, down_video().ssrc)
    assert [rtp.read_header(p)[2] for p in main_out] == [70]
    assert viewer.down_track(PROJECTED_SSRC) is down
    assert viewer.down_track_for_mid("5") is down
    assert viewer.down_track_for_mid("0") is viewer.main_video


def test_add_down_track_refuses_answered_mids_taken_ssrcs_and_no_mid_extension() -> None:
    _, _, _, viewer, _, _ = room()
    with pytest.raises(ValueError, match="^mid '0' already has a DownTrack$"):
        viewer.add_down_track(projected("video", mid="0"))
    viewer.add_down_track(projected("audio", mid="6"))
    with pytest.raises(ValueError, match="^mid '6' already has a DownTrack$"):
        viewer.add_down_track(projected("audio", mid="6", ssrc=7))
    with pytest.raises(ValueError, match=f"^ssrc {down_video().ssrc} already in use"):
        viewer.add_down_track(projected("video", mid="7", ssrc=down_video().ssrc))
    no_mid = {uri: i for uri, i in VIEW_EXT.items() if uri != rtp.SDES_MID}
    with pytest.raises(ValueError, match="needs the MID header extension id$"):
        viewer.add_down_track(DownTrackParams("audio", "8", 8, {"opus": 109}, no_mid))
    viewer.close()
    with pytest.raises(ValueError, match="^viewer is closed$"):
        viewer.add_down_track(projected("audio", mid="9", ssrc=9))


def test_the_multiplexer_never_sees_or_moves_projected_down_tracks() -> None:
    stream, _, b, viewer, sink, _ = room()
    t1 = stream.publish("t1", [audio_params(5555, "0")], FakeSink())
    down = viewer.add_down_track(projected("audio"))
    b_audio = b.track("audio")
    assert b_audio is not None
    down.bind(b_audio)
    assert [d.mid for d in viewer.extra_audio] == ["2"]
    # Both talk; the one slot goes to one of them, the projected mid stays with b.
    for i in range(30):
        t1.on_rtp(audio_packet(100 + i, 960 * i, ssrc=5555, level=LOUD))
        b.on_rtp(audio_packet(200 + i, 960 * i, ssrc=3333, level=LOUD))
        stream.tick_multiplexer(1000.0)
    assert set(stream.multiplexer.slots(viewer)) == {"2"}
    assert down.track is b_audio
    assert len(sent_by(sink, PROJECTED_SSRC)) == 30
    # A source may be heard both in a slot and in a projected mid: projection is explicit.
    assert stream.multiplexer.slots(viewer)["2"] in ("t1", "b")


def test_rtcp_about_a_projected_ssrc_is_answered() -> None:
    _, _, b, viewer, sink, b_sink = room()
    down = viewer.add_down_track(projected("video"))
    track = b.track("video")
    assert track is not None
    down.bind(track)
    for i in range(5):
        b.on_rtp(video_packet(300 + i, 3000, ssrc=4444, key=i == 0))
    sink.rtp_out.clear()
    viewer.on_rtcp(rtcp.Nack(1, PROJECTED_SSRC, [302]).serialize())
    assert [rtp.read_header(p)[2] for p in sink.rtp_out] == [302]
    assert down.nacks_received == 1 and down.packets_resent == 1
    viewer.on_rtcp(rtcp.Pli(1, PROJECTED_SSRC).serialize())
    assert down.keyframe_requests == 1
    # The bind itself asked b's publisher for a keyframe (PLI about b's video SSRC).
    plis = [rtcp.Pli.parse(p) for p in b_sink.rtcp_out if p[1] == 206 and p[0] & 0x1F == 1]
    assert [p.media_ssrc for p in plis][:1] == [4444]


def test_projected_down_tracks_get_sender_reports() -> None:
    stream, _, b, viewer, sink, _ = room()
    down = viewer.add_down_track(projected("audio"))
    track = b.track("audio")
    assert track is not None
    down.bind(track)
    b.on_rtp(audio_packet(10, 960, ssrc=3333))
    sink.rtcp_out.clear()
    stream.tick(1001.0, 3_900_000_000 << 32)
    # One compound for the whole viewer: the projected SR rides with the slot's, and the SDES
    # names both SSRCs.
    (compound,) = sink.rtcp_out
    packets = rtcp.parse_compound(compound)
    srs = [r.ssrc for r in packets if isinstance(r, rtcp.SenderReport)]
    assert PROJECTED_SSRC in srs
    sdes = packets[-1]
    assert isinstance(sdes, rtcp.SourceDescription)
    assert sorted(sdes.cnames()) == sorted(srs)


def test_replacing_the_source_moves_the_projection_and_unpublishing_idles_it() -> None:
    stream, _, b, viewer, sink, _ = room()
    down = viewer.add_down_track(projected("audio"))
    b_audio = b.track("audio")
    assert b_audio is not None
    down.bind(b_audio)
    b2 = stream.publish("b", [audio_params(6666, "0")], FakeSink())
    assert down.track is b2.track("audio")
    b2.on_rtp(audio_packet(900, 48000, ssrc=6666))
    assert len(sent_by(sink, PROJECTED_SSRC)) == 1
    stream.unpublish(b2)
    assert down.track is None
    assert viewer.down_track_for_mid("5") is down  # kept idle: control rebinds it later


def test_remove_and_close_unbind_projected_down_tracks() -> None:
    _, _, b, viewer, _, _ = room()
    audio, video = b.track("audio"), b.track("video")
    assert audio is not None and video is not None
    first = viewer.add_down_track(projected("audio"))
    first.bind(audio)
    removed = viewer.remove_down_track("5")
    assert removed is first and first.track is None
    assert first not in audio.down_tracks
    assert viewer.down_track(PROJECTED_SSRC) is None and viewer.down_track_for_mid("5") is None
    assert viewer.remove_down_track("5") is None
    second = viewer.add_down_track(projected("video", mid="6", ssrc=0xC0000002))
    second.bind(video)
    viewer.close()
    assert second.track is None and second not in video.down_tracks
