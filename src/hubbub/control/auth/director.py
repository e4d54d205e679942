"""The Director: trade a long-lived token for a short-lived, stream-bound JWT (PROTOCOL.md).

POST /api/director/publish    Authorization: Bearer <publish token>, {"streamName", "streamType"}
POST /api/director/subscribe  [Authorization: Bearer <subscribe token>],
                              {"streamAccountId", "streamName"}
GET  /.well-known/jwks.json   the public keys the JWTs verify with (RFC 7517 §5)

Status codes: 401 bad/expired/revoked token or missing one (the SDK stops retrying only on 401),
403 a token that does not cover the stream, origin or client address, 400 a bad body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import jwt
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from hubbub.control.auth import credentials, turn
from hubbub.control.auth.http import ApiError, bearer, success, unauthorized
from hubbub.control.auth.jwts import PUBLISH, SUBSCRIBE, Grant, TokenRejected
from hubbub.control.auth.service import Auth


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the SDK may grow fields

    streamName: str = Field(min_length=1, max_length=256)
    streamType: str | None = Field(None, max_length=32, description='"WebRtc" (the default)')


class SubscribeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    streamName: str = Field(min_length=1, max_length=256)
    streamAccountId: str | None = Field(None, max_length=256)


class IceServer(BaseModel):
    """An RTCIceServer dictionary (W3C webrtc-pc), which the SDK gives RTCPeerConnection."""

    urls: list[str] = Field(description="turn:/turns: URIs (RFC 7065)")
    username: str = Field(description='"<expiry unix seconds>:<JWT jti>" (TURN REST API)')
    credential: str = Field(description="base64(HMAC-SHA1(TURN secret, username))")


class DirectorData(BaseModel):
    urls: list[str]
    wsUrl: str
    jwt: str
    streamAccountId: str
    iceServers: list[IceServer] = Field(description="empty without --turn-server")
    subscribeRequiresAuth: bool


class DirectorReply(BaseModel):
    status: str = "success"
    data: DirectorData


def ws_base(public_url: str, request: Request) -> str:
    """ws(s)://host[:port] clients reach us at: `--public-url`, else the request's Host."""
    if public_url:
        parts = urlsplit(public_url)
        scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
        return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    scheme = "wss" if request.url.scheme == "https" else "ws"
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{scheme}://{host}"


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def director_router(
    auth: Auth,
    account_id: str,
    check_stream_name: Callable[[str], None],
    public_url: str,
    place: Callable[[str, str], Awaitable[str | None]] | None = None,
) -> APIRouter:
    """`place(role, stream)` picks the node a client should use in a cluster: its ws base URL,
    or None for this node."""
    router = APIRouter(tags=["director"])
    turn_uris = turn.check_settings(auth.config.turn_servers, auth.config.turn_secret)

    def ice_servers(token: str) -> list[dict[str, object]]:
        """TURN credentials that expire with the JWT (`exp`) and name it (`jti`), so coturn's
        log ties an allocation to the JWT it came with."""
        if not turn_uris:
            return []
        claims = jwt.decode(token, options={"verify_signature": False})  # we just signed it
        return turn.ice_servers(
            turn_uris, auth.config.turn_secret, int(claims["exp"]), str(claims["jti"])
        )

    def stream_name(raw: str) -> str:
        try:
            check_stream_name(raw)
        except ValueError as exc:
            raise ApiError(400, f"Bad Request: {exc}") from None
        return raw

    async def long_lived(kind: str, secret: str, name: str, request: Request) -> Grant:
        try:
            return await credentials.long_lived_grant(auth, kind, secret, name,
                                                      client_ip(request),
                                                      request.headers.get("origin"))
        except TokenRejected as exc:
            raise (unauthorized(exc.message) if exc.status == 401
                   else ApiError(exc.status, exc.message)) from None

    async def reply(
        request: Request, path: str, grant: Grant, requires_auth: bool
    ) -> JSONResponse:
        role = "publish" if grant.kind == PUBLISH else "view"
        base = await place(role, grant.stream) if place is not None else None
        url = f"{base or ws_base(public_url, request)}{path}"
        token = auth.issue(grant)
        return success(
            {
                "urls": [url],
                "wsUrl": url,
                "jwt": token,
                "streamAccountId": account_id,
                "iceServers": ice_servers(token),
                "subscribeRequiresAuth": requires_auth,
            }
        )

    @router.post("/api/director/publish", response_model=DirectorReply)
    async def director_publish(body: PublishRequest, request: Request) -> JSONResponse:
        secret = bearer(request.headers.get("authorization"), required=True)
        assert secret is not None
        name = stream_name(body.streamName)
        if body.streamType is not None and body.streamType.lower() != "webrtc":
            raise ApiError(400, f"Bad Request: unsupported streamType {body.streamType!r}")
        grant = await long_lived(PUBLISH, secret, name, request)
        return await reply(request, "/ws/v2/pub", grant, auth.subscribe_requires_auth(name))

    @router.post("/api/director/subscribe", response_model=DirectorReply)
    async def director_subscribe(body: SubscribeRequest, request: Request) -> JSONResponse:
        secret = bearer(request.headers.get("authorization"), required=False)
        name = stream_name(body.streamName)
        if body.streamAccountId not in (None, "", account_id):
            raise ApiError(
                400,
                f"Bad Request: unknown streamAccountId {body.streamAccountId!r} "
                f"(this node's account is {account_id!r})",
            )
        requires_auth = auth.subscribe_requires_auth(name)
        if secret is None:
            if requires_auth:
                raise unauthorized(
                    "Unauthorized: this stream requires a subscribe token", "invalid_request"
                )
            grant = credentials.open_view_grant(name)
            return await reply(request, "/ws/v2/sub", grant, requires_auth)
        grant = await long_lived(SUBSCRIBE, secret, name, request)
        return await reply(request, "/ws/v2/sub", grant, requires_auth)

    @router.get("/.well-known/jwks.json")
    async def jwks() -> JSONResponse:
        return JSONResponse(auth.key.jwks(), headers={"Cache-Control": "public, max-age=300"})

    return router
