"""Admin: disconnect every viewer of a stream (Bearer <API secret>).

POST /api/streams/{streamName}/viewers/disconnect   -> 200 {"streamName", "disconnected": n}

Each viewer's WebSocket is closed (code 1000) and its media transport torn down, as when a node
goes away. Clients decide what happens next: the Millicast SDK sees its peer connection drop and
reconnects through the Director (tests/e2e/test_millicast_sdk.py); its JWT is still valid, so
this is not a way to revoke access (revoke the token instead).
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from hubbub.control.auth.http import bearer, success, unauthorized
from hubbub.control.auth.service import Auth
from hubbub.control.node import Node

log = logging.getLogger(__name__)

DISCONNECT_REASON = "disconnected by the operator"


def admin_viewers_router(auth: Auth, node: Node) -> APIRouter:
    router = APIRouter(prefix="/api/streams", tags=["streams"])

    @router.post("/{stream_name}/viewers/disconnect")
    async def disconnect_viewers(
        request: Request, stream_name: str = Path(min_length=1, max_length=128)
    ) -> JSONResponse:
        secret = bearer(request.headers.get("authorization"), required=True)
        if secret is None or not auth.admin_secret_ok(secret):
            raise unauthorized("Unauthorized: invalid API secret")
        # The EventHub's registry of viewer sessions per stream (the sockets, not sfu Viewers:
        # a session still in ICE has no Viewer yet and must go too).
        sessions = list(node.hub._viewers.get(stream_name, ()))
        for session in sessions:
            session.end(DISCONNECT_REASON)
            session.request_close(1000, DISCONNECT_REASON)
        log.info("admin: disconnected %d viewer(s) of %s", len(sessions), stream_name)
        return success({"streamName": stream_name, "disconnected": len(sessions)})

    return router
