"""A fake signaling server (websockets on 127.0.0.1:0) and an aiortc answerer posing as an SFU."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from websockets.asyncio.server import Server, ServerConnection, serve

from hubbub.client.patches import use_loopback_only

# Returning a dict sends a `response`, a str sends an `error`, None sends nothing.
Handler = Callable[["FakeConnection", str, Any], Awaitable[dict[str, Any] | str | None]]


@dataclass
class FakeConnection:
    ws: ServerConnection
    path: str
    commands: list[dict[str, Any]] = field(default_factory=list)
    protocol_errors: list[str] = field(default_factory=list)

    async def send_event(self, name: str, data: Any) -> None:
        await self.ws.send(json.dumps({"type": "event", "name": name, "data": data}))

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def reply(self, trans_id: int, data: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"type": "response", "transId": trans_id, "data": data}))


class FakeServer:
    """Speaks the transaction protocol; checks that transIds count from 0 on each socket."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: list[FakeConnection] = []
        self.connected = asyncio.Event()
        self._server: Server | None = None

    async def start(self) -> None:
        self._server = await serve(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(next(iter(self._server.sockets)).getsockname()[1])

    def url(self, path: str = "/ws/v2/sub") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    async def _serve(self, ws: ServerConnection) -> None:
        conn = FakeConnection(ws, ws.request.path if ws.request else "")
        self.connections.append(conn)
        self.connected.set()
        expected = 0
        async for raw in ws:
            message = json.loads(raw)
            conn.commands.append(message)
            if message.get("type") != "cmd" or message.get("transId") != expected:
                conn.protocol_errors.append(f"unexpected {message!r}, wanted transId {expected}")
            expected += 1
            result = await self.handler(conn, message["name"], message["data"])
            trans_id = message["transId"]
            if isinstance(result, dict):
                await conn.reply(trans_id, result)
            elif isinstance(result, str):
                await ws.send(json.dumps({"type": "error", "transId": trans_id, "data": result}))


class FakeSfu:
    """Answers offers with a real aiortc peer: sends given tracks into the offer's m-lines by
    index (viewer side) or receives the offered tracks (publisher side)."""

    def __init__(self) -> None:
        use_loopback_only()
        self.peers: list[RTCPeerConnection] = []
        self.received: list[MediaStreamTrack] = []

    async def answer(
        self,
        offer: str,
        send: dict[int, MediaStreamTrack] | None = None,
        munge: Callable[[str], str] | None = None,
    ) -> str:
        # max-bundle: see the note in hubbub.client.session
        pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.peers.append(pc)
        pc.on("track", self.received.append)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for index, transceiver in enumerate(pc.getTransceivers()):
            track = (send or {}).get(index)
            if track is not None:
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendonly"
        await pc.setLocalDescription(await pc.createAnswer())
        sdp: str = pc.localDescription.sdp
        return munge(sdp) if munge else sdp

    async def close(self) -> None:
        for pc in self.peers:
            await pc.close()
