"""Admin stream control: end one publisher's session (Bearer <API secret>).

POST /api/streams/{streamName}/sources/{sourceId}/stop   -> 200 {"stopped": true}
                                                            404 when no such source is live

Apps built on the platform (apps/spaces demotes a speaker with it) call this over HTTP instead
of reaching into the sfu. The publisher's socket is closed with code 1000 and a reason; viewers
get `inactive` for that sourceId and their multiplexed slot moves on. The publisher's JWT stays
valid until it expires: an app that ends a publish right must also stop renewing it.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from hubbub.control.auth.http import ApiError, bearer, success, unauthorized
from hubbub.control.auth.service import Auth
from hubbub.control.node import Node

log = logging.getLogger(__name__)

STOP_REASON = "source stopped by the operator"


def admin_streams_router(auth: Auth, node: Node) -> APIRouter:
    router = APIRouter(prefix="/api/streams", tags=["streams"])

    @router.post("/{stream_name}/sources/{source_id}/stop")
    async def stop_source(
        request: Request,
        stream_name: str = Path(min_length=1, max_length=128),
        source_id: str = Path(min_length=1, max_length=256),
    ) -> JSONResponse:
        secret = bearer(request.headers.get("authorization"), required=True)
        if secret is None or not auth.admin_secret_ok(secret):
            raise unauthorized("Unauthorized: invalid API secret")
        stream = node.streams.get(stream_name)
        source = stream.sources.get(source_id) if stream is not None else None
        if stream is None or source is None:
            raise ApiError(404, f"Not Found: no live source {source_id!r} in {stream_name!r}")
        # The publisher session owning the Source (EventHub keeps that map for media timeouts).
        owner = node.hub._owners.get(id(source))
        log.info("admin: stopping source %r of %s", source_id, stream_name)
        if owner is not None:
            owner.end(STOP_REASON)
            owner.request_close(1000, STOP_REASON)
        else:
            stream.unpublish(source)
        return success({"streamName": stream_name, "sourceId": source_id, "stopped": True})

    return router
