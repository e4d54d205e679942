"""A real HTTP receiver for webhook tests: an asyncio server on 127.0.0.1 that records each
POST (headers, body, arrival time) and answers with a chosen status after a chosen delay."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from hubbub.control.webhooks import signing


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body)

    def verifies(self, secret: str) -> bool:
        return signing.verify(secret, self.headers[signing.TIMESTAMP_HEADER.lower()],
                              self.body, self.headers[signing.SIGNATURE_HEADER.lower()])


class Receiver:
    """`status` and `delay` apply to the requests that arrive after they are set; `in_flight`
    counts requests being held (received, not yet answered)."""

    def __init__(self, port: int = 0, status: int = 200, delay: float = 0.0) -> None:
        self.port = port
        self.status = status
        self.delay = delay
        self.received: list[Received] = []
        self.in_flight = 0
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()  # held requests end without an answer, as at a crash
            await self._server.wait_closed()
            self._server = None

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` requests, once they have all arrived."""
        async with asyncio.timeout(timeout):
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.received) >= count)
        return self.received[:count]

    async def wait_event(self, type: str, event: str, timeout: float = 10.0,
                         **data: Any) -> Received:
        """The first request carrying `type`/`event` whose data has the given items."""
        def match() -> Received | None:
            for got in self.received:
                body = got.json()
                if body["type"] == type and body["event"] == event and all(
                        body["data"].get(k) == v for k, v in data.items()):
                    return got
            return None
        async with asyncio.timeout(timeout):
            async with self._arrived:
                await self._arrived.wait_for(lambda: match() is not None)
        found = match()
        assert found is not None
        return found

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.in_flight += 1
            try:
                async with self._arrived:
                    self.received.append(Received(path, headers, body))
                    self._arrived.notify_all()
                if self.delay:
                    await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
