"""The RTMP listening socket: accepts connections within caps and runs one `RtmpSession` each."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from dataclasses import dataclass

from hubbub.ingest.rtmp.api import Authorizer
from hubbub.ingest.rtmp.session import RtmpLimits, RtmpSession

__all__ = ["RtmpServer", "RtmpStats"]

log = logging.getLogger(__name__)


@dataclass
class RtmpStats:
    accepted: int = 0
    refused_over_cap: int = 0  # closed at accept: over the total or per-address cap


class RtmpServer:
    def __init__(self, authorize: Authorizer, host: str = "0.0.0.0", port: int = 1935,
                 limits: RtmpLimits | None = None, max_connections: int = 256,
                 max_per_address: int = 16) -> None:
        self.host = host
        self.port = port  # the bound port once started (useful with port 0)
        self.limits = limits or RtmpLimits()
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.stats = RtmpStats()
        self._authorize = authorize
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._per_address: Counter[str] = Counter()

    @property
    def sessions(self) -> int:
        return len(self._tasks)

    async def start(self) -> None:
        # "::" means IPv4 and IPv6, as for the HTTP and media ports: None binds one socket
        # per family (asyncio sets IPV6_V6ONLY on the IPv6 one).
        host = None if self.host == "::" else self.host
        self._server = await asyncio.start_server(self._accept, host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("rtmp: listening on %s:%d", self.host, self.port)

    async def close(self) -> None:
        """Stops listening and ends every connection (publishers see `closed`)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> RtmpServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        if (len(self._tasks) >= self.max_connections
                or self._per_address[address] >= self.max_per_address):
            self.stats.refused_over_cap += 1  # counted, not logged: a flood would flood the log
            writer.close()
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # replies are small
        self.stats.accepted += 1
        self._per_address[address] += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await RtmpSession(reader, writer, self._authorize, self.limits).run()
        except asyncio.CancelledError:
            # `close` (or the loop's shutdown) ended the connection; the session has run its
            # cleanup. Re-raising would make asyncio's stream callback log a traceback for
            # every connection that was open at shutdown.
            pass
        finally:
            self._tasks.discard(task)
            self._per_address[address] -= 1
            if not self._per_address[address]:
                del self._per_address[address]
