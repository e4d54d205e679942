"""SDP offer parsing and answer building against Chromium, Millicast SDK and aiortc offers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.media import sdp
from hubbub.media.sdp import (
    AnswerOptions,
    Codec,
    SdpError,
    SendTrack,
    build_answer,
    h264_profile,
    parse,
    remote_credentials,
    same_codec,
)

DATA = Path(__file__).parent / "data" / "sdp"
FIXTURES = sorted(p.name for p in DATA.glob("*.sdp"))

CHROME_UFRAG = "Fx3q"
CHROME_PWD = "a8Dk2pQ9sL0vXz7mN4bR1tYw"
CHROME_FP = (
    "sha-256",
    "5B:3C:9F:1A:70:E2:44:8D:C1:0B:96:2E:7F:A3:D8:51:"
    "06:BC:4E:99:12:F7:6A:3D:E0:85:C4:2B:71:9E:D6:0F",
)
LOCAL_FP = ("sha-256", ":".join(["AB"] * 32))
AUDIO_EXTMAPS = {
    1: sdp.URI_AUDIO_LEVEL,
    2: sdp.URI_ABS_SEND_TIME,
    3: sdp.URI_TWCC,
    4: sdp.URI_MID,
}
VIDEO_EXTMAPS = {
    2: sdp.URI_ABS_SEND_TIME,
    3: sdp.URI_TWCC,
    4: sdp.URI_MID,
    5: "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
    6: "http://www.webrtc.org/experiments/rtp-hdrext/video-content-type",
    7: "http://www.webrtc.org/experiments/rtp-hdrext/video-timing",
    8: "http://www.webrtc.org/experiments/rtp-hdrext/color-space",
    9: "http://www.webrtc.org/experiments/rtp-hdrext/video-layers-allocation00",
    10: sdp.URI_RID,
    11: sdp.URI_REPAIRED_RID,
    12: "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension",
    13: sdp.URI_VIDEO_ORIENTATION,
    14: "urn:ietf:params:rtp-hdrext:toffset",
}
CHROME_VIDEO_FORMATS = [
    96,
    97,
    102,
    103,
    104,
    105,
    106,
    107,
    108,
    109,
    127,
    125,
    39,
    40,
    45,
    46,
    98,
    99,
    100,
    101,
    112,
    113,
    116,
    117,
    118,
]
CHROME_VIDEO_KEYS = [
    "VP8",
    "H264/42001f/1",
    "H264/42001f/0",
    "H264/42e01f/1",
    "H264/42e01f/0",
    "H264/4d001f/1",
    "H264/4d001f/0",
    "AV1",
    "VP9",
    "VP9",
    "H264/64001f/1",
]
VIDEO_FBS = ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"]


def load(name: str) -> str:
    return (DATA / name).read_bytes().decode()  # keep the CRLF line endings


def opts(role: str, **kw: object) -> AnswerOptions:
    base: dict[str, object] = dict(
        ice_ufrag="SrvU",
        ice_pwd="S" * 24,
        fingerprint=LOCAL_FP,
        candidates=[("127.0.0.1", 10000)],
        role=role,
        session_id=42,
    )
    base.update(kw)
    return AnswerOptions(**base)  # type: ignore[arg-type]


def sections(text: str) -> dict[str, list[str]]:
    """Answer lines grouped: "" = session part, then each m-section keyed by its mid."""
    out: dict[str, list[str]] = {"": []}
    current: list[str] = out[""]
    for line in text.split("\r\n")[:-1]:
        if line.startswith("m="):
            current = []
            out[f"#{len(out)}"] = current
        current.append(line)
        if line.startswith("a=mid:"):
            out[line[6:]] = current
    return {k: v for k, v in out.items() if not k.startswith("#")}


def transport_lines(mid: str) -> list[str]:
    return [
        "c=IN IP4 127.0.0.1",
        "a=ice-ufrag:SrvU",
        f"a=ice-pwd:{'S' * 24}",
        f"a=fingerprint:sha-256 {LOCAL_FP[1]}",
        "a=setup:passive",
        f"a=mid:{mid}",
    ]


CANDIDATE_LINES = [
    "a=candidate:1 1 udp 2130706431 127.0.0.1 10000 typ host",
    "a=end-of-candidates",
]


# ---------------------------------------------------------------- parsing fixtures


def test_parse_chrome_publish_audio_section() -> None:
    offer = parse(load("chrome_publish.sdp"))
    assert offer.origin == "- 6412870319827493125 2 IN IP4 127.0.0.1"
    assert offer.bundle == [["0", "1"]]
    assert offer.extmap_allow_mixed is True
    assert offer.ice_lite is False
    assert [m.kind for m in offer.media] == ["audio", "video"]
    a = offer.media[0]
    assert (a.port, a.protocol, a.mid, a.direction) == (9, "UDP/TLS/RTP/SAVPF", "0", "sendonly")
    assert a.formats == [111, 63, 9, 0, 8, 13, 110, 126, 100]
    assert [c.key for c in a.codecs] == [
        "opus",
        "G722",
        "PCMU",
        "PCMA",
        "CN",
        "TELEPHONE-EVENT",
        "TELEPHONE-EVENT",
        "MULTIOPUS",
    ]
    assert a.codecs[0] == Codec(
        111, "opus", 48000, 2, "minptime=10;useinbandfec=1;stereo=1", ["transport-cc"]
    )
    assert a.codecs[0].params == {"minptime": "10", "useinbandfec": "1", "stereo": "1"}
    assert a.codecs[-1] == Codec(
        100,
        "multiopus",
        48000,
        6,
        "channel_mapping=0,4,1,2,3,5;coupled_streams=2;minptime=10;num_streams=4;useinbandfec=1",
        [],
    )
    assert a.aux_codecs == [Codec(63, "red", 48000, 2, "111/111", [])]
    assert a.rtx == {}
    assert a.extmaps == AUDIO_EXTMAPS
    assert a.ssrcs == {
        1383530713: {
            "cname": "x7RnB2kq9vTzH4aD",
            "msid": "3f1c2b9e-5a7d-4e21-9b0c-8d6f4a2e1c07 b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e",
        }
    }
    assert a.msid == "3f1c2b9e-5a7d-4e21-9b0c-8d6f4a2e1c07 b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e"
    assert (a.ice_ufrag, a.ice_pwd, a.ice_options) == (CHROME_UFRAG, CHROME_PWD, "trickle")
    assert a.fingerprints == [CHROME_FP]
    assert (a.setup, a.rtcp_mux, a.rtcp_rsize) == ("actpass", True, True)
    assert a.candidates == []
    assert a.extmap_allow_mixed is True  # inherited from the session level
    assert a.rids == [] and a.simulcast is None and a.ssrc_groups == []


def test_parse_chrome_publish_video_section() -> None:
    v = parse(load("chrome_publish.sdp")).media[1]
    assert (v.kind, v.mid, v.direction) == ("video", "1", "sendonly")
    assert v.formats == CHROME_VIDEO_FORMATS
    assert [c.key for c in v.codecs] == CHROME_VIDEO_KEYS
    assert [c.payload_type for c in v.codecs] == [96, 102, 104, 106, 108, 127, 39, 45, 98, 100, 112]
    assert all(c.rtcp_fbs == VIDEO_FBS for c in v.codecs)
    assert v.codecs[3].fmtp == (
        "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
    )
    assert v.codecs[7] == Codec(45, "AV1", 90000, None, "level-idx=5;profile=0;tier=0", VIDEO_FBS)
    assert [(c.name, c.payload_type) for c in v.aux_codecs] == [
        ("rtx", 97),
        ("rtx", 103),
        ("rtx", 105),
        ("rtx", 107),
        ("rtx", 109),
        ("rtx", 125),
        ("rtx", 40),
        ("rtx", 46),
        ("rtx", 99),
        ("rtx", 101),
        ("rtx", 113),
        ("red", 116),
        ("rtx", 117),
        ("ulpfec", 118),
    ]
    assert v.rtx == {
        96: 97,
        102: 103,
        104: 105,
        106: 107,
        108: 109,
        127: 125,
        39: 40,
        45: 46,
        98: 99,
        100: 101,
        112: 113,
        116: 117,
    }
    assert v.extmaps == VIDEO_EXTMAPS
    assert v.ssrc_groups == [("FID", [2546089061, 1787436130])]
    assert sorted(v.ssrcs) == [1787436130, 2546089061]
    assert v.ssrcs[2546089061]["cname"] == "x7RnB2kq9vTzH4aD"


def test_parse_chrome_rid_simulcast_and_datachannel() -> None:
    offer = parse(load("chrome_simulcast_rid.sdp"))
    assert offer.bundle == [["0", "1", "2"]]
    audio, video, app = offer.media
    assert audio.direction == "sendrecv"
    assert [c.key for c in audio.codecs][0] == "opus"
    assert video.rids == [("h", "send", ""), ("m", "send", ""), ("l", "send", "")]
    assert video.simulcast == "send h;m;l"
    assert video.ssrcs == {} and video.ssrc_groups == []
    assert (app.kind, app.protocol, app.formats, app.raw_formats) == (
        "application",
        "UDP/DTLS/SCTP",
        [],
        ["webrtc-datachannel"],
    )
    assert app.codecs == [] and app.mid == "2"


def test_parse_chrome_ssrc_simulcast() -> None:
    v = parse(load("chrome_simulcast_sim.sdp")).media[1]
    assert v.ssrc_groups == [
        ("SIM", [1149278373, 3402813217, 2285716903]),
        ("FID", [1149278373, 2958381734]),
        ("FID", [3402813217, 482937190]),
        ("FID", [2285716903, 1677234455]),
    ]
    assert len(v.ssrcs) == 6
    assert v.rids == []


def test_parse_millicast_view_offer() -> None:
    offer = parse(load("millicast_view.sdp"))
    assert [(m.kind, m.mid, m.direction) for m in offer.media] == [
        ("video", "0", "recvonly"),
        ("audio", "1", "recvonly"),
        ("audio", "2", "recvonly"),
        ("audio", "3", "recvonly"),
    ]
    for m in offer.media[1:]:
        opus = m.codecs[0]
        assert opus.params == {"minptime": "10", "useinbandfec": "1", "stereo": "1", "usedtx": "1"}
        assert m.ssrcs == {} and m.msid is None
    assert offer.media[0].ssrcs == {}


def test_parse_aiortc_publish_offer() -> None:
    offer = parse(load("aiortc_publish.sdp"))
    assert offer.bundle == [["0", "1"]]
    a, v = offer.media
    assert (a.port, a.direction, a.setup) == (38169, "sendrecv", "actpass")
    assert [c.key for c in a.codecs] == ["opus", "G722", "PCMU", "PCMA"]
    assert a.codecs[0] == Codec(96, "opus", 48000, 2, "", [])
    assert a.extmaps == {1: sdp.URI_MID, 2: sdp.URI_AUDIO_LEVEL}
    assert v.extmaps == {1: sdp.URI_MID, 3: sdp.URI_ABS_SEND_TIME}
    assert a.candidates == [
        "16572de626da4e5384a0ce2d0d93678a 1 udp 2130706431 127.0.0.1 38169 typ host"
    ]
    assert [alg for alg, _ in a.fingerprints] == ["sha-256", "sha-384", "sha-512"]
    assert (a.ice_ufrag, a.ice_pwd) == ("KRCO", "w5efYqm8JxAS3dPt1oDB1E")
    assert [c.key for c in v.codecs] == ["VP8", "H264/42001f/1", "H264/42e01f/1"]
    assert v.codecs[0].rtcp_fbs == ["nack", "nack pli", "goog-remb"]
    assert v.rtx == {97: 98, 99: 100, 101: 102}
    assert v.ssrc_groups == [("FID", [4116753593, 1065652268])]
    assert a.rtcp_mux and not a.rtcp_rsize and not offer.extmap_allow_mixed


def test_parse_real_chromium_156_offers() -> None:
    """Offers captured from headless Chromium 156 (fake devices) on this machine."""
    pub = parse(load("chromium156_publish.sdp"))
    assert [(m.kind, m.mid, m.direction) for m in pub.media] == [
        ("audio", "0", "sendonly"),
        ("video", "1", "sendonly"),
    ]
    assert remote_credentials(pub) == (
        "2vtS",
        "YtWcZpK2lp7yMhLhog/EFcfr",
        [
            (
                "sha-256",
                "A4:51:B1:8C:CA:98:C4:17:BF:B3:54:5D:AD:1E:DE:3E:"
                "20:C9:D6:4A:A0:DE:22:77:9C:70:D9:2A:B6:0F:66:4E",
            )
        ],
    )
    assert pub.media[1].ssrc_groups == [("FID", [1050364561, 1125866118])]
    assert pub.media[1].rtx[108] == 109
    rid = parse(load("chromium156_rid.sdp"))
    assert [m.kind for m in rid.media] == ["audio", "video", "application"]
    assert rid.media[1].rids == [("h", "send", ""), ("m", "send", ""), ("l", "send", "")]
    assert rid.media[1].simulcast == "send h;m;l"
    view = parse(load("chromium156_view.sdp"))
    video = view.media[0]
    assert [c.key for c in video.codecs] == [
        "VP8", "VP9", "VP9", "VP9", "VP9",
        "H264/42001f/1", "H264/42001f/0", "H264/42e01f/1", "H264/42e01f/0",
        "H264/4d001f/1", "H264/4d001f/0", "H264/f4001f/1", "H264/f4001f/0",
        "AV1", "AV1",
    ]  # fmt: skip
    assert [c.name for c in video.aux_codecs][-4:] == ["red", "rtx", "ulpfec", "flexfec-03"]
    # without senders Chromium numbers the extensions differently than in a publish offer
    assert view.media[1].extmaps == {
        14: sdp.URI_AUDIO_LEVEL,
        2: sdp.URI_ABS_SEND_TIME,
        4: sdp.URI_TWCC,
        9: sdp.URI_MID,
    }


def test_chromium_156_view_answer_keeps_forwardable_profiles_only() -> None:
    text, neg = build_answer(parse(load("chromium156_view.sdp")), opts("view"))
    assert [c.key for c in neg[0].codecs] == [
        "VP8", "VP9", "H264/42001f/1", "H264/42e01f/1", "H264/4d001f/1", "H264/f4001f/1", "AV1",
    ]  # fmt: skip
    assert [c.fmtp for c in neg[0].codecs if c.name in ("VP9", "AV1")] == [
        "profile-id=0",
        "level-idx=5;profile=0;tier=0",
    ]
    assert neg[1].ext_ids == {
        sdp.URI_ABS_SEND_TIME: 2,
        sdp.URI_TWCC: 4,
        sdp.URI_MID: 9,
        sdp.URI_AUDIO_LEVEL: 14,
    }
    assert "flexfec" not in text


def test_lf_line_endings_parse_the_same() -> None:
    text = load("chrome_publish.sdp")
    assert parse(text.replace("\r\n", "\n")) == parse(text)


def test_session_level_transport_attributes_are_inherited() -> None:
    text = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        f"a=ice-ufrag:{CHROME_UFRAG}\r\na=ice-pwd:{CHROME_PWD}\r\n"
        f"a=fingerprint:SHA-256 {CHROME_FP[1].lower()}\r\na=setup:active\r\n"
        "a=extmap:7 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a\r\na=rtcp-mux\r\n"
        "a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:* nack\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:b\r\na=ice-ufrag:othr\r\na=setup:actpass\r\n"
    )
    a, b = parse(text).media
    assert (a.ice_ufrag, a.ice_pwd, a.fingerprints, a.setup) == (
        CHROME_UFRAG,
        CHROME_PWD,
        [CHROME_FP],
        "active",
    )
    assert (b.ice_ufrag, b.setup) == ("othr", "actpass")
    assert a.extmaps == {7: sdp.URI_MID} and b.extmaps == {7: sdp.URI_MID}
    assert a.codecs[0].rtcp_fbs == ["nack"]
    assert b.codecs == [Codec(0, "PCMU", 8000, 1, "", [])]  # RFC 3551 static PT, no rtpmap


# ---------------------------------------------------------------- codec identity


@pytest.mark.parametrize(
    ("plid", "profile"),
    [
        ("42e01f", "constrained-baseline"),
        ("42c01f", "constrained-baseline"),
        ("4d801f", "constrained-baseline"),
        ("42001f", "baseline"),
        ("4d001f", "main"),
        ("64001f", "high"),
        ("640c1f", "constrained-high"),
        ("f4001f", "high-444"),
        ("42e0", None),
        ("zz001f", None),
        ("650000", None),
    ],
)
def test_h264_profile(plid: str, profile: str | None) -> None:
    assert h264_profile(plid) == profile


def test_h264_key_defaults_and_matching() -> None:
    bare = Codec(100, "h264", 90000)
    assert bare.key == "H264/420010/0"  # RFC 6184 §8.1 defaults
    cb31 = Codec(1, "H264", 90000, fmtp="profile-level-id=42E01F;packetization-mode=1")
    cb52 = Codec(2, "H264", 90000, fmtp="profile-level-id=42e034;packetization-mode=1")
    cb_pm0 = Codec(3, "H264", 90000, fmtp="profile-level-id=42e01f")
    main = Codec(4, "H264", 90000, fmtp="profile-level-id=4d001f;packetization-mode=1")
    assert cb31.key == "H264/42e01f/1"
    assert same_codec(cb31, cb52)  # level may differ (RFC 6184 §8.2.2)
    assert not same_codec(cb31, cb_pm0)
    assert not same_codec(cb31, main)
    baseline = Codec(5, "H264", 90000, fmtp="profile-level-id=42001f;packetization-mode=1")
    assert same_codec(cb31, baseline)  # constrained baseline is a subset of baseline
    assert not same_codec(baseline, cb31)
    odd = Codec(6, "H264", 90000, fmtp="profile-level-id=ffffff;packetization-mode=1")
    assert not same_codec(odd, odd)
    assert same_codec(Codec(9, "vp9", 90000), Codec(8, "VP9", 90000, fmtp="profile-id=0"))
    assert not same_codec(Codec(9, "VP9", 90000), Codec(8, "VP9", 90000, fmtp="profile-id=2"))
    assert not same_codec(Codec(9, "VP8", 90000), Codec(9, "VP9", 90000))
    assert same_codec(Codec(111, "opus", 48000, 2), Codec(96, "OPUS", 48000, 2))


# ---------------------------------------------------------------- answers


def test_publish_answer_for_chrome_is_exact() -> None:
    text, neg = build_answer(parse(load("chrome_publish.sdp")), opts("publish", video_codec="h264"))
    s = sections(text)
    assert s[""] == [
        "v=0",
        "o=- 42 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=ice-lite",
        "a=group:BUNDLE 0 1",
        "a=msid-semantic: WMS *",
        "a=extmap-allow-mixed",
    ]
    assert s["0"] == [
        "m=audio 10000 UDP/TLS/RTP/SAVPF 111",
        *transport_lines("0"),
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        f"a=extmap:3 {sdp.URI_TWCC}",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=recvonly",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:111 opus/48000/2",
        "a=rtcp-fb:111 transport-cc",
        "a=fmtp:111 minptime=10;useinbandfec=1;stereo=1",
        *CANDIDATE_LINES,
    ]
    assert s["1"] == [
        "m=video 10000 UDP/TLS/RTP/SAVPF 106 107",
        *transport_lines("1"),
        "a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        f"a=extmap:3 {sdp.URI_TWCC}",
        "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:13 urn:3gpp:video-orientation",
        "a=recvonly",
        "a=rtcp-mux",
        "a=rtcp-rsize",
        "a=rtpmap:106 H264/90000",
        *[f"a=rtcp-fb:106 {fb}" for fb in VIDEO_FBS],
        "a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        "a=rtpmap:107 rtx/90000",  # RFC 4588: the retransmissions Chrome offers for 106
        "a=fmtp:107 apt=106",
        *CANDIDATE_LINES,
    ]
    audio, video = neg
    assert (audio.mid, audio.kind, audio.index, audio.direction, audio.rejected) == (
        "0",
        "audio",
        0,
        "recvonly",
        False,
    )
    assert [c.key for c in audio.codecs] == ["opus"]
    assert audio.ext_ids == {v: k for k, v in AUDIO_EXTMAPS.items()}
    assert audio.ssrcs == [1383530713]
    assert video.ssrcs == [2546089061]  # the FID repair SSRC is not a media SSRC
    assert video.codecs == [
        Codec(
            106,
            "H264",
            90000,
            None,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            VIDEO_FBS,
        )
    ]
    assert video.ext_ids == {
        sdp.URI_ABS_SEND_TIME: 2,
        sdp.URI_TWCC: 3,
        sdp.URI_MID: 4,
        sdp.URI_VIDEO_ORIENTATION: 13,
    }
    assert video.rids == [] and video.layer_ssrcs == []
    assert (video.rtx_payload_type, video.repair_ssrcs) == (107, {1787436130: 2546089061})
    assert (video.remote_ice_ufrag, video.remote_ice_pwd, video.remote_fingerprints) == (
        CHROME_UFRAG,
        CHROME_PWD,
        [CHROME_FP],
    )


@pytest.mark.parametrize(
    ("wanted", "pt"),
    [("h264", 106), ("H264", 106), ("vp8", 96), ("vp9", 98), ("av1", 45), ("h265", 96), (None, 96)],
)
def test_publish_video_codec_choice(wanted: str | None, pt: int) -> None:
    text, neg = build_answer(parse(load("chrome_publish.sdp")), opts("publish", video_codec=wanted))
    assert [c.payload_type for c in neg[1].codecs] == [pt]
    rtx = neg[1].rtx_payload_type  # the RTX payload type Chrome pairs with it (apt)
    assert rtx and f"a=fmtp:{rtx} apt={pt}" in text.split("\r\n")
    assert f"m=video 10000 UDP/TLS/RTP/SAVPF {pt} {rtx}" in text.split("\r\n")


def test_publish_h264_prefers_mode_1_then_constrained_baseline() -> None:
    offer = parse(load("chrome_publish.sdp"))
    video = offer.media[1]
    # Only baseline/main/high left, mode 0 listed first: mode 1 still wins, baseline before main.
    video.codecs = [c for c in video.codecs if c.payload_type in (104, 127, 102, 112)]
    _, neg = build_answer(offer, opts("publish", video_codec="h264"))
    assert [c.payload_type for c in neg[1].codecs] == [102]
    video.codecs = [c for c in video.codecs if c.payload_type in (104, 112)]
    _, neg = build_answer(offer, opts("publish", video_codec="h264"))
    assert [c.payload_type for c in neg[1].codecs] == [112]


def test_publish_answer_for_aiortc() -> None:
    text, neg = build_answer(parse(load("aiortc_publish.sdp")), opts("publish", video_codec="h264"))
    s = sections(text)
    assert s["0"][0] == "m=audio 10000 UDP/TLS/RTP/SAVPF 96"
    assert "a=rtpmap:96 opus/48000/2" in s["0"]
    assert [x for x in s["0"] if x.startswith("a=extmap")] == [
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=extmap:2 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    ]
    assert s["1"][0] == "m=video 10000 UDP/TLS/RTP/SAVPF 101 102"  # aiortc offers RTX too
    assert [x for x in s["1"] if x.startswith("a=rtcp-fb")] == [
        "a=rtcp-fb:101 nack",
        "a=rtcp-fb:101 nack pli",
        "a=rtcp-fb:101 goog-remb",
    ]
    assert "a=rtcp-rsize" not in text and "a=extmap-allow-mixed" not in text
    assert [n.ssrcs for n in neg] == [[3888211884], [4116753593]]
    assert neg[0].remote_ice_ufrag == "KRCO"
    _, neg = build_answer(parse(load("aiortc_publish.sdp")), opts("publish", video_codec="vp9"))
    assert [c.key for c in neg[1].codecs] == ["VP8"]  # not offered: first supported


def test_view_answer_for_millicast_sdk() -> None:
    track = SendTrack(ssrc=1111, cname="hubbub", stream_id="main", track_id="video0")
    audio = SendTrack(ssrc=2222, cname="hubbub", stream_id="main", track_id="audio0")
    text, neg = build_answer(
        parse(load("millicast_view.sdp")), opts("view", send_tracks={"0": track, "1": audio})
    )
    s = sections(text)
    assert "a=group:BUNDLE 0 1 2 3" in s[""]
    video = s["0"]
    assert video[0] == "m=video 10000 UDP/TLS/RTP/SAVPF 96 102 106 127 45 98 112"
    assert "a=sendonly" in video and "a=msid:main video0" in video
    assert video[-4:] == [
        "a=ssrc:1111 cname:hubbub",
        "a=ssrc:1111 msid:main video0",
        *CANDIDATE_LINES,
    ]
    assert [x for x in video if x.startswith("a=rtpmap")] == [
        "a=rtpmap:96 VP8/90000",
        "a=rtpmap:102 H264/90000",
        "a=rtpmap:106 H264/90000",
        "a=rtpmap:127 H264/90000",
        "a=rtpmap:45 AV1/90000",
        "a=rtpmap:98 VP9/90000",
        "a=rtpmap:112 H264/90000",
    ]
    assert "a=fmtp:98 profile-id=0" in video
    assert not any(re.search(r"rtx|red|ulpfec|multiopus|apt=", x) for x in text.split("\r\n"))
    assert not any(sdp.URI_RID in x or "a=rid" in x or "a=simulcast" in x for x in video)
    for mid in ("1", "2", "3"):
        assert s[mid][0] == "m=audio 10000 UDP/TLS/RTP/SAVPF 111"
        assert "a=sendonly" in s[mid]
        assert "a=fmtp:111 minptime=10;useinbandfec=1;stereo=1;usedtx=1" in s[mid]
    assert "a=msid:main audio0" in s["1"]
    assert not any(x.startswith(("a=ssrc", "a=msid")) for x in s["2"] + s["3"])
    assert [(n.mid, n.direction, n.ssrcs) for n in neg] == [
        ("0", "sendonly", [1111]),
        ("1", "sendonly", [2222]),
        ("2", "sendonly", []),
        ("3", "sendonly", []),
    ]
    assert [c.key for c in neg[0].codecs] == [
        "VP8",
        "H264/42001f/1",
        "H264/42e01f/1",
        "H264/4d001f/1",
        "AV1",
        "VP9",
        "H264/64001f/1",
    ]


def test_rid_offer_is_answered_with_simulcast_recv_and_rejects_datachannel() -> None:
    text, neg = build_answer(parse(load("chrome_simulcast_rid.sdp")), opts("publish"))
    s = sections(text)
    assert "a=group:BUNDLE 0 1" in s[""]
    assert s["2"] == [
        "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
        "c=IN IP4 0.0.0.0",
        "a=mid:2",
        "a=inactive",
    ]
    # RFC 8853 §5.3: each layer as a recv rid, in the offer's order; RFC 8852 ids answered.
    assert [x for x in s["1"] if x.startswith(("a=rid", "a=simulcast"))] == [
        "a=rid:h recv", "a=rid:m recv", "a=rid:l recv", "a=simulcast:recv h;m;l"]
    assert sdp.URI_RID in neg[1].ext_ids and sdp.URI_REPAIRED_RID in neg[1].ext_ids
    assert not re.search(r"a=rid|a=simulcast|rtp-stream-id", "\n".join(s["0"]))
    assert s["0"][-3] == "a=fmtp:111 minptime=10;useinbandfec=1"
    assert neg[2].rejected and neg[2].direction == "inactive" and neg[2].codecs == []
    assert neg[1].ssrcs == [] and neg[1].rids == ["h", "m", "l"]


def test_a_single_rid_or_a_recv_simulcast_is_not_simulcast() -> None:
    offer = parse(load("chrome_simulcast_rid.sdp"))
    offer.media[1].simulcast = "send h"
    text, neg = build_answer(offer, opts("publish"))
    assert neg[1].rids == [] and sdp.URI_RID not in neg[1].ext_ids
    assert not re.search(r"a=rid|a=simulcast|rtp-stream-id", text)
    offer.media[1].simulcast = "send ~h,x;m;zz"  # paused h (may resume), alternative x, no zz
    _, neg = build_answer(offer, opts("publish"))
    assert neg[1].rids == ["h", "m"]


def test_ssrc_simulcast_offer_lists_layer_ssrcs() -> None:
    text, neg = build_answer(parse(load("chrome_simulcast_sim.sdp")), opts("publish"))
    assert neg[1].ssrcs == [1149278373, 3402813217, 2285716903]
    assert neg[1].layer_ssrcs == [1149278373, 3402813217, 2285716903]  # the SIM group's order
    assert neg[1].repair_ssrcs == {2958381734: 1149278373, 482937190: 3402813217,
                                   1677234455: 2285716903}
    assert not re.search(r"a=rid|a=simulcast|rtp-stream-id", text)


def test_direction_incompatible_with_role_is_rejected() -> None:
    offer = parse(load("millicast_view.sdp"))
    offer.media[2].direction = "sendonly"
    offer.media[3].direction = "inactive"
    text, neg = build_answer(offer, opts("view"))
    s = sections(text)
    assert s["2"][0] == "m=audio 0 UDP/TLS/RTP/SAVPF 111" and "a=inactive" in s["2"]
    assert s["3"][0] == "m=audio 0 UDP/TLS/RTP/SAVPF 111"
    assert "a=group:BUNDLE 0 1" in s[""]
    assert [n.rejected for n in neg] == [False, False, True, True]
    with pytest.raises(SdpError, match="^no media section of the offer can be accepted$"):
        build_answer(parse(load("millicast_view.sdp")), opts("publish"))


def test_sendrecv_offer_is_answered_sendonly_for_view() -> None:
    _, neg = build_answer(parse(load("aiortc_publish.sdp")), opts("view"))
    assert [n.direction for n in neg] == ["sendonly", "sendonly"]


def test_unknown_kind_and_missing_codec_are_rejected() -> None:
    text = load("aiortc_publish.sdp")
    text = text.replace(
        "m=audio 38169 UDP/TLS/RTP/SAVPF 96 9 0 8", "m=audio 38169 UDP/TLS/RTP/SAVPF 9 0 8"
    )
    text = text.replace("m=video ", "m=text ")
    with pytest.raises(SdpError, match="^no media section"):
        build_answer(parse(text), opts("publish"))


def test_offer_without_bundle_is_answered_as_bundle() -> None:
    text = load("aiortc_publish.sdp").replace("a=group:BUNDLE 0 1\r\n", "")
    answer, neg = build_answer(parse(text), opts("publish"))
    assert "a=group:BUNDLE 0 1" in answer.split("\r\n")
    assert [n.rejected for n in neg] == [False, False]


def test_mid_outside_the_first_bundle_group_is_rejected() -> None:
    text = load("aiortc_publish.sdp").replace(
        "a=group:BUNDLE 0 1", "a=group:BUNDLE 0\r\na=group:BUNDLE 1"
    )
    answer, neg = build_answer(parse(text), opts("publish"))
    assert [n.rejected for n in neg] == [False, True]
    assert "a=group:BUNDLE 0" in answer.split("\r\n")


def test_candidates_priority_ipv6_and_none() -> None:
    offer = parse(load("aiortc_publish.sdp"))
    text, _ = build_answer(
        offer, opts("publish", candidates=[("2001:db8::1", 10000), ("192.0.2.7", 10001)])
    )
    s = sections(text)["0"]
    assert s[0] == "m=audio 10000 UDP/TLS/RTP/SAVPF 96"
    assert s[1] == "c=IN IP6 2001:db8::1"
    # RFC 8445 §5.1.2.1: 126 << 24 | local preference << 8 | 255
    assert s[-3:] == [
        "a=candidate:1 1 udp 2130706431 2001:db8::1 10000 typ host",
        "a=candidate:2 1 udp 2130706175 192.0.2.7 10001 typ host",
        "a=end-of-candidates",
    ]
    text, _ = build_answer(offer, opts("publish", candidates=[]))
    s = sections(text)["1"]
    assert s[:2] == ["m=video 9 UDP/TLS/RTP/SAVPF 97 98", "c=IN IP4 0.0.0.0"]
    assert s[-1] == "a=end-of-candidates"


def test_answer_uses_canonical_codec_names_and_random_session_id() -> None:
    text = load("aiortc_publish.sdp").replace("opus/48000/2", "OPUS/48000/2")
    text = text.replace("H264/90000", "h264/90000")
    answer, neg = build_answer(parse(text), opts("publish", video_codec="h264", session_id=None))
    assert [c.name for n in neg for c in n.codecs] == ["opus", "H264"]
    assert "a=rtpmap:96 opus/48000/2" in answer and "a=rtpmap:101 H264/90000" in answer
    origin = parse(answer).origin.split()
    assert origin[0] == "-" and 0 <= int(origin[1]) < 2**62 and origin[2:] == [
        "2", "IN", "IP4", "127.0.0.1",
    ]  # fmt: skip


def test_supported_extensions_option_limits_the_answer() -> None:
    _, neg = build_answer(
        parse(load("chrome_publish.sdp")),
        opts("publish", supported_extensions=frozenset({sdp.URI_MID, sdp.URI_RID})),
    )
    assert neg[0].ext_ids == {sdp.URI_AUDIO_LEVEL: 1, sdp.URI_MID: 4}
    assert neg[1].ext_ids == {sdp.URI_MID: 4}
    # without the transport-wide-cc extension, transport-cc feedback is useless
    assert neg[1].codecs[0].rtcp_fbs == ["goog-remb", "ccm fir", "nack", "nack pli"]


@pytest.mark.parametrize("name", FIXTURES)
def test_answer_round_trip(name: str) -> None:
    offer = parse(load(name))
    role = "view" if "view" in name else "publish"
    tracks = {m.mid: SendTrack(100 + i, "c", "s", f"t{i}") for i, m in enumerate(offer.media)}
    text, neg = build_answer(offer, opts(role, send_tracks=tracks, video_codec="vp8"))
    answer = parse(text)
    assert answer.ice_lite is True
    assert answer.bundle == [[n.mid for n in neg if not n.rejected]]
    assert [m.mid for m in answer.media] == [m.mid for m in offer.media]
    assert [m.kind for m in answer.media] == [m.kind for m in offer.media]
    for m, n in zip(answer.media, neg, strict=True):
        assert m.direction == n.direction
        if n.rejected:
            assert m.port == 0
            continue
        assert m.port == 10000
        assert m.codecs == n.codecs
        if n.rtx_payload_type:  # RFC 4588 RTX answered for the publisher's video codec
            assert m.rtx == {n.codecs[0].payload_type: n.rtx_payload_type}
            assert [c.name for c in m.aux_codecs] == ["rtx"]
        else:
            assert m.aux_codecs == [] and m.rtx == {}
        assert {uri: i for i, uri in m.extmaps.items()} == n.ext_ids
        assert (m.setup, m.rtcp_mux, m.ice_ufrag, m.ice_pwd) == ("passive", True, "SrvU", "S" * 24)
        assert m.fingerprints == [LOCAL_FP]
        assert m.candidates == ["1 1 udp 2130706431 127.0.0.1 10000 typ host"]
        assert list(m.ssrcs) == (n.ssrcs if role == "view" else [])


def test_remote_credentials() -> None:
    assert remote_credentials(parse(load("chrome_publish.sdp"))) == (
        CHROME_UFRAG,
        CHROME_PWD,
        [CHROME_FP],
    )


# ---------------------------------------------------------------- errors

HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
AUDIO = (
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtcp-mux\r\n"
    f"a=ice-ufrag:{CHROME_UFRAG}\r\na=ice-pwd:{CHROME_PWD}\r\n"
    f"a=fingerprint:sha-256 {CHROME_FP[1]}\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n"
)


BROKEN = [
    ("", "SDP has no o= line"),
    ("o=- 1 1 IN IP4 0.0.0.0\r\n", "SDP line 1: expected v=0"),
    ("v=1\r\n", "SDP line 1: expected v=0"),
    ("v=0\r\nhello\r\n", "SDP line 2: expected <type>=<value>"),
    ("v=0\r\nA=x\r\n", "SDP line 2: expected <type>=<value>"),
    ("v=0\r\na=x\x00y\r\n", "SDP line 2: control character in line"),
    ("v=0\r\na=x\ry\r\n", "SDP line 2: control character in line"),
    (HEAD, "SDP has no media sections"),
    (HEAD + "m=audio 9\r\n", "SDP line 5: bad m= line"),
    (HEAD + "m=audio 70000 RTP/SAVPF 0\r\n", "SDP line 5: bad m= line"),
    (HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 128\r\n", "SDP line 5: bad m= line"),
    (HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF +1\r\n", "SDP line 5: bad m= line"),
    (HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF \u0661\r\n", "SDP line 5: bad m= line"),
    (HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n", "m-line 1 has no a=mid"),
    (HEAD + AUDIO + "a=mid:\r\n", "SDP line 13: bad mid"),
    (HEAD + AUDIO + "a=mid:" + "x" * 17 + "\r\n", "SDP line 13: bad mid"),
    (HEAD + AUDIO + AUDIO, "m-line 2 repeats mid 0"),
    (HEAD + AUDIO + "a=rtpmap:111 opus\r\n", "SDP line 13: bad rtpmap"),
    (HEAD + AUDIO + "a=rtpmap:111 opus/0\r\n", "SDP line 13: bad rtpmap"),
    (HEAD + AUDIO + "a=fmtp:x y\r\n", "SDP line 13: bad fmtp"),
    (HEAD + AUDIO + "a=rtcp-fb:111\r\n", "SDP line 13: bad rtcp-fb"),
    (HEAD + AUDIO + "a=extmap:0 urn:x\r\n", "SDP line 13: bad extmap"),
    (HEAD + AUDIO + "a=extmap:256 urn:x\r\n", "SDP line 13: bad extmap"),
    (HEAD + AUDIO + "a=extmap:3\r\n", "SDP line 13: bad extmap"),
    (
        HEAD + AUDIO + "a=extmap:3 urn:x\r\na=extmap:3/sendonly urn:y\r\n",
        "SDP line 14: duplicate extmap id 3",
    ),
    (HEAD + AUDIO + "a=ssrc:4294967296 cname:x\r\n", "SDP line 13: bad ssrc"),
    (HEAD + AUDIO + "a=ssrc:1\r\n", "SDP line 13: bad ssrc"),
    (HEAD + AUDIO + "a=ssrc-group:FID 1 x\r\n", "SDP line 13: bad ssrc-group"),
    (HEAD + AUDIO + "a=ssrc-group:\r\n", "SDP line 13: bad ssrc-group"),
    (HEAD + AUDIO + "a=rid:h sideways\r\n", "SDP line 13: bad rid"),
    (HEAD + AUDIO + "a=fingerprint:sha-256 zz\r\n", "SDP line 13: bad fingerprint"),
    (
        HEAD + AUDIO + "a=fingerprint:sha-256 AB:CD\r\n",
        "SDP line 13: bad fingerprint length for sha-256",
    ),
    (HEAD + AUDIO + "a=setup:maybe\r\n", "SDP line 13: bad setup"),
    (HEAD + AUDIO + "a=ice-ufrag:ab\r\n", "SDP line 13: bad ice-ufrag"),
    (HEAD + AUDIO + "a=ice-pwd:short\r\n", "SDP line 13: bad ice-pwd"),
    (HEAD + AUDIO + "a=ice-ufrag:bad!char\r\n", "SDP line 13: bad ice-ufrag"),
    (HEAD + "a=group:BUNDLE 0 1\r\n" + AUDIO, "BUNDLE group names unknown mid 1"),
    (HEAD + "a=group:BUNDLE 0 a,b\r\n" + AUDIO, "SDP line 5: bad group"),
    (HEAD + AUDIO + "o=- 2 2 IN IP4 0.0.0.0\r\n", "SDP line 13: o= inside a media section"),
    ("v=0\r\n" + "a=x\r\n" * 40000, "SDP is larger than 64 KiB"),
    (HEAD + "m=audio 0 RTP/AVP 0\r\na=mid:x\r\n" * 65, "SDP has more than 64 m-lines"),
]


@pytest.mark.parametrize(("text", "message"), BROKEN, ids=[m for _, m in BROKEN])
def test_broken_sdp_is_rejected_with_exact_message(text: str, message: str) -> None:
    with pytest.raises(SdpError) as info:
        parse(text)
    assert str(info.value) == message


def test_utf8_size_limit_counts_bytes() -> None:
    text = HEAD + AUDIO + "s=" + "\u00e9" * 33000 + "\r\n"  # < 64 Ki characters, > 64 KiB
    with pytest.raises(SdpError, match="^SDP is larger than 64 KiB$"):
        parse(text)


def test_empty_bundle_group_is_ignored() -> None:
    offer = parse(HEAD + "a=group:BUNDLE\r\n" + AUDIO)
    assert offer.bundle == []
    _, neg = build_answer(offer, opts("publish"))
    assert [n.rejected for n in neg] == [False]


def test_exactly_64_mlines_parse() -> None:
    text = HEAD + "".join(f"m=audio 0 RTP/AVP 0\r\na=mid:{i}\r\n" for i in range(64))
    assert len(parse(text).media) == 64


def _chrome_offer_with(old: str, new: str) -> sdp.SessionDescription:
    text = load("chrome_publish.sdp")
    assert old in text
    return parse(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "a=setup:actpass",
            "a=setup:passive",
            "m-line 1 (mid 0): offer has a=setup:passive but the server is passive",
        ),
        ("a=rtcp-mux\r\n", "", "m-line 1 (mid 0): rtcp-mux is required"),
        (
            "a=mid:1\r\n",
            "a=mid:1\r\na=ice-ufrag:ZZZZ\r\n",
            "m-line 2 (mid 1) has other ICE/DTLS credentials than the BUNDLE group",
        ),
    ],
)
def test_unanswerable_offers(old: str, new: str, message: str) -> None:
    with pytest.raises(SdpError) as info:
        build_answer(_chrome_offer_with(old, new), opts("publish"))
    assert str(info.value) == message


def test_missing_credentials_name_the_mline() -> None:
    offer = parse(load("chrome_publish.sdp"))
    offer.media[1].ice_ufrag = None
    with pytest.raises(SdpError, match=r"^m-line 2 \(mid 1\) has no ice-ufrag$"):
        remote_credentials(offer)
    offer = parse(load("chrome_publish.sdp"))
    offer.media[0].ice_pwd = None
    with pytest.raises(SdpError, match=r"^m-line 1 \(mid 0\) has no ice-pwd$"):
        build_answer(offer, opts("view"))
    offer = parse(load("chrome_publish.sdp"))
    offer.media[1].fingerprints = []
    with pytest.raises(SdpError, match=r"^m-line 2 \(mid 1\) has no fingerprint$"):
        remote_credentials(offer)
    offer = parse(load("chrome_publish.sdp"))
    for m in offer.media:
        m.port = 0
    with pytest.raises(SdpError, match="^SDP has no usable media sections$"):
        remote_credentials(offer)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role": "relay"}, "unknown role 'relay'"),
        ({"ice_ufrag": "ab"}, "local ice-ufrag must be 4-256 ice-chars"),
        ({"ice_pwd": "x" * 21}, "local ice-pwd must be 22-256 ice-chars"),
        ({"fingerprint": ("sha-256", "nothex")}, "local fingerprint is malformed"),
        ({"session_id": 2**63}, "session_id must fit in 63 bits"),
        (
            {"candidates": [("example.org", 1)]},
            "candidate address 'example.org' is not an IP address",
        ),
        ({"candidates": [("127.0.0.1", 0)]}, "candidate port 0 is out of range"),
        (
            {"send_tracks": {"0": SendTrack(1, "a b", "s", "t")}},
            "send track field 'a b' must be visible ASCII without spaces",
        ),
        (
            {"send_tracks": {"0": SendTrack(2**32, "c", "s", "t")}},
            "send track ssrc 4294967296 is out of range",
        ),
    ],
)
def test_bad_answer_options(change: dict[str, object], message: str) -> None:
    options = opts("view")
    for k, v in change.items():
        setattr(options, k, v)
    with pytest.raises(SdpError) as info:
        build_answer(parse(load("millicast_view.sdp")), options)
    assert str(info.value) == message


# ---------------------------------------------------------------- fuzzing

FIXTURE_TEXTS = [load(n) for n in FIXTURES]


def _parse_and_answer(text: str) -> None:
    try:
        offer = parse(text)
    except SdpError:
        return
    for role in ("publish", "view"):
        try:
            build_answer(offer, opts(role, send_tracks={"0": SendTrack(5, "c", "s", "t")}))
        except SdpError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_random_text_raises_only_sdp_error(text: str) -> None:
    _parse_and_answer(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="vomacst=:/ 0123456789\r\nABCDEFabcdef;-_", max_size=300))
def test_sdp_like_text_raises_only_sdp_error(text: str) -> None:
    _parse_and_answer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n" + text)


@st.composite
def mutated_fixture(draw: st.DrawFn) -> str:
    lines = draw(st.sampled_from(FIXTURE_TEXTS)).split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "truncate", "replace", "insert"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, max(0, len(lines[i]) - 1)))]
        elif op == "replace" and lines[i]:
            j = draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + draw(st.characters()) + lines[i][j + 1 :]
        elif op == "insert":
            lines.insert(
                i,
                draw(
                    st.sampled_from(
                        [
                            "a=",
                            "m=",
                            "a=mid:0",
                            "a=setup:passive",
                            "a=sendonly",
                            "a=recvonly",
                            "a=group:BUNDLE",
                            "a=rtpmap:111 opus/48000/2",
                            "a=ice-lite",
                        ]
                    )
                ),
            )
        if not lines:
            lines = [""]
    return "\r\n".join(lines)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_fixture())
def test_mutated_fixtures_raise_only_sdp_error(text: str) -> None:
    _parse_and_answer(text)


# ---------------------------------------------------------------- aiortc accepts our answers


@pytest.mark.parametrize("role", ["publish", "view"])
async def test_aiortc_accepts_the_answer(role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import aioice.ice
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda *a, **k: ["127.0.0.1"])
    pc = RTCPeerConnection()
    try:
        if role == "publish":
            pc.addTrack(AudioStreamTrack())
            pc.addTrack(VideoStreamTrack())
        else:
            pc.addTransceiver("audio", direction="recvonly")
            pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        offer = parse(pc.localDescription.sdp)
        tracks = {
            "0": SendTrack(0x1234, "srv", "main", "a0"),
            "1": SendTrack(99, "srv", "main", "v0"),
        }
        text, neg = build_answer(offer, opts(role, send_tracks=tracks, video_codec="h264"))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=text, type="answer"))
        assert pc.signalingState == "stable"
        kinds = {t.kind: t for t in pc.getTransceivers()}
        expected = "recvonly" if role == "publish" else "sendonly"
        assert [n.direction for n in neg] == [expected, expected]
        # aiortc's currentDirection is its own side: the reverse of ours
        mirrored = "sendonly" if role == "publish" else "recvonly"
        assert kinds["audio"].currentDirection == mirrored
        assert kinds["video"].currentDirection == mirrored
        assert [c.mimeType for c in kinds["audio"]._codecs] == ["audio/opus"]
        expected_video = "video/H264" if role == "publish" else "video/VP8"
        assert kinds["video"]._codecs[0].mimeType == expected_video
    finally:
        await pc.close()


def test_fmtp_with_spaces_after_semicolons_is_accepted_and_normalized() -> None:
    """The Millicast SDK's dtx munging writes "useinbandfec=1; usedtx=1"."""
    fp = ":".join(["AB"] * 32)
    text = (
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n"
        "a=rtcp-mux\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
        f"a=fingerprint:sha-256 {fp}\r\na=setup:actpass\r\na=rtpmap:111 opus/48000/2\r\n"
        "a=fmtp:111 minptime=10;useinbandfec=1; usedtx=1\r\n"
    )
    codec = parse(text).media[0].codecs[0]
    assert codec.fmtp == "minptime=10;useinbandfec=1;usedtx=1"
    assert codec.params["usedtx"] == "1"
