"""GET /metrics: the Prometheus text format, open or behind a bearer token.

`ControlConfig.metrics_token` (`--metrics-token`, env HUBBUB_METRICS_TOKEN) set: a scrape
without `Authorization: Bearer <token>` gets 401. Not set: open, for operators who bind the
port privately or proxy it (docs/OPERATIONS.md). With `--workers N` each worker answers for
itself on its own HTTP port; nothing aggregates them.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from hubbub.control.auth.http import bearer, unauthorized
from hubbub.control.node import Node


def metrics_router(node: Node) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        token = node.config.control.metrics_token
        if token:
            given = bearer(request.headers.get("authorization"), required=True) or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise unauthorized("Unauthorized: /metrics needs its bearer token")
        return Response(node.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router
