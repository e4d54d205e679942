"""Answer writer: `build_answer(offer, opts)` and its checks and line builders."""

from __future__ import annotations

import ipaddress
import secrets

from hubbub.media.sdp.codecs import _answer_codec, _choose_publish_video, _choose_view_video
from hubbub.media.sdp.model import (
    _SIMULCAST_ONLY,
    DEFAULT_EXTENSIONS,
    MAX_SIMULCAST_LAYERS,
    URI_AUDIO_LEVEL,
    AnswerOptions,
    Codec,
    MediaSection,
    Negotiated,
    SdpError,
    SessionDescription,
)
from hubbub.media.sdp.parser import (
    _FINGERPRINT,
    _ICE_CHARS,
    _VISIBLE,
    _label,
    _transport_indexes,
    remote_credentials,
)

# ---------------------------------------------------------------- answer


def _candidate_lines(candidates: list[tuple[str, int]],
                     tcp_candidates: list[tuple[str, int]]) -> list[str]:
    lines = []
    for i, (ip, port) in enumerate(candidates):
        # RFC 8445 §5.1.2.1: (2^24)*type_pref + (2^8)*local_pref + (256 - component);
        # host type preference 126, local preference decreasing with the candidate's rank.
        priority = (126 << 24) | ((65535 - i) << 8) | (256 - 1)
        lines.append(f"a=candidate:{i + 1} 1 udp {priority} {ip} {port} typ host")
    for i, (ip, port) in enumerate(tcp_candidates):
        # RFC 6544 §4.2: local preference = 2^13 * direction-pref + other-pref, passive
        # direction-pref 4, so every TCP candidate ranks below every UDP one: UDP wins when
        # it works. Its own foundation: a different transport (RFC 8445 §5.1.1.3).
        local = (4 << 13) | (8191 - i)
        priority = (126 << 24) | (local << 8) | (256 - 1)
        lines.append(f"a=candidate:{len(candidates) + i + 1} 1 tcp {priority} {ip} {port} "
                     "typ host tcptype passive")
    lines.append("a=end-of-candidates")
    return lines


def _check_options(opts: AnswerOptions) -> None:
    if opts.role not in ("publish", "view"):
        raise SdpError(f"unknown role {opts.role!r}")
    if not (4 <= len(opts.ice_ufrag) <= 256 and _ICE_CHARS.fullmatch(opts.ice_ufrag)):
        raise SdpError("local ice-ufrag must be 4-256 ice-chars")
    if not (22 <= len(opts.ice_pwd) <= 256 and _ICE_CHARS.fullmatch(opts.ice_pwd)):
        raise SdpError("local ice-pwd must be 22-256 ice-chars")
    if not _FINGERPRINT.fullmatch(f"{opts.fingerprint[0]} {opts.fingerprint[1]}"):
        raise SdpError("local fingerprint is malformed")
    if opts.session_id is not None and not 0 <= opts.session_id < 2**63:
        raise SdpError("session_id must fit in 63 bits")
    for ip, port in [*opts.candidates, *opts.tcp_candidates]:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise SdpError(f"candidate address {ip!r} is not an IP address") from None
        if not 0 < port < 65536:
            raise SdpError(f"candidate port {port} is out of range")
    for track in opts.send_tracks.values():
        for text in (track.cname, track.stream_id, track.track_id):
            if not _VISIBLE.fullmatch(text):
                raise SdpError(f"send track field {text!r} must be visible ASCII without spaces")
        if not 0 <= track.ssrc <= 0xFFFFFFFF:
            raise SdpError(f"send track ssrc {track.ssrc} is out of range")


def _direction(role: str, offered: str) -> str | None:
    if role == "publish":
        return "recvonly" if offered in ("sendrecv", "sendonly") else None
    return "sendonly" if offered in ("sendrecv", "recvonly") else None


def _primary_ssrcs(m: MediaSection) -> list[int]:
    """Offered media SSRCs without the repair streams of FID/FEC-FR groups (RFC 5576 §4)."""
    repair = {g[1][1] for g in m.ssrc_groups if g[0] in ("FID", "FEC-FR") and len(g[1]) > 1}
    return [s for s in m.ssrcs if s not in repair]


def _simulcast_rids(m: MediaSection) -> list[str]:
    """The layers of a RID simulcast offer (RFC 8853 §5.2): the streams of `a=simulcast:send`
    (the first alternative of each; a paused `~` one may resume) that an `a=rid:<id> send`
    declares (RFC 8851). [] for one stream or none: that is not simulcast."""
    parts = (m.simulcast or "").split()
    if m.kind != "video" or len(parts) < 2 or parts[0] != "send":
        return []
    declared = {rid for rid, direction, _ in m.rids if direction == "send"}
    rids: list[str] = []
    for stream in parts[1].split(";"):
        rid = stream.split(",")[0].lstrip("~")
        if rid in declared and rid not in rids:
            rids.append(rid)
    return rids[:MAX_SIMULCAST_LAYERS] if len(rids) > 1 else []


def _layer_ssrcs(m: MediaSection) -> list[int]:
    """An SSRC-group simulcast (`a=ssrc-group:SIM`, what the Millicast SDK munges into its
    offer): the layer SSRCs, lowest resolution first (libwebrtc's order)."""
    sim = next((g[1] for g in m.ssrc_groups if g[0] == "SIM" and len(g[1]) > 1), [])
    return sim[:MAX_SIMULCAST_LAYERS]


def _repair_ssrcs(m: MediaSection) -> dict[int, int]:
    """RTX SSRC -> the media SSRC it repairs, from `a=ssrc-group:FID` (RFC 4588 §8.1)."""
    return {g[1][1]: g[1][0] for g in m.ssrc_groups if g[0] == "FID" and len(g[1]) == 2}


def build_answer(offer: SessionDescription, opts: AnswerOptions) -> tuple[str, list[Negotiated]]:
    """Answer `offer` as the SFU. Returns the SDP text (CRLF) and one Negotiated per m-line."""
    _check_options(opts)
    ufrag, pwd, fingerprints = remote_credentials(offer)
    transport = set(_transport_indexes(offer))
    if opts.candidates:
        ip, port = opts.candidates[0]
        ip_family = "IP6" if ":" in ip else "IP4"
    else:
        ip, port, ip_family = "0.0.0.0", 9, "IP4"

    sections: list[list[str]] = []
    negotiated: list[Negotiated] = []
    accepted: list[str] = []
    for index, m in enumerate(offer.media):
        direction = _direction(opts.role, m.direction)
        codecs: list[Codec] = []
        ext_ids: dict[str, int] = {}
        publish_video = opts.role == "publish" and m.kind == "video"
        rids = _simulcast_rids(m) if publish_video else []
        usable = (
            index in transport
            and m.kind in ("audio", "video")
            and m.is_rtp
            and "SAVP" in m.protocol
            and direction is not None
        )
        if usable:
            if not m.rtcp_mux:
                raise SdpError(f"{_label(m, index)}: rtcp-mux is required")
            if m.setup == "passive":
                raise SdpError(
                    f"{_label(m, index)}: offer has a=setup:passive but the server is passive"
                )
            supported = opts.supported_extensions or DEFAULT_EXTENSIONS[m.kind]
            if m.kind == "audio":
                supported = supported | {URI_AUDIO_LEVEL}
            else:
                supported = supported - {URI_AUDIO_LEVEL}
            for ext_id, uri in sorted(m.extmaps.items()):
                if uri in _SIMULCAST_ONLY and not rids:
                    continue
                if (uri in supported or uri in _SIMULCAST_ONLY) and uri not in ext_ids:
                    ext_ids[uri] = ext_id
            if m.kind == "audio":
                chosen = [c for c in m.codecs if c.name.lower() == "opus"][:1]
            elif opts.role == "publish":
                chosen = _choose_publish_video(m, opts.video_codec)
            else:
                chosen = _choose_view_video(m)
            codecs = [_answer_codec(c, m.kind, set(ext_ids)) for c in chosen]
        if not codecs:
            sections.append(_rejected_section(m))
            negotiated.append(
                Negotiated(
                    m.mid, m.kind, index, "inactive", [], {}, [], [], True, ufrag, pwd, fingerprints
                )
            )
            continue
        assert direction is not None
        accepted.append(m.mid)
        # RFC 4588: the publisher's retransmissions on their own SSRC, if it offers them.
        rtx_pt = m.rtx.get(codecs[0].payload_type, 0) if publish_video else 0
        formats = [c.payload_type for c in codecs] + ([rtx_pt] if rtx_pt else [])
        lines = [
            f"m={m.kind} {port} {m.protocol} {' '.join(str(pt) for pt in formats)}",
            f"c=IN {ip_family} {ip}",
            f"a=ice-ufrag:{opts.ice_ufrag}",
            f"a=ice-pwd:{opts.ice_pwd}",
            f"a=fingerprint:{opts.fingerprint[0].lower()} {opts.fingerprint[1].upper()}",
            "a=setup:passive",  # RFC 5763 §5: the answerer picks; the server is the DTLS server
            f"a=mid:{m.mid}",
        ]
        lines += [f"a=extmap:{ext_id} {uri}" for uri, ext_id in ext_ids.items()]
        if m.extmap_allow_mixed and not offer.extmap_allow_mixed:
            lines.append("a=extmap-allow-mixed")  # RFC 8285 §6: media level only if offered so
        lines.append(f"a={direction}")
        ssrcs: list[int] = []
        track = opts.send_tracks.get(m.mid) if opts.role == "view" else None
        if track is not None:
            lines.append(f"a=msid:{track.stream_id} {track.track_id}")
        lines.append("a=rtcp-mux")
        if m.rtcp_rsize:
            lines.append("a=rtcp-rsize")
        for c in codecs:
            channels = f"/{c.channels}" if c.channels else ""
            lines.append(f"a=rtpmap:{c.payload_type} {c.name}/{c.clock_rate}{channels}")
            lines += [f"a=rtcp-fb:{c.payload_type} {fb}" for fb in c.rtcp_fbs]
            if c.fmtp:
                lines.append(f"a=fmtp:{c.payload_type} {c.fmtp}")
        if rtx_pt:
            lines.append(f"a=rtpmap:{rtx_pt} rtx/{codecs[0].clock_rate}")
            lines.append(f"a=fmtp:{rtx_pt} apt={codecs[0].payload_type}")
        if rids:
            lines += [f"a=rid:{rid} recv" for rid in rids]
            lines.append(f"a=simulcast:recv {';'.join(rids)}")
        if track is not None:
            ssrcs = [track.ssrc]
            lines.append(f"a=ssrc:{track.ssrc} cname:{track.cname}")
            lines.append(f"a=ssrc:{track.ssrc} msid:{track.stream_id} {track.track_id}")
        elif opts.role == "publish":
            ssrcs = _primary_ssrcs(m)
        lines += _candidate_lines(opts.candidates, opts.tcp_candidates)
        sections.append(lines)
        negotiated.append(
            Negotiated(
                m.mid,
                m.kind,
                index,
                direction,
                codecs,
                ext_ids,
                ssrcs,
                rids,
                False,
                ufrag,
                pwd,
                fingerprints,
                rtx_payload_type=rtx_pt,
                layer_ssrcs=_layer_ssrcs(m) if publish_video and not rids else [],
                repair_ssrcs=_repair_ssrcs(m) if rtx_pt else {},
            )
        )

    if not accepted:
        raise SdpError("no media section of the offer can be accepted")
    session_id = secrets.randbits(62) if opts.session_id is None else opts.session_id
    head = [
        "v=0",
        f"o=- {session_id} 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=ice-lite",  # RFC 8445 §2.5: the server only answers connectivity checks
        f"a=group:BUNDLE {' '.join(accepted)}",
        "a=msid-semantic: WMS *",
    ]
    if offer.extmap_allow_mixed:
        head.append("a=extmap-allow-mixed")
    lines = head + [line for section in sections for line in section]
    return "\r\n".join(lines) + "\r\n", negotiated


def _rejected_section(m: MediaSection) -> list[str]:
    # RFC 8829 §5.3.1 / RFC 3264 §6: a rejected m-line keeps kind, protocol and a format, port 0.
    fmt = m.raw_formats[0] if m.raw_formats else "0"
    return [f"m={m.kind} 0 {m.protocol} {fmt}", "c=IN IP4 0.0.0.0", f"a=mid:{m.mid}", "a=inactive"]
