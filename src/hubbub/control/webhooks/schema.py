"""The webhook tables and their versioned migrations (own version table, beside the token
store's tables in the same database), migrated by hubbub/migrations.py."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from hubbub import migrations
from hubbub.migrations import Schema, identity_column

metadata = MetaData()

# Times are Unix seconds (float), as in the token store.
webhooks = Table(
    "hubbub_webhooks",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("url", String(2048), nullable=False),
    Column("secret", String(128), nullable=False),       # in clear: every delivery is signed
    Column("types", Text, nullable=False),               # JSON [str]
    Column("description", String(256), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_on", Float, nullable=False),
    Column("updated_on", Float, nullable=False),
)

deliveries = Table(
    "hubbub_webhook_deliveries",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("webhook_id", BigInteger, nullable=False),
    Column("event_id", String(32), nullable=False),
    Column("type", String(32), nullable=False),
    Column("event", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("delivered", Boolean, nullable=False),
    Column("final", Boolean, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", String(512), nullable=True),
    Column("event_time", Float, nullable=False),
    Column("attempted_on", Float, nullable=False),
    Column("duration", Float, nullable=False),
)


def _v1(dialect: str) -> list[str]:
    ident = identity_column(dialect)
    return [
        f"""CREATE TABLE hubbub_webhooks (
            id {ident},
            url VARCHAR(2048) NOT NULL,
            secret VARCHAR(128) NOT NULL,
            types TEXT NOT NULL,
            description VARCHAR(256) NOT NULL,
            active BOOLEAN NOT NULL,
            created_on DOUBLE PRECISION NOT NULL,
            updated_on DOUBLE PRECISION NOT NULL
        )""",
        f"""CREATE TABLE hubbub_webhook_deliveries (
            id {ident},
            webhook_id BIGINT NOT NULL,
            event_id VARCHAR(32) NOT NULL,
            type VARCHAR(32) NOT NULL,
            event VARCHAR(32) NOT NULL,
            attempt INTEGER NOT NULL,
            delivered BOOLEAN NOT NULL,
            final BOOLEAN NOT NULL,
            status_code INTEGER,
            error VARCHAR(512),
            event_time DOUBLE PRECISION NOT NULL,
            attempted_on DOUBLE PRECISION NOT NULL,
            duration DOUBLE PRECISION NOT NULL
        )""",
        # The log is read per webhook, newest first, and pruned the same way.
        "CREATE INDEX ix_hubbub_webhook_deliveries_hook ON hubbub_webhook_deliveries "
        "(webhook_id, id)",
    ]


SCHEMA = Schema("webhook tables", "hubbub_webhooks_schema_version", 0x68776B73,  # "hwks"
                [(1, _v1)])
LATEST = SCHEMA.latest


async def migrate(engine: AsyncEngine, target: int = LATEST) -> tuple[int, int]:
    """Bring the database to `target`; (version before, version after)."""
    return await migrations.migrate(engine, SCHEMA, target)
