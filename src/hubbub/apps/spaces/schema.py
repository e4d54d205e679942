"""The Spaces tables and their versioned migrations (own version table; the auth schema is
untouched), migrated by hubbub/migrations.py: a start of two processes at once is serialized
as the token tables' is."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from hubbub import migrations
from hubbub.migrations import Schema

metadata = MetaData()

# Times are Unix seconds (float), as in the token store.
users = Table(
    "spaces_users",
    metadata,
    Column("id", String(36), primary_key=True),          # = sourceId when speaking
    Column("name", String(64), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_on", Float, nullable=False),
)

rooms = Table(
    "spaces_rooms",
    metadata,
    Column("id", String(36), primary_key=True),          # = the hubbub stream name
    Column("name", String(80), nullable=False),
    Column("owner_id", String(36), nullable=False),
    Column("audio_only", Boolean, nullable=False),
    Column("created_on", Float, nullable=False),
    Column("closed_on", Float, nullable=True),
    Column("end_reason", String(16), nullable=True),      # closed | host_left
)

members = Table(
    "spaces_members",
    metadata,
    Column("room_id", String(36), nullable=False),
    Column("user_id", String(36), nullable=False),
    Column("role", String(16), nullable=False),           # owner | speaker | listener
    Column("hand_raised_on", Float, nullable=True),
    Column("muted", Boolean, nullable=False),
    Column("banned", Boolean, nullable=False),
    Column("joined_on", Float, nullable=False),
    Column("invited_on", Float, nullable=True),           # the owner asked them on stage
    Column("invite_declined_on", Float, nullable=True),   # and they said no
    PrimaryKeyConstraint("room_id", "user_id"),
)

platform_tokens = Table(
    "spaces_platform_tokens",
    metadata,
    Column("kind", String(16), primary_key=True),         # publish | subscribe
    Column("token_id", String(32), nullable=False),
    Column("secret", String(512), nullable=False),        # needed in clear to call the Director
)


def _v1(dialect: str) -> list[str]:
    return [
        """CREATE TABLE spaces_users (
            id VARCHAR(36) PRIMARY KEY,
            name VARCHAR(64) NOT NULL,
            secret_hash VARCHAR(64) NOT NULL UNIQUE,
            created_on DOUBLE PRECISION NOT NULL
        )""",
        """CREATE TABLE spaces_rooms (
            id VARCHAR(36) PRIMARY KEY,
            name VARCHAR(80) NOT NULL,
            owner_id VARCHAR(36) NOT NULL,
            audio_only BOOLEAN NOT NULL,
            created_on DOUBLE PRECISION NOT NULL,
            closed_on DOUBLE PRECISION
        )""",
        """CREATE TABLE spaces_members (
            room_id VARCHAR(36) NOT NULL,
            user_id VARCHAR(36) NOT NULL,
            role VARCHAR(16) NOT NULL,
            hand_raised_on DOUBLE PRECISION,
            muted BOOLEAN NOT NULL,
            banned BOOLEAN NOT NULL,
            joined_on DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (room_id, user_id)
        )""",
        """CREATE TABLE spaces_platform_tokens (
            kind VARCHAR(16) PRIMARY KEY,
            token_id VARCHAR(32) NOT NULL,
            secret VARCHAR(512) NOT NULL
        )""",
    ]


def _v2(dialect: str) -> list[str]:
    """Invitations to the stage need the listener's consent (issue 14)."""
    return [
        "ALTER TABLE spaces_members ADD COLUMN invited_on DOUBLE PRECISION",
        "ALTER TABLE spaces_members ADD COLUMN invite_declined_on DOUBLE PRECISION",
    ]


def _v3(dialect: str) -> list[str]:
    """Why a room ended: its owner closed it, or its host was gone past the grace period."""
    return ["ALTER TABLE spaces_rooms ADD COLUMN end_reason VARCHAR(16)"]


SCHEMA = Schema("Spaces tables", "spaces_schema_version", 0x73706163,  # "spac"
                [(1, _v1), (2, _v2), (3, _v3)])
LATEST = SCHEMA.latest


async def migrate(engine: AsyncEngine, target: int = LATEST) -> tuple[int, int]:
    """Bring the database to `target`; (version before, version after)."""
    return await migrations.migrate(engine, SCHEMA, target)
