"""TokenStore: long-lived publish and subscribe tokens in SQL (SQLAlchemy 2, async).

Only a SHA-256 of each secret is stored: the secrets are 256 random bits, so a hash is enough
to make a copied database useless for connecting (no salt or slow KDF is needed for
high-entropy bearer strings). The plaintext is returned once, by `create`.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import RowMapping

from hubbub.control.auth import patterns, schema
from hubbub.control.auth.jwts import PUBLISH, SUBSCRIBE
from hubbub.storage import hash_secret, make_engine

KINDS = (PUBLISH, SUBSCRIBE)
MAX_STREAMS = 64
MAX_RULES = 64
MAX_LABEL = 256
MAX_SECRET_LENGTH = 512


@dataclass(frozen=True)
class StreamRule:
    name: str
    is_regex: bool = False


@dataclass
class TokenSpec:
    """What a token allows; validated by `normalized()`."""

    label: str = ""
    streams: list[StreamRule] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)
    allowed_ips: list[str] = field(default_factory=list)
    expires_on: float | None = None
    multisource: bool = False
    record: bool = False

    def normalized(self, kind: str) -> TokenSpec:
        """The same spec with origins and IPs canonical; ValueError naming the bad field."""
        if kind not in KINDS:
            raise ValueError(f"token kind must be one of {KINDS}")
        if len(self.label) > MAX_LABEL:
            raise ValueError(f"label is longer than {MAX_LABEL} characters")
        if not self.streams:
            raise ValueError("streams must name at least one stream (use * for all)")
        if len(self.streams) > MAX_STREAMS:
            raise ValueError(f"streams has more than {MAX_STREAMS} entries")
        for rule in self.streams:
            patterns.validate_stream_pattern(rule.name, rule.is_regex)
        if len(self.allowed_origins) > MAX_RULES or len(self.allowed_ips) > MAX_RULES:
            raise ValueError(f"allowedOrigins and allowedIpAddresses take at most {MAX_RULES}")
        if kind == SUBSCRIBE and (self.multisource or self.record):
            raise ValueError("multisource and record apply to publish tokens only")
        return replace(
            self,
            streams=list(dict.fromkeys(self.streams)),
            allowed_origins=list(
                dict.fromkeys(patterns.validate_origin_rule(o) for o in self.allowed_origins)
            ),
            allowed_ips=list(
                dict.fromkeys(patterns.validate_ip_rule(ip) for ip in self.allowed_ips)
            ),
        )


@dataclass(frozen=True)
class TokenRecord:
    id: int
    kind: str
    spec: TokenSpec
    added_on: float
    updated_on: float
    revoked_on: float | None
    last_used_on: float | None

    def refusal(self, now: float) -> str | None:
        """Why this token may not get a new JWT now, or None."""
        if self.revoked_on is not None:
            return "token revoked"
        if self.spec.expires_on is not None and now >= self.spec.expires_on:
            return "token expired"
        return None

    def covers(self, stream: str) -> bool:
        return patterns.covers(((r.name, r.is_regex) for r in self.spec.streams), stream)




def default_url(data_dir: str) -> str:
    return f"sqlite+aiosqlite:///{data_dir.rstrip('/')}/tokens.db"




def _row_to_record(row: RowMapping) -> TokenRecord:
    spec = TokenSpec(
        label=row["label"],
        streams=[
            StreamRule(s["streamName"], bool(s["isRegex"])) for s in json.loads(row["streams"])
        ],
        allowed_origins=json.loads(row["allowed_origins"]),
        allowed_ips=json.loads(row["allowed_ips"]),
        expires_on=row["expires_on"],
        multisource=bool(row["multisource"]),
        record=bool(row["record"]),
    )
    return TokenRecord(
        id=int(row["id"]),
        kind=row["kind"],
        spec=spec,
        added_on=row["added_on"],
        updated_on=row["updated_on"],
        revoked_on=row["revoked_on"],
        last_used_on=row["last_used_on"],
    )


def _spec_columns(spec: TokenSpec) -> dict[str, Any]:
    return {
        "label": spec.label,
        "streams": json.dumps(
            [{"streamName": r.name, "isRegex": r.is_regex} for r in spec.streams]
        ),
        "allowed_origins": json.dumps(spec.allowed_origins),
        "allowed_ips": json.dumps(spec.allowed_ips),
        "expires_on": spec.expires_on,
        "multisource": spec.multisource,
        "record": spec.record,
    }


class TokenStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @classmethod
    async def open(cls, url: str, migrate_to: int = schema.LATEST) -> TokenStore:
        store = cls(url)
        try:
            await schema.migrate(store.engine, migrate_to)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    async def create(self, kind: str, spec: TokenSpec) -> tuple[TokenRecord, str]:
        """A new token and its secret (64 hex digits, 256 bits); the secret is not kept."""
        spec = spec.normalized(kind)
        secret = secrets.token_hex(32)
        now = time.time()
        values = {
            "kind": kind,
            "secret_hash": hash_secret(secret),
            "added_on": now,
            "updated_on": now,
            **_spec_columns(spec),
        }
        async with self.engine.begin() as conn:
            result = await conn.execute(schema.tokens.insert().values(**values))
            token_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        record = TokenRecord(token_id, kind, spec, now, now, None, None)
        return record, secret

    async def get(self, kind: str, token_id: int) -> TokenRecord | None:
        query = select(schema.tokens).where(
            schema.tokens.c.kind == kind, schema.tokens.c.id == token_id
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return _row_to_record(row) if row is not None else None

    async def list_page(
        self, kind: str, offset: int = 0, limit: int = 100, include_revoked: bool = True
    ) -> tuple[list[TokenRecord], int]:
        """A page of tokens by id, and the total count."""
        where = [schema.tokens.c.kind == kind]
        if not include_revoked:
            where.append(schema.tokens.c.revoked_on.is_(None))
        query = (
            select(schema.tokens).where(*where).order_by(schema.tokens.c.id)
            .offset(offset).limit(limit)
        )
        count = select(func.count()).select_from(schema.tokens).where(*where)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            total = int((await conn.execute(count)).scalar_one())
        return [_row_to_record(r) for r in rows], total

    async def update(self, kind: str, token_id: int, changes: dict[str, Any]) -> TokenRecord | None:
        """Apply `changes` (TokenSpec field names) to a live token; ValueError if revoked."""
        current = await self.get(kind, token_id)
        if current is None:
            return None
        if current.revoked_on is not None:
            raise ValueError("a revoked token cannot be changed")
        spec = replace(current.spec, **changes).normalized(kind)
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.tokens)
                .where(schema.tokens.c.kind == kind, schema.tokens.c.id == token_id)
                .values(updated_on=now, **_spec_columns(spec))
            )
        return replace(current, spec=spec, updated_on=now)

    async def revoke(self, kind: str, token_id: int) -> TokenRecord | None:
        """Permanently stop a token from getting JWTs (those already issued run to `exp`)."""
        current = await self.get(kind, token_id)
        if current is None or current.revoked_on is not None:
            return current
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.tokens)
                .where(schema.tokens.c.id == token_id, schema.tokens.c.revoked_on.is_(None))
                .values(revoked_on=now, updated_on=now)
            )
        return await self.get(kind, token_id)

    async def delete(self, kind: str, token_id: int) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(schema.tokens).where(
                    schema.tokens.c.kind == kind, schema.tokens.c.id == token_id
                )
            )
        return bool(result.rowcount)

    async def find_by_secret(self, kind: str, secret: str) -> TokenRecord | None:
        if not secret or len(secret) > MAX_SECRET_LENGTH:
            return None
        digest = hash_secret(secret)
        query = select(schema.tokens).where(
            schema.tokens.c.kind == kind, schema.tokens.c.secret_hash == digest
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None or not hmac.compare_digest(row["secret_hash"], digest):
            return None
        return _row_to_record(row)

    async def touch(self, token_id: int) -> None:
        """Record that a token just got a JWT (best effort, for operators)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(schema.tokens)
                .where(schema.tokens.c.id == token_id)
                .values(last_used_on=time.time())
            )
