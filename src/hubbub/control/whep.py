"""WHEP: play a stream with one HTTP POST of an SDP offer, and its events as server-sent events.

POST   /api/whep/{streamAccountId}/{streamName}[?sourceId=]   [Bearer <subscribe token/JWT>]
         → 201, the answer, Location: /api/whep/session/{id}, ETag, and Links to
           the SSE extension (urn:ietf:params:whep:ext:core:server-sent-events) and
           the layer extension (urn:ietf:params:whep:ext:core:layer)
POST   /api/whep/session/{id}/sse     JSON list of event names → 201, Location: the stream
GET    /api/whep/session/{id}/sse/stream   text/event-stream (control/sse.py)
POST   /api/whep/session/{id}/layer   JSON {encodingId, spatialLayerId, temporalLayerId}:
         the WebSocket's `select`; {} goes back to automatic
PATCH / DELETE /api/whep/session/{id}   as for WHIP

A token is needed as on the WebSocket: a subscribe token or Director JWT, none for a stream
under --open-viewing. `sourceId` pins the main tracks to that source (`pinnedSourceId`); audio
m-lines after the first are multiplexed slots, as for the SDK. The event stream is a capability
URL under the session's: EventSource cannot send an Authorization header.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from hubbub.control import messages
from hubbub.control.auth import credentials
from hubbub.control.auth.jwts import SUBSCRIBE, Grant
from hubbub.control.http_sessions import (
    HttpError,
    HttpSession,
    HttpSessions,
    answered,
    bearer_token,
    created,
    ice_server_links,
    plain_options,
    read_sdp,
    refusal,
)
from hubbub.control.session import KNOWN_EVENTS
from hubbub.control.sse import EventChannel, record
from hubbub.control.view import ViewerSession
from hubbub.control.whip import (
    ANSWERED,
    SDP_BODY,
    add_session_routes,
    bind_peer,
    check_bearer,
    check_open,
    client_ip,
    no_socket,
    stream_name,
)

if TYPE_CHECKING:
    from hubbub.control.auth.service import Auth
    from hubbub.control.node import Node

log = logging.getLogger(__name__)

SSE_REL = "urn:ietf:params:whep:ext:core:server-sent-events"
LAYER_REL = "urn:ietf:params:whep:ext:core:layer"
SSE_EVENTS = ("active", "inactive", "vad", "layers", "viewercount", "stopped")
MAX_EVENT_LIST = 1024  # bytes of the JSON list a client POSTs to the SSE URL
SSE_QUEUE_BYTES = 64 * 1024
"""Unread SSE records kept per session (~600 events): an address may hold 500 sessions, and
records wait even with no reader at all, so this is far below a WebSocket's 1 MiB."""


class WhepSession(ViewerSession):
    """A viewer whose events go to its SSE channel (once the client asked for one)."""

    def __init__(self, node: Node) -> None:
        super().__init__(node, no_socket)
        self.channel: EventChannel | None = None

    def write_event(self, name: str, data: dict[str, Any] | None) -> None:
        if self.channel is not None:
            self.channel.push(record(name, data))

    def open_channel(self, events: frozenset[str]) -> EventChannel:
        self.events = events
        if self.channel is None:
            self.channel = EventChannel(SSE_QUEUE_BYTES, self.snapshot)
        return self.channel

    def snapshot(self) -> list[bytes]:
        """What a new reader needs first: `active` for each live source."""
        stream = self.stream
        if stream is None or "active" not in self.events:
            return []
        return [record("active", self.node.hub.active_payload(stream, source))
                for source in sorted(stream.sources.values(), key=lambda s: s.order)]


def whep_router(node: Node, auth: Auth, sessions: HttpSessions) -> APIRouter:
    router = APIRouter(tags=["whep"])

    async def view_grant(request: Request, name: str) -> Grant | None:
        if bearer_token(request, required=False) is not None:
            return await check_bearer(request, node, auth, SUBSCRIBE, name)
        if node.config.control.allow_any_stream:
            return None
        if not auth.subscribe_requires_auth(name):
            return credentials.open_view_grant(name)
        raise HttpError(401, "Unauthorized: this stream requires a subscribe token",
                        {"WWW-Authenticate": 'Bearer realm="hubbub", error="invalid_request"'})

    async def view(request: Request, account: str, raw_name: str,
                   source_id: str | None) -> Response:
        bind_peer(request)
        check_open(node, sessions, client_ip(request))
        if account != node.account_id:
            raise HttpError(404, f"Not Found: unknown streamAccountId {account!r} (this "
                            f"node's account is {node.account_id!r})")
        name = stream_name(node, raw_name)
        grant = await view_grant(request, name)
        offer = await read_sdp(request)
        session = WhepSession(node)
        session.grant = grant
        try:
            answer = await session.handle(messages.Command(None, "view", {
                "streamId": name, "sdp": offer, "pinnedSourceId": source_id}))
        except ValueError as exc:
            session.close()
            raise refusal(exc) from None
        assert session.transport is not None
        entry = HttpSession("whep", session, session.transport, client_ip(request))
        sessions.add(entry)
        session.after_reply()  # the viewer joins the stream's events (kept until SSE asks)
        links = [
            f'<{entry.location}/sse>; rel="{SSE_REL}"; events="{",".join(SSE_EVENTS)}"',
            f'<{entry.location}/layer>; rel="{LAYER_REL}"',
            *ice_server_links(auth.config, entry.id),
        ]
        log.info("whep %s views stream=%s pinned=%s as %s", entry.id[:8], name, source_id,
                 session.subscriber_id)
        return created(entry, answer["sdp"], links)

    @router.post("/api/whep/{streamAccountId}/{streamName}", status_code=201,
                 responses=ANSWERED, openapi_extra=SDP_BODY)
    async def whep_view(
        streamAccountId: str,
        streamName: str,
        request: Request,
        sourceId: str | None = Query(None, min_length=1, max_length=128,
                                     description="the source the main tracks carry"),
    ) -> Response:
        """View `streamName`: the body is the SDP offer (recvonly), the reply the answer."""
        return await answered("whep", view(request, streamAccountId, streamName, sourceId))

    @router.options("/api/whep/{streamAccountId}/{streamName}", include_in_schema=False)
    async def whep_options(streamAccountId: str, streamName: str) -> Response:
        return plain_options()

    def whep_session(session_id: str) -> tuple[HttpSession, WhepSession]:
        entry = sessions.get("whep", session_id)
        assert isinstance(entry.session, WhepSession)
        return entry, entry.session

    @router.post("/api/whep/session/{session_id}/sse", status_code=201)
    async def sse_subscribe(session_id: str, request: Request) -> Response:
        """Ask for events (a JSON list of names; empty: all of them). The reply's Location
        is the event stream, for an EventSource."""
        try:
            entry, session = whep_session(session_id)
            events = _event_list(await request.body())
        except HttpError as exc:
            return exc.response()
        session.open_channel(events)
        return Response(status_code=201,
                        headers={"Location": f"{entry.location}/sse/stream"})

    @router.get("/api/whep/session/{session_id}/sse/stream")
    async def sse_stream(session_id: str) -> Response:
        """The session's events as text/event-stream (WHATWG HTML §9.2)."""
        try:
            _, session = whep_session(session_id)
        except HttpError as exc:
            return exc.response()
        channel = session.open_channel(session.events) if session.channel is None \
            else session.channel
        return StreamingResponse(channel.stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    @router.post("/api/whep/session/{session_id}/layer", status_code=204)
    async def layer(session_id: str, request: Request) -> Response:
        """Choose a layer, as the WebSocket's `select` does; {} is automatic."""
        try:
            _, session = whep_session(session_id)
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise HttpError(400, "Bad Request: the body must be a JSON object") from None
            if not isinstance(body, dict):
                raise HttpError(400, "Bad Request: the body must be a JSON object")
            layer = {k: v for k, v in body.items()
                     if k in ("encodingId", "spatialLayerId", "temporalLayerId")}
            await session.handle(messages.Command(None, "select", {"layer": layer}))
        except HttpError as exc:
            return exc.response()
        except messages.ProtocolError as exc:
            return HttpError(400, f"Bad Request: {exc.reason}").response()
        return Response(status_code=204)

    add_session_routes(router, "whep", sessions)
    return router


def _event_list(body: bytes) -> frozenset[str]:
    """The event names a client asks for; unknown names are ignored (WHEP events draft)."""
    if not body.strip():
        return frozenset(SSE_EVENTS)
    if len(body) > MAX_EVENT_LIST:
        raise HttpError(413, f"Payload Too Large: at most {MAX_EVENT_LIST} bytes of events")
    try:
        names = json.loads(body)
    except ValueError:
        raise HttpError(400, "Bad Request: the body must be a JSON list of event names") \
            from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise HttpError(400, "Bad Request: the body must be a JSON list of event names")
    return frozenset(n for n in names if n in KNOWN_EVENTS)
