"""WebhookStore: registrations and the delivery log, in the token store's database.

The signing secret is kept in clear (every delivery is signed with it); it is returned by the
API once, at creation. The delivery log keeps `log_keep` rows per webhook, newest first.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from hubbub.control.webhooks import schema
from hubbub.control.webhooks.dispatcher import Attempt, Webhook

PRUNE_EVERY = 50  # rows written per webhook between prunes of its log


@dataclass(frozen=True)
class Delivery:
    """A row of the delivery log: one attempt to POST one event to one webhook."""

    id: int
    webhook_id: int
    event_id: str
    type: str
    event: str
    attempt: int
    delivered: bool
    final: bool
    status_code: int | None
    error: str | None
    event_time: float
    attempted_on: float
    duration: float


def _hook(row: RowMapping) -> Webhook:
    return Webhook(
        id=int(row["id"]), url=row["url"], secret=row["secret"],
        types=frozenset(json.loads(row["types"])), description=row["description"],
        active=bool(row["active"]), created_on=row["created_on"], updated_on=row["updated_on"],
    )


def _delivery(row: RowMapping) -> Delivery:
    return Delivery(
        id=int(row["id"]), webhook_id=int(row["webhook_id"]), event_id=row["event_id"],
        type=row["type"], event=row["event"], attempt=int(row["attempt"]),
        delivered=bool(row["delivered"]), final=bool(row["final"]),
        status_code=row["status_code"], error=row["error"], event_time=row["event_time"],
        attempted_on=row["attempted_on"], duration=row["duration"],
    )


class WebhookStore:
    def __init__(self, engine: AsyncEngine, log_keep: int = 1000) -> None:
        self.engine = engine
        self.log_keep = log_keep
        self._written: dict[int, int] = {}

    @classmethod
    async def open(cls, engine: AsyncEngine, log_keep: int = 1000) -> WebhookStore:
        """On the token store's engine (not closed by this store); migrates the tables."""
        await schema.migrate(engine)
        return cls(engine, log_keep)

    # --- registrations ---------------------------------------------------------------------

    async def webhooks(self) -> list[Webhook]:
        query = select(schema.webhooks).order_by(schema.webhooks.c.id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_hook(r) for r in rows]

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            total = await conn.execute(select(func.count()).select_from(schema.webhooks))
            return int(total.scalar_one())

    async def create(self, url: str, types: frozenset[str], description: str = "",
                     active: bool = True) -> Webhook:
        """A new registration with a fresh secret (64 hex digits, 256 bits)."""
        now = time.time()
        hook = Webhook(0, url, secrets.token_hex(32), types, description, active, now, now)
        async with self.engine.begin() as conn:
            result = await conn.execute(schema.webhooks.insert().values(**_columns(hook)))
            hook_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return replace(hook, id=hook_id)

    async def get(self, hook_id: int) -> Webhook | None:
        query = select(schema.webhooks).where(schema.webhooks.c.id == hook_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _hook(row) if row is not None else None

    async def update(self, hook_id: int, changes: dict[str, Any],
                     new_secret: bool = False) -> Webhook | None:
        """Apply `changes` (Webhook field names: url, types, description, active)."""
        current = await self.get(hook_id)
        if current is None:
            return None
        hook = replace(current, **changes, updated_on=time.time())
        if new_secret:
            hook = replace(hook, secret=secrets.token_hex(32))
        async with self.engine.begin() as conn:
            await conn.execute(update(schema.webhooks).where(schema.webhooks.c.id == hook_id)
                               .values(**_columns(hook)))
        return hook

    async def delete(self, hook_id: int) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(schema.webhooks).where(schema.webhooks.c.id == hook_id))
            await conn.execute(
                delete(schema.deliveries).where(schema.deliveries.c.webhook_id == hook_id))
        self._written.pop(hook_id, None)
        return bool(result.rowcount)

    # --- the delivery log ------------------------------------------------------------------

    async def record(self, attempt: Attempt) -> None:
        values = {
            "webhook_id": attempt.webhook_id, "event_id": attempt.event.id,
            "type": attempt.event.type[:32], "event": attempt.event.event[:32],
            "attempt": attempt.attempt, "delivered": attempt.delivered, "final": attempt.final,
            "status_code": attempt.status_code,
            "error": attempt.error[:512] if attempt.error is not None else None,
            "event_time": attempt.event.timestamp / 1000, "attempted_on": attempt.at,
            "duration": attempt.duration,
        }
        async with self.engine.begin() as conn:
            await conn.execute(schema.deliveries.insert().values(**values))
        written = self._written.get(attempt.webhook_id, 0) + 1
        self._written[attempt.webhook_id] = written
        if written % PRUNE_EVERY == 1:  # the first write too: a restart may find a long log
            await self.prune(attempt.webhook_id)

    async def prune(self, hook_id: int) -> None:
        """Keep the newest `log_keep` rows of one webhook's log."""
        d = schema.deliveries
        cutoff = (select(d.c.id).where(d.c.webhook_id == hook_id).order_by(d.c.id.desc())
                  .offset(self.log_keep).limit(1).scalar_subquery())
        async with self.engine.begin() as conn:
            await conn.execute(delete(d).where(and_(d.c.webhook_id == hook_id, d.c.id <= cutoff)))

    async def deliveries(self, hook_id: int, offset: int = 0,
                         limit: int = 50) -> tuple[list[Delivery], int]:
        """A page of one webhook's log, newest first, and the number of rows in it."""
        d = schema.deliveries
        query = (select(d).where(d.c.webhook_id == hook_id).order_by(d.c.id.desc())
                 .offset(offset).limit(limit))
        count = select(func.count()).select_from(d).where(d.c.webhook_id == hook_id)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            total = int((await conn.execute(count)).scalar_one())
        return [_delivery(r) for r in rows], total


def _columns(hook: Webhook) -> dict[str, Any]:
    return {"url": hook.url, "secret": hook.secret, "types": json.dumps(sorted(hook.types)),
            "description": hook.description, "active": hook.active,
            "created_on": hook.created_on, "updated_on": hook.updated_on}
