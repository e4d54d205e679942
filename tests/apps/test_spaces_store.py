"""The Spaces room store on SQLite under concurrent writes (several people joining at once)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hubbub.apps.spaces.store import RoomStore


async def test_people_joining_at_once_all_become_members(tmp_path: Path) -> None:
    """add_member reads, then writes: as a deferred SQLite transaction it failed with
    "database is locked" when another join committed in between (seen in CI with three
    browsers joining one room); every join must land."""
    store = await RoomStore.open(f"sqlite+aiosqlite:///{tmp_path}/spaces.db")
    try:
        owner, _ = await store.create_user("Maya")
        room = await store.create_room(owner, "Building an SFU", audio_only=True)
        users = [(await store.create_user(f"listener {n}"))[0] for n in range(24)]
        for _ in range(3):  # joins, rejoins (no-ops) and renames, all at once
            await asyncio.gather(*(store.add_member(room.id, u.id) for u in users),
                                 *(store.rename_user(u.id, f"{u.name}!") for u in users))
        joined = await store.get_room(room.id)
        assert joined is not None
        assert {u.id for u in users} <= {m.user_id for m in joined.members}
    finally:
        await store.close()
