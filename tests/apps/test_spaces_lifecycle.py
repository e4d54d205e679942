"""Room lifecycle in Spaces (issue 14), against a real `hubbub serve` with a 1.5 s presence
grace: a host gone past the grace ends the room for everyone, a host back within it keeps it,
a room whose host never comes ends, and lobby pages get the live rooms pushed over the
presence socket, without an identity, as rooms go live and end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets

from tests.apps.test_spaces_api import in_room, next_message, person, room_of, ws_url
from tests.helpers.server import RunningServer

GRACE = 1.5
Json = dict[str, Any]


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="spaces-lifecycle", allow_any_stream=False,
                       extra_args=["--spaces-presence-grace", str(GRACE)]) as s:
        yield s


@pytest_asyncio.fixture
async def http(srv: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{srv.http_url}/spaces/api", timeout=10) as client:
        yield client


async def lobby(srv: RunningServer) -> Any:
    ws = await websockets.connect(ws_url(srv))
    await ws.send(json.dumps({"type": "hello", "lobby": True}))
    return ws


async def rooms_until(ws: Any, check: Any, timeout: float = 5.0) -> list[Json]:
    """The first `rooms` push for which `check(rooms)` holds."""
    async def wait() -> list[Json]:
        while True:
            msg = await next_message(ws, "rooms", timeout)
            if check(msg["rooms"]):
                rooms: list[Json] = msg["rooms"]
                return rooms

    return await asyncio.wait_for(wait(), timeout)


async def test_a_host_gone_past_the_grace_ends_the_room_and_the_lobby_drops_it(
    http: httpx.AsyncClient, srv: RunningServer
) -> None:
    owner, ann = await person(http, "Host"), await person(http, "Ann")
    room_id = await room_of(owner, "Short-lived")
    await ann.post(f"/rooms/{room_id}/join")
    watcher = await lobby(srv)  # a lobby page: no name, no secret
    try:
        first = await next_message(watcher, "rooms")
        assert room_id not in [r["id"] for r in first["rooms"]]  # the host is not here yet
        ws_owner = await in_room(srv, owner, room_id)
        ws_ann = await in_room(srv, ann, room_id)
        rooms = await rooms_until(watcher, lambda rs: any(
            r["id"] == room_id and r["online"] == 2 for r in rs))
        entry = next(r for r in rooms if r["id"] == room_id)
        assert entry["speakers"] == ["Host"] and entry["listeners"] == 1

        await ws_owner.close()  # the host's tab is gone
        closed = await next_message(ws_ann, "closed", timeout=GRACE + 5)
        assert closed == {"type": "closed", "reason": "host_left"}
        with pytest.raises(websockets.ConnectionClosed) as gone:
            await asyncio.wait_for(ws_ann.recv(), 5)
        assert gone.value.rcvd is not None and gone.value.rcvd.code == 4010
        await rooms_until(watcher, lambda rs: room_id not in [r["id"] for r in rs])
        resp = await ann.post(f"/rooms/{room_id}/join")
        assert resp.status_code == 410
        assert resp.json()["error"] == "this room ended: its host left"
        state = (await ann.get(f"/rooms/{room_id}")).status_code
        assert state == 410
    finally:
        await watcher.close()


async def test_a_host_back_within_the_grace_keeps_the_room(
    http: httpx.AsyncClient, srv: RunningServer
) -> None:
    owner, ann = await person(http, "Host"), await person(http, "Ann")
    room_id = await room_of(owner, "Reloaded")
    await ann.post(f"/rooms/{room_id}/join")
    ws_owner = await in_room(srv, owner, room_id)
    ws_ann = await in_room(srv, ann, room_id)
    try:
        await ws_owner.close()  # a reload: the page comes back at once
        await asyncio.sleep(0.3)
        ws_owner = await in_room(srv, owner, room_id)
        await asyncio.sleep(GRACE + 1.0)
        assert (await ann.post(f"/rooms/{room_id}/join")).status_code == 200
        listed = (await http.get("/rooms")).json()["rooms"]
        assert room_id in [r["id"] for r in listed]
        # Leaving on purpose is not ending: the room still waits the grace for its host.
        assert (await owner.post(f"/rooms/{room_id}/leave")).status_code == 200
        await ws_owner.close()
        closed = await next_message(ws_ann, "closed", timeout=GRACE + 5)
        assert closed["reason"] == "host_left"
    finally:
        await ws_owner.close()
        await ws_ann.close()


async def test_a_room_whose_host_never_comes_ends(http: httpx.AsyncClient) -> None:
    owner = await person(http, "Absent")
    room_id = await room_of(owner, "Never entered")
    assert (await owner.get(f"/rooms/{room_id}")).status_code == 200
    await asyncio.sleep(GRACE + 1.0)
    resp = await owner.get(f"/rooms/{room_id}")
    assert resp.status_code == 410 and "host left" in resp.json()["error"]
