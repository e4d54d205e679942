"""WHIP (RFC 9725): publish a source with one HTTP POST of an SDP offer.

POST   /api/whip/{streamName}[?sourceId=&codec=]   Bearer <publish token or Director JWT>
         → 201, the answer, Location: /api/whip/session/{id}, ETag, Link rel="ice-server"
PATCH  /api/whip/session/{id}   trickle ICE: 204 (ignored, we are ICE-lite); restart: 422
DELETE /api/whip/session/{id}   → 200, the source unpublishes

The token is checked as the Director and the WebSocket check it (control/auth/credentials.py);
the publish itself is a PublisherSession's, so the source is an ordinary one: replacement of
a live sourceId, multiplexing, events and the cluster treat it like any other.
`priority` and `simulcastId` (PROTOCOL.md) are accepted and have no effect yet.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from hubbub import logs
from hubbub.control import messages
from hubbub.control.auth import credentials
from hubbub.control.auth.jwts import PUBLISH, Grant, TokenRejected
from hubbub.control.http_sessions import (
    SDP,
    HttpError,
    HttpSession,
    HttpSessions,
    answered,
    bearer_token,
    created,
    ice_server_links,
    patch,
    plain_options,
    read_sdp,
    refusal,
)
from hubbub.control.publish import VIDEO_CODECS, PublisherSession

if TYPE_CHECKING:
    from hubbub.control.auth.service import Auth
    from hubbub.control.node import Node

log = logging.getLogger(__name__)

SDP_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": {SDP: {"schema": {"type": "string"}}}}
}
ANSWERED: dict[int | str, dict[str, Any]] = {
    201: {"description": "The SDP answer; Location is the session URL",
          "content": {SDP: {"schema": {"type": "string"}}}},
}


async def no_socket(text: str) -> None:
    """A WHIP/WHEP session's stand-in for a WebSocket's send: command replies and (for WHIP)
    events have nowhere to go; WHEP's events go to its SSE channel instead."""


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def bind_peer(request: Request) -> None:
    """The request's lines (and the session's, in this task) carry the client's address."""
    if request.client is not None:
        logs.bind(peer=f"{request.client.host}:{request.client.port}")


async def check_bearer(request: Request, node: Node, auth: Auth, kind: str,
                       name: str) -> Grant | None:
    """The Grant of the request's Bearer token for `name`; None without a token under
    --allow-any-stream."""
    token = bearer_token(request, required=not node.config.control.allow_any_stream)
    if token is None:
        return None
    try:
        return await credentials.grant_for(auth, kind, token, name, client_ip(request),
                                           request.headers.get("origin"))
    except TokenRejected as exc:
        headers = ({"WWW-Authenticate": 'Bearer realm="hubbub", error="invalid_token"'}
                   if exc.status == 401 else {})
        raise HttpError(exc.status, exc.message, headers) from None


def stream_name(node: Node, raw: str) -> str:
    name = node.strip_account(raw)
    try:
        node.check_stream_name(name)
    except messages.ProtocolError as exc:
        raise HttpError(400, f"Bad Request: {exc.reason}") from None
    return name


def check_open(node: Node, sessions: HttpSessions, client: str | None) -> None:
    if node.coordinator.draining:
        raise HttpError(503, "Service Unavailable: this node is draining",
                        {"Retry-After": "5"})
    sessions.check_room(client)


def whip_router(node: Node, auth: Auth, sessions: HttpSessions) -> APIRouter:
    router = APIRouter(tags=["whip"])

    async def publish(request: Request, raw_name: str, source_id: str | None,
                      codec: str | None) -> Response:
        bind_peer(request)
        check_open(node, sessions, client_ip(request))
        name = stream_name(node, raw_name)
        grant = await check_bearer(request, node, auth, PUBLISH, name)
        if source_id is not None and grant is not None and not grant.multisource:
            raise HttpError(403, "Forbidden: sourceId not allowed by token: multisource "
                            "publishing is not enabled")
        if codec is not None and codec.lower() not in VIDEO_CODECS:
            raise HttpError(400, f"Bad Request: unsupported codec {codec!r} (one of "
                            f"{', '.join(sorted(VIDEO_CODECS))})")
        offer = await read_sdp(request)
        session = PublisherSession(node, no_socket)
        session.grant = grant
        try:
            answer = await session.handle(messages.Command(None, "publish", {
                "name": name, "sourceId": source_id, "codec": codec, "sdp": offer}))
        except ValueError as exc:  # ProtocolError and SDP parse errors
            session.close()
            raise refusal(exc) from None
        assert session.transport is not None
        entry = HttpSession("whip", session, session.transport, client_ip(request))
        sessions.add(entry)
        log.info("whip %s publishes stream=%s source=%s as %s", entry.id[:8], name, source_id,
                 session.publisher_id)
        return created(entry, answer["sdp"], ice_server_links(auth.config, entry.id))

    @router.post("/api/whip/{streamName}", status_code=201, responses=ANSWERED,
                 openapi_extra=SDP_BODY)
    async def whip_publish(
        streamName: str,
        request: Request,
        sourceId: str | None = Query(None, min_length=1, max_length=128),
        codec: str | None = Query(None, max_length=16, description="vp8 (default), vp9, "
                                  "h264, av1 or h265"),
        priority: int | None = Query(None, description="accepted, no effect yet"),
        simulcastId: str | None = Query(None, max_length=64,
                                        description="accepted, no effect yet"),
    ) -> Response:
        """Publish `streamName` (RFC 9725): the body is the SDP offer, the reply the answer."""
        return await answered("whip", publish(request, streamName, sourceId, codec))

    @router.options("/api/whip/{streamName}", include_in_schema=False)
    async def whip_options(streamName: str) -> Response:
        return plain_options()

    add_session_routes(router, "whip", sessions)
    return router


def add_session_routes(router: APIRouter, kind: str, sessions: HttpSessions) -> None:
    """PATCH and DELETE on `/api/{kind}/session/{id}` (WHIP and WHEP alike)."""

    @router.patch(f"/api/{kind}/session/{{session_id}}", status_code=204,
                  name=f"{kind}_patch")
    async def session_patch(session_id: str, request: Request) -> Response:
        """Trickle ICE (204, ignored: the server is ICE-lite) or an ICE restart (422)."""
        try:
            return await patch(sessions.get(kind, session_id), request)
        except HttpError as exc:
            return exc.response()

    @router.delete(f"/api/{kind}/session/{{session_id}}", name=f"{kind}_delete")
    async def session_delete(session_id: str) -> Response:
        """End the session (If-Match is ignored here, RFC 9725 §4.4)."""
        try:
            entry = sessions.get(kind, session_id)
        except HttpError as exc:
            return exc.response()
        sessions.delete(entry, f"{kind.upper()} session deleted")
        log.info("%s %s deleted", kind, session_id[:8])
        return Response(status_code=200)
