from hubbub.media import rtp
from hubbub.sfu import DownTrackParams, TrackParams
from hubbub.sfu.mapping import codec_key, extension_map, viewer_payload_type


def h264(fmtp: str) -> TrackParams:
    return TrackParams("video", "1", "H264", 102, 90000, fmtp, [], {})


def viewer(types: dict[str, int]) -> DownTrackParams:
    return DownTrackParams("video", "v", 1, types, {})


def test_codec_key_of_h264_uses_profile_and_mode() -> None:
    t = h264("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42E01F")
    assert codec_key(t) == "H264/42e01f/1"
    assert codec_key(h264("")) == "H264/42000a/0"  # RFC 6184 defaults


def test_plain_codecs_match_case_insensitively() -> None:
    t = TrackParams("video", "1", "VP8", 96, 90000, "", [], {})
    assert viewer_payload_type(t, viewer({"vp8": 120})) == 120
    assert viewer_payload_type(t, viewer({"VP9": 98})) == -1


def test_h264_matches_baseline_family_and_mode() -> None:
    t = h264("profile-level-id=42e01f;packetization-mode=1")
    assert viewer_payload_type(t, viewer({"H264/42001f/1": 100})) == 100
    assert viewer_payload_type(t, viewer({"H264/42e01f/0": 100})) == -1
    assert viewer_payload_type(t, viewer({"H264/640c1f/1": 101})) == -1


def test_h264_prefers_exact_profile_over_family() -> None:
    t = h264("profile-level-id=42e01f;packetization-mode=1")
    types = {"H264/42001f/1": 100, "H264/42e034/1": 106, "H264/640c1f/1": 108}
    assert viewer_payload_type(t, viewer(types)) == 106
    high = h264("profile-level-id=640c1f;packetization-mode=1")
    assert viewer_payload_type(high, viewer(types)) == 108


def test_h264_key_without_mode_matches_any_mode() -> None:
    t = h264("profile-level-id=42e01f;packetization-mode=1")
    assert viewer_payload_type(t, viewer({"H264/42e01f": 127})) == 127


def test_extension_map_excludes_mid_rid_and_twcc() -> None:
    pub = {rtp.SDES_MID: 4, rtp.AUDIO_LEVEL: 1, rtp.TRANSPORT_CC: 5, rtp.RID: 10,
           rtp.ABS_SEND_TIME: 3, "urn:x-only-publisher": 7}
    view = {rtp.SDES_MID: 9, rtp.AUDIO_LEVEL: 2, rtp.TRANSPORT_CC: 6, rtp.RID: 11,
            rtp.ABS_SEND_TIME: 12}
    table = extension_map(pub, view)
    assert len(table) == 256
    assert {i: v for i, v in enumerate(table) if v} == {1: 2, 3: 12}
