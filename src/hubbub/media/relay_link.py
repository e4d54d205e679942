"""RelayLink: media between two hubbub nodes (or two workers of one) over their media ports.

One link per pair of nodes carries every relayed stream in both directions: RTP from an
origin to an edge, RTCP (NACK, PLI, RR, SR) both ways. It is plain SRTP with
AEAD_AES_128_GCM (RFC 7714), so relayed media is encrypted and authenticated on the network
and replays are refused (RFC 3711 §3.3.2), but there is no ICE or DTLS: both nodes know each
other's address from the cluster registry, and the keys come from an X25519 agreement
(RFC 7748) of the two nodes' registry keys through HKDF (RFC 5869), one key per direction.
Neither key ever travels.

RTP is routed by SSRC: the origin gives every relayed Track an SSRC unique on that origin,
so many streams share a link. RTCP is routed by the SSRC it is about (the first SR's sender,
or the media SSRC of feedback and report blocks).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hubbub.media.dtls import SrtpKeys
from hubbub.media.srtp import SrtpError, SrtpPair
from hubbub.media.transport import Address, SrtpPeer

if TYPE_CHECKING:
    from hubbub.media.udp import MediaPort

log = logging.getLogger(__name__)

PROFILE = "SRTP_PROFILE_AEAD_AES_128_GCM"
KEY_LENGTH = 28  # RFC 7714 §12: 16-byte master key + 12-byte master salt
_SSRC = struct.Struct("!I")
_RTCP_SR = 200

Route = Callable[[bytes], None]


class LinkKey:
    """This node's X25519 key pair for relay links; the public half goes into the registry."""

    def __init__(self, private: X25519PrivateKey | None = None) -> None:
        self._private = private or X25519PrivateKey.generate()
        self.public = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def srtp_keys(self, own_id: str, peer_id: str, peer_public: bytes) -> SrtpKeys:
        """Both directions' SRTP master keys for the link between `own_id` and `peer_id`; the
        peer derives the same two, swapped. ValueError for a malformed public key."""
        if len(peer_public) != 32:
            raise ValueError("an X25519 public key is 32 bytes")
        shared = self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        return SrtpKeys(
            profile=PROFILE,
            rx_key=_direction_key(shared, peer_id, own_id),
            tx_key=_direction_key(shared, own_id, peer_id),
        )


def _direction_key(shared: bytes, sender: str, receiver: str) -> bytes:
    info = f"hubbub relay v1 {sender} -> {receiver}".encode()
    return HKDF(hashes.SHA256(), KEY_LENGTH, salt=None, info=info).derive(shared)


class RelayLink(SrtpPeer):
    """The SRTP association with one other node's media port (see the module docstring)."""

    def __init__(self, port: MediaPort, addr: Address, keys: SrtpKeys, peer_id: str) -> None:
        super().__init__(port)
        self.peer_id = peer_id
        self.closed = False
        self.rtp_routes: dict[int, Route] = {}
        self.rtcp_routes: dict[int, Route] = {}
        self.unrouted = 0
        self._srtp = SrtpPair(keys, port.config.srtp_replay_window)
        port.bind_address(self, addr)
        self._set_addr(addr)

    def receive_srtp(self, data: bytes) -> None:
        """Hot path on an edge: one relayed packet, decrypted and handed to its Source."""
        srtp = self._srtp
        if srtp is None:
            return
        stats = self._stats
        stats.bytes_in += len(data)
        try:
            if 191 < data[1] < 224:  # RFC 5761 §4
                plain = srtp.unprotect_rtcp(data)
                stats.rtcp_in += 1
                offset = 4 if plain[1] == _RTCP_SR else 8
                routes = self.rtcp_routes
            else:
                plain = srtp.unprotect(data)
                stats.rtp_in += 1
                offset = 8
                routes = self.rtp_routes
        except SrtpError:
            stats.srtp_errors += 1
            return
        if len(plain) < offset + 4:
            self.unrouted += 1
            return
        route = routes.get(_SSRC.unpack_from(plain, offset)[0])
        if route is None:
            self.unrouted += 1
            return
        route(plain)

    def close(self, reason: str = "closed") -> None:
        if self.closed:
            return
        self.closed = True
        self._srtp = None
        self.rtp_routes.clear()
        self.rtcp_routes.clear()
        if self.c_target is not None:
            self.c_target.clear()
        self.port.unregister(self)
        log.info("relay link to %s closed: %s", self.peer_id, reason)
