"""Offer parser and the BUNDLE transport's remote ICE/DTLS credentials."""

from __future__ import annotations

import re
import sys

from hubbub.media.sdp.model import (
    _DIRECTIONS,
    _HASH_BYTES,
    _STATIC_PTS,
    AUX_CODECS,
    MAX_MEDIA_SECTIONS,
    MAX_SDP_BYTES,
    Codec,
    MediaSection,
    SdpError,
    SessionDescription,
)

# ---------------------------------------------------------------- parsing

_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 4566 §9 token
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")  # RFC 8839 §5.4 ice-char
_VISIBLE = re.compile(r"[\x21-\x7e]+")
_PRINTABLE = re.compile(r"[\x20-\x7e]+")
# A control character other than TAB, or a CR that does not end a line (line breaks are
# LF or CRLF).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n|\Z)")
_VISIBLE_WORDS = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
_M_LINE = re.compile(r"([a-z]+) ([0-9]{1,5})(?:/[0-9]{1,5})? ([A-Za-z0-9/_.-]+)((?: \S+)+)")
_RTPMAP = re.compile(r"([0-9]{1,3}) ([A-Za-z0-9_.-]+)/([0-9]{1,9})(?:/([0-9]{1,2}))?")
_FINGERPRINT = re.compile(r"([A-Za-z0-9-]+) ([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*)")


def _uint(text: str, limit: int) -> int | None:
    """Strict decimal (no sign, spaces or non-ASCII digits) no larger than limit."""
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    value = int(text)
    return value if value <= limit else None


class _Parser:
    def __init__(self) -> None:
        self.lineno = 0
        self.session = SessionDescription(origin="", media=[])
        self.media: MediaSection | None = None
        self.fmtp: dict[int, str] = {}
        self.fbs: dict[int, list[str]] = {}
        self.maps: dict[int, tuple[str, int, int | None]] = {}
        self.session_extmaps: dict[int, str] = {}
        self.s_ufrag: str | None = None
        self.s_pwd: str | None = None
        self.s_options: str | None = None
        self.s_setup: str | None = None
        self.s_fingerprints: list[tuple[str, str]] = []

    def fail(self, what: str) -> SdpError:
        return SdpError(f"SDP line {self.lineno}: {what}")

    def run(self, text: str) -> SessionDescription:
        if len(text) > MAX_SDP_BYTES or len(text.encode("utf-8", "replace")) > MAX_SDP_BYTES:
            raise SdpError("SDP is larger than 64 KiB")
        # Control characters, once for the whole text (an offer has 50-200 lines): printable
        # text once the line breaks and tabs are gone has none; else the regex finds one or
        # sees that what stopped isprintable() was not ASCII.
        plain = text.replace("\r\n", "").replace("\n", "").replace("\t", "")
        if text.endswith("\r"):
            plain = plain[:-1]  # a last line ended by CR alone
        if not plain.isprintable():
            bad = _CONTROL.search(text)
            if bad is not None:
                self.lineno = text.count("\n", 0, bad.start()) + 1
                raise self.fail("control character in line")
        seen_version = False
        for self.lineno, raw in enumerate(text.split("\n"), start=1):
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line:
                continue
            if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
                raise self.fail("expected <type>=<value>")
            kind, value = line[0], line[2:]
            if not seen_version:
                if kind != "v" or value != "0":
                    raise self.fail("expected v=0")
                seen_version = True
            elif kind == "o":
                if self.media is not None:
                    raise self.fail("o= inside a media section")
                self.session.origin = value
            elif kind == "m":
                self.start_media(value)
            elif kind == "a":
                self.attribute(value)
        self.finish_media()
        return self.validate()

    def start_media(self, value: str) -> None:
        self.finish_media()
        if len(self.session.media) >= MAX_MEDIA_SECTIONS:
            raise SdpError(f"SDP has more than {MAX_MEDIA_SECTIONS} m-lines")
        m = _M_LINE.fullmatch(value)
        port = _uint(m.group(2), 65535) if m else None
        if m is None or port is None:
            raise self.fail("bad m= line")
        raw_formats = m.group(4).split()
        if not all(_VISIBLE.fullmatch(f) for f in raw_formats):
            raise self.fail("bad m= line")
        formats: list[int] = []
        if "RTP/" in m.group(3):
            for token in raw_formats:
                pt = _uint(token, 127)
                if pt is None:
                    raise self.fail("bad m= line")
                formats.append(pt)
        self.media = MediaSection(
            kind=m.group(1),
            port=port,
            protocol=m.group(3),
            formats=formats,
            mid="",
            raw_formats=raw_formats,
        )
        self.fmtp, self.fbs, self.maps = {}, {}, {}

    def finish_media(self) -> None:
        m = self.media
        if m is None:
            return
        wildcard_fbs = self.fbs.get(-1, [])
        for pt in m.formats:
            entry = self.maps.get(pt) or _STATIC_PTS.get(pt)
            if entry is None:
                continue  # a dynamic payload type without rtpmap is not a usable codec
            name, rate, channels = entry
            fbs = self.fbs.get(pt, []) + [f for f in wildcard_fbs if f not in self.fbs.get(pt, [])]
            codec = Codec(pt, name, rate, channels, self.fmtp.get(pt, ""), fbs)
            if name.lower() in AUX_CODECS:
                m.aux_codecs.append(codec)
                apt = _uint(codec.params.get("apt", ""), 127)
                if name.lower() == "rtx" and apt is not None:
                    m.rtx[apt] = pt
            else:
                m.codecs.append(codec)
        for ext_id, uri in self.session_extmaps.items():
            m.extmaps.setdefault(ext_id, uri)
        self.session.media.append(m)
        self.media = None

    def attribute(self, value: str) -> None:
        name, has_value, arg = value.partition(":")
        m = self.media
        if m is not None:
            # The lines a browser offer is mostly made of, looked up instead of compared in turn.
            handler = _MEDIA_LINES.get(name)
            if handler is not None:
                handler(self, m, arg)
                return
        if name == "extmap":
            self.extmap(arg, m)
        elif name == "group":
            semantics, *mids = arg.split() or [""]
            if semantics == "BUNDLE" and mids:
                if not all(_TOKEN.fullmatch(x) for x in mids):
                    raise self.fail("bad group")
                self.session.bundle.append(mids)
        elif name == "ice-lite":
            self.session.ice_lite = True
        elif name == "extmap-allow-mixed":
            if m is None:
                self.session.extmap_allow_mixed = True
            else:
                m.extmap_allow_mixed = True
        elif name in ("ice-ufrag", "ice-pwd"):
            lo = 4 if name == "ice-ufrag" else 22  # RFC 8839 §5.4
            if not (lo <= len(arg) <= 256 and _ICE_CHARS.fullmatch(arg)):
                raise self.fail(f"bad {name}")
            if m is None:
                self.s_ufrag, self.s_pwd = (
                    (arg, self.s_pwd) if name == "ice-ufrag" else (self.s_ufrag, arg)
                )
            elif name == "ice-ufrag":
                m.ice_ufrag = arg
            else:
                m.ice_pwd = arg
        elif name == "ice-options":
            if m is None:
                self.s_options = arg
            else:
                m.ice_options = arg
        elif name == "fingerprint":
            fp = self.fingerprint(arg)
            (self.s_fingerprints if m is None else m.fingerprints).append(fp)
        elif name == "setup":
            if arg not in ("actpass", "active", "passive", "holdconn"):
                raise self.fail("bad setup")
            if m is None:
                self.s_setup = arg
            else:
                m.setup = arg
        elif m is None:
            return  # other session-level attributes (msid-semantic, ...) are not needed
        elif name in _DIRECTIONS and not has_value:
            m.direction = name

    def rtpmap(self, m: MediaSection, arg: str) -> None:
        r = _RTPMAP.fullmatch(arg)
        pt = _uint(r.group(1), 127) if r else None
        rate = _uint(r.group(3), 10**9) if r else None
        if r is None or pt is None or rate is None or rate == 0:
            raise self.fail("bad rtpmap")
        channels = int(r.group(4)) if r.group(4) else None
        self.maps[pt] = (r.group(2), rate, channels)

    def fmtp_line(self, m: MediaSection, arg: str) -> None:
        pt_text, _, params = arg.partition(" ")
        pt = _uint(pt_text, 127)
        # Browsers' munged offers (e.g. "useinbandfec=1; usedtx=1" from the Millicast SDK)
        # put spaces after ';': accept printable text and store it normalized.
        if pt is None or not _PRINTABLE.fullmatch(params.strip() or "x"):
            raise self.fail("bad fmtp")
        self.fmtp[pt] = ";".join(p.strip() for p in params.split(";") if p.strip())

    def rtcp_fb(self, m: MediaSection, arg: str) -> None:
        pt_text, _, fb = arg.partition(" ")
        pt = -1 if pt_text == "*" else _uint(pt_text, 127)
        fb = " ".join(fb.split())
        if pt is None or not _VISIBLE_WORDS.fullmatch(fb):
            raise self.fail("bad rtcp-fb")
        self.fbs.setdefault(pt, []).append(fb)

    def ssrc(self, m: MediaSection, arg: str) -> None:
        ssrc_text, _, attr = arg.partition(" ")
        ssrc = _uint(ssrc_text, 0xFFFFFFFF)
        attr_name, _, attr_value = attr.partition(":")
        if ssrc is None or not _TOKEN.fullmatch(attr_name):
            raise self.fail("bad ssrc")
        m.ssrcs.setdefault(ssrc, {})[attr_name] = attr_value

    def ssrc_group(self, m: MediaSection, arg: str) -> None:
        semantics, *ssrc_texts = arg.split() or [""]
        ssrcs = [_uint(s, 0xFFFFFFFF) for s in ssrc_texts]
        if not _TOKEN.fullmatch(semantics) or not ssrcs or None in ssrcs:
            raise self.fail("bad ssrc-group")
        m.ssrc_groups.append((semantics, [s for s in ssrcs if s is not None]))

    def rid(self, m: MediaSection, arg: str) -> None:
        parts = arg.split(" ", 2)
        if len(parts) < 2 or not _TOKEN.fullmatch(parts[0]) or parts[1] not in ("send", "recv"):
            raise self.fail("bad rid")
        m.rids.append((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))

    def candidate(self, m: MediaSection, arg: str) -> None:
        m.candidates.append(arg)

    def mid(self, m: MediaSection, arg: str) -> None:
        # RFC 8843 §5: identification-tag is a token; Chromium refuses more than 16 chars
        # because the MID must fit a one-byte RTP header extension element (RFC 8285 §4.2).
        if not (_TOKEN.fullmatch(arg) and len(arg) <= 16):
            raise self.fail("bad mid")
        m.mid = arg

    def simulcast(self, m: MediaSection, arg: str) -> None:
        m.simulcast = arg

    def msid(self, m: MediaSection, arg: str) -> None:
        m.msid = arg

    def rtcp_mux(self, m: MediaSection, arg: str) -> None:
        m.rtcp_mux = True

    def rtcp_rsize(self, m: MediaSection, arg: str) -> None:
        m.rtcp_rsize = True

    def bundle_only(self, m: MediaSection, arg: str) -> None:
        m.bundle_only = True

    def fingerprint(self, arg: str) -> tuple[str, str]:
        f = _FINGERPRINT.fullmatch(arg)
        if f is None:
            raise self.fail("bad fingerprint")
        alg, value = f.group(1).lower(), f.group(2).upper()
        expected = _HASH_BYTES.get(alg)
        if expected is not None and len(value) != expected * 3 - 1:
            raise self.fail(f"bad fingerprint length for {alg}")
        return alg, value

    def extmap(self, arg: str, m: MediaSection | None) -> None:
        head, _, rest = arg.partition(" ")
        ext_id = _uint(head.partition("/")[0], 255)
        uri = rest.split(" ", 1)[0]
        # RFC 8285 §5: ids 1-14 (one-byte) and 1-255 (two-byte); 0 is padding.
        if ext_id is None or ext_id == 0 or not _VISIBLE.fullmatch(uri or " "):
            raise self.fail("bad extmap")
        table = self.session_extmaps if m is None else m.extmaps
        if ext_id in table:
            raise self.fail(f"duplicate extmap id {ext_id}")
        # Interned: every viewer keeps its extension table, and they all name the same few
        # URIs (interned strings are still freed when no longer used).
        table[ext_id] = sys.intern(uri)

    def validate(self) -> SessionDescription:
        s = self.session
        if not s.origin:
            raise SdpError("SDP has no o= line")
        if not s.media:
            raise SdpError("SDP has no media sections")
        seen: set[str] = set()
        for i, m in enumerate(s.media, start=1):
            if not m.mid:
                raise SdpError(f"m-line {i} has no a=mid")
            if m.mid in seen:
                raise SdpError(f"m-line {i} repeats mid {m.mid}")
            seen.add(m.mid)
            # RFC 8839 §5.4 / RFC 8122 §5: session-level values apply to m-lines without their own.
            m.ice_ufrag = m.ice_ufrag or self.s_ufrag
            m.ice_pwd = m.ice_pwd or self.s_pwd
            m.ice_options = m.ice_options or self.s_options
            m.setup = m.setup or self.s_setup
            m.fingerprints = m.fingerprints or list(self.s_fingerprints)
            m.extmap_allow_mixed = m.extmap_allow_mixed or s.extmap_allow_mixed
        for group in s.bundle:
            for mid in group:
                if mid not in seen:
                    raise SdpError(f"BUNDLE group names unknown mid {mid}")
        return s


_MEDIA_LINES = {
    "rtpmap": _Parser.rtpmap,
    "fmtp": _Parser.fmtp_line,
    "rtcp-fb": _Parser.rtcp_fb,
    "ssrc": _Parser.ssrc,
    "ssrc-group": _Parser.ssrc_group,
    "rid": _Parser.rid,
    "candidate": _Parser.candidate,
    "mid": _Parser.mid,
    "simulcast": _Parser.simulcast,
    "msid": _Parser.msid,
    "rtcp-mux": _Parser.rtcp_mux,
    "rtcp-rsize": _Parser.rtcp_rsize,
    "bundle-only": _Parser.bundle_only,
}
"""Media-level attributes by name (ignored at session level, like every media attribute)."""


def parse(text: str) -> SessionDescription:
    """Parse an SDP offer. CRLF or LF line endings; SdpError on anything malformed."""
    return _Parser().run(text)


# ---------------------------------------------------------------- transport


def _label(m: MediaSection, index: int) -> str:
    return f"m-line {index + 1} (mid {m.mid})"


def _transport_indexes(offer: SessionDescription) -> list[int]:
    """m-lines sharing the single transport: the first BUNDLE group, else every live m-line.

    RFC 8843 §7.3.3: m-lines outside the group (or port 0 without bundle-only) are rejected.
    """
    live = [i for i, m in enumerate(offer.media) if m.port != 0 or m.bundle_only]
    if not offer.bundle:
        return live
    group = offer.bundle[0]
    return [i for i in live if offer.media[i].mid in group]


def remote_credentials(offer: SessionDescription) -> tuple[str, str, list[tuple[str, str]]]:
    """(ufrag, pwd, fingerprints) of the BUNDLE transport; SdpError when absent or inconsistent.

    RFC 8843 §7.1: every m-line of a BUNDLE group uses one transport, so one set of credentials.
    """
    indexes = _transport_indexes(offer)
    if not indexes:
        raise SdpError("SDP has no usable media sections")
    first: tuple[str, str, list[tuple[str, str]]] | None = None
    for i in indexes:
        m = offer.media[i]
        for attr, val in (("ice-ufrag", m.ice_ufrag), ("ice-pwd", m.ice_pwd)):
            if not val:
                raise SdpError(f"{_label(m, i)} has no {attr}")
        if not m.fingerprints:
            raise SdpError(f"{_label(m, i)} has no fingerprint")
        assert m.ice_ufrag is not None and m.ice_pwd is not None
        creds = (m.ice_ufrag, m.ice_pwd, m.fingerprints)
        if first is None:
            first = creds
        elif creds != first:
            raise SdpError(f"{_label(m, i)} has other ICE/DTLS credentials than the BUNDLE group")
    assert first is not None
    return first[0], first[1], list(first[2])
