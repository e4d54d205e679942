"""STUN: the ICE-lite Binding request path of hubbub.media.ice, as the media port runs it.

Input: byte 0 picks the mode, the rest is the datagram.
- mode even: the rest is used as is (mostly refused: it is not even signed).
- mode odd: the rest is 12 bytes of transaction id and then attributes, made into a Binding
  request with a correct MESSAGE-INTEGRITY (under PASSWORD) and FINGERPRINT, so the fuzzer
  reaches the checks that follow authentication.

Documented errors: the pre-check (peek_binding_request, then IntegrityKey.matches at the
offset it found) never raises; parse_binding_request raises ValueError (StunError is one);
check_binding_request raises StunError.

The pre-check and the full path must agree, since the port drops what the pre-check refuses:
a request the full path accepts passes the pre-check (unless its ufrag is not ASCII, its
MESSAGE-INTEGRITY comes after more than 24 attributes, or it has several USERNAMEs: all refused
by the pre-check by design, and never sent by a browser), and one whose MESSAGE-INTEGRITY the
pre-check verified is not refused for it (401) by the full path.
"""

from __future__ import annotations

import binascii
import hmac
import struct

from hubbub.media import ice

MAX_LEN = 1500
PASSWORD = "S" * 24
KEY = PASSWORD.encode()
EXPECTED = (ValueError,)

_HEAD = struct.Struct("!HHI")
_COOKIE = 0x2112A442

_KEY = ice.IntegrityKey(PASSWORD)


def signed(rest: bytes) -> bytes:
    """A Binding request with `rest`'s transaction id and attributes, then MESSAGE-INTEGRITY
    under KEY and FINGERPRINT (RFC 8489 §14.5, §14.7)."""
    txid = (rest[:12] + bytes(12))[:12]
    attrs = rest[12:]
    attrs += bytes(-len(attrs) & 3)
    covered = _HEAD.pack(0x0001, len(attrs) + 24, _COOKIE) + txid + attrs
    body = attrs + struct.pack("!HH", 0x0008, 20) + hmac.digest(KEY, covered, "sha1")
    head = _HEAD.pack(0x0001, len(body) + 8, _COOKIE) + txid
    crc = (binascii.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
    return head + body + struct.pack("!HHI", 0x8028, 4, crc)


def attributes_before_integrity(packet: bytes) -> tuple[int, int]:
    """(how many attributes up to the first MESSAGE-INTEGRITY, 0 if there is none; how many of
    them are USERNAME)."""
    pos, index, usernames = 20, 0, 0
    while pos + 4 <= len(packet):
        kind, size = struct.unpack_from("!HH", packet, pos)
        index += 1
        if kind == 0x0008:
            return index, usernames
        usernames += kind == 0x0006
        pos += 4 + ((size + 3) & ~3)
    return 0, usernames


def one_input(data: bytes) -> None:
    if not data:
        return
    packet = signed(data[1:]) if data[0] & 1 else data[1:]
    peeked = ice.peek_binding_request(packet)
    verified = False
    if peeked is not None:
        ufrag, offset = peeked
        assert isinstance(ufrag, str) and isinstance(offset, int)
        verified = bool(offset) and _KEY.matches(packet, offset)
    try:
        request = ice.parse_binding_request(packet)
    except EXPECTED:
        return
    ice.is_nomination(request)
    try:
        ice.check_binding_request(request, PASSWORD)
    except ice.StunError as exc:
        assert not (verified and exc.code == 401), "pre-check verified what the parser refuses"
        ice.error_response(request, exc.code, exc.reason, PASSWORD)
        return
    ice.success_response(request, ("192.0.2.1", 50000), PASSWORD)
    count, usernames = attributes_before_integrity(packet)
    if request.local_ufrag.isascii() and 0 < count <= 24 and usernames == 1:
        assert peeked is not None, "the pre-check drops a request the full path answers"
        assert peeked[0] == request.local_ufrag, (peeked, request.local_ufrag)
        assert verified, "the pre-check fails MESSAGE-INTEGRITY the full path accepts"


if __name__ == "__main__":
    from tests.fuzz.harness import fuzz_main

    fuzz_main(one_input, "stun", MAX_LEN)
