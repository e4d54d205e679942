"""aiortc peers over ICE-TCP, for tests: aioice speaks no ICE-TCP (RFC 6544), so a bridge does.

`IceTcpBridge` is the active side of an ICE-TCP candidate pair for a UDP-only ICE agent:
aiortc sends its datagrams (STUN checks, DTLS, SRTP) to the bridge's UDP address, and each
goes as one RFC 4571 frame over one TCP connection to hubbub's passive candidate; frames that
come back go to aiortc as datagrams. hubbub sees what a browser's active TCP candidate sends.
`TcpViewer` / `TcpPublisher` are the Python SDK's sessions with the answer's candidates
replaced by the bridge's address (a rewrite in the test, not a server feature).

`stall()` stops reading the TCP socket, with a small receive buffer so the kernel's window
closes soon: a viewer that does not read, as the issue's stalled-reader test needs.
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

Address = tuple[str, int]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, bridge: IceTcpBridge) -> None:
        self.bridge = bridge

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.bridge.from_agent(data, (addr[0], addr[1]))


class _Tcp(asyncio.Protocol):
    def __init__(self, bridge: IceTcpBridge) -> None:
        self.bridge = bridge
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        while len(buf) >= 2:
            size = int.from_bytes(buf[:2], "big")
            if len(buf) < 2 + size:
                break
            self.bridge.to_agent(bytes(buf[2:2 + size]))
            del buf[:2 + size]

    def connection_lost(self, exc: Exception | None) -> None:
        self.bridge.tcp_closed = True


class IceTcpBridge:
    def __init__(self, server: Address, recv_buffer: int | None = None) -> None:
        self.server = server
        self.recv_buffer = recv_buffer
        self.udp_addr: Address = ("127.0.0.1", 0)
        self.frames_in = 0
        self.frames_out = 0
        self.tcp_closed = False
        self.blackholed = False  # the agent's packets are dropped, the connection stays
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Transport | None = None
        self._agent: Address | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._early: list[bytes] = []

    async def start(self) -> IceTcpBridge:
        loop = asyncio.get_running_loop()
        udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self),
                                                     local_addr=("127.0.0.1", 0))
        self._udp = udp
        name = udp.get_extra_info("sockname")
        self.udp_addr = (name[0], name[1])
        self._connecting = loop.create_task(self._connect())
        return self

    async def _connect(self) -> None:
        family = socket.AF_INET6 if ":" in self.server[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        if self.recv_buffer is not None:  # before connect: it sets the window scale
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.recv_buffer)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, self.server)
        tcp, _ = await loop.create_connection(lambda: _Tcp(self), sock=sock)
        self._tcp = tcp
        for data in self._early:
            self._write(data)
        self._early.clear()

    async def connected(self) -> None:
        assert self._connecting is not None
        await self._connecting

    def from_agent(self, data: bytes, addr: Address) -> None:
        self._agent = addr
        if self.blackholed:
            return
        if self._tcp is None:
            self._early.append(data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        assert self._tcp is not None
        if self._tcp.is_closing():  # closed under aiortc, which sends on for a while
            return
        self.frames_out += 1
        self._tcp.write(len(data).to_bytes(2, "big") + data)

    def to_agent(self, data: bytes) -> None:
        self.frames_in += 1
        if self._udp is not None and self._agent is not None:
            self._udp.sendto(data, self._agent)

    def stall(self) -> None:
        """Stop reading the TCP socket: the server's writes back up."""
        if self._tcp is not None:
            self._tcp.pause_reading()

    def resume(self) -> None:
        if self._tcp is not None:
            self._tcp.resume_reading()

    def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._tcp is not None:
            self._tcp.abort()
        if self._udp is not None:
            self._udp.close()

    def candidate_sdp(self, sdp: str) -> str:
        """`sdp` with its candidates replaced by one UDP candidate: the bridge."""
        ip, port = self.udp_addr
        lines = [line for line in sdp.split("\r\n") if not line.startswith("a=candidate:")]
        out = []
        for line in lines:
            out.append(line)
            if line.startswith("a=mid:"):
                out.append(f"a=candidate:1 1 udp 2130706431 {ip} {port} typ host")
        return "\r\n".join(out)


def tcp_candidates(sdp: str) -> list[tuple[int, str, int]]:
    """(priority, address, port) of each `tcptype passive` candidate in an SDP."""
    found = re.findall(r"a=candidate:\S+ 1 tcp (\d+) (\S+) (\d+) typ host tcptype passive", sdp)
    return [(int(p), ip, int(port)) for p, ip, port in found]


class _Bridged:
    """The answer's candidates replaced by the bridge's address; the original kept."""

    bridge: IceTcpBridge
    answer: str

    def _answer_sdp(self, sdp: str) -> str:
        self.answer = sdp
        return self.bridge.candidate_sdp(sdp)


class TcpViewer(_Bridged, Viewer):
    """A Viewer whose media goes through `bridge` (its ICE-TCP connection to hubbub)."""

    def __init__(self, bridge: IceTcpBridge, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bridge = bridge
        self.answer = ""


class TcpPublisher(_Bridged, Publisher):
    """A Publisher whose media goes through `bridge`."""

    def __init__(self, bridge: IceTcpBridge, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.bridge = bridge
        self.answer = ""
