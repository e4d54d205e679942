"""The token table and its versioned migrations, run at every start (SQLite and PostgreSQL).

Each migration is plain DDL applied once, in order, inside one transaction, and recorded in
`hubbub_schema_version`; an upgraded hubbub therefore keeps every existing token. Never edit a
released migration: add the next one.
"""

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
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hubbub import migrations
from hubbub.migrations import Schema, identity_column

metadata = MetaData()

# The current shape, used by queries. Times are Unix seconds (float): no time-zone handling
# differences between SQLite and PostgreSQL.
tokens = Table(
    "hubbub_tokens",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("label", String(256), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("streams", Text, nullable=False),            # JSON [{"streamName", "isRegex"}]
    Column("allowed_origins", Text, nullable=False),    # JSON [str]
    Column("allowed_ips", Text, nullable=False),        # JSON [str]
    Column("multisource", Boolean, nullable=False),
    Column("record", Boolean, nullable=False),
    Column("expires_on", Float, nullable=True),
    Column("added_on", Float, nullable=False),
    Column("updated_on", Float, nullable=False),
    Column("revoked_on", Float, nullable=True),
    Column("last_used_on", Float, nullable=True),       # since v2
)


def _v1(dialect: str) -> list[str]:
    ident = identity_column(dialect)
    return [
        f"""CREATE TABLE hubbub_tokens (
            id {ident},
            kind VARCHAR(16) NOT NULL,
            label VARCHAR(256) NOT NULL,
            secret_hash VARCHAR(64) NOT NULL UNIQUE,
            streams TEXT NOT NULL,
            allowed_origins TEXT NOT NULL,
            allowed_ips TEXT NOT NULL,
            multisource BOOLEAN NOT NULL,
            record BOOLEAN NOT NULL,
            expires_on DOUBLE PRECISION,
            added_on DOUBLE PRECISION NOT NULL,
            updated_on DOUBLE PRECISION NOT NULL,
            revoked_on DOUBLE PRECISION
        )""",
        "CREATE INDEX ix_hubbub_tokens_kind_id ON hubbub_tokens (kind, id)",
    ]


def _v2(dialect: str) -> list[str]:
    # When a token last got a JWT from the Director: lets operators find unused tokens.
    return ["ALTER TABLE hubbub_tokens ADD COLUMN last_used_on DOUBLE PRECISION"]


SCHEMA = Schema("token tables", "hubbub_schema_version", 0x68756262,  # "hubb"
                [(1, _v1), (2, _v2)])
LATEST = SCHEMA.latest


async def schema_version(conn: AsyncConnection) -> int:
    return await migrations.version(conn, SCHEMA)


async def migrate(engine: AsyncEngine, target: int = LATEST) -> tuple[int, int]:
    """Bring the database to `target`; (version before, version after)."""
    return await migrations.migrate(engine, SCHEMA, target)
