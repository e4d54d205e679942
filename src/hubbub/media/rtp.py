"""RTP header reading and rewriting on raw bytes (RFC 3550 §5.1, RFC 8285 header extensions).

Everything here runs once per packet (per viewer for `rewrite_packet`), so it works on `bytes`
with precompiled `struct.Struct`s and creates no object per packet besides the result.
Malformed input raises `ValueError` with one of the fixed messages below; callers count and drop.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from types import ModuleType

__all__ = [
    "ABS_SEND_TIME",
    "AUDIO_LEVEL",
    "DEPENDENCY_DESCRIPTOR",
    "PLAYOUT_DELAY",
    "REPAIRED_RID",
    "RID",
    "SDES_MID",
    "TOFFSET",
    "TRANSPORT_CC",
    "VIDEO_ORIENTATION",
    "audio_level",
    "build_packet",
    "find_extension",
    "is_rtcp",
    "payload_offset",
    "read_extensions",
    "read_header",
    "rewrite_packet",
    "rewrite_packet_c",
    "stamp_transport_seq",
    "seq_newer",
    "speedups",
]

# Header-extension URIs as negotiated in SDP a=extmap lines.
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"  # RFC 6464
SDES_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"  # RFC 8843 §15
TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
RID = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"  # RFC 8852
REPAIRED_RID = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"  # RFC 8852
PLAYOUT_DELAY = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay"
DEPENDENCY_DESCRIPTOR = (
    "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"
)
VIDEO_ORIENTATION = "urn:3gpp:video-orientation"
TOFFSET = "urn:ietf:params:rtp-hdrext:toffset"  # RFC 5450

_HDR = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, seq, timestamp, SSRC
_EXT_HDR = struct.Struct("!HH")  # profile, length in 32-bit words
_WORDS = struct.Struct("!H")
_PREFIX = struct.Struct("!BBHIIHH")  # fixed header + extension block header

_ONE_BYTE = 0xBEDE  # RFC 8285 §4.2
_TWO_BYTE = 0x1000  # RFC 8285 §4.3: 0x100 followed by 4 "appbits"

E_SHORT = "RTP packet shorter than 12 bytes"
E_VERSION = "RTP version must be 2"
E_CSRC = "RTP CSRC list truncated"
E_EXT = "RTP header extension truncated"
E_ELEMENT = "RTP header extension element truncated"
E_PADDING = "RTP padding invalid"


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: with rtcp-mux, an RTCP packet type (200..) lands in the PT byte as 192..223."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def read_header(data: bytes) -> tuple[int, bool, int, int, int]:
    """Return (payload type, marker, sequence number, timestamp, SSRC)."""
    if len(data) < 12:
        raise ValueError(E_SHORT)
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    if b0 & 0xC0 != 0x80:
        raise ValueError(E_VERSION)
    return b1 & 0x7F, b1 >= 0x80, seq, ts, ssrc


def seq_newer(a: int, b: int) -> bool:
    """True if 16-bit sequence number `a` comes after `b` (serial arithmetic, RFC 1982).

    At exactly half the space apart the larger value wins, so for a != b exactly one of
    seq_newer(a, b) and seq_newer(b, a) is true.
    """
    d = (a - b) & 0xFFFF
    if d == 0x8000:
        return (a & 0xFFFF) > (b & 0xFFFF)
    return 0 < d < 0x8000


def _bounds(data: bytes) -> tuple[int, int, int]:
    """Return (profile, start, end) of the extension block; profile -1 and start == end == the
    payload offset when there is none. Checks version, CSRC list and block length."""
    n = len(data)
    if n < 12:
        raise ValueError(E_SHORT)
    b0 = data[0]
    if b0 & 0xC0 != 0x80:
        raise ValueError(E_VERSION)
    off = 12 + ((b0 & 0x0F) << 2)
    if off > n:
        raise ValueError(E_CSRC)
    if not b0 & 0x10:
        return -1, off, off
    if off + 4 > n:
        raise ValueError(E_EXT)
    profile, words = _EXT_HDR.unpack_from(data, off)
    end = off + 4 + (words << 2)
    if end > n:
        raise ValueError(E_EXT)
    return profile, off + 4, end


def _check_padding(data: bytes, payload_start: int) -> None:
    # RFC 3550 §5.1: the last octet counts the padding octets, itself included.
    count = data[-1] if len(data) > payload_start else 0
    if count == 0 or payload_start + count > len(data):
        raise ValueError(E_PADDING)


def payload_offset(data: bytes) -> int:
    """Offset of the payload: after the fixed header, CSRCs and extension block. If the P bit is
    set, the padding count is validated too (the payload then ends at len(data) - data[-1])."""
    _, _, end = _bounds(data)
    if data[0] & 0x20:
        _check_padding(data, end)
    return end


def _elements(data: bytes, profile: int, pos: int, end: int) -> list[tuple[int, int, int]]:
    """(id, value start, value end) for every element of an extension block (slow path)."""
    out: list[tuple[int, int, int]] = []
    if profile == _ONE_BYTE:
        while pos < end:
            b = data[pos]
            i = b >> 4
            if i == 0:  # RFC 8285 §4.2: padding byte
                pos += 1
                continue
            if i == 15:  # reserved id: stop parsing the block
                break
            s = pos + 1
            pos = s + (b & 0x0F) + 1
            if pos > end:
                raise ValueError(E_ELEMENT)
            out.append((i, s, pos))
    elif profile & 0xFFF0 == _TWO_BYTE:
        while pos < end:
            i = data[pos]
            if i == 0:  # RFC 8285 §4.3: padding byte
                pos += 1
                continue
            if pos + 2 > end:
                raise ValueError(E_ELEMENT)
            s = pos + 2
            pos = s + data[pos + 1]
            if pos > end:
                raise ValueError(E_ELEMENT)
            out.append((i, s, pos))
    return out


def find_extension(data: bytes, ext_id: int) -> tuple[int, int] | None:
    """(offset, length) of the value of the first header-extension element with id `ext_id`.

    Handles the one-byte (0xBEDE) and two-byte (0x100x) forms of RFC 8285; an unknown profile
    counts as no extensions. Elements after the one found are not validated.
    """
    profile, pos, end = _bounds(data)
    if profile == _ONE_BYTE:
        while pos < end:
            b = data[pos]
            i = b >> 4
            if i == 0:
                pos += 1
                continue
            if i == 15:
                return None
            ln = (b & 0x0F) + 1
            pos += 1
            if pos + ln > end:
                raise ValueError(E_ELEMENT)
            if i == ext_id:
                return pos, ln
            pos += ln
    elif profile & 0xFFF0 == _TWO_BYTE:
        while pos < end:
            i = data[pos]
            if i == 0:
                pos += 1
                continue
            if pos + 2 > end:
                raise ValueError(E_ELEMENT)
            ln = data[pos + 1]
            pos += 2
            if pos + ln > end:
                raise ValueError(E_ELEMENT)
            if i == ext_id:
                return pos, ln
            pos += ln
    return None


def read_extensions(data: bytes) -> list[tuple[int, bytes]]:
    """Every header-extension element as (id, value), in packet order (not for the hot path)."""
    profile, pos, end = _bounds(data)
    return [(i, data[s:e]) for i, s, e in _elements(data, profile, pos, end)]


def audio_level(data: bytes, ext_id: int) -> int:
    """RFC 6464 §3 audio level, 0 (loudest) .. 127 (silence), ignoring the V bit; -1 if absent."""
    if not ext_id:
        return -1
    found = find_extension(data, ext_id)
    if found is None or found[1] == 0:
        return -1
    return data[found[0]] & 0x7F


def _encode_block(elements: Sequence[tuple[int, bytes | memoryview]]) -> bytes:
    """Extension block (profile, length, elements, zero padding) in the one-byte form when every
    element fits it (id 1..14, 1..16 bytes), else the two-byte form (RFC 8285 §4.2, §4.3)."""
    if not elements:
        return b""
    one = all(1 <= i <= 14 and 1 <= len(v) <= 16 for i, v in elements)
    parts: list[bytes | memoryview] = []
    for i, v in elements:
        if one:
            parts.append(bytes(((i << 4) | (len(v) - 1),)))
        else:
            if not 1 <= i <= 255 or len(v) > 255:
                raise ValueError("RTP header extension id or length out of range")
            parts.append(bytes((i, len(v))))
        parts.append(v)
    body = b"".join(parts)
    body += b"\x00" * (-len(body) & 3)
    return _EXT_HDR.pack(_ONE_BYTE if one else _TWO_BYTE, len(body) >> 2) + body


def build_packet(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    payload: bytes,
    marker: bool = False,
    extensions: Sequence[tuple[int, bytes]] = (),
) -> bytes:
    """A new RTP packet without CSRCs or padding; extensions as (id, value) in that order."""
    block = _encode_block(extensions)
    b0 = 0x90 if block else 0x80
    b1 = (0x80 if marker else 0) | (pt & 0x7F)
    return _HDR.pack(b0, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc & 0xFFFFFFFF) + block + payload


def rewrite_packet(
    data: bytes,
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    ext_map: bytes,
    mid_id: int,
    mid: bytes,
    twcc_id: int = 0,
) -> bytes:
    """The packet as a viewer receives it: new PT/seq/ts/SSRC, marker and padding kept, CSRCs
    dropped; an incoming extension element with id i is kept as id ext_map[i] (dropped when 0;
    `ext_map` has 256 entries), then MID (RFC 8843 §15) is appended when mid_id != 0, then,
    when twcc_id != 0, a transport-wide sequence number element with the value 0: the
    transport writes the number just before it sends (`stamp_transport_seq`).
    An incoming element that maps to mid_id or twcc_id is dropped so neither is duplicated.
    seq, ts and ssrc must already be reduced to 16/32 bits.

    Fan-out shortcut: the result's bytes after the fixed header depend only on (data, ext_map,
    mid_id, mid, twcc_id), so the last one is remembered and the next viewer with the same
    mapping gets a header pack plus one concatenation."""
    global _memo
    memo = _memo
    if (data is memo[0] and mid_id == memo[2] and ext_map == memo[1] and mid == memo[3]
            and twcc_id == memo[6]):
        return _HDR.pack(memo[4], (data[1] & 0x80) | (pt & 0x7F), seq, ts, ssrc) + memo[5]
    out = _rewrite(data, pt, seq, ts, ssrc, ext_map, mid_id, mid, twcc_id)
    # Only immutable inputs are remembered; holding `data` keeps its id from being reused.
    if type(data) is bytes and type(ext_map) is bytes and type(mid) is bytes:
        _memo = (data, ext_map, mid_id, mid, out[0], out[12:], twcc_id)
    return out


_memo: tuple[bytes | None, bytes, int, bytes, int, bytes, int] = (
    None, b"", 0, b"", 0, b"", 0)


def stamp_transport_seq(packet: bytes, twcc_id: int, seq: int) -> bytes | None:
    """`packet` with its transport-wide sequence number element (id `twcc_id`, as
    rewrite_packet reserved it) set to `seq` (draft-holmer-rmcat-transport-wide-cc-
    extensions-01 §2); None when the packet carries no such element."""
    try:
        found = find_extension(packet, twcc_id)
    except ValueError:
        return None
    if found is None or found[1] != 2:
        return None
    out = bytearray(packet)
    out[found[0]] = (seq >> 8) & 0xFF
    out[found[0] + 1] = seq & 0xFF
    return bytes(out)


def _rewrite(
    data: bytes,
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    ext_map: bytes,
    mid_id: int,
    mid: bytes,
    twcc_id: int = 0,
) -> bytes:
    n = len(data)
    if n < 12:
        raise ValueError(E_SHORT)
    b0 = data[0]
    if b0 & 0xC0 != 0x80:
        raise ValueError(E_VERSION)
    pos = 12 + ((b0 & 0x0F) << 2)
    if pos > n:
        raise ValueError(E_CSRC)
    profile = -1
    end = pos
    if b0 & 0x10:
        if pos + 4 > n:
            raise ValueError(E_EXT)
        profile, words = _EXT_HDR.unpack_from(data, pos)
        pos += 4
        end = pos + (words << 2)
        if end > n:
            raise ValueError(E_EXT)
    if b0 & 0x20:
        _check_padding(data, end)

    # Fast path (one-byte form in and out): copy the block once, then patch ids in place and
    # cut dropped elements; anything needing the two-byte form goes to _rewrite_slow.
    b1 = (data[1] & 0x80) | (pt & 0x7F)
    out = bytearray(_PREFIX.pack(0x90 | (b0 & 0x20), b1, seq, ts, ssrc, _ONE_BYTE, 0))
    if profile == _ONE_BYTE:
        out += data[pos:end]
        k = 16 - pos  # index in out = index in data + k
        last = 16  # end of the last kept element in out: trailing padding is cut
        while pos < end:
            b = data[pos]
            i = b >> 4
            if i == 0:  # RFC 8285 §4.2: padding; cut it unless it trails (then `last` cuts it)
                run = pos + 1
                while run < end and data[run] == 0:
                    run += 1
                if run < end:
                    del out[pos + k : run + k]
                    k -= run - pos
                pos = run
                continue
            if i == 15:  # reserved id: stop parsing, drop the rest
                break
            ln = (b & 0x0F) + 2
            if pos + ln > end:
                raise ValueError(E_ELEMENT)
            j = ext_map[i]
            if j == 0 or j == mid_id or j == twcc_id:
                del out[pos + k : pos + k + ln]
                k -= ln
            else:
                if j != i:
                    if j > 14:
                        return _rewrite_slow(data, out, profile, end, ext_map, mid_id, mid, twcc_id)
                    out[pos + k] = (j << 4) | (b & 0x0F)
                last = pos + k + ln
            pos += ln
        del out[last:]
    elif profile & 0xFFF0 == _TWO_BYTE:
        return _rewrite_slow(data, out, profile, end, ext_map, mid_id, mid, twcc_id)
    if mid_id:
        ml = len(mid)
        if mid_id > 14 or ml == 0 or ml > 16:
            return _rewrite_slow(data, out, profile, end, ext_map, mid_id, mid, twcc_id)
        out.append((mid_id << 4) | (ml - 1))
        out += mid
    if twcc_id:
        if twcc_id > 14:
            return _rewrite_slow(data, out, profile, end, ext_map, mid_id, mid, twcc_id)
        out += bytes(((twcc_id << 4) | 1, 0, 0))
    size = len(out) - 16
    if size == 0:
        del out[12:]
        out[0] &= 0xEF  # no element left: no X bit, no empty block
    else:
        pad = -size & 3
        if pad:
            out += b"\x00" * pad
        _WORDS.pack_into(out, 14, (size + pad) >> 2)
    out += data[end:]
    return bytes(out)


def _rewrite_slow(
    data: bytes, out: bytearray, profile: int, end: int, ext_map: bytes, mid_id: int, mid: bytes,
    twcc_id: int = 0,
) -> bytes:
    """rewrite_packet for incoming two-byte blocks and elements that need the two-byte form."""
    start = 12 + ((data[0] & 0x0F) << 2) + 4
    elements: list[tuple[int, bytes | memoryview]] = []
    for i, s, e in _elements(data, profile, start, end):
        j = ext_map[i]
        if j and j != mid_id and j != twcc_id:
            elements.append((j, data[s:e]))
    if mid_id:
        elements.append((mid_id, mid))
    if twcc_id:
        elements.append((twcc_id, b"\x00\x00"))
    block = _encode_block(elements)
    head = out[:12]
    if not block:
        head[0] &= 0xEF
    return bytes(head) + block + data[end:]


_speedups: ModuleType | None
try:  # optional C forward path (src/hubbub/_speedups.c)
    from hubbub import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None


def speedups() -> ModuleType | None:
    """The C forward path (`hubbub._speedups`) unless it is not built or HUBBUB_NO_SPEEDUPS is
    set; read when an object picks its path (port, transport, DownTrack, Track)."""
    return None if os.environ.get("HUBBUB_NO_SPEEDUPS") else _speedups


def rewrite_packet_c(
    data: bytes,
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    ext_map: bytes,
    mid_id: int,
    mid: bytes,
    twcc_id: int = 0,
) -> bytes:
    """`rewrite_packet` computed in C when the extension is built (byte-identical output and
    the same ValueErrors); what needs the two-byte extension form still runs in Python."""
    if _speedups is not None:
        out: bytes | None = _speedups.rewrite(data, pt, seq, ts, ssrc, ext_map, mid_id, mid,
                                              twcc_id)
        if out is not None:
            return out
    return _rewrite(data, pt, seq, ts, ssrc, ext_map, mid_id, mid, twcc_id)
