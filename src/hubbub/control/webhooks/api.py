"""Admin REST API of webhooks (Bearer <API secret>), and their life in the node.

create      POST   /api/webhooks                      -> 201, the signing `secret` shown once
list        GET    /api/webhooks?offset&limit
get         GET    /api/webhooks/{id}
update      PUT    /api/webhooks/{id}                 only the fields given change
delete      DELETE /api/webhooks/{id}
deliveries  GET    /api/webhooks/{id}/deliveries?offset&limit   newest first
test        POST   /api/webhooks/{id}/test            -> 202, a `test`/`ping` event queued
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer

from hubbub.control.auth.http import ApiError, bearer, success, unauthorized
from hubbub.control.auth.service import Auth
from hubbub.control.node import Node
from hubbub.control.webhooks.feeds import FeedEvents
from hubbub.control.webhooks.models import (
    DeliveryPageEnvelope,
    PingEnvelope,
    WebhookCreate,
    WebhookEnvelope,
    WebhookPageEnvelope,
    WebhookUpdate,
    delivery_json,
    webhook_json,
)
from hubbub.control.webhooks.store import WebhookStore

_MAX_ID = 2**63 - 1
HookId = Path(ge=1, le=_MAX_ID, description="the webhook's id")
_scheme = HTTPBearer(auto_error=False, description="the admin API secret")


class WebhookService:
    """Opens the webhook tables on the token store's database, feeds the node's dispatcher
    its registrations, attaches the feed events to the node's EventHub, and serves the API.
    Started after `Auth`, stopped before it."""

    def __init__(self, auth: Auth, node: Node) -> None:
        self.auth = auth
        self.webhooks = node.webhooks
        self._store: WebhookStore | None = None
        node.hub.feeds = FeedEvents(node.webhooks, node.account_id, node.cluster_id,
                                    node.webhooks.config.viewer_interval)

    @property
    def store(self) -> WebhookStore:
        if self._store is None:
            raise RuntimeError("WebhookService.start() has not run")
        return self._store

    async def start(self) -> None:
        self._store = await WebhookStore.open(self.auth.store.engine,
                                              self.webhooks.config.log_keep)
        await self.webhooks.start(self._store)

    async def stop(self) -> None:
        await self.webhooks.stop()
        self._store = None

    def router(self) -> APIRouter:
        auth, webhooks = self.auth, self.webhooks

        async def require_admin(request: Request, _: object = Depends(_scheme)) -> None:
            secret = bearer(request.headers.get("authorization"), required=True)
            if secret is None or not auth.admin_secret_ok(secret):
                raise unauthorized("Unauthorized: invalid API secret")

        router = APIRouter(prefix="/api/webhooks", tags=["webhooks"],
                           dependencies=[Depends(require_admin)])
        offset_q = Query(0, ge=0, le=2**31)
        limit_q = Query(50, ge=1, le=500)

        def not_found(hook_id: int) -> ApiError:
            return ApiError(404, f"Not Found: no webhook {hook_id}")

        @router.post("", status_code=201, response_model=WebhookEnvelope)
        async def create_webhook(body: WebhookCreate) -> JSONResponse:
            limit = webhooks.config.max_webhooks
            if await self.store.count() >= limit:
                raise ApiError(409, f"Conflict: at most {limit} webhooks (delete one first)")
            hook = await self.store.create(body.url, frozenset(body.types), body.description,
                                           body.active)
            webhooks.put(hook)
            return success(webhook_json(hook, 0, with_secret=True), 201)

        @router.get("", response_model=WebhookPageEnvelope)
        async def list_webhooks(offset: int = offset_q, limit: int = limit_q) -> JSONResponse:
            hooks = await self.store.webhooks()
            page = hooks[offset:offset + limit]
            items = [webhook_json(h, webhooks.queued(h.id)) for h in page]
            return success({"items": items, "total": len(hooks), "offset": offset,
                            "limit": limit})

        @router.get("/{hook_id}", response_model=WebhookEnvelope)
        async def get_webhook(hook_id: int = HookId) -> JSONResponse:
            hook = await self.store.get(hook_id)
            if hook is None:
                raise not_found(hook_id)
            return success(webhook_json(hook, webhooks.queued(hook_id)))

        @router.put("/{hook_id}", response_model=WebhookEnvelope)
        async def update_webhook(body: WebhookUpdate, hook_id: int = HookId) -> JSONResponse:
            changes: dict[str, object] = {}
            for name in body.model_fields_set - {"rotateSecret"}:
                value = getattr(body, name)
                if value is None:
                    raise ApiError(400, f"Bad Request: {name} cannot be null")
                changes[name] = frozenset(value) if name == "types" else value
            hook = await self.store.update(hook_id, changes, new_secret=body.rotateSecret)
            if hook is None:
                raise not_found(hook_id)
            webhooks.put(hook)
            return success(webhook_json(hook, webhooks.queued(hook_id),
                                        with_secret=body.rotateSecret))

        @router.delete("/{hook_id}")
        async def delete_webhook(hook_id: int = HookId) -> JSONResponse:
            if not await self.store.delete(hook_id):
                raise not_found(hook_id)
            webhooks.remove(hook_id)
            return success({"id": hook_id, "deleted": True})

        @router.post("/{hook_id}/test", status_code=202, response_model=PingEnvelope)
        async def test_webhook(hook_id: int = HookId) -> JSONResponse:
            hook = await self.store.get(hook_id)
            if hook is None:
                raise not_found(hook_id)
            if not hook.active:
                raise ApiError(409, f"Conflict: webhook {hook_id} is not active")
            occurrence = webhooks.ping(hook)
            return success({"eventId": occurrence.id, "queued": webhooks.queued(hook_id)},
                           202)

        @router.get("/{hook_id}/deliveries", response_model=DeliveryPageEnvelope)
        async def list_deliveries(hook_id: int = HookId, offset: int = offset_q,
                                  limit: int = limit_q) -> JSONResponse:
            if await self.store.get(hook_id) is None:
                raise not_found(hook_id)
            rows, total = await self.store.deliveries(hook_id, offset, limit)
            return success({"items": [delivery_json(r) for r in rows], "total": total,
                            "offset": offset, "limit": limit})

        return router
