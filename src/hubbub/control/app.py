"""The HTTP application of a node: health, Director, token API, WebSocket signaling, WHIP/WHEP.

FastAPI (a Starlette app) so the token API is described at /openapi.json and /docs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

import hubbub
from hubbub.control.admin_streams import admin_streams_router
from hubbub.control.auth import datadir
from hubbub.control.auth.api import api_router
from hubbub.control.auth.director import director_router
from hubbub.control.auth.http import BodyLimit, PathCors, bearer, install_handlers, unauthorized
from hubbub.control.auth.service import Auth
from hubbub.control.examples import examples_router
from hubbub.control.http_sessions import HttpSessions
from hubbub.control.metrics.http import metrics_router
from hubbub.control.node import Node
from hubbub.control.recordings import recordings_router
from hubbub.control.rtmp import attach_rtmp
from hubbub.control.signaling import serve_socket
from hubbub.control.webhooks.api import WebhookService
from hubbub.control.whep import whep_router
from hubbub.control.whip import whip_router


class MountedApp(Protocol):
    """An application served beside the platform (e.g. apps/spaces): mounted at `path`,
    started after the node and stopped before it (mounted apps get no lifespan of their own)."""

    path: str
    asgi: ASGIApp

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


SOCKET_ROLES = {"/ws/v2/pub": "publish", "/ws/v2/sub": "view"}


class SignalingSockets:
    """ASGI middleware for /ws/v2/pub and /ws/v2/sub, ahead of FastAPI's routing: a viewer's
    socket lives as long as it listens, and the frames, exit stacks and scope copies that
    FastAPI's stack keeps per request would live with it (about 10 KB a listener), besides
    costing CPU at every join. Signaling needs none of them (no dependencies, no CORS, no
    bodies)."""

    def __init__(self, app: ASGIApp, node: Node, auth: Auth) -> None:
        self.app = app
        self.node = node
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        role = SOCKET_ROLES.get(scope["path"]) if scope["type"] == "websocket" else None
        if role is None:
            await self.app(scope, receive, send)
        else:
            await serve_socket(WebSocket(scope, receive, send), self.node, role, self.auth)


def create_app(node: Node, auth: Auth | None = None, apps: Sequence[MountedApp] = ()) -> FastAPI:
    """The app of `node`; `auth` defaults to one prepared from `node.config.auth` (data dir)."""
    if auth is None:
        auth = Auth(node.config.auth, datadir.prepare(node.config.auth))
    node_auth = auth
    attach_rtmp(node, auth)
    http_sessions = HttpSessions()
    webhooks = WebhookService(auth, node)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await node_auth.start()
        try:
            await webhooks.start()
            await node.start()
            try:
                for mounted in apps:
                    await mounted.start()
                yield
            finally:
                for mounted in reversed(apps):
                    await mounted.stop()
                http_sessions.close_all("server shutting down")
                await node.stop()
        finally:
            await webhooks.stop()
            await node_auth.stop()

    app = FastAPI(
        title="hubbub",
        version=getattr(hubbub, "__version__", "0"),
        description="Director and token API of a hubbub node (Millicast-shaped).",
        lifespan=lifespan,
    )
    install_handlers(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        # 503 while draining, so load balancers stop sending new clients here.
        draining = node.coordinator.draining
        return JSONResponse(
            {"status": "draining" if draining else "ok", "node": node.cluster_id,
             "streams": len(node.streams), "media": node.port.listening()},
            status_code=503 if draining else 200,
        )

    @app.get("/api/cluster", include_in_schema=False)
    async def cluster(request: Request) -> JSONResponse:
        """This node's view of its cluster (admin secret): nodes, hosted and pulled sources,
        relay links and their counters, Redis commands sent."""
        secret = bearer(request.headers.get("authorization"), required=True)
        if secret is None or not node_auth.admin_secret_ok(secret):
            raise unauthorized("Unauthorized: invalid API secret")
        return JSONResponse(node.coordinator.stats())

    app.include_router(
        director_router(
            auth, node.account_id, node.check_stream_name, node.config.control.public_url,
            node.coordinator.place,
        )
    )
    app.include_router(api_router(auth, node.webhooks.emit))
    app.include_router(webhooks.router())
    app.include_router(admin_streams_router(auth, node))
    app.include_router(recordings_router(auth, node))
    node.metrics.count_refusals(auth.refusals)
    app.include_router(metrics_router(node))
    app.include_router(examples_router())
    app.include_router(whip_router(node, auth, http_sessions))
    app.include_router(whep_router(node, auth, http_sessions))
    for mounted in apps:
        app.mount(mounted.path, mounted.asgi)
    app.add_middleware(BodyLimit, limit=node.config.auth.max_body_bytes)
    app.add_middleware(PathCors, prefixes=("/api/director/", "/.well-known/"))
    # WHIP/WHEP from web pages (RFC 9725 §4.2 requires OPTIONS for CORS): the client reads
    # Location, ETag and Link, and sends If-Match ("ETag" too: one npm client does).
    app.add_middleware(
        PathCors, prefixes=("/api/whip/", "/api/whep/"),
        methods=("GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"),
        headers=("Authorization", "Content-Type", "If-Match", "ETag"),
        expose=("Location", "Link", "ETag", "Accept-Patch", "Accept-Post"))
    app.add_middleware(SignalingSockets, node=node, auth=auth)  # added last: outermost
    app.state.auth = auth
    app.state.http_sessions = http_sessions
    return app
