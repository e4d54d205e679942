"""TokenStore on SQLite and on a real PostgreSQL: CRUD, hashed secrets, migrations."""

from __future__ import annotations

import hashlib
import time

import pytest
from sqlalchemy import inspect, text

from hubbub.control.auth import schema
from hubbub.control.auth.store import StreamRule, TokenSpec, TokenStore


def spec(**kw: object) -> TokenSpec:
    values: dict[str, object] = {"label": "t", "streams": [StreamRule("demo*")]}
    values.update(kw)
    return TokenSpec(**values)  # type: ignore[arg-type]


async def test_create_get_find_and_only_a_hash_is_stored(store: TokenStore) -> None:
    record, secret = await store.create(
        "publish",
        spec(allowed_ips=["10.1.2.3/8", "::1"], allowed_origins=["HTTPS://App.Example.com/"],
             multisource=True),
    )
    assert len(secret) == 64 and int(secret, 16) >= 0
    assert record.spec.allowed_ips == ["10.0.0.0/8", "::1/128"]
    assert record.spec.allowed_origins == ["https://app.example.com"]
    got = await store.get("publish", record.id)
    assert got is not None and got.spec == record.spec and got.spec.multisource is True
    assert await store.get("subscribe", record.id) is None  # kinds do not mix
    found = await store.find_by_secret("publish", secret)
    assert found is not None and found.id == record.id
    assert await store.find_by_secret("subscribe", secret) is None
    wrong = secret[:-1] + ("1" if secret[-1] == "0" else "0")
    assert await store.find_by_secret("publish", wrong) is None
    assert await store.find_by_secret("publish", "") is None
    # A dump of the table holds no usable secret: only its SHA-256.
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM hubbub_tokens"))).all()
    dump = repr(rows)
    assert secret not in dump
    assert hashlib.sha256(secret.encode()).hexdigest() in dump


async def test_list_update_revoke_delete(store: TokenStore) -> None:
    ids = [(await store.create("subscribe", spec(label=f"s{i}")))[0].id for i in range(5)]
    await store.create("publish", spec())
    page, total = await store.list_page("subscribe", 1, 2)
    assert total == 5 and [r.id for r in page] == ids[1:3]
    updated = await store.update(
        "subscribe", ids[0], {"label": "renamed", "streams": [StreamRule("a"), StreamRule("b")]}
    )
    assert updated is not None and updated.spec.label == "renamed"
    again = await store.get("subscribe", ids[0])
    assert again is not None and [r.name for r in again.spec.streams] == ["a", "b"]
    with pytest.raises(ValueError, match="publish tokens only"):
        await store.update("subscribe", ids[0], {"multisource": True})
    revoked = await store.revoke("subscribe", ids[1])
    assert revoked is not None and revoked.refusal(time.time()) == "token revoked"
    with pytest.raises(ValueError, match="revoked token cannot be changed"):
        await store.update("subscribe", ids[1], {"label": "x"})
    active, total_active = await store.list_page("subscribe", include_revoked=False)
    assert total_active == 4 and ids[1] not in [r.id for r in active]
    assert await store.delete("subscribe", ids[2]) is True
    assert await store.delete("subscribe", ids[2]) is False
    assert await store.get("subscribe", ids[2]) is None
    assert await store.update("subscribe", 10**12, {"label": "x"}) is None


async def test_expiry_and_touch(store: TokenStore) -> None:
    record, _ = await store.create("publish", spec(expires_on=time.time() + 0.5))
    assert record.refusal(time.time()) is None
    assert record.refusal(time.time() + 1) == "token expired"
    await store.touch(record.id)
    got = await store.get("publish", record.id)
    assert got is not None and got.last_used_on is not None
    assert abs(got.last_used_on - time.time()) < 5


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"streams": []}, "at least one stream"),
        ({"streams": [StreamRule("a b")]}, "may use only"),
        ({"streams": [StreamRule("(a+)+", True)]}, "nested repetition"),
        ({"streams": [StreamRule("[", True)]}, "not a valid regex"),
        ({"allowed_ips": ["10.0.0.256"]}, "not an IP address"),
        ({"allowed_origins": ["ftp://x.com"]}, "scheme must be http"),
        ({"label": "x" * 300}, "label is longer"),
    ],
)
async def test_invalid_specs_are_refused_with_the_field(
    store: TokenStore, bad: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await store.create("publish", spec(**bad))


async def test_upgrade_from_schema_v1_keeps_tokens(database_url: str) -> None:
    old = await TokenStore.open(database_url, migrate_to=1)
    try:
        async with old.engine.connect() as conn:
            assert await schema.schema_version(conn) == 1
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in inspect(c).get_columns("hubbub_tokens")]
            )
        assert "last_used_on" not in columns
        record, secret = await old.create("publish", spec(label="from v1", multisource=True))
    finally:
        await old.close()
    new = await TokenStore.open(database_url)
    try:
        async with new.engine.connect() as conn:
            assert await schema.schema_version(conn) == schema.LATEST == 2
        found = await new.find_by_secret("publish", secret)
        assert found is not None
        assert (found.id, found.spec.label, found.spec.multisource) == (record.id, "from v1", True)
        assert found.last_used_on is None
        await new.touch(found.id)  # the v2 column works
        # Opening again is a no-op.
        assert await schema.migrate(new.engine) == (2, 2)
    finally:
        await new.close()


async def test_a_database_newer_than_the_code_is_refused(database_url: str) -> None:
    store = await TokenStore.open(database_url)
    async with store.engine.begin() as conn:
        await conn.execute(text("INSERT INTO hubbub_schema_version (version) VALUES (99)"))
    await store.close()
    with pytest.raises(RuntimeError, match="schema v99, newer than this hubbub"):
        await TokenStore.open(database_url)


async def test_concurrent_first_starts_migrate_once(database_url: str) -> None:
    import asyncio

    stores = await asyncio.gather(*(TokenStore.open(database_url) for _ in range(3)))
    try:
        async with stores[0].engine.connect() as conn:
            versions = (await conn.execute(
                text("SELECT version FROM hubbub_schema_version ORDER BY version")
            )).scalars().all()
        assert list(versions) == [1, 2]
        record, secret = await stores[1].create("publish", spec())
        found = await stores[2].find_by_secret("publish", secret)
        assert found is not None and found.id == record.id
    finally:
        for s in stores:
            await s.close()
