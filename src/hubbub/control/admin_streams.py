"""Admin stream control (Bearer <API secret>): apps and operators act on live streams over HTTP
instead of reaching into the sfu.

POST /api/streams/{streamName}/sources/{sourceId}/stop -> 200 {"stopped": true}; 404 if not live
    Ends that publisher's session: its socket closes (1000, with a reason), viewers get
    `inactive` for the sourceId and their multiplexed slot moves on (apps/spaces demotes a
    speaker with this). The publisher's JWT stays valid until it expires: an app that ends a
    publish right must also stop renewing it.
POST /api/streams/{streamName}/viewers/disconnect      -> 200 {"disconnected": n}
    Closes every viewer's socket and media, as when a node goes away. The Millicast SDK sees its
    peer connection drop and reconnects through the Director; this does not revoke access.
GET /api/streams                                       -> 200 {"streams": [StreamStats]}
GET /api/streams/{streamName}                          -> 200 StreamStats; 404 if unknown here
    What is live (control/stream_stats.py): sources, tracks, codecs, simulcast layers,
    bitrates, loss, viewers per node, uptime. A node lists the streams it knows: in a cluster
    those with a source or a session here (a source published elsewhere is pulled only for
    the viewers here); viewer counts of other nodes are those the coordinator follows.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from hubbub.control.auth.http import ApiError, bearer, success, unauthorized
from hubbub.control.auth.service import Auth
from hubbub.control.node import Node
from hubbub.control.stream_stats import (
    StreamList,
    StreamListReply,
    StreamStatsReply,
    stream_stats,
)

log = logging.getLogger(__name__)

STOP_REASON = "source stopped by the operator"
DISCONNECT_REASON = "disconnected by the operator"


def admin_streams_router(auth: Auth, node: Node) -> APIRouter:
    router = APIRouter(prefix="/api/streams", tags=["streams"])

    def require_admin(request: Request) -> None:
        secret = bearer(request.headers.get("authorization"), required=True)
        if secret is None or not auth.admin_secret_ok(secret):
            raise unauthorized("Unauthorized: invalid API secret")

    @router.post("/{stream_name}/sources/{source_id}/stop")
    async def stop_source(
        request: Request,
        stream_name: str = Path(min_length=1, max_length=128),
        source_id: str = Path(min_length=1, max_length=256),
    ) -> JSONResponse:
        require_admin(request)
        stream = node.streams.get(stream_name)
        source = stream.sources.get(source_id) if stream is not None else None
        owner = node.hub.owner_of(source) if source is not None else None
        log.info("admin: stopping source %r of %s", source_id, stream_name)
        if owner is not None:
            owner.terminate(STOP_REASON)
        elif await node.coordinator.stop_remote_source(stream_name, source_id, STOP_REASON):
            pass  # published on another node of the cluster: that node ends it
        elif stream is not None and source is not None:
            stream.unpublish(source)
        else:
            raise ApiError(404, f"Not Found: no live source {source_id!r} in {stream_name!r}")
        return success({"streamName": stream_name, "sourceId": source_id, "stopped": True})

    @router.post("/{stream_name}/viewers/disconnect")
    async def disconnect_viewers(
        request: Request, stream_name: str = Path(min_length=1, max_length=128)
    ) -> JSONResponse:
        require_admin(request)
        # Sessions, not sfu Viewers: a viewer still in ICE has no Viewer yet and must go too.
        sessions = node.hub.viewer_sessions(stream_name)
        for session in sessions:
            session.terminate(DISCONNECT_REASON)
        log.info("admin: disconnected %d viewer(s) of %s", len(sessions), stream_name)
        return success({"streamName": stream_name, "disconnected": len(sessions)})

    @router.get("", response_model=StreamListReply, responses={401: {"description":
                "no or a wrong admin secret"}})
    async def list_streams(request: Request) -> JSONResponse:
        """Every stream this node knows, live or with viewers waiting for a source."""
        require_admin(request)
        listed = StreamList(streams=[stream_stats(node, s, node.rates)
                                     for s in sorted(node.streams, key=lambda s: s.name)])
        return success(listed.model_dump())

    @router.get("/{stream_name}", response_model=StreamStatsReply, responses={
        401: {"description": "no or a wrong admin secret"},
        404: {"description": "no such stream on this node"}})
    async def get_stream(
        request: Request, stream_name: str = Path(min_length=1, max_length=128)
    ) -> JSONResponse:
        """One stream: its sources, tracks, bitrates, loss, viewers per node and uptime."""
        require_admin(request)
        stream = node.streams.get(stream_name)
        if stream is None:
            raise ApiError(404, f"Not Found: no stream {stream_name!r} on this node")
        return success(stream_stats(node, stream, node.rates).model_dump())

    return router
