"""Process-wide adjustments to aioice/aiortc that the hubbub client needs.

All are idempotent and affect every RTCPeerConnection in the process.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import aioice.ice
from aiortc.codecs.opus import OpusDecoder
from aiortc.rtcdtlstransport import RtpRouter

_original_route_rtp = RtpRouter.route_rtp
_original_opus_decode = OpusDecoder.decode


def _loopback_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


def _loopback6_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    return ["::1"] if use_ipv6 else []


def use_loopback_only(ipv6: bool = False) -> None:
    """Gather only a 127.0.0.1 host candidate (`ipv6`: only ::1).

    aioice skips loopback addresses when it lists host addresses, and the hubbub server answers
    STUN only from loopback in tests, so without this an aiortc client on the same machine never
    connects.
    """
    aioice.ice.get_host_addresses = _loopback6_addresses if ipv6 else _loopback_addresses


def is_ipv6_url(url: str) -> bool:
    """True when the URL's host is an IPv6 literal ([::1])."""
    return ":" in (urlsplit(url).hostname or "")


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is ``localhost`` or a loopback IP address."""
    host = urlsplit(url).hostname
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _route_rtp_by_mid(self: Any, packet: Any) -> Any:
    # RFC 8843 §9.2: a BUNDLE receiver routes by the MID header extension first. aiortc's router
    # fills mid_table but routes only by SSRC / payload type, so several audio m-lines sharing one
    # payload type and announced without a=ssrc (multiplexed audio, projected tracks) get dropped.
    mid = packet.extensions.mid
    if mid is not None:
        receiver = self.mid_table.get(mid)
        if receiver is not None:
            self.ssrc_table[packet.ssrc] = receiver  # so SR/BYE for this SSRC reach it too
            return receiver
    return _original_route_rtp(self, packet)


def use_mid_routing() -> None:
    """Route incoming RTP by its MID header extension, as browsers do."""
    RtpRouter.route_rtp = _route_rtp_by_mid  # type: ignore[method-assign]


def _decode_opus_unless_empty(self: Any, encoded_frame: Any) -> Any:
    # RFC 3550 §5.1 allows padding-only packets, and an SFU forwards them (hubbub does, so a
    # sender's probes leave no sequence holes). aiortc hands their empty payload to PyAV, which
    # takes an empty packet as "flush": the decoder then answers EOF to every later frame and the
    # track goes silent for good. An empty Opus frame carries nothing: decode none.
    if not encoded_frame.data:
        return []
    return _original_opus_decode(self, encoded_frame)


def use_empty_frame_guard() -> None:
    """Skip empty Opus frames instead of letting them end aiortc's decoder."""
    OpusDecoder.decode = _decode_opus_unless_empty  # type: ignore[method-assign]
