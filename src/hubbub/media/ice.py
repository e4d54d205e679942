"""ICE-lite responder (RFC 8445 §2.5, §7.3): we only answer Binding requests.

A lite agent never sends checks. It validates each Binding request (short-term credentials,
RFC 8489 §9.2), answers with XOR-MAPPED-ADDRESS, and learns the peer's address from the
checks it receives; the controlling peer's nomination (USE-CANDIDATE) picks the address we send to.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import socket
import struct
import zlib
from dataclasses import dataclass
from typing import Any

from aioice import stun

# RFC 8489 §5-§6, §14: what `peek_binding_request` reads without parsing the message.
_HEADER = struct.Struct("!HHI")  # message type, length, magic cookie
_ATTRIBUTE = struct.Struct("!HH")  # type, length
_BINDING_REQUEST = 0x0001
_BINDING_INDICATION = 0x0011
_BINDING_SUCCESS = 0x0101
_MAGIC_COOKIE = 0x2112A442
_MAGIC_COOKIE_BYTES = _MAGIC_COOKIE.to_bytes(4, "big")
_XOR_MAPPED_ADDRESS = 0x0020
_FINGERPRINT = 0x8028
_USERNAME = 0x0006
_MESSAGE_INTEGRITY = 0x0008
_MAX_ATTRIBUTES = 24
"""A browser's Binding request carries 6-8 attributes; more is not a check we answer, and the
cap bounds what one datagram can make the pre-check walk."""


def random_credential(length: int) -> str:
    """ICE ufrag/pwd characters are ice-chars (RFC 8839 §5.4): ALPHA / DIGIT / "+" / "/",
    which is exactly base64's alphabet: whole 3-byte groups give 6 random bits a character."""
    raw = secrets.token_bytes(3 * -(-length // 4))
    return base64.b64encode(raw).decode("ascii")[:length]


def new_credentials() -> tuple[str, str]:
    # RFC 8445 §5.3: at least 24 bits of randomness in the ufrag, 128 bits in the password.
    return random_credential(8), random_credential(24)


@dataclass(frozen=True)
class BindingRequest:
    """A parsed, not yet authenticated Binding request."""

    message: Any  # aioice.stun.Message
    local_ufrag: str
    remote_ufrag: str


class StunError(ValueError):
    """A STUN message we must refuse; `code` is the RFC 8489 §14.8 error code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


def is_binding_indication(data: bytes) -> bool:
    """A STUN Binding Indication: a keepalive some ICE agents (libnice) send after
    connecting (RFC 8445 §11, RFC 8489 §6.3.2: no answer is due). Header only, no parsing."""
    if len(data) < 20:
        return False
    kind, length, cookie = _HEADER.unpack_from(data)
    return bool(kind == _BINDING_INDICATION and cookie == _MAGIC_COOKIE
                and length == len(data) - 20)


def peek_binding_request(data: bytes) -> tuple[str, int] | None:
    """The cheap first look at a STUN datagram, before any parsing or crypto.

    For a well-formed Binding request: (local ufrag, offset of MESSAGE-INTEGRITY, 0 if it has
    none). None for anything else: not a Binding request (indications, responses, other
    methods), a broken header or attribute list, no USERNAME with a colon, more than
    `_MAX_ATTRIBUTES` attributes. The local ufrag is the USERNAME before its colon (RFC 8445
    §7.2.2), decoded as Latin-1 so that no byte sequence raises.
    """
    if len(data) < 20:
        return None
    kind, length, cookie = _HEADER.unpack_from(data)
    if kind != _BINDING_REQUEST or cookie != _MAGIC_COOKIE or length != len(data) - 20:
        return None
    if length & 3:
        return None  # attributes are padded to 4 bytes, so is the message (RFC 8489 §14)
    ufrag: str | None = None
    integrity = 0
    pos = 20
    end = len(data)
    for _ in range(_MAX_ATTRIBUTES):
        if pos + 4 > end:
            break
        attr, size = _ATTRIBUTE.unpack_from(data, pos)
        value = pos + 4
        if value + size > end:
            return None
        if attr == _USERNAME:
            colon = data.find(b":", value, value + size)
            if colon < 0:
                return None
            ufrag = data[value:colon].decode("latin-1")
        elif attr == _MESSAGE_INTEGRITY:
            if size != 20:
                return None
            integrity = pos
            break  # what follows is not authenticated (only FINGERPRINT may, and aioice checks it)
        pos = value + ((size + 3) & ~3)
    else:
        if pos < end:
            return None
    if ufrag is None:
        return None
    return ufrag, integrity


_XOR_36 = bytes(b ^ 0x36 for b in range(256))  # RFC 2104 ipad, as a translate() table
_XOR_5C = bytes(b ^ 0x5C for b in range(256))  # opad


class IntegrityKey:
    """HMAC-SHA1 under one ICE password (RFC 8489 §14.5), with the key schedule done once:
    RFC 2104's inner and outer hashes after the padded key are kept, so checking a request
    costs two SHA-1 continuations instead of a key setup each time (1.4 vs 2.2 µs with
    `hmac.digest` here): the largest part of what a forged request for a live ufrag costs."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, pwd: str) -> None:
        key = pwd.encode()
        if len(key) > 64:
            key = hashlib.sha1(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha1(key.translate(_XOR_36))
        self._outer = hashlib.sha1(key.translate(_XOR_5C))

    def sign(self, data: bytes) -> bytes:
        """HMAC-SHA1 of `data` under the password."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def matches(self, data: bytes, offset: int) -> bool:
        """Whether the MESSAGE-INTEGRITY at `offset` (from `peek_binding_request`) is the HMAC
        of the message before it, with the header's length counting up to the end of
        MESSAGE-INTEGRITY. No parsing."""
        if offset < 20 or offset + 24 > len(data):
            return False
        mac = self.sign(data[:2] + (offset + 4).to_bytes(2, "big") + data[4:offset])
        return hmac.compare_digest(mac, data[offset + 4 : offset + 24])


def parse_binding_request(data: bytes) -> BindingRequest:
    """Parse a STUN Binding request and split its USERNAME.

    Raises ValueError for anything that is not a well-formed Binding request (drop it) and
    StunError for a request we should answer with an error.
    """
    try:
        message = stun.parse_message(data)
    except ValueError:
        raise
    except Exception as exc:  # aioice raises struct.error on some truncated attributes
        raise ValueError(f"malformed STUN message: {exc}") from exc
    if message.message_method != stun.Method.BINDING:
        raise ValueError("STUN method is not Binding")
    if message.message_class == stun.Class.INDICATION:
        raise ValueError("STUN Binding indication (keepalive)")
    if message.message_class != stun.Class.REQUEST:
        raise ValueError("STUN Binding response is not expected by a lite agent")
    username = message.attributes.get("USERNAME")
    if not isinstance(username, str) or ":" not in username:
        raise StunError(400, "missing or malformed USERNAME")
    local_ufrag, _, remote_ufrag = username.partition(":")
    return BindingRequest(message, local_ufrag, remote_ufrag)


def check_binding_request(request: BindingRequest, local_pwd: str,
                          integrity_checked: bool = False) -> None:
    """Authenticate and validate a Binding request addressed to us (RFC 8445 §7.3);
    `integrity_checked`: the caller has verified MESSAGE-INTEGRITY already (`IntegrityKey`).

    Raises StunError with the code to answer with.
    """
    message = request.message
    if "MESSAGE-INTEGRITY" not in message.attributes:
        raise StunError(400, "missing MESSAGE-INTEGRITY")
    if not integrity_checked and not message.check_message_integrity(local_pwd.encode()):
        raise StunError(401, "MESSAGE-INTEGRITY does not match")
    if "FINGERPRINT" not in message.attributes:
        raise StunError(400, "missing FINGERPRINT")
    if "PRIORITY" not in message.attributes:
        raise StunError(400, "missing PRIORITY")
    # A lite agent is always controlled (RFC 8445 §6.1.1); a peer claiming to be controlled
    # as well is in a role conflict we cannot resolve by switching (§7.3.1.1).
    if "ICE-CONTROLLED" in message.attributes:
        raise StunError(487, "role conflict: a lite agent is always controlled")


def success_response(request: BindingRequest, addr: tuple[str, int], local_pwd: str,
                     key: IntegrityKey | None = None) -> bytes:
    """The Binding success response (RFC 8489 §7.3.1.1): XOR-MAPPED-ADDRESS, then
    MESSAGE-INTEGRITY under our password (`key`, if the caller keeps one) and FINGERPRINT
    (RFC 8445 §7.3). Built with struct: one is sent per check, for every peer every few
    seconds (consent, RFC 7675), and a general STUN encoder serializes the message thrice."""
    tid: bytes = request.message.transaction_id
    host, port = addr[0], addr[1]
    try:
        address = socket.inet_pton(socket.AF_INET, host)
        family = 1
        mask = _MAGIC_COOKIE_BYTES
    except OSError:
        address = socket.inet_pton(socket.AF_INET6, host.partition("%")[0])
        family = 2
        mask = _MAGIC_COOKIE_BYTES + tid
    xored = bytes(a ^ b for a, b in zip(address, mask, strict=True))
    mapped = _ATTRIBUTE.pack(_XOR_MAPPED_ADDRESS, 4 + len(xored)) + struct.pack(
        "!BBH", 0, family, port ^ (_MAGIC_COOKIE >> 16)) + xored
    # MESSAGE-INTEGRITY covers the header with the length up to its own end (§14.5).
    head = _HEADER.pack(_BINDING_SUCCESS, len(mapped) + 24, _MAGIC_COOKIE) + tid
    mac = (key.sign(head + mapped) if key is not None
           else hmac.digest(local_pwd.encode(), head + mapped, "sha1"))
    body = mapped + _ATTRIBUTE.pack(_MESSAGE_INTEGRITY, 20) + mac
    # FINGERPRINT: CRC-32 of all before it, the length counting it too, XOR 0x5354554E (§14.7).
    head = _HEADER.pack(_BINDING_SUCCESS, len(body) + 8, _MAGIC_COOKIE) + tid
    crc = (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
    return head + body + _ATTRIBUTE.pack(_FINGERPRINT, 4) + struct.pack("!I", crc)


def error_response(
    request: BindingRequest, code: int, reason: str, local_pwd: str | None
) -> bytes:
    response = stun.Message(
        message_method=stun.Method.BINDING,
        message_class=stun.Class.ERROR,
        transaction_id=request.message.transaction_id,
    )
    response.attributes["ERROR-CODE"] = (code, reason)
    if local_pwd is not None and code != 401:
        response.add_message_integrity(local_pwd.encode())
    else:
        response.add_fingerprint()
    return bytes(response)


def is_nomination(request: BindingRequest) -> bool:
    return "USE-CANDIDATE" in request.message.attributes
