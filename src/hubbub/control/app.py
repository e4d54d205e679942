"""The Starlette application of a node: health, WebSocket signaling, static pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from hubbub.control.node import Node
from hubbub.control.signaling import serve_socket


def create_app(node: Node) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "streams": len(node.streams)})

    async def ws_pub(websocket: WebSocket) -> None:
        await serve_socket(websocket, node, "publish")

    async def ws_sub(websocket: WebSocket) -> None:
        await serve_socket(websocket, node, "view")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        await node.start()
        try:
            yield {}
        finally:
            await node.stop()

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            WebSocketRoute("/ws/v2/pub", ws_pub),
            WebSocketRoute("/ws/v2/sub", ws_sub),
        ],
        lifespan=lifespan,
    )
