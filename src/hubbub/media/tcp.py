"""ICE-TCP, passive (RFC 6544): the node's TCP media port, for peers whose UDP is blocked.

A browser that cannot reach the UDP port opens a TCP connection to our `tcptype passive` host
candidate and sends over it what it would have sent as datagrams: STUN checks, DTLS, SRTP and
SRTCP, each message prefixed with its 16-bit length (RFC 4571 §2, as RFC 6544 §3 asks). The
media port's demultiplexing and checks apply to every message (`MediaPort.receive_on_link`).
One connection carries one peer: its first authenticated STUN check binds it to that peer's
transport (`WebRtcTransport.ice_checked`), and from then on what arrives on it goes to that
transport with no address lookup.

What a connection may cost, as on UDP (issue 13):
- it must pass an authenticated check within `tcp_check_timeout`, and may send nothing but
  STUN before that; a peer holds at most one connection; there are caps per address and in
  all (`MediaConfig.tcp_*`);
- a peer that reads slower than it is sent to never holds up anyone else. Writes never block:
  they go to the kernel's send buffer (fixed at `tcp_send_buffer`, not autotuned to
  megabytes of stale media), then to asyncio's buffer up to `tcp_write_buffer` (then asyncio
  calls `pause_writing`),
  then to a queue of our own bounded by `tcp_send_queue_bytes`, from which the oldest packets
  are dropped when it is full (old media is worth less than new, and a real-time peer that
  catches up wants the latest). Drops are counted in `TcpStats`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubbub.media.transport import Address, WebRtcTransport
    from hubbub.media.udp import MediaPort

log = logging.getLogger(__name__)

_PREFIX = tuple(n.to_bytes(2, "big") for n in range(2048))
"""RFC 4571 length prefixes of packets up to 2 KiB, made once: one fewer object per packet."""


@dataclass
class TcpStats:
    accepted: int = 0  # connections accepted, in all
    refused_over_cap: int = 0  # refused at accept: over the per-address or total cap
    closed_unchecked: int = 0  # no authenticated STUN check in time, or media before one
    closed_second_link: int = 0  # a peer's second connection, while its first is open
    frames_in: int = 0
    send_dropped: int = 0  # packets dropped from full send queues (peers that do not read)
    send_dropped_bytes: int = 0


class IceTcpServer:
    """The listening sockets and the open connections, with their caps."""

    def __init__(self, port: MediaPort) -> None:
        self.port = port
        self.config = port.config
        self.stats = TcpStats()
        self.links: set[TcpLink] = set()
        self.local_addrs: list[Address] = []
        self._per_ip: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []
        self._logged: set[str] = set()

    async def start(self, hosts: list[str], port: int) -> None:
        loop = asyncio.get_running_loop()
        for host in hosts:
            # One socket per family; asyncio sets IPV6_V6ONLY on the IPv6 one.
            server = await loop.create_server(lambda: TcpLink(self), host, port,
                                              reuse_address=True, backlog=1024)
            self._servers.append(server)
            for sock in server.sockets:
                name = sock.getsockname()
                self.local_addrs.append((name[0], name[1]))
                port = name[1]  # port 0: the IPv6 socket takes the number IPv4 got

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for link in list(self.links):
            link.close("server shutting down")
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    @property
    def listening(self) -> bool:
        return bool(self._servers)

    def admit(self, link: TcpLink) -> bool:
        ip = link.addr[0]
        cfg = self.config
        count = self._per_ip.get(ip, 0)
        if len(self.links) >= cfg.tcp_max_connections or count >= cfg.tcp_connections_per_ip:
            self.stats.refused_over_cap += 1
            self.log_once("over_cap", "ICE-TCP connection from %s refused: over the cap "
                          "(%d per address, %d in all)", ip, cfg.tcp_connections_per_ip,
                          cfg.tcp_max_connections)
            return False
        self._per_ip[ip] = count + 1
        self.links.add(link)
        self.stats.accepted += 1
        return True

    def release(self, link: TcpLink) -> None:
        if link in self.links:
            self.links.discard(link)
            ip = link.addr[0]
            left = self._per_ip.get(ip, 1) - 1
            if left > 0:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)

    def log_once(self, cause: str, msg: str, *args: object) -> None:
        """First of each cause until the port's next drop summary (`MediaPort._log_drop`)."""
        self.port.log_drop("tcp_" + cause, msg, *args)


class TcpLink(asyncio.Protocol):
    """One ICE-TCP connection: RFC 4571 framing both ways and a bounded send queue."""

    def __init__(self, server: IceTcpServer) -> None:
        self.server = server
        self.port = server.port
        self.addr: Address = ("", 0)
        self.transport: WebRtcTransport | None = None  # bound by the first authenticated check
        self.closed = False
        self._tcp: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._paused = False
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._deadline: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        tcp: asyncio.Transport = transport  # type: ignore[assignment]
        self._tcp = tcp
        peer = tcp.get_extra_info("peername")
        self.addr = (peer[0], peer[1])
        if not self.server.admit(self):
            self.closed = True
            tcp.abort()
            return
        sock = tcp.get_extra_info("socket")
        if sock is not None:
            # Small packets must leave at once: Nagle would hold audio for an ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                            self.server.config.tcp_send_buffer)
        tcp.set_write_buffer_limits(high=self.server.config.tcp_write_buffer)
        self._deadline = asyncio.get_running_loop().call_later(
            self.server.config.tcp_check_timeout, self._unchecked)

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        end = len(buf)
        receive = self.port.receive_on_link
        while end - pos >= 2:
            size = (buf[pos] << 8) | buf[pos + 1]
            if end - pos - 2 < size:
                break
            frame = bytes(buf[pos + 2 : pos + 2 + size])
            pos += 2 + size
            self.server.stats.frames_in += 1
            receive(frame, self)
            if self.closed:
                return
        if pos:
            del buf[:pos]

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        queue = self._queue
        tcp = self._tcp
        while queue and not self._paused and tcp is not None and not self.closed:
            data = queue.popleft()
            self._queued -= len(data)
            tcp.write(self._framed(data))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tcp is None:
            return
        self._closed()
        transport = self.transport
        if transport is not None:
            transport.link_lost(self)

    # --- for the media port and the transport --------------------------------------------

    def bind(self, transport: WebRtcTransport) -> None:
        """The first authenticated check on this connection named `transport`."""
        self.transport = transport
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def send(self, data: bytes) -> None:
        """One packet to the peer, framed; queued (and the oldest dropped) while the peer
        does not read."""
        if self.closed:
            return
        if self._paused:
            self._enqueue(data)
            return
        tcp = self._tcp
        if tcp is not None:
            tcp.write(self._framed(data))

    def close(self, reason: str) -> None:
        """Close from our side: at once when the peer is not reading, else after what is
        buffered has been written."""
        tcp = self._tcp
        if self.closed or tcp is None:
            return
        self._closed()
        log.debug("ICE-TCP connection from %s closed: %s", self.addr, reason)
        if self._paused or tcp.get_write_buffer_size() > 0:
            tcp.abort()
        else:
            tcp.close()

    @property
    def queued_bytes(self) -> int:
        return self._queued

    # --- internals -----------------------------------------------------------------------

    @staticmethod
    def _framed(data: bytes) -> bytes:
        size = len(data)
        return (_PREFIX[size] if size < 2048 else size.to_bytes(2, "big")) + data

    def _enqueue(self, data: bytes) -> None:
        queue = self._queue
        queue.append(data)
        self._queued += len(data)
        limit = self.server.config.tcp_send_queue_bytes
        if self._queued > limit:
            stats = self.server.stats
            while self._queued > limit and queue:
                old = queue.popleft()
                self._queued -= len(old)
                stats.send_dropped += 1
                stats.send_dropped_bytes += len(old)
            self.server.log_once("send_dropped", "ICE-TCP peer %s does not read fast enough: "
                                 "dropping its oldest queued packets", self.addr)

    def _unchecked(self) -> None:
        self._deadline = None
        if self.transport is None and not self.closed:
            self.server.stats.closed_unchecked += 1
            self.server.log_once("unchecked", "ICE-TCP connection from %s closed: no "
                                 "authenticated STUN check within %.0f s", self.addr,
                                 self.server.config.tcp_check_timeout)
            self.close("no authenticated STUN check in time")

    def _closed(self) -> None:
        self.closed = True
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._queue.clear()
        self._queued = 0
        self._buffer = bytearray()
        self.server.release(self)
