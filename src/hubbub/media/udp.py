"""MediaPort: the node's single UDP port, shared by every peer.

Datagrams are told apart by their first byte (RFC 7983 §7): 0–3 STUN, 20–63 DTLS,
128–191 RTP/RTCP. A peer is found by the STUN USERNAME before ICE and by its address after
(as mediasoup's WebRtcServer does), so one port serves any number of transports.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hubbub.config import MediaConfig
from hubbub.media import ice
from hubbub.media.dtls import Certificate
from hubbub.media.srtp import PROTECT_FN
from hubbub.media.transport import (
    Address,
    RemoteParameters,
    SrtpPeer,
    TransportState,
    WebRtcTransport,
)

log = logging.getLogger(__name__)

_protect_and_send: Callable[..., tuple[int, int, list[tuple[bytes, int]]]] | None
try:  # optional C batch sender (src/hubbub/_speedups.c); pure Python otherwise
    from hubbub._speedups import protect_and_send as _protect_and_send
except ImportError:  # pragma: no cover - depends on the build
    _protect_and_send = None

SPEEDUPS_AVAILABLE = _protect_and_send is not None and PROTECT_FN != 0
"""True when the C batch sender can be used (HUBBUB_NO_SPEEDUPS=1 turns it off per port)."""

# (srtp_t address, plain RTP, sockaddr bytes, SrtpPair kept alive, address) per queued packet
Queued = tuple[int, bytes, bytes, Any, tuple[str, int]]


def forward_path(port: MediaPort | None = None) -> str:
    """Which forward path runs: the C fan-out or pure Python, and why (for the startup log)."""
    if os.environ.get("HUBBUB_NO_SPEEDUPS"):
        return "pure Python (HUBBUB_NO_SPEEDUPS is set)"
    if _protect_and_send is None:
        return "pure Python (hubbub._speedups is not built: pip install -e . builds it)"
    if PROTECT_FN == 0:
        return "pure Python (pylibsrtp exposes no srtp_protect)"
    if port is not None and port.send_fd < 0:
        return "pure Python (no socket fd)"
    return "C (rewrite + cache + libsrtp protect + sendmmsg per fan-out)"


@dataclass
class PortStats:
    datagrams: int = 0
    dropped_unknown_peer: int = 0
    dropped_garbage: int = 0
    stun_errors: int = 0
    batches: int = 0  # C batch sends (one per incoming packet that fanned out)
    batch_errors: int = 0  # packets the C sender could not protect


class MediaPort(asyncio.DatagramProtocol):
    def __init__(self, config: MediaConfig | None = None) -> None:
        self.config = config or MediaConfig()
        self.certificate = Certificate()
        self.certificate_context = self.certificate.context()
        self.stats = PortStats()
        self._by_ufrag: dict[str, WebRtcTransport] = {}
        self._by_addr: dict[Address, SrtpPeer] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.local_addr: Address = ("0.0.0.0", 0)
        self._logged_drops = 0
        # While an incoming RTP packet is handled, WebRtcTransport.send_rtp queues its
        # fan-out here (`batch` is then a list); it is protected and sent in one C call.
        self.batching = SPEEDUPS_AVAILABLE and not os.environ.get("HUBBUB_NO_SPEEDUPS")
        self.batch: list[Queued] | None = None
        self._fd = -1

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(self.config.host, self.config.port)
        )
        self.local_addr = udp.get_extra_info("sockname")[:2]
        self._sweeper = loop.create_task(self._sweep())
        log.info("media port %s:%d, forward path: %s", *self.local_addr, forward_path(self))

    async def stop(self) -> None:
        for transport in list(self._by_ufrag.values()):
            transport.close("server shutting down")
        for peer in list(self._by_addr.values()):  # relay links
            peer.close("server shutting down")
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._udp is not None:
            self._udp.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._udp = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1
        if self._fd < 0:
            self.batching = False

    @property
    def send_fd(self) -> int:
        """The socket for the C fan-out's sendmmsg, -1 when the pure-Python path is in use
        (also while `sendto` is replaced on this instance: a loss shim or capture must see
        every datagram)."""
        return self._fd if self.batching and "sendto" not in self.__dict__ else -1

    def candidates(self) -> list[tuple[str, int]]:
        port = self.local_addr[1]
        ips = self.config.announced_ips or [
            self.local_addr[0] if self.local_addr[0] not in ("0.0.0.0", "::") else "127.0.0.1"
        ]
        return [(ip, port) for ip in ips]

    # --- registry ------------------------------------------------------------------------

    def create_transport(self, remote: RemoteParameters) -> WebRtcTransport:
        transport = WebRtcTransport(self, remote)
        self._by_ufrag[transport.local_ufrag] = transport
        return transport

    def bind_address(self, transport: SrtpPeer, addr: Address) -> None:
        """Route SRTP and DTLS from `addr` to `transport` (a peer connection after its ICE
        check, or a relay link to another node)."""
        if transport.addr is not None and self._by_addr.get(transport.addr) is transport:
            del self._by_addr[transport.addr]
        other = self._by_addr.get(addr)
        if other is not None and other is not transport:
            # The same 4-tuple now belongs to a new session (client reused its port).
            other.close("address taken over by a new session")
        self._by_addr[addr] = transport

    def unregister(self, transport: SrtpPeer) -> None:
        if isinstance(transport, WebRtcTransport):
            self._by_ufrag.pop(transport.local_ufrag, None)
        if transport.addr is not None and self._by_addr.get(transport.addr) is transport:
            del self._by_addr[transport.addr]

    @property
    def transports(self) -> list[WebRtcTransport]:
        return list(self._by_ufrag.values())

    # --- I/O -----------------------------------------------------------------------------

    def sendto(self, data: bytes, addr: Address) -> None:
        udp = self._udp
        if udp is not None:
            udp.sendto(data, addr)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if len(data) < 2:
            self.stats.dropped_garbage += 1
            return
        addr = addr[:2]
        first = data[0]
        if 127 < first < 192:  # RTP/RTCP first: this is the hot path
            transport = self._by_addr.get(addr)
            if transport is None:
                self.stats.dropped_unknown_peer += 1
            elif self.batching and "sendto" not in self.__dict__:
                batch: list[Queued] = []
                self.batch = batch
                try:
                    transport.receive_srtp(data)
                finally:
                    self.batch = None
                if batch:
                    self._send_batch(batch)
            else:
                transport.receive_srtp(data)
        elif first < 4:
            self._on_stun(data, addr)
        elif 19 < first < 64:
            transport = self._by_addr.get(addr)
            if transport is not None:
                transport.receive_dtls(data)
            else:
                self.stats.dropped_unknown_peer += 1
        else:
            self.stats.dropped_garbage += 1

    def _send_batch(self, batch: list[Queued]) -> None:
        """SRTP-protect and sendmmsg the queued fan-out in C; what the kernel refused
        (socket buffer full) goes through the event loop's transport instead."""
        assert _protect_and_send is not None
        self.stats.batches += 1
        try:
            _sent, errors, leftovers = _protect_and_send(self._fd, PROTECT_FN, batch)
        except OSError:  # pragma: no cover - the socket went away under us
            return
        if errors:
            self.stats.batch_errors += errors
        udp = self._udp
        if leftovers and udp is not None:
            for packet, index in leftovers:
                udp.sendto(packet, batch[index][4])

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (peer went away) arrive here on Linux; the consent timer handles them.
        pass

    def _on_stun(self, data: bytes, addr: Address) -> None:
        if not self.config.peer_allowed(addr[0]):
            self.stats.dropped_unknown_peer += 1
            return
        try:
            request = ice.parse_binding_request(data)
        except ice.StunError:
            self.stats.stun_errors += 1
            return
        except ValueError:
            self.stats.dropped_garbage += 1
            return
        transport = self._by_ufrag.get(request.local_ufrag)
        if transport is None:
            # Unknown ufrag: no session to answer for; staying silent avoids reflection.
            self.stats.dropped_unknown_peer += 1
            return
        try:
            ice.check_binding_request(request, transport.local_pwd)
        except ice.StunError as exc:
            self.stats.stun_errors += 1
            self._log_drop("STUN request from %s refused: %s", addr, exc)
            pwd = transport.local_pwd if exc.code != 401 else None
            self.sendto(ice.error_response(request, exc.code, exc.reason, pwd), addr)
            return
        transport.ice_checked(addr, ice.is_nomination(request))
        self.sendto(ice.success_response(request, addr, transport.local_pwd), addr)

    def _log_drop(self, msg: str, *args: object) -> None:
        # Bad input is logged, but a flood must not flood the log.
        self._logged_drops += 1
        if self._logged_drops <= 20 or self._logged_drops % 1000 == 0:
            log.info(msg, *args)

    async def _sweep(self) -> None:
        """Consent freshness (RFC 7675 §5.1) and handshake deadlines, once a second."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for transport in list(self._by_ufrag.values()):
                if now - transport.last_consent > self.config.consent_timeout:
                    transport.fail("ICE consent expired")
                elif (
                    transport.state is not TransportState.CONNECTED
                    and now - transport.created > self.config.dtls_timeout
                ):
                    transport.fail("ICE/DTLS did not complete in time")
