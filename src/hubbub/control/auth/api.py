"""Admin REST API: /api/publish_token and /api/subscribe_token (Bearer <API secret>).

create  POST   /api/{kind}_token                 -> 201, the secret `token` shown this once
list    GET    /api/{kind}_token?offset&limit&includeRevoked
get     GET    /api/{kind}_token/{id}
update  PUT    /api/{kind}_token/{id}            only the fields given change
revoke  POST   /api/{kind}_token/{id}/revoke     permanent; issued JWTs run to their `exp`
delete  DELETE /api/{kind}_token/{id}

Each change is also a `tokens` webhook event (created, updated, revoked, deleted: the token as
`get` shows it, never its secret, plus `tokenType`); `hubbub token` on the store does not fire.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from hubbub.control.auth.http import ApiError, bearer, success, unauthorized
from hubbub.control.auth.jwts import PUBLISH, SUBSCRIBE
from hubbub.control.auth.models import (
    PublishTokenCreate,
    PublishTokenUpdate,
    SubscribeTokenCreate,
    SubscribeTokenUpdate,
    TokenEnvelope,
    TokenPageEnvelope,
    changes_from_update,
    spec_from_create,
    token_json,
)
from hubbub.control.auth.service import Auth
from hubbub.control.auth.store import TokenRecord

_MAX_ID = 2**63 - 1
TokenId = Path(ge=1, le=_MAX_ID, description="the token's id")

# Documents the scheme in OpenAPI; the header itself is parsed by `bearer` for exact errors.
_scheme = HTTPBearer(auto_error=False, description="the admin API secret")

Emit = Callable[[str, str, dict[str, object]], None]
"""Webhooks.emit: (type, event, data), enqueue only."""


def _no_events(type: str, event: str, data: dict[str, object]) -> None:
    pass


def api_router(auth: Auth, emit: Emit = _no_events) -> APIRouter:
    def token_event(event: str, kind: str, record: TokenRecord) -> None:
        emit("tokens", event, {"tokenType": kind, **token_json(record)})

    async def require_admin(request: Request, _: object = Depends(_scheme)) -> None:
        secret = bearer(request.headers.get("authorization"), required=True)
        if secret is None or not auth.admin_secret_ok(secret):
            raise unauthorized("Unauthorized: invalid API secret")

    router = APIRouter(prefix="/api", dependencies=[Depends(require_admin)])

    async def create(kind: str, body: PublishTokenCreate | SubscribeTokenCreate) -> JSONResponse:
        try:
            record, secret = await auth.store.create(kind, spec_from_create(body))
        except ValueError as exc:
            raise ApiError(400, f"Bad Request: {exc}") from None
        token_event("created", kind, record)
        return success(token_json(record, secret), 201)

    async def listing(kind: str, offset: int, limit: int, include_revoked: bool) -> JSONResponse:
        records, total = await auth.store.list_page(kind, offset, limit, include_revoked)
        items = [token_json(r) for r in records]
        return success({"items": items, "total": total, "offset": offset, "limit": limit})

    async def get(kind: str, token_id: int) -> JSONResponse:
        record = await auth.store.get(kind, token_id)
        if record is None:
            raise ApiError(404, f"Not Found: no {kind} token {token_id}")
        return success(token_json(record))

    async def change(
        kind: str, token_id: int, body: PublishTokenUpdate | SubscribeTokenUpdate
    ) -> JSONResponse:
        try:
            record = await auth.store.update(kind, token_id, changes_from_update(body))
        except ValueError as exc:
            raise ApiError(400, f"Bad Request: {exc}") from None
        if record is None:
            raise ApiError(404, f"Not Found: no {kind} token {token_id}")
        token_event("updated", kind, record)
        return success(token_json(record))

    async def revoke(kind: str, token_id: int) -> JSONResponse:
        before = await auth.store.get(kind, token_id)
        record = await auth.store.revoke(kind, token_id)
        if record is None:
            raise ApiError(404, f"Not Found: no {kind} token {token_id}")
        if before is not None and before.revoked_on is None:
            token_event("revoked", kind, record)
        return success(token_json(record))

    async def remove(kind: str, token_id: int) -> JSONResponse:
        record = await auth.store.get(kind, token_id)
        if record is None or not await auth.store.delete(kind, token_id):
            raise ApiError(404, f"Not Found: no {kind} token {token_id}")
        token_event("deleted", kind, record)
        return success({"id": token_id, "deleted": True})

    offset_q = Query(0, ge=0, le=2**31)
    limit_q = Query(100, ge=1, le=1000)
    revoked_q = Query(True, alias="includeRevoked")

    # --- publish tokens -------------------------------------------------------------------

    @router.post("/publish_token", status_code=201, response_model=TokenEnvelope,
                 tags=["publish tokens"])
    async def create_publish_token(body: PublishTokenCreate) -> JSONResponse:
        return await create(PUBLISH, body)

    @router.get("/publish_token", response_model=TokenPageEnvelope, tags=["publish tokens"])
    async def list_publish_tokens(
        offset: int = offset_q, limit: int = limit_q, include_revoked: bool = revoked_q
    ) -> JSONResponse:
        return await listing(PUBLISH, offset, limit, include_revoked)

    @router.get("/publish_token/{token_id}", response_model=TokenEnvelope,
                tags=["publish tokens"])
    async def get_publish_token(token_id: int = TokenId) -> JSONResponse:
        return await get(PUBLISH, token_id)

    @router.put("/publish_token/{token_id}", response_model=TokenEnvelope,
                tags=["publish tokens"])
    async def update_publish_token(
        body: PublishTokenUpdate, token_id: int = TokenId
    ) -> JSONResponse:
        return await change(PUBLISH, token_id, body)

    @router.post("/publish_token/{token_id}/revoke", response_model=TokenEnvelope,
                 tags=["publish tokens"])
    async def revoke_publish_token(token_id: int = TokenId) -> JSONResponse:
        return await revoke(PUBLISH, token_id)

    @router.delete("/publish_token/{token_id}", tags=["publish tokens"])
    async def delete_publish_token(token_id: int = TokenId) -> JSONResponse:
        return await remove(PUBLISH, token_id)

    # --- subscribe tokens -----------------------------------------------------------------

    @router.post("/subscribe_token", status_code=201, response_model=TokenEnvelope,
                 tags=["subscribe tokens"])
    async def create_subscribe_token(body: SubscribeTokenCreate) -> JSONResponse:
        return await create(SUBSCRIBE, body)

    @router.get("/subscribe_token", response_model=TokenPageEnvelope,
                tags=["subscribe tokens"])
    async def list_subscribe_tokens(
        offset: int = offset_q, limit: int = limit_q, include_revoked: bool = revoked_q
    ) -> JSONResponse:
        return await listing(SUBSCRIBE, offset, limit, include_revoked)

    @router.get("/subscribe_token/{token_id}", response_model=TokenEnvelope,
                tags=["subscribe tokens"])
    async def get_subscribe_token(token_id: int = TokenId) -> JSONResponse:
        return await get(SUBSCRIBE, token_id)

    @router.put("/subscribe_token/{token_id}", response_model=TokenEnvelope,
                tags=["subscribe tokens"])
    async def update_subscribe_token(
        body: SubscribeTokenUpdate, token_id: int = TokenId
    ) -> JSONResponse:
        return await change(SUBSCRIBE, token_id, body)

    @router.post("/subscribe_token/{token_id}/revoke", response_model=TokenEnvelope,
                 tags=["subscribe tokens"])
    async def revoke_subscribe_token(token_id: int = TokenId) -> JSONResponse:
        return await revoke(SUBSCRIBE, token_id)

    @router.delete("/subscribe_token/{token_id}", tags=["subscribe tokens"])
    async def delete_subscribe_token(token_id: int = TokenId) -> JSONResponse:
        return await remove(SUBSCRIBE, token_id)

    return router
