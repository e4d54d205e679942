"""MediaPort: the node's single UDP port, shared by every peer.

Datagrams are told apart by their first byte (RFC 7983 §7): 0–3 STUN, 20–63 DTLS,
128–191 RTP/RTCP. A peer is found by the STUN USERNAME before ICE and by its address after
(as mediasoup's WebRtcServer does), so one port serves any number of transports.

Anyone can send to this port, so what a datagram costs before it is known to be wanted must
be small (issue 13). RTP/RTCP is tested first and costs one dict lookup for an unknown sender.
STUN is looked at in this order, cheapest first: the header and attribute list
(`ice.peek_binding_request`, no parsing), the ufrag (unknown: dropped silently), the source
address's STUN budget, the MESSAGE-INTEGRITY (one HMAC; wrong or missing: dropped silently,
see `_on_stun`), and only then the full parse and the answer. DTLS from an address no ICE
check bound is dropped on the same dict lookup as RTP; a bound address has a DTLS budget
before OpenSSL sees the record. Each drop is counted in `PortStats` and logged once per cause
and interval (`log_drop`), then summed up in one line per interval.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hubbub.config import MediaConfig
from hubbub.media import ice
from hubbub.media.budget import AddressBudget
from hubbub.media.dtls import Certificate
from hubbub.media.srtp import PROTECT_FN
from hubbub.media.tcp import IceTcpServer, TcpLink, TcpStats
from hubbub.media.transport import (
    Address,
    RemoteParameters,
    SrtpPeer,
    TransportState,
    TransportStats,
    WebRtcTransport,
)

log = logging.getLogger(__name__)


def bind_hosts(host: str) -> list[str]:
    """The addresses to bind for `MediaConfig.host`: "::" means both families, IPv4 first
    (the C sender's socket; IPv6 peers are sent to through the event loop)."""
    return ["0.0.0.0", "::"] if host == "::" else [host]


def _host_port(addr: Address) -> str:
    return f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"


def _path_name(transport: WebRtcTransport) -> str:
    if transport.addr is None:
        return "the peer"
    return f"{'tcp' if transport.link is not None else 'udp'} {_host_port(transport.addr)}"


def _rmem_max() -> str:
    try:
        with open("/proc/sys/net/core/rmem_max") as f:
            return f.read().strip()
    except OSError:
        return "?"


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


DROP_LOG_INTERVAL = 60.0
"""Seconds between the media port's drop summaries (a cause's first drop in an interval is
logged with its address, the rest are counted)."""


@dataclass
class PortStats:
    dropped_unknown_peer: int = 0  # RTP/RTCP or DTLS from an address no ICE check bound
    dropped_garbage: int = 0  # too short, first byte of no protocol, not a Binding request
    stun_errors: int = 0  # authenticated Binding requests refused with an error answer
    stun_unknown_ufrag: int = 0  # Binding requests for no transport of ours: no answer
    stun_not_allowed: int = 0  # from outside MediaConfig.allowed_peer_networks
    stun_over_budget: int = 0  # over the source address's STUN budget: no answer
    stun_bad_integrity: int = 0  # MESSAGE-INTEGRITY wrong or missing: no answer
    dtls_over_budget: int = 0  # over the bound address's DTLS budget: not given to OpenSSL
    budget_evictions: int = 0  # addresses forgotten because a budget table was full
    stun_indications: int = 0  # Binding Indications (keepalives): nothing to answer
    batches: int = 0  # C batch sends (one per incoming packet that fanned out)
    batch_errors: int = 0  # packets the C sender could not protect


_DROP_COUNTERS = ("dropped_unknown_peer", "dropped_garbage", "stun_errors", "stun_unknown_ufrag",
                  "stun_not_allowed", "stun_over_budget", "stun_bad_integrity",
                  "dtls_over_budget")


_TCP_DROP_COUNTERS = ("refused_over_cap", "closed_unchecked", "closed_second_link",
                      "send_dropped")

# What /metrics reports as hubbub_dropped_datagrams{reason} (control/metrics/collector.py).
DROP_COUNTERS = _DROP_COUNTERS
TCP_DROP_COUNTERS = _TCP_DROP_COUNTERS


def _add_traffic(total: TransportStats, more: TransportStats) -> None:
    total.rtp_in += more.rtp_in
    total.rtcp_in += more.rtcp_in
    total.rtp_out += more.rtp_out
    total.rtcp_out += more.rtcp_out
    total.srtp_errors += more.srtp_errors
    total.bytes_in += more.bytes_in
    total.bytes_out += more.bytes_out


class MediaPort(asyncio.DatagramProtocol):
    def __init__(self, config: MediaConfig | None = None) -> None:
        self.config = config or MediaConfig()
        self.certificate = Certificate()
        self.certificate_context = self.certificate.context()
        self.stats = PortStats()
        self._retired = TransportStats()  # counters of peers gone (`traffic`)
        self._by_ufrag: dict[str, WebRtcTransport] = {}
        self._by_addr: dict[Address, SrtpPeer] = {}
        self._keys: dict[str, ice.IntegrityKey] = {}  # by ufrag, made at the first check
        # One UDP socket per address family ("::" binds both); `_udp` is the one the C batch
        # sender uses (IPv4 when there is one), the other family goes through the event loop.
        self._udp: asyncio.DatagramTransport | None = None
        self._udp4: asyncio.DatagramTransport | None = None
        self._udp6: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self.local_addr: Address = ("0.0.0.0", 0)
        self.local_addrs: list[Address] = []
        self.tcp: IceTcpServer | None = None
        self.recv_buffer = 0  # SO_RCVBUF as the kernel reports it once started
        cfg = self.config
        self.stun_budget = AddressBudget(cfg.stun_rate, cfg.stun_burst, cfg.budget_addresses)
        self.dtls_budget = AddressBudget(cfg.dtls_rate, cfg.dtls_burst, cfg.budget_addresses)
        self._logged_causes: set[str] = set()  # causes logged in this interval
        self._reported = PortStats()  # the counters at the last drop summary
        self._reported_tcp = TcpStats()
        self._next_report = 0.0
        # While an incoming RTP packet is handled, WebRtcTransport.send_rtp queues its
        # fan-out here (`batch` is then a list); it is protected and sent in one C call.
        self.batching = SPEEDUPS_AVAILABLE and not os.environ.get("HUBBUB_NO_SPEEDUPS")
        self.batch: list[Queued] | None = None
        self._fd = -1
        self._batch_v6 = False

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        hosts = bind_hosts(self.config.host)
        port = self.config.port
        try:
            for host in hosts:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                if family == socket.AF_INET6:
                    # IPv4 has its own socket: no v4-mapped addresses on this one.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    sock.bind((host, port))
                except OSError:
                    sock.close()
                    raise
                udp, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
                name = udp.get_extra_info("sockname")
                self.local_addrs.append((name[0], name[1]))
                port = name[1]  # port 0: the second family takes the number the first got
                self._set_recv_buffer(sock)
            self.local_addr = self.local_addrs[0]
            tcp_port = self.config.tcp_port
            if tcp_port is None or tcp_port >= 0:
                self.tcp = IceTcpServer(self)
                await self.tcp.start(hosts, port if tcp_port is None else tcp_port)
        except BaseException:
            await self.stop()
            raise
        self._next_report = time.monotonic() + DROP_LOG_INTERVAL
        self._sweeper = loop.create_task(self._sweep())
        listening = self.listening()
        tcp = f", ICE-TCP {', '.join(listening['tcp'])}" if listening["tcp"] else ", no ICE-TCP"
        log.info("media port udp %s%s, forward path: %s", ", ".join(listening["udp"]), tcp,
                 forward_path(self))

    def _set_recv_buffer(self, sock: Any) -> None:
        """Ask for `MediaConfig.recv_buffer` bytes of socket receive buffer and log what the
        kernel granted. Linux caps SO_RCVBUF at net.core.rmem_max (212,992 by default);
        SO_RCVBUFFORCE passes the cap with CAP_NET_ADMIN (root), so it is tried when
        SO_RCVBUF fell short. getsockopt reports twice the size asked for: the kernel
        counts its per-datagram bookkeeping (skb truesize) against the same figure."""
        if sock is None:
            return
        wanted = self.config.recv_buffer
        try:
            before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if wanted <= 0:
                self.recv_buffer = before
                return
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
            got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            forced = False
            force = getattr(socket, "SO_RCVBUFFORCE", None)
            if got < 2 * wanted and force is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, force, wanted)
                    got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                    forced = True
                except OSError:  # no CAP_NET_ADMIN
                    pass
        except OSError as exc:  # pragma: no cover - a socket without these options
            log.warning("media port: could not set the receive buffer: %s", exc)
            return
        self.recv_buffer = got
        if got < 2 * wanted:
            log.warning(
                "media port receive buffer: %d bytes of the %d asked for (the kernel caps it at "
                "net.core.rmem_max=%s; raise it with sysctl, or run with CAP_NET_ADMIN)",
                got // 2, wanted, _rmem_max())
        else:
            log.info("media port receive buffer: %d bytes (kernel accounting %d)%s",
                     got // 2, got, " via SO_RCVBUFFORCE" if forced else "")

    async def stop(self) -> None:
        for transport in list(self._by_ufrag.values()):
            transport.close("server shutting down")
        for peer in list(self._by_addr.values()):  # relay links
            peer.close("server shutting down")
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.tcp is not None:
            await self.tcp.stop()
        for udp in (self._udp4, self._udp6):
            if udp is not None:
                udp.close()
        self._report_drops(closing=True)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        udp: asyncio.DatagramTransport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_INET6:
            self._udp6 = udp
        else:
            self._udp4 = udp
        if self._udp is None:  # the first socket, IPv4 if there is one (`bind_hosts`)
            self._udp = udp
            self._fd = sock.fileno() if sock is not None else -1
            self._batch_v6 = sock is not None and sock.family == socket.AF_INET6
            if self._fd < 0:
                self.batching = False

    @property
    def send_fd(self) -> int:
        """The socket for the C fan-out's sendmmsg, -1 when the pure-Python path is in use
        (also while `sendto` is replaced on this instance: a loss shim or capture must see
        every datagram)."""
        return self._fd if self.batching and "sendto" not in self.__dict__ else -1

    def batches_to(self, host: str) -> bool:
        """Whether the C sender's socket reaches `host` (the same address family)."""
        return (":" in host) == self._batch_v6

    def candidates(self) -> list[tuple[str, int]]:
        """UDP host candidates: the announced addresses, else the bound ones (the loopback
        addresses when bound to all interfaces: this machine only)."""
        return [(ip, self.local_addr[1]) for ip in self.candidate_ips()]

    def tcp_candidates(self) -> list[tuple[str, int]]:
        """ICE-TCP passive candidates (RFC 6544), on the same addresses as UDP."""
        if self.tcp is None or not self.tcp.local_addrs:
            return []
        port = self.tcp.local_addrs[0][1]
        return [(ip, port) for ip in self.candidate_ips()]

    def candidate_ips(self) -> list[str]:
        if self.config.announced_ips:
            return list(self.config.announced_ips)
        ips = []
        for host, _ in self.local_addrs or [self.local_addr]:
            if host == "0.0.0.0":
                ips.append("127.0.0.1")
            elif host == "::":
                ips.append("::1")
            else:
                ips.append(host)
        return ips

    def listening(self) -> dict[str, list[str]]:
        """What /healthz reports: the addresses each media socket is bound to."""
        return {
            "udp": [_host_port(a) for a in self.local_addrs],
            "tcp": [_host_port(a) for a in self.tcp.local_addrs] if self.tcp is not None else [],
        }

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

    def unbind_address(self, transport: SrtpPeer) -> None:
        """No more UDP from the transport's address for it (its path moved to ICE-TCP)."""
        if transport.addr is not None and self._by_addr.get(transport.addr) is transport:
            del self._by_addr[transport.addr]

    def unregister(self, transport: SrtpPeer) -> None:
        if isinstance(transport, WebRtcTransport):
            self._by_ufrag.pop(transport.local_ufrag, None)
            self._keys.pop(transport.local_ufrag, None)
        self.unbind_address(transport)
        # Called once per peer (its close is guarded): keep its counts for `traffic`.
        _add_traffic(self._retired, transport.stats)

    def traffic(self) -> TransportStats:
        """SRTP/SRTCP counters of every peer connection and relay link since the start (live
        ones plus those gone), read at scrape time (control/metrics.py)."""
        total = dataclasses.replace(self._retired, extra={})
        peers: dict[int, SrtpPeer] = {id(t): t for t in self._by_ufrag.values()}
        for peer in self._by_addr.values():
            peers.setdefault(id(peer), peer)
        for peer in peers.values():
            _add_traffic(total, peer.stats)
        return total

    @property
    def transports(self) -> list[WebRtcTransport]:
        return list(self._by_ufrag.values())

    # --- I/O -----------------------------------------------------------------------------

    def sendto(self, data: bytes, addr: Address) -> None:
        udp = self._udp6 if ":" in addr[0] else self._udp4
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
                if "unknown_peer" not in self._logged_causes:  # (no call per junk datagram)
                    self.log_drop("unknown_peer", "RTP/RTCP from %s, an address no ICE "
                                  "check bound: dropped", addr)
            elif self.batching and "sendto" not in self.__dict__:
                self._receive_batched(transport, data)
            else:
                transport.receive_srtp(data)
        elif first < 4:
            self._on_stun(data, addr)
        elif 19 < first < 64:
            transport = self._by_addr.get(addr)
            if transport is None:
                self.stats.dropped_unknown_peer += 1
                if "unknown_peer_dtls" not in self._logged_causes:
                    self.log_drop("unknown_peer_dtls", "DTLS from %s, an address no ICE "
                                  "check bound: dropped", addr)
            elif self.dtls_budget.take(addr):
                transport.receive_dtls(data)
            else:
                self.stats.dtls_over_budget += 1
                self.log_drop("dtls_over_budget", "DTLS from %s over its budget: dropped",
                              addr)
        else:
            self.stats.dropped_garbage += 1

    def _receive_batched(self, transport: SrtpPeer, data: bytes) -> None:
        """Receive with the fan-out queued for the C sender, then send it in one call."""
        batch: list[Queued] = []
        self.batch = batch
        try:
            transport.receive_srtp(data)
        finally:
            self.batch = None
        if batch:
            self._send_batch(batch)

    def receive_on_link(self, data: bytes, link: TcpLink) -> None:
        """A message off an ICE-TCP connection (RFC 4571 frame): demultiplexed as a datagram
        is, but it belongs to the connection's transport, once a check has bound it."""
        if not data:
            self.stats.dropped_garbage += 1
            return
        first = data[0]
        transport = link.transport
        if first < 4:
            self._on_stun(data, link.addr, link)
        elif transport is None:
            # Nothing but STUN before a check succeeded on the connection: it is no
            # peer of ours yet (and DTLS or SRTP could only be junk or an attack).
            if self.tcp is not None:
                self.tcp.stats.closed_unchecked += 1
            self.log_drop("tcp_before_check", "ICE-TCP from %s sent media before an "
                          "authenticated STUN check: closed", link.addr)
            link.close("media before an ICE check")
        elif 127 < first < 192:
            if self.batching and "sendto" not in self.__dict__:
                self._receive_batched(transport, data)
            else:
                transport.receive_srtp(data)
        elif 19 < first < 64:
            if self.dtls_budget.take(link.addr):
                transport.receive_dtls(data)
            else:
                self.stats.dtls_over_budget += 1
                self.log_drop("dtls_over_budget", "DTLS from %s over its budget: dropped",
                              link.addr)
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

    def _on_stun(self, data: bytes, addr: Address, link: TcpLink | None = None) -> None:
        """A STUN datagram (or an ICE-TCP message on `link`), checked cheapest first (module
        docstring).

        Nothing that fails before the MESSAGE-INTEGRITY check is answered: an unknown ufrag,
        an address over its budget, a wrong or missing MESSAGE-INTEGRITY. RFC 8489 §9.1.3
        asks for a 400/401 answer there; we discard silently, as ICE agents commonly do for
        an unknown ufrag, because an answer is work and a datagram towards an address anyone
        can forge, and because it helps no legitimate client: only the peer that received
        our ufrag in its SDP (or someone who read it) can send a request for a live ufrag,
        and libwebrtc treats a 401 to a connectivity check as "recoverable, retry", the same
        as no answer. Requests that pass the MESSAGE-INTEGRITY check and still are wrong
        (no FINGERPRINT or PRIORITY, a role conflict) are answered as before.
        """
        peeked = ice.peek_binding_request(data)
        if peeked is None:
            if ice.is_binding_indication(data):
                self.stats.stun_indications += 1
            else:
                self.stats.dropped_garbage += 1
            return
        ufrag, integrity = peeked
        transport = self._by_ufrag.get(ufrag)
        if transport is None:
            self.stats.stun_unknown_ufrag += 1
            self.log_drop("stun_unknown_ufrag", "STUN from %s for an unknown ufrag: dropped",
                          addr)
            return
        if not self.config.peer_allowed(addr[0]):
            self.stats.stun_not_allowed += 1
            self.log_drop("stun_not_allowed",
                          "STUN from %s outside the allowed networks: dropped", addr)
            return
        if not self.stun_budget.take(addr):
            self.stats.stun_over_budget += 1
            self.log_drop("stun_over_budget", "STUN from %s over its budget: dropped", addr)
            return
        key = self._keys.get(ufrag)
        if key is None:
            key = self._keys[ufrag] = ice.IntegrityKey(transport.local_pwd)
        if not integrity or not key.matches(data, integrity):
            self.stats.stun_bad_integrity += 1
            self.log_drop("stun_bad_integrity", "STUN from %s with a wrong or missing "
                          "MESSAGE-INTEGRITY for a live ufrag: dropped", addr)
            return
        # Authenticated: now the full parse (FINGERPRINT, PRIORITY, role) and an answer.
        try:
            request = ice.parse_binding_request(data)
        except ValueError:  # StunError too: the peek found a USERNAME with a colon
            self.stats.dropped_garbage += 1
            self.log_drop("stun_malformed", "malformed STUN from %s: dropped", addr)
            return
        try:
            ice.check_binding_request(request, transport.local_pwd, integrity_checked=True)
        except ice.StunError as exc:
            self.stats.stun_errors += 1
            self.log_drop("stun_refused", "STUN request from %s refused: %s", addr, exc)
            answer = ice.error_response(request, exc.code, exc.reason, transport.local_pwd)
            if link is None:
                self.sendto(answer, addr)
            else:
                link.send(answer)
            return
        if link is not None and not self._bind_link(link, transport):
            return
        transport.ice_checked(addr, ice.is_nomination(request), link)
        answer = ice.success_response(request, addr, transport.local_pwd, key)
        if link is None:
            self.sendto(answer, addr)
        else:
            link.send(answer)

    def _bind_link(self, link: TcpLink, transport: WebRtcTransport) -> bool:
        """An ICE-TCP connection carries one peer, and a peer has one connection (the first
        one checked, while it is open)."""
        if link.transport is transport:
            return True
        tcp = self.tcp
        if link.transport is not None:  # a check for another peer on a bound connection
            self.log_drop("tcp_other_peer", "ICE-TCP from %s: a check for another peer on "
                          "a bound connection: closed", link.addr)
            link.close("a check for another peer")
            return False
        current = transport.tcp_link
        if current is not None and not current.closed:
            if tcp is not None:
                tcp.stats.closed_second_link += 1
            self.log_drop("tcp_second_link", "ICE-TCP from %s: a second connection for a "
                          "peer that has one: closed", link.addr)
            link.close("the peer has an ICE-TCP connection already")
            return False
        link.bind(transport)
        transport.tcp_link = link
        return True

    def log_drop(self, cause: str, msg: str, *args: object) -> None:
        """Log the first drop of each cause in an interval; `_report_drops` sums up the rest,
        so a flood of any kind and rate writes two lines a minute."""
        if cause not in self._logged_causes:
            self._logged_causes.add(cause)
            log.info(msg + " (further drops are counted and summed up every %.0f s)", *args,
                     DROP_LOG_INTERVAL)

    def _report_drops(self, closing: bool = False) -> None:
        """One line with what each cause dropped since the last report, if a drop was logged
        in this interval (or the port is closing)."""
        stats = self.stats
        stats.budget_evictions = self.stun_budget.evictions + self.dtls_budget.evictions
        previous, self._reported = self._reported, dataclasses.replace(stats)
        tcp = self.tcp.stats if self.tcp is not None else TcpStats()
        tcp_before, self._reported_tcp = self._reported_tcp, dataclasses.replace(tcp)
        if not self._logged_causes and not closing:
            return  # nothing was logged in this interval, so nothing needs summing up
        self._logged_causes.clear()
        counts = [(name, getattr(stats, name) - getattr(previous, name))
                  for name in (*_DROP_COUNTERS, "budget_evictions")]
        counts += [(f"tcp_{name}", getattr(tcp, name) - getattr(tcp_before, name))
                   for name in _TCP_DROP_COUNTERS]
        summary = ", ".join(f"{name} {count}" for name, count in counts if count)
        if summary:
            log.info("media port dropped %s: %s", "since the last report" if closing
                     else f"in the last {DROP_LOG_INTERVAL:.0f} s", summary)

    async def _sweep(self) -> None:
        """Consent freshness (RFC 7675 §5.1) and handshake deadlines, once a second."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            self.stats.budget_evictions = (self.stun_budget.evictions
                                           + self.dtls_budget.evictions)
            if now >= self._next_report:
                self._next_report = now + DROP_LOG_INTERVAL
                self._report_drops()
            for transport in list(self._by_ufrag.values()):
                if transport.state is TransportState.NEW:
                    if now - transport.created > self.config.dtls_timeout:
                        transport.fail(self._no_checks_reason(), ice_failed=True)
                elif now - transport.last_consent > self.config.consent_timeout:
                    transport.fail(f"ICE consent lost: no connectivity check from "
                                   f"{_path_name(transport)} for "
                                   f"{self.config.consent_timeout:.0f} s (RFC 7675)",
                                   ice_failed=True)
                elif (
                    transport.state is not TransportState.CONNECTED
                    and now - transport.created > self.config.dtls_timeout
                ):
                    transport.fail(f"DTLS did not complete within "
                                   f"{self.config.dtls_timeout:.0f} s after ICE checks from "
                                   f"{_path_name(transport)}")

    def _no_checks_reason(self) -> str:
        """Why a transport saw no check: where the peer should have reached us."""
        where = ", ".join(f"udp {_host_port(c)}" for c in self.candidates())
        tcp = self.tcp_candidates()
        if tcp:
            where += ", " + ", ".join(f"tcp {_host_port(c)}" for c in tcp)
        return (f"ICE failed: no connectivity check reached the server within "
                f"{self.config.dtls_timeout:.0f} s (the client could reach none of {where}; "
                f"a firewall? a TURN server helps)")
