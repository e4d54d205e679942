"""Controlling-side ICE connectivity checks against an ICE-lite server (RFC 8445 §7.2).

The server is lite, so it never checks us: we send Binding requests to its one host candidate,
nominate that pair at once (aggressive nomination is fine towards a lite agent, §8.1.1 only
requires USE-CANDIDATE on the pair we use) and keep consent fresh (RFC 7675 §5.1) by repeating
the request every few seconds.
"""

from __future__ import annotations

import secrets

from aioice import stun

# RFC 8445 §5.1.2.1: priority = 2^24 * type pref + 2^8 * local pref + (256 - component id);
# host candidate (126), one local address (65535), component 1 (RTP).
HOST_PRIORITY = (126 << 24) | (65535 << 8) | 255


class IceClient:
    """Builds Binding requests and recognises their authenticated success responses."""

    def __init__(
        self, local_ufrag: str, remote_ufrag: str, remote_pwd: str, tie_breaker: int | None = None
    ) -> None:
        # RFC 8445 §7.2.2: USERNAME is "remote-ufrag:local-ufrag", signed with the remote pwd.
        self.username = f"{remote_ufrag}:{local_ufrag}"
        self._key = remote_pwd.encode()
        self.tie_breaker = tie_breaker if tie_breaker is not None else secrets.randbits(64)
        self._pending: set[bytes] = set()
        self.succeeded = False

    def request(self, nominate: bool = True) -> bytes:
        """A new Binding request; its transaction id is remembered until answered."""
        message = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
        message.attributes["USERNAME"] = self.username
        message.attributes["PRIORITY"] = HOST_PRIORITY
        message.attributes["ICE-CONTROLLING"] = self.tie_breaker
        if nominate:
            message.attributes["USE-CANDIDATE"] = None
        message.add_message_integrity(self._key)  # also adds FINGERPRINT (RFC 8489 §14.7)
        if len(self._pending) > 32:  # unanswered consent checks must not pile up
            self._pending.clear()
        self._pending.add(message.transaction_id)
        return bytes(message)

    def handle(self, data: bytes) -> bool:
        """Feed a STUN datagram; True when it is an authenticated success response to one of
        our requests (RFC 8445 §7.2.5.2). Anything else is ignored."""
        try:
            message = stun.parse_message(data)
        except Exception:  # aioice raises ValueError or struct.error on garbage
            return False
        if message.transaction_id not in self._pending:
            return False
        if message.message_class != stun.Class.RESPONSE:
            self._pending.discard(message.transaction_id)
            return False
        if not message.check_message_integrity(self._key):
            return False
        self._pending.discard(message.transaction_id)
        self.succeeded = True
        return True
