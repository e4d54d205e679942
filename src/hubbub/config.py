"""Every limit and timeout of a hubbub node, in one place.

Defaults are chosen for a single node serving browsers; each field says why.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass
class MediaConfig:
    """The media plane (media/)."""

    host: str = "0.0.0.0"
    """Address the UDP media port binds to."""

    port: int = 10000
    """The one UDP port of the node: all peers share it (RFC 7983 demux, ICE-lite)."""

    announced_ips: list[str] = field(default_factory=list)
    """Addresses written as host candidates; empty = derived from `host`."""

    consent_timeout: float = 30.0
    """RFC 7675 §5.1: a peer whose consent is not refreshed for 30 s is dropped."""

    dtls_timeout: float = 15.0
    """A transport that has not finished ICE + DTLS by then is failed."""

    dtls_mtu: int = 1200
    """Largest DTLS datagram we send (handshake flights are split at record boundaries)."""

    srtp_replay_window: int = 1024
    """libsrtp replay window, packets (RFC 3711 §3.3.2); 1024 tolerates reordering on video."""

    allowed_peer_networks: list[str] = field(default_factory=list)
    """If set, STUN from other networks is ignored (tests keep everything on 127.0.0.0/8)."""

    def peer_allowed(self, ip: str) -> bool:
        if not self.allowed_peer_networks:
            return True
        addr = ipaddress.ip_address(ip)
        return any(addr in ipaddress.ip_network(n) for n in self.allowed_peer_networks)


@dataclass
class ControlConfig:
    """The control plane (control/)."""

    host: str = "0.0.0.0"
    http_port: int = 8080
    public_url: str = ""
    """Base URL clients reach this node at (for Director replies); empty = from the request."""

    allow_any_stream: bool = False
    """Development only: accept publish/view on any stream without a token."""

    max_message_bytes: int = 256 * 1024
    """Largest WebSocket text frame accepted; an SDP is a few KiB."""

    viewercount_interval: float = 1.0
    """`viewercount` events are coalesced to at most one per interval (PROTOCOL.md)."""

    media_timeout: float = 10.0
    """A publisher that sends no RTP for this long is treated as gone (`inactive`)."""


@dataclass
class Config:
    media: MediaConfig = field(default_factory=MediaConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    log_level: str = "info"
