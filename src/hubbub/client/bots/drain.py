"""Drain: many bot sockets received in one C call per wakeup (load generation at scale).

With a thousand listener bots in one process, one Python callback per datagram costs more
than the server under test. A `Drain` keeps the sockets of the peers attached to it in one
epoll set (`hubbub.client.bots._drain`, C); the event loop watches that set's fd, and each
wakeup drains every ready socket with recvmmsg. Counting peers have their SRTP packets counted
per SSRC in C; everything else (STUN, DTLS, RTCP, and every packet of a pass-through peer) is
handed to the peer's `datagram_received`, with `peer.arrival_ns` set to the kernel's arrival
time (SO_TIMESTAMPNS) on the `time.monotonic_ns()` clock, so latency is measured at the
socket, not after the bot process got round to it.

`poll_interval`: instead of waiting on the sockets, read every one of them on a timer. On
loopback the kernel delivers a datagram into the listener's socket inside the sender's
sendmmsg, and runs the socket's waiters there: a bot process that sleeps in epoll has to be
woken (an inter-processor interrupt, a VM exit here), and even an awake one costs an epoll
callback per datagram, all charged to the server under test, work that a listener on another
host would never cost it. Polled sockets have no waiters; the arrival times still come from
the kernel, so latency is measured as before.

`Drain.available()` is False when the C module was not built: callers then leave `peer.drain`
unset and the peers receive through asyncio as before.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import TYPE_CHECKING, Any

try:
    from hubbub.client.bots import _drain
except ImportError:  # no compiler at install time: the asyncio path is used
    _drain = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from hubbub.client.bots.peer import BotPeer


class DrainLink:
    """The transport of a peer on a `Drain`: what BotPeer needs of a DatagramTransport."""

    def __init__(self, drain: Drain, sock: socket.socket, slot: int) -> None:
        self.drain = drain
        self.sock = sock
        self.slot = slot
        self.closed = False

    def sendto(self, data: bytes, addr: Any = None) -> None:
        try:
            self.sock.send(data)
        except OSError:
            pass  # full buffer or ICMP error: a lost datagram, as over a DatagramTransport

    def counts(self) -> tuple[int, int]:
        """(packets, lost) counted in C for a counting peer."""
        return self.drain.counts(self.slot)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.drain.detach(self.slot)
        self.sock.close()


class Drain:
    """One epoll set of peer sockets; attach peers before they connect (`BotPeer.drain`)."""

    def __init__(self, poll_interval: float | None = None) -> None:
        if _drain is None:
            raise RuntimeError("hubbub.client.bots._drain is not built (no C compiler?)")
        self._c = _drain.Drainer()
        self._peers: dict[int, tuple[BotPeer, tuple[str, int]]] = {}  # slot -> (peer, remote)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poll_interval = poll_interval
        self._timer: asyncio.TimerHandle | None = None

    @staticmethod
    def available() -> bool:
        return _drain is not None

    def attach(self, peer: BotPeer, sock: socket.socket, counting: bool) -> DrainLink:
        """Watch `sock` (connected, non-blocking) for `peer`; returns the peer's transport."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            if self._poll_interval is None:
                self._loop.add_reader(self._c.fileno(), self._readable)
            else:
                self._timer = self._loop.call_later(self._poll_interval, self._poll)
        slot = self._c.add(sock.fileno(), counting, self._poll_interval is None)
        self._peers[slot] = (peer, sock.getpeername()[:2])
        return DrainLink(self, sock, slot)

    def detach(self, slot: int) -> None:
        self._c.remove(slot)
        self._peers.pop(slot, None)

    def counts(self, slot: int) -> tuple[int, int]:
        packets, lost = self._c.counts(slot)
        return int(packets), int(lost)

    def total(self) -> tuple[int, int]:
        """(packets, lost) over every counting peer."""
        packets, lost = self._c.total()
        return int(packets), int(lost)

    def _poll(self) -> None:
        assert self._loop is not None and self._poll_interval is not None
        self._timer = self._loop.call_later(self._poll_interval, self._poll)
        self._readable()

    def _readable(self) -> None:
        # SO_TIMESTAMPNS stamps CLOCK_REALTIME; the bots' send times are monotonic.
        offset = time.time_ns() - time.monotonic_ns()
        peers = self._peers
        for slot, data, arrival in self._c.drain():
            entry = peers.get(slot)
            if entry is not None:
                peer, remote = entry
                peer.arrival_ns = arrival - offset
                peer.datagram_received(data, remote)
                peer.arrival_ns = 0

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        elif self._loop is not None:
            self._loop.remove_reader(self._c.fileno())
        self._loop = None
