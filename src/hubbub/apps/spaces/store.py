"""RoomStore: users, rooms, members and the app's platform tokens in SQL (SQLAlchemy async).

Every change is written through at once, so a restart loses no room, role or raised hand.
Users authenticate with a random secret kept by their browser; only its SHA-256 is stored
(256 random bits need no salt or slow hash).
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import RowMapping

from hubbub.apps.spaces import schema
from hubbub.apps.spaces.models import LISTENER, OWNER, Member, Room, User
from hubbub.storage import SQLITE_IMMEDIATE, hash_secret, make_engine

MAX_SECRET = 128


def _member(row: RowMapping) -> Member:
    return Member(
        user_id=row["user_id"],
        name=row["name"],
        role=row["role"],
        hand_raised_on=row["hand_raised_on"],
        muted=bool(row["muted"]),
        banned=bool(row["banned"]),
        joined_on=row["joined_on"],
        invited_on=row["invited_on"],
        invite_declined_on=row["invite_declined_on"],
    )


class RoomStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        # Every write transaction takes SQLite's write lock at BEGIN: a deferred one that
        # reads first (add_member) cannot upgrade once another connection has written since,
        # and gets "database is locked" at once, busy_timeout or not (WAL snapshot rule).
        self._writes = self.engine.execution_options(**{SQLITE_IMMEDIATE: True})

    @classmethod
    async def open(cls, url: str) -> RoomStore:
        store = cls(url)
        try:
            await schema.migrate(store.engine)
        except BaseException:
            await store.close()
            raise
        return store

    async def close(self) -> None:
        await self.engine.dispose()

    # --- users ---------------------------------------------------------------------------

    async def create_user(self, name: str) -> tuple[User, str]:
        """A new identity and its secret (shown once; the browser keeps it)."""
        user = User(str(uuid.uuid4()), name)
        secret = secrets.token_urlsafe(32)
        async with self._writes.begin() as conn:
            await conn.execute(
                schema.users.insert().values(
                    id=user.id, name=name, secret_hash=hash_secret(secret), created_on=time.time()
                )
            )
        return user, secret

    async def user_by_secret(self, secret: str) -> User | None:
        if not secret or len(secret) > MAX_SECRET:
            return None
        query = select(schema.users).where(schema.users.c.secret_hash == hash_secret(secret))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return User(row["id"], row["name"]) if row is not None else None

    async def rename_user(self, user_id: str, name: str) -> None:
        async with self._writes.begin() as conn:
            await conn.execute(
                update(schema.users).where(schema.users.c.id == user_id).values(name=name)
            )

    # --- rooms ---------------------------------------------------------------------------

    async def create_room(self, owner: User, name: str, audio_only: bool) -> Room:
        now = time.time()
        room_id = str(uuid.uuid4())
        async with self._writes.begin() as conn:
            await conn.execute(
                schema.rooms.insert().values(
                    id=room_id, name=name, owner_id=owner.id, audio_only=audio_only,
                    created_on=now, closed_on=None,
                )
            )
            await conn.execute(
                schema.members.insert().values(
                    room_id=room_id, user_id=owner.id, role=OWNER, hand_raised_on=None,
                    muted=False, banned=False, joined_on=now,
                )
            )
        room = await self.get_room(room_id)
        assert room is not None
        return room

    async def get_room(self, room_id: str) -> Room | None:
        rooms = await self._rooms(schema.rooms.c.id == room_id)
        return rooms[0] if rooms else None

    async def open_rooms(self) -> list[Room]:
        return await self._rooms(schema.rooms.c.closed_on.is_(None))

    async def count_open_rooms(self, owner_id: str | None = None) -> int:
        """Open rooms, all of them or one owner's (a COUNT: nothing loaded)."""
        query = select(func.count()).select_from(schema.rooms).where(
            schema.rooms.c.closed_on.is_(None)
        )
        if owner_id is not None:
            query = query.where(schema.rooms.c.owner_id == owner_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def _rooms(self, where: Any) -> list[Room]:
        m, u = schema.members, schema.users
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(schema.rooms).where(where).order_by(schema.rooms.c.created_on)
                )
            ).mappings().all()
            if not rows:
                return []
            ids = [r["id"] for r in rows]
            member_rows = (
                await conn.execute(
                    select(m, u.c.name).join(u, u.c.id == m.c.user_id).where(m.c.room_id.in_(ids))
                )
            ).mappings().all()
        by_room: dict[str, list[Member]] = {i: [] for i in ids}
        for row in member_rows:
            by_room[row["room_id"]].append(_member(row))
        return [
            Room(
                id=r["id"], name=r["name"], owner_id=r["owner_id"],
                audio_only=bool(r["audio_only"]), created_on=r["created_on"],
                closed_on=r["closed_on"], end_reason=r["end_reason"],
                members=by_room[r["id"]],
            )
            for r in rows
        ]

    async def close_room(self, room_id: str, reason: str = "closed") -> None:
        async with self._writes.begin() as conn:
            await conn.execute(
                update(schema.rooms)
                .where(schema.rooms.c.id == room_id, schema.rooms.c.closed_on.is_(None))
                .values(closed_on=time.time(), end_reason=reason)
            )

    # --- members -------------------------------------------------------------------------

    async def add_member(self, room_id: str, user_id: str) -> None:
        """Join as a listener (no-op for a member already in)."""
        async with self._writes.begin() as conn:
            found = (
                await conn.execute(
                    select(schema.members.c.user_id).where(
                        schema.members.c.room_id == room_id, schema.members.c.user_id == user_id
                    )
                )
            ).first()
            if found is None:
                await conn.execute(
                    schema.members.insert().values(
                        room_id=room_id, user_id=user_id, role=LISTENER, hand_raised_on=None,
                        muted=False, banned=False, joined_on=time.time(),
                    )
                )

    async def update_member(self, room_id: str, user_id: str, **values: Any) -> None:
        """Set columns of one membership (role, hand_raised_on, muted, banned)."""
        async with self._writes.begin() as conn:
            await conn.execute(
                update(schema.members)
                .where(schema.members.c.room_id == room_id, schema.members.c.user_id == user_id)
                .values(**values)
            )

    async def remove_member(self, room_id: str, user_id: str) -> None:
        async with self._writes.begin() as conn:
            await conn.execute(
                delete(schema.members).where(
                    schema.members.c.room_id == room_id, schema.members.c.user_id == user_id
                )
            )

    # --- the app's own platform tokens ---------------------------------------------------

    async def platform_token(self, kind: str) -> tuple[str, str] | None:
        """(token id, secret) of the app's wildcard token of `kind`, if made before."""
        query = select(schema.platform_tokens).where(schema.platform_tokens.c.kind == kind)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return (row["token_id"], row["secret"]) if row is not None else None

    async def save_platform_token(self, kind: str, token_id: str, secret: str) -> None:
        async with self._writes.begin() as conn:
            await conn.execute(
                delete(schema.platform_tokens).where(schema.platform_tokens.c.kind == kind)
            )
            await conn.execute(
                schema.platform_tokens.insert().values(kind=kind, token_id=token_id, secret=secret)
            )
