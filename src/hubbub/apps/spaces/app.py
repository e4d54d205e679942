"""SpacesApp: the REST API, the presence WebSocket and the web UI, as one ASGI app.

Mounted at `config.path` (default /spaces) by `hubbub serve`, or served alone by
`hubbub spaces` against a remote node. Routes, relative to the mount point:

    GET  /                          the web UI (static/index.html; static/ holds its modules)
    POST /api/users {name}          a new identity -> {id, name, secret} (the browser keeps it)
    GET  /api/me, PUT /api/me       who the Bearer secret is; rename
    GET  /api/rooms                 open rooms;  POST /api/rooms {name, audioOnly} -> a room
    GET  /api/rooms/{id}            room state
    POST /api/rooms/{id}/join       -> {room, selfId, role, viewer, publisher|null} (Director data)
    POST /api/rooms/{id}/leave | hand {raised} | mute {muted} | close
    POST /api/rooms/{id}/media {micBlocked, video}   what a speaker's page publishes
    POST /api/rooms/{id}/invite | uninvite | demote | kick  {userId}     (owner only;
                                    /promote is an old name of /invite)
    POST /api/rooms/{id}/invitation {accept}   the invited listener's answer -> {room,
                                    publisher|null}: only a yes makes them a speaker
    WS   /ws                        presence: send {"type": "hello", "roomId", "secret"}, then
                                    receive state / invited / uninvited / declined (owner) /
                                    demoted / kicked / closed {reason}; or, from a lobby page,
                                    {"type": "hello", "lobby": true}, then receive rooms
                                    {rooms} now and at every change

Every call but POST /api/users carries `Authorization: Bearer <secret>`; errors are
`{"error": "..."}` with 400/401/403/404/409/410/413/429/502.

Limits (limits.py, SpacesConfig): request bodies over `max_body_bytes` get 413 before they are
read; new identities and new rooms are rate-limited per client address (429 + Retry-After);
an identity has at most `max_rooms_per_owner` rooms open (409).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect

from hubbub.apps.spaces.config import SpacesConfig
from hubbub.apps.spaces.limits import AddressLimiter, BodyLimit
from hubbub.apps.spaces.models import User
from hubbub.apps.spaces.platform import PlatformClient
from hubbub.apps.spaces.presence import Connection
from hubbub.apps.spaces.rooms import RoomService, SpacesError
from hubbub.apps.spaces.store import RoomStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
HELLO_TIMEOUT = 10.0
MAX_WS_MESSAGE = 4096

# Presence socket close codes (RFC 6455 §7.4.2 leaves 4000-4999 to applications).
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_FORBIDDEN = 4403
CLOSE_GONE = 4410
CLOSE_BAD_HELLO = 4400


def _plain(value: str) -> str:
    value = " ".join(value.split())  # no control characters, newlines or runs of spaces
    if not value:
        raise ValueError("must not be empty")
    return value


Name = Annotated[str, AfterValidator(_plain), Field(min_length=1, max_length=40)]
RoomName = Annotated[str, AfterValidator(_plain), Field(min_length=1, max_length=80)]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class NewRoom(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: RoomName
    audioOnly: StrictBool = False


class Hand(BaseModel):
    raised: StrictBool


class Mute(BaseModel):
    muted: StrictBool


class Target(BaseModel):
    userId: str = Field(min_length=1, max_length=64)


class Answer(BaseModel):
    accept: StrictBool


class MediaReport(BaseModel):
    micBlocked: StrictBool
    video: StrictBool = False


async def _answer_pings(websocket: WebSocket, conn: Connection) -> None:
    """Until the socket closes: clients send {"type": "ping"} to keep proxies from idling it."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") and '"ping"' in message["text"][:64]:
                conn.send({"type": "pong"})
    except (WebSocketDisconnect, RuntimeError):
        return


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _client(request: Request) -> str | None:
    """The client's address: the peer, or what a trusted proxy forwarded (see limits.py)."""
    return request.client.host if request.client else None


class SpacesApp:
    """`asgi` serves the app; `start()`/`stop()` open and close its database and timers."""

    def __init__(self, config: SpacesConfig) -> None:
        self.config = config
        self.path = config.path.rstrip("/") or "/"
        self._service: RoomService | None = None
        self._store: RoomStore | None = None
        self.new_users = AddressLimiter("new identities", config.user_rate, config.user_burst,
                                        config.max_tracked_addresses)
        self.new_rooms = AddressLimiter("new rooms", config.room_rate, config.room_burst,
                                        config.max_tracked_addresses)
        self.body_limit = BodyLimit(self._build(), config.max_body_bytes)
        self.asgi: ASGIApp = self.body_limit

    @property
    def service(self) -> RoomService:
        if self._service is None:
            raise SpacesError(503, "Spaces is starting; try again in a moment")
        return self._service

    async def start(self) -> None:
        store = await RoomStore.open(self.config.database_url)
        platform = PlatformClient(
            self.config.hubbub_url, self.config.api_secret, store, self.config.http_timeout
        )
        service = RoomService(
            store, platform, self.config.presence_grace, self.config.max_open_rooms,
            self.config.max_rooms_per_owner,
        )
        await service.start()
        self._store, self._service = store, service

    async def stop(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            await service.stop()
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    # --- helpers -------------------------------------------------------------------------

    async def _user(self, request: Request) -> User:
        header = request.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise SpacesError(401, "missing Authorization: Bearer <secret>")
        user = await self.service.store.user_by_secret(secret.strip())
        if user is None:
            raise SpacesError(401, "session expired: this identity is unknown here")
        return user

    def _host(self, request: Request) -> str | None:
        return request.headers.get("host") if self.config.forward_host else None

    # --- the ASGI app --------------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI(title="hubbub Spaces", docs_url="/api/docs", openapi_url="/api/openapi.json",
                      redoc_url=None)

        @app.exception_handler(SpacesError)
        async def spaces_error(request: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, SpacesError)
            response = _error(exc.status, exc.message)
            response.headers.update(exc.headers or {})
            return response

        @app.exception_handler(RequestValidationError)
        async def bad_request(request: Request, exc: Exception) -> JSONResponse:
            assert isinstance(exc, RequestValidationError)
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
            return _error(400, f"{where or 'body'}: {first.get('msg', 'invalid')}")

        @app.get("/", include_in_schema=False)
        async def index() -> FileResponse:
            return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

        @app.post("/api/users", status_code=201)
        async def create_user(body: NewUser, request: Request) -> JSONResponse:
            self.new_users.check(_client(request))
            user, secret = await self.service.store.create_user(body.name)
            return JSONResponse({"id": user.id, "name": user.name, "secret": secret}, 201)

        @app.get("/api/me")
        async def me(request: Request) -> dict[str, Any]:
            user = await self._user(request)
            return {"id": user.id, "name": user.name}

        @app.put("/api/me")
        async def rename(body: NewUser, request: Request) -> dict[str, Any]:
            user = await self._user(request)
            await self.service.store.rename_user(user.id, body.name)
            return {"id": user.id, "name": body.name}

        @app.get("/api/rooms")
        async def rooms(request: Request) -> dict[str, Any]:
            """The live rooms (public, like the lobby's push over /ws)."""
            return {"rooms": await self.service.list_rooms()}

        @app.post("/api/rooms", status_code=201)
        async def create_room(body: NewRoom, request: Request) -> JSONResponse:
            self.new_rooms.check(_client(request))
            user = await self._user(request)
            room = await self.service.create_room(user, body.name, body.audioOnly)
            return JSONResponse({"room": self.service.state(room)}, 201)

        @app.get("/api/rooms/{room_id}")
        async def get_room(room_id: str, request: Request) -> dict[str, Any]:
            await self._user(request)
            return {"room": self.service.state(await self.service.open_room(room_id))}

        @app.post("/api/rooms/{room_id}/join")
        async def join(room_id: str, request: Request) -> dict[str, Any]:
            user = await self._user(request)
            return await self.service.join(user, room_id, self._host(request))

        @app.post("/api/rooms/{room_id}/leave")
        async def leave(room_id: str, request: Request) -> dict[str, Any]:
            await self.service.leave(await self._user(request), room_id)
            return {"left": True}

        @app.post("/api/rooms/{room_id}/hand")
        async def hand(room_id: str, body: Hand, request: Request) -> dict[str, Any]:
            user = await self._user(request)
            return {"room": await self.service.raise_hand(user, room_id, body.raised)}

        @app.post("/api/rooms/{room_id}/mute")
        async def mute(room_id: str, body: Mute, request: Request) -> dict[str, Any]:
            user = await self._user(request)
            return {"room": await self.service.set_muted(user, room_id, body.muted)}

        @app.post("/api/rooms/{room_id}/media")
        async def media(room_id: str, body: MediaReport, request: Request) -> dict[str, Any]:
            """A speaker's page reports its media: the microphone refused, video published."""
            user = await self._user(request)
            return {"room": await self.service.report_media(user, room_id, body.micBlocked,
                                                            body.video)}

        @app.post("/api/rooms/{room_id}/invite")
        async def invite(room_id: str, body: Target, request: Request) -> dict[str, Any]:
            """The owner asks a listener on stage; nothing goes live before they accept."""
            user = await self._user(request)
            return {"room": await self.service.invite(user, room_id, body.userId)}

        # The name of the owner's action before consent was asked for: the same invitation.
        app.post("/api/rooms/{room_id}/promote", include_in_schema=False)(invite)

        @app.post("/api/rooms/{room_id}/uninvite")
        async def uninvite(room_id: str, body: Target, request: Request) -> dict[str, Any]:
            user = await self._user(request)
            return {"room": await self.service.uninvite(user, room_id, body.userId)}

        @app.post("/api/rooms/{room_id}/invitation")
        async def invitation(room_id: str, body: Answer, request: Request) -> dict[str, Any]:
            """The invited listener's answer; accepting returns the publish JWT (`publisher`,
            the Director's reply) for this client only."""
            user = await self._user(request)
            return await self.service.answer_invitation(user, room_id, body.accept,
                                                        self._host(request))

        @app.post("/api/rooms/{room_id}/demote")
        async def demote(room_id: str, body: Target, request: Request) -> dict[str, Any]:
            user = await self._user(request)
            return {"room": await self.service.demote(user, room_id, body.userId)}

        @app.post("/api/rooms/{room_id}/kick")
        async def kick(room_id: str, body: Target, request: Request) -> dict[str, Any]:
            user = await self._user(request)
            return {"room": await self.service.kick(user, room_id, body.userId)}

        @app.post("/api/rooms/{room_id}/close")
        async def close(room_id: str, request: Request) -> dict[str, Any]:
            await self.service.close(await self._user(request), room_id)
            return {"closed": True}

        @app.websocket("/ws")
        async def presence(websocket: WebSocket) -> None:
            await self._presence(websocket)

        return app

    # --- presence socket -----------------------------------------------------------------

    async def _hello(self, websocket: WebSocket) -> tuple[User, str] | tuple[int, str] | None:
        """A room page's hello: (user, room id), or (close code, reason); None for a lobby
        page's `{type: hello, lobby: true}` (no identity needed: the lobby is public)."""
        try:
            text = await asyncio.wait_for(websocket.receive_text(), HELLO_TIMEOUT)
            hello = json.loads(text) if len(text) <= MAX_WS_MESSAGE else None
        except (TimeoutError, ValueError, KeyError):
            return CLOSE_BAD_HELLO, "expected {type: hello, roomId, secret}"
        if isinstance(hello, dict) and hello.get("type") == "hello" and hello.get("lobby") is True:
            return None
        if not (isinstance(hello, dict) and hello.get("type") == "hello"
                and isinstance(hello.get("roomId"), str) and isinstance(hello.get("secret"), str)):
            return CLOSE_BAD_HELLO, "expected {type: hello, roomId, secret}"
        user = await self.service.store.user_by_secret(hello["secret"])
        if user is None:
            return CLOSE_UNAUTHORIZED, "session expired"
        try:
            await self.service.member_of(user, hello["roomId"])
        except SpacesError as exc:
            code = {404: CLOSE_NOT_FOUND, 410: CLOSE_GONE}.get(exc.status, CLOSE_FORBIDDEN)
            return code, exc.message
        return user, hello["roomId"]

    async def _lobby(self, websocket: WebSocket) -> None:
        """A lobby page: the live rooms now, then again whenever they change."""

        async def close(code: int, reason: str) -> None:
            await websocket.close(code=code, reason=reason)

        conn = Connection("", "", websocket.send_text, close)
        presence = self.service.presence
        presence.lobby.add(conn)
        try:
            conn.send({"type": "rooms", "rooms": await self.service.list_rooms()})
            await _answer_pings(websocket, conn)
        finally:
            conn.stop()
            presence.lobby.discard(conn)

    async def _presence(self, websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            verdict = await self._hello(websocket)
        except (WebSocketDisconnect, SpacesError):
            return
        if verdict is None:
            await self._lobby(websocket)
            return
        if isinstance(verdict[0], int):
            await websocket.close(code=verdict[0], reason=str(verdict[1])[:120])
            return
        user, room_id = verdict
        assert isinstance(user, User) and isinstance(room_id, str)

        async def close(code: int, reason: str) -> None:
            await websocket.close(code=code, reason=reason)

        conn = Connection(room_id, user.id, websocket.send_text, close)
        service = self.service
        service.presence.add(conn)
        try:
            await service.connected(room_id)  # the full state, to everyone including them
            await _answer_pings(websocket, conn)
        finally:
            conn.stop()
            if service.presence.remove(conn):
                try:
                    await service.connected(room_id)
                except SpacesError:
                    pass
