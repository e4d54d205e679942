"""WebhookStore on SQLite and PostgreSQL: registrations, the bounded delivery log (newest
first, paginated), migrations run once beside the token tables."""

from __future__ import annotations

import time

from sqlalchemy import text

from hubbub.control.auth.store import TokenStore
from hubbub.control.webhooks import schema
from hubbub.control.webhooks.dispatcher import Attempt
from hubbub.control.webhooks.events import WebhookEvent
from hubbub.control.webhooks.store import WebhookStore


def attempt(hook_id: int, n: int, delivered: bool = False) -> Attempt:
    event = WebhookEvent("feeds", "started", {"n": n})
    return Attempt(hook_id, event, attempt=n, delivered=delivered, final=delivered,
                   status_code=200 if delivered else None,
                   error=None if delivered else "ConnectError: refused", at=time.time(),
                   duration=0.01)


async def test_registrations_round_trip(store: TokenStore) -> None:
    hooks = await WebhookStore.open(store.engine)
    made = await hooks.create("https://example.test/h", frozenset({"feeds", "tokens"}), "x")
    assert made.id >= 1 and len(made.secret) == 64 and made.active
    assert await hooks.get(made.id) == made
    assert await hooks.webhooks() == [made] and await hooks.count() == 1
    changed = await hooks.update(made.id, {"types": frozenset({"recordings"}), "active": False})
    assert changed is not None and changed.types == {"recordings"} and not changed.active
    assert changed.secret == made.secret and changed.url == made.url
    rotated = await hooks.update(made.id, {}, new_secret=True)
    assert rotated is not None and rotated.secret != made.secret
    assert await hooks.get(made.id) == rotated
    assert await hooks.update(made.id + 1, {"active": True}) is None
    assert await hooks.delete(made.id) and not await hooks.delete(made.id)
    assert await hooks.webhooks() == []


async def test_the_delivery_log_is_newest_first_and_bounded(store: TokenStore) -> None:
    hooks = await WebhookStore.open(store.engine, log_keep=5)
    one = await hooks.create("https://example.test/1", frozenset({"feeds"}))
    two = await hooks.create("https://example.test/2", frozenset({"feeds"}))
    await hooks.record(attempt(two.id, 1))
    for n in range(1, 8):
        await hooks.record(attempt(one.id, n, delivered=n == 7))
    await hooks.prune(one.id)
    rows, total = await hooks.deliveries(one.id)
    assert total == 5 and [r.attempt for r in rows] == [7, 6, 5, 4, 3]
    assert rows[0].delivered and rows[0].status_code == 200 and rows[0].error is None
    assert not rows[1].delivered and rows[1].error == "ConnectError: refused"
    page, _ = await hooks.deliveries(one.id, offset=2, limit=2)
    assert [r.attempt for r in page] == [5, 4]
    assert (await hooks.deliveries(two.id))[1] == 1  # another webhook's log is its own
    await hooks.delete(one.id)
    assert (await hooks.deliveries(one.id))[1] == 0


async def test_migrations_run_once(store: TokenStore) -> None:
    await WebhookStore.open(store.engine)
    assert await schema.migrate(store.engine) == (1, 1)
    async with store.engine.connect() as conn:
        versions = await conn.execute(text("SELECT version FROM hubbub_webhooks_schema_version"))
        assert [v for (v,) in versions] == [1]
