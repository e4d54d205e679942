"""SDP: the offer parser of hubbub.media.sdp and the answers built from what it accepts.

Input: byte 0 picks the publish video codec (publish answers), the rest is the offer text
(UTF-8; undecodable bytes become U+FFFD, as a WebSocket text frame can only carry text).

Every offer that parses is answered twice, as `publish` and as `view` (with a send track per
audio/video m-line, as ViewerSession does), and the publish answer's tracks are made
(hubbub.control.publish.track_params).

Documented errors: SdpError only ("everything wrong with the input raises SdpError").
What we answer must read back: our own parser accepts the answer, with the offer's m-lines in
the offer's order (JSEP, RFC 8829 §5.3.1).
"""

from __future__ import annotations

from hubbub.control.publish import track_params
from hubbub.media import sdp

MAX_LEN = 8192
EXPECTED = (sdp.SdpError,)
CODECS = (None, "vp8", "vp9", "h264", "av1", "h265")


def options(role: str, **more: object) -> sdp.AnswerOptions:
    return sdp.AnswerOptions(
        ice_ufrag="SrvU", ice_pwd="S" * 24,
        fingerprint=("sha-256", ":".join(["AB"] * 32)),
        candidates=[("192.0.2.1", 10000)], role=role, session_id=42,
        **more,  # type: ignore[arg-type]
    )


def check_answer(offer: sdp.SessionDescription, text: str) -> None:
    answer = sdp.parse(text)  # an SdpError here escapes the harness: a finding
    got = [(m.kind, m.mid) for m in answer.media]
    assert got == [(m.kind, m.mid) for m in offer.media], f"answer m-lines {got}"


def one_input(data: bytes) -> None:
    if not data:
        return
    codec = CODECS[data[0] % len(CODECS)]
    text = data[1:].decode("utf-8", "replace")
    try:
        offer = sdp.parse(text)
    except EXPECTED:
        return
    try:
        sdp.remote_credentials(offer)
    except EXPECTED:
        pass
    try:
        text, negotiated = sdp.build_answer(offer, options("publish", video_codec=codec))
        track_params(negotiated)
    except EXPECTED:
        pass
    else:
        check_answer(offer, text)
    send_tracks = {
        m.mid: sdp.SendTrack(ssrc=1000 + i, cname="hubbub", stream_id="s", track_id=f"t{i}")
        for i, m in enumerate(offer.media)
        if m.kind in ("audio", "video") and m.mid is not None
    }
    try:
        text, _ = sdp.build_answer(offer, options("view", send_tracks=send_tracks))
    except EXPECTED:
        pass
    else:
        check_answer(offer, text)


if __name__ == "__main__":
    from tests.fuzz.harness import fuzz_main

    fuzz_main(one_input, "sdp", MAX_LEN)
