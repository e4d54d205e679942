"""The bots' SDP offers, and what they need from the server's answer.

Offers are shaped like a browser's (RFC 8829 JSEP): one BUNDLE group, rtcp-mux, `a=setup:actpass`
(the server answers passive, so the bot is the DTLS client, RFC 5763 §5), one transport's
ICE credentials and certificate fingerprint on every m-line.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from hubbub.media import sdp

OPUS_PT = 111
VP8_PT = 96
EXT_AUDIO_LEVEL = 1  # Chromium's ids, so captured traffic looks familiar
EXT_MID = 4


@dataclass(frozen=True)
class LocalTransport:
    ice_ufrag: str
    ice_pwd: str
    fingerprint: str  # sha-256, uppercase colon hex


def _session(mids: list[str]) -> list[str]:
    return [
        "v=0",
        f"o=- {secrets.randbits(62)} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE " + " ".join(mids),
        "a=msid-semantic: WMS",
    ]


def _transport(local: LocalTransport, mid: str) -> list[str]:
    return [
        "c=IN IP4 0.0.0.0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        f"a=ice-ufrag:{local.ice_ufrag}",
        f"a=ice-pwd:{local.ice_pwd}",
        f"a=fingerprint:sha-256 {local.fingerprint}",
        "a=setup:actpass",
        f"a=mid:{mid}",
    ]


def _audio(local: LocalTransport, mid: str, direction: str, dtx: bool) -> list[str]:
    fmtp = "minptime=10;useinbandfec=1" + (";usedtx=1" if dtx else "")
    return [
        f"m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PT}",
        *_transport(local, mid),
        f"a=extmap:{EXT_AUDIO_LEVEL} {sdp.URI_AUDIO_LEVEL}",
        f"a=extmap:{EXT_MID} {sdp.URI_MID}",
        f"a={direction}",
        "a=rtcp-mux",
        f"a=rtpmap:{OPUS_PT} opus/48000/2",
        f"a=fmtp:{OPUS_PT} {fmtp}",
    ]


def publisher_offer(local: LocalTransport, ssrc: int, cname: str, dtx: bool) -> str:
    """One sendonly Opus m-line (mid "0") with audio-level and MID extensions."""
    lines = _session(["0"]) + _audio(local, "0", "sendonly", dtx)
    lines += [f"a=msid:{cname} {cname}-audio", f"a=ssrc:{ssrc} cname:{cname}"]
    return "\r\n".join(lines) + "\r\n"


def listener_offer(local: LocalTransport, slots: int, video: bool = False) -> tuple[str, list[str]]:
    """recvonly m-lines in PROTOCOL.md's order: [video], main audio, `slots` audio.

    Returns the offer and the audio mids (main first)."""
    kinds = (["video"] if video else []) + ["audio"] * (1 + slots)
    mids = [str(i) for i in range(len(kinds))]
    lines = _session(mids)
    for mid, kind in zip(mids, kinds, strict=True):
        if kind == "audio":
            lines += _audio(local, mid, "recvonly", dtx=False)
        else:
            lines += [
                f"m=video 9 UDP/TLS/RTP/SAVPF {VP8_PT}",
                *_transport(local, mid),
                f"a=extmap:{EXT_MID} {sdp.URI_MID}",
                "a=recvonly",
                "a=rtcp-mux",
                f"a=rtpmap:{VP8_PT} VP8/90000",
                f"a=rtcp-fb:{VP8_PT} nack",
                f"a=rtcp-fb:{VP8_PT} nack pli",
            ]
    audio_mids = [m for m, k in zip(mids, kinds, strict=True) if k == "audio"]
    return "\r\n".join(lines) + "\r\n", audio_mids


@dataclass(frozen=True)
class ServerAnswer:
    ice_ufrag: str
    ice_pwd: str
    fingerprints: list[tuple[str, str]]
    address: tuple[str, int]  # the server's host candidate
    ext_ids: dict[str, dict[str, int]]  # mid -> URI -> id, for m-lines the server accepted
    ssrcs: dict[str, list[int]]  # mid -> SSRCs the server will send
    tcp_address: tuple[str, int] | None = None  # its ICE-TCP passive candidate, if offered


def parse_answer(text: str) -> ServerAnswer:
    """Read the server's answer; ValueError (sdp.SdpError) when it lacks what a bot needs."""
    answer = sdp.parse(text)
    live = [m for m in answer.media if m.port != 0]
    if not live:
        raise sdp.SdpError("answer accepted no m-line")
    first = live[0]
    if first.ice_ufrag is None or first.ice_pwd is None or not first.fingerprints:
        raise sdp.SdpError("answer has no ICE credentials or fingerprint")
    if first.setup not in ("passive", None):
        raise sdp.SdpError(f"answer has a=setup:{first.setup}; bots can only be DTLS clients")
    address: tuple[str, int] | None = None
    for m in live:
        for candidate in m.candidates:
            # RFC 8839 §5.1: foundation component transport priority address port typ type
            parts = candidate.split()
            if len(parts) >= 8 and parts[1] == "1" and parts[2].lower() == "udp":
                address = (parts[4], int(parts[5]))
                break
        if address is not None:
            break
    if address is None:
        raise sdp.SdpError("answer has no UDP host candidate")
    tcp_address: tuple[str, int] | None = None
    for candidate in first.candidates:
        parts = candidate.split()
        if len(parts) >= 10 and parts[2].lower() == "tcp" and parts[9] == "passive":
            tcp_address = (parts[4], int(parts[5]))
            break
    return ServerAnswer(
        ice_ufrag=first.ice_ufrag,
        ice_pwd=first.ice_pwd,
        fingerprints=list(first.fingerprints),
        address=address,
        ext_ids={m.mid: {uri: i for i, uri in m.extmaps.items()} for m in live},
        ssrcs={m.mid: list(m.ssrcs) for m in live},
        tcp_address=tcp_address,
    )
