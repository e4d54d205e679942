"""The Spaces rooms API against a real `hubbub serve` that enforces tokens: identities, rooms,
joins with Director JWTs, hands, the owner-only controls, presence events, persistence across a
restart, and the platform's admin stop-source endpoint (used by demote)."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets

from hubbub.client.media import ToneTrack
from hubbub.client.publisher import Publisher
from tests.helpers.server import RunningServer, free_tcp_port

Json = dict[str, Any]


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="spaces-api", allow_any_stream=False) as s:
        yield s


@pytest_asyncio.fixture
async def http(srv: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"{srv.http_url}/spaces/api", timeout=10) as client:
        yield client


class Person:
    def __init__(self, http: httpx.AsyncClient, data: Json) -> None:
        self.http = http
        self.id: str = data["id"]
        self.secret: str = data["secret"]
        self.headers = {"Authorization": f"Bearer {self.secret}"}

    async def post(self, path: str, body: Json | None = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.headers)

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers=self.headers)


async def person(http: httpx.AsyncClient, name: str) -> Person:
    resp = await http.post("/users", json={"name": name})
    assert resp.status_code == 201, resp.text
    return Person(http, resp.json())


async def on_stage(owner: Person, guest: Person, room_id: str) -> Json:
    """The owner invites, the guest accepts: the publish part of the Director's reply."""
    assert (await owner.post(f"/rooms/{room_id}/invite", {"userId": guest.id})).status_code == 200
    accepted = await guest.post(f"/rooms/{room_id}/invitation", {"accept": True})
    assert accepted.status_code == 200, accepted.text
    publisher: Json = accepted.json()["publisher"]
    return publisher


async def room_of(owner: Person, name: str = "Topic", audio_only: bool = False) -> str:
    resp = await owner.post("/rooms", {"name": name, "audioOnly": audio_only})
    assert resp.status_code == 201, resp.text
    room_id: str = resp.json()["room"]["id"]
    return room_id


def claims(jwt: str) -> Json:
    payload = jwt.split(".")[1]
    decoded: Json = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def ws_url(srv: RunningServer) -> str:
    return f"ws://127.0.0.1:{srv.http_port}/spaces/ws"


async def presence(srv: RunningServer, who: Person, room_id: str) -> Any:
    ws = await websockets.connect(ws_url(srv))
    await ws.send(json.dumps({"type": "hello", "roomId": room_id, "secret": who.secret}))
    return ws


async def in_room(srv: RunningServer, who: Person, room_id: str) -> Any:
    """A presence socket that has had its first room state."""
    ws = await presence(srv, who, room_id)
    await next_message(ws, "state")
    return ws


async def next_message(ws: Any, kind: str, timeout: float = 5.0) -> Json:
    async def wait() -> Json:
        while True:
            msg: Json = json.loads(await ws.recv())
            if msg["type"] == kind:
                return msg

    return await asyncio.wait_for(wait(), timeout)


async def test_join_returns_director_replies_bound_to_the_room_stream(
    http: httpx.AsyncClient, srv: RunningServer
) -> None:
    owner, guest = await person(http, "Owner"), await person(http, "Guest")
    room_id = await room_of(owner, "Jazz")
    joined = (await owner.post(f"/rooms/{room_id}/join")).json()
    assert joined["role"] == "owner" and joined["selfId"] == owner.id
    assert joined["viewer"]["urls"] == [f"ws://127.0.0.1:{srv.http_port}/ws/v2/sub"]
    assert joined["publisher"]["urls"] == [f"ws://127.0.0.1:{srv.http_port}/ws/v2/pub"]
    pub = claims(joined["publisher"]["jwt"])
    assert pub["millicast"]["streamName"] == room_id
    assert pub["hubbub"]["multisource"] is True  # every speaker publishes its own sourceId
    assert claims(joined["viewer"]["jwt"])["millicast"]["streamName"] == room_id

    reply = (await guest.post(f"/rooms/{room_id}/join")).json()
    assert reply["role"] == "listener" and reply["publisher"] is None
    assert claims(reply["viewer"]["jwt"])["millicast"]["streamName"] == room_id
    room = reply["room"]
    assert room["ownerId"] == owner.id and room["speakers"] == [owner.id]
    assert [(p["id"], p["role"]) for p in room["participants"]] == [
        (owner.id, "owner"), (guest.id, "listener")
    ]
    # The lobby lists a room once its host is there, and counts who is connected now.
    assert room_id not in [r["id"] for r in (await http.get("/rooms")).json()["rooms"]]
    ws_owner = await in_room(srv, owner, room_id)
    try:
        listed = (await http.get("/rooms")).json()["rooms"]  # public: no identity needed
        entry = next(r for r in listed if r["id"] == room_id)
        assert entry["name"] == "Jazz" and entry["ownerName"] == "Owner"
        assert (entry["listeners"], entry["online"], entry["speakers"]) == (0, 1, ["Owner"])
        ws_guest = await in_room(srv, guest, room_id)
        listed = (await http.get("/rooms")).json()["rooms"]
        entry = next(r for r in listed if r["id"] == room_id)
        assert (entry["listeners"], entry["online"]) == (1, 2)
        await ws_guest.close()
    finally:
        await ws_owner.close()


async def test_identity_is_required_and_checked(http: httpx.AsyncClient) -> None:
    assert (await http.get("/me")).status_code == 401
    bad = await http.get("/me", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "session expired" in bad.json()["error"]
    assert (await http.post("/users", json={"name": "   "})).status_code == 400
    assert (await http.post("/users", json={"name": "x" * 41})).status_code == 400
    ann = await person(http, "  Ann   Lee ")
    assert (await ann.get("/me")).json() == {"id": ann.id, "name": "Ann Lee"}
    renamed = await ann.http.put("/me", json={"name": "Annie"}, headers=ann.headers)
    assert renamed.json()["name"] == "Annie"


async def test_only_the_owner_promotes_demotes_kicks_and_closes(http: httpx.AsyncClient) -> None:
    owner, ann, bob = await person(http, "O"), await person(http, "Ann"), await person(http, "Bob")
    room_id = await room_of(owner)
    for p in (ann, bob):
        assert (await p.post(f"/rooms/{room_id}/join")).status_code == 200
    for action in ("invite", "promote", "uninvite", "demote", "kick"):
        resp = await ann.post(f"/rooms/{room_id}/{action}", {"userId": bob.id})
        assert resp.status_code == 403, (action, resp.text)
        assert "only the room's owner" in resp.json()["error"]
    assert (await ann.post(f"/rooms/{room_id}/close")).status_code == 403

    # Hands: listeners only; the owner sees them in raise order.
    assert (await bob.post(f"/rooms/{room_id}/hand", {"raised": True})).status_code == 200
    state = (await ann.post(f"/rooms/{room_id}/hand", {"raised": True})).json()["room"]
    assert state["hands"] == [bob.id, ann.id]
    assert (await owner.post(f"/rooms/{room_id}/hand", {"raised": True})).status_code == 409

    # An invitation puts nobody on stage: no publish JWT until the listener says yes.
    invited = await owner.post(f"/rooms/{room_id}/invite", {"userId": ann.id})
    assert invited.status_code == 200
    state = invited.json()["room"]
    assert ann.id not in state["speakers"] and state["hands"] == [bob.id, ann.id]
    assert [p["invite"] for p in state["participants"] if p["id"] == ann.id] == ["pending"]
    pending = (await ann.post(f"/rooms/{room_id}/join")).json()
    assert pending["role"] == "listener" and pending["publisher"] is None
    not_invited = await bob.post(f"/rooms/{room_id}/invitation", {"accept": True})
    assert not_invited.status_code == 409, not_invited.text
    accepted = await ann.post(f"/rooms/{room_id}/invitation", {"accept": True})
    assert accepted.status_code == 200
    assert claims(accepted.json()["publisher"]["jwt"])["millicast"]["streamName"] == room_id
    state = accepted.json()["room"]
    assert ann.id in state["speakers"] and state["hands"] == [bob.id]  # the hand is lowered
    assert (await owner.post(f"/rooms/{room_id}/invite", {"userId": ann.id})).status_code == 409
    again = await ann.post(f"/rooms/{room_id}/invitation", {"accept": True})
    assert again.status_code == 409  # answered once
    joined = (await ann.post(f"/rooms/{room_id}/join")).json()  # renewal: a publish JWT now
    assert joined["role"] == "speaker" and joined["publisher"]["jwt"]
    assert (await ann.post(f"/rooms/{room_id}/demote", {"userId": owner.id})).status_code == 403
    assert (await owner.post(f"/rooms/{room_id}/demote", {"userId": owner.id})).status_code == 409
    demoted = await owner.post(f"/rooms/{room_id}/demote", {"userId": ann.id})
    assert demoted.status_code == 200 and demoted.json()["room"]["speakers"] == [owner.id]
    assert (await ann.post(f"/rooms/{room_id}/join")).json()["publisher"] is None  # no renewal

    assert (await owner.post(f"/rooms/{room_id}/kick", {"userId": owner.id})).status_code == 409
    kicked = await owner.post(f"/rooms/{room_id}/kick", {"userId": bob.id})
    assert bob.id not in [p["id"] for p in kicked.json()["room"]["participants"]]
    again = await bob.post(f"/rooms/{room_id}/join")
    assert again.status_code == 403 and "removed" in again.json()["error"]
    assert (await bob.post(f"/rooms/{room_id}/hand", {"raised": True})).status_code == 403
    missing = await owner.post(f"/rooms/{room_id}/promote", {"userId": "nobody"})
    assert missing.status_code == 404


async def test_unknown_and_closed_rooms(http: httpx.AsyncClient) -> None:
    owner, guest = await person(http, "O"), await person(http, "G")
    for path in ("/rooms/nope/join", "/rooms/nope/close", "/rooms/nope/leave"):
        resp = await guest.post(path)
        assert resp.status_code == 404 and resp.json()["error"] == "no room 'nope'"
    assert (await guest.get("/rooms/nope")).status_code == 404
    room_id = await room_of(owner)
    assert (await guest.post(f"/rooms/{room_id}/hand", {"raised": True})).status_code == 403
    assert (await guest.post(f"/rooms/{room_id}/join")).status_code == 200
    assert (await owner.post(f"/rooms/{room_id}/close")).status_code == 200
    for who, path, body in (
        (guest, "join", None), (guest, "hand", {"raised": True}), (owner, "close", None),
        (owner, "promote", {"userId": guest.id}),
    ):
        resp = await who.post(f"/rooms/{room_id}/{path}", body)
        assert resp.status_code == 410, (path, resp.text)
        assert resp.json()["error"] == "this room has been closed by its owner"
    assert room_id not in [r["id"] for r in (await guest.get("/rooms")).json()["rooms"]]


async def test_presence_events_reach_the_right_people(
    http: httpx.AsyncClient, srv: RunningServer
) -> None:
    owner, ann, bob = await person(http, "O"), await person(http, "Ann"), await person(http, "B")
    room_id = await room_of(owner)
    for p in (ann, bob):
        await p.post(f"/rooms/{room_id}/join")
    # Each socket has had its first state, so the server knows it before the invitation.
    ws_ann, ws_bob = await in_room(srv, ann, room_id), await presence(srv, bob, room_id)
    try:
        state = await next_message(ws_bob, "state")
        assert state["room"]["id"] == room_id
        await owner.post(f"/rooms/{room_id}/invite", {"userId": ann.id})
        invited = await next_message(ws_ann, "invited")
        assert invited == {"type": "invited", "by": "O"}  # a question, no JWT
        accepted = await ann.post(f"/rooms/{room_id}/invitation", {"accept": True})
        assert claims(accepted.json()["publisher"]["jwt"])["millicast"]["streamName"] == room_id
        # Bob is told about the new speaker, and never gets Ann's publish JWT.
        while True:
            msg = json.loads(await asyncio.wait_for(ws_bob.recv(), 5))
            assert msg["type"] == "state", msg
            if ann.id in msg["room"]["speakers"]:
                break
        await owner.post(f"/rooms/{room_id}/demote", {"userId": ann.id})
        assert (await next_message(ws_ann, "demoted"))["type"] == "demoted"
        await owner.post(f"/rooms/{room_id}/kick", {"userId": bob.id})
        assert (await next_message(ws_bob, "kicked"))["type"] == "kicked"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws_bob.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003
        await owner.post(f"/rooms/{room_id}/close")
        assert (await next_message(ws_ann, "closed"))["type"] == "closed"
    finally:
        await ws_ann.close()
        await ws_bob.close()


async def test_a_declined_invitation_is_told_to_the_owner_and_puts_nobody_on_stage(
    http: httpx.AsyncClient, srv: RunningServer
) -> None:
    owner, ann = await person(http, "O"), await person(http, "Ann")
    room_id = await room_of(owner)
    await owner.post(f"/rooms/{room_id}/join")
    await ann.post(f"/rooms/{room_id}/join")
    await ann.post(f"/rooms/{room_id}/hand", {"raised": True})
    # In the room (first state received) before the invitation: else it can race the hello.
    ws_owner, ws_ann = await in_room(srv, owner, room_id), await in_room(srv, ann, room_id)
    try:
        await owner.post(f"/rooms/{room_id}/invite", {"userId": ann.id})
        await next_message(ws_ann, "invited")
        declined = await ann.post(f"/rooms/{room_id}/invitation", {"accept": False})
        assert declined.status_code == 200 and declined.json()["publisher"] is None
        told = await next_message(ws_owner, "declined")
        assert told == {"type": "declined", "userId": ann.id, "username": "Ann"}
        state = declined.json()["room"]
        assert state["speakers"] == [owner.id]
        assert [p["invite"] for p in state["participants"] if p["id"] == ann.id] == ["declined"]
        assert (await ann.post(f"/rooms/{room_id}/join")).json()["publisher"] is None
        # Asking again clears the mark; the owner may invite again, and withdraw it.
        await ann.post(f"/rooms/{room_id}/hand", {"raised": False})
        raised = (await ann.post(f"/rooms/{room_id}/hand", {"raised": True})).json()["room"]
        assert [p["invite"] for p in raised["participants"] if p["id"] == ann.id] == [None]
        await owner.post(f"/rooms/{room_id}/invite", {"userId": ann.id})
        withdrawn = await owner.post(f"/rooms/{room_id}/uninvite", {"userId": ann.id})
        assert withdrawn.status_code == 200
        assert (await next_message(ws_ann, "uninvited"))["type"] == "uninvited"
        late = await ann.post(f"/rooms/{room_id}/invitation", {"accept": True})
        assert late.status_code == 409 and late.json()["error"] == "you have no pending invitation"
    finally:
        await ws_owner.close()
        await ws_ann.close()


@pytest.mark.parametrize(
    ("who", "code"), [("stranger", 4403), ("nobody", 4401), ("closed", 4410), ("missing", 4404)]
)
async def test_presence_refusals(
    http: httpx.AsyncClient, srv: RunningServer, who: str, code: int
) -> None:
    owner, stranger = await person(http, "O"), await person(http, "S")
    room_id = await room_of(owner)
    secret = {"nobody": "not-a-secret"}.get(who, stranger.secret)
    if who == "closed":
        await stranger.post(f"/rooms/{room_id}/join")
        await owner.post(f"/rooms/{room_id}/close")
    target = "missing-room" if who == "missing" else room_id
    async with websockets.connect(ws_url(srv)) as ws:
        await ws.send(json.dumps({"type": "hello", "roomId": target, "secret": secret}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_demote_stops_the_speakers_source_on_the_sfu(
    http: httpx.AsyncClient, srv: RunningServer
) -> None:
    owner, ann = await person(http, "O"), await person(http, "Ann")
    room_id = await room_of(owner, audio_only=True)
    await ann.post(f"/rooms/{room_id}/join")
    director = await on_stage(owner, ann, room_id)
    pub = Publisher(director["urls"][0], room_id, source_id=ann.id, token=director["jwt"],
                    tracks=[ToneTrack(440.0, amplitude=0.3)])
    try:
        await pub.connect()
        await pub.wait_connected()
        await owner.post(f"/rooms/{room_id}/demote", {"userId": ann.id})
        await pub.wait_closed(5)  # the node ended her publisher session
    finally:
        await pub.close()


async def test_admin_stop_source_endpoint(srv: RunningServer) -> None:
    url = f"{srv.http_url}/api/streams/some-stream/sources/x/stop"
    secret = (Path(srv.args[srv.args.index("--data-dir") + 1]) / "api-secret").read_text().strip()
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.post(url)).status_code == 401
        wrong = await client.post(url, headers={"Authorization": "Bearer wrong-secret-123456"})
        assert wrong.status_code == 401
        resp = await client.post(url, headers={"Authorization": f"Bearer {secret}"})
    assert resp.status_code == 404
    assert resp.json()["data"]["message"] == "Not Found: no live source 'x' in 'some-stream'"


async def test_rooms_survive_a_restart(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    first = RunningServer(name="spaces-restart-1", allow_any_stream=False, extra_args=data)
    async with first:
        async with httpx.AsyncClient(base_url=f"{first.http_url}/spaces/api") as http:
            owner, ann, bob = (
                await person(http, "Owner"), await person(http, "Ann"), await person(http, "Bob")
            )
            room_id = await room_of(owner, "Persistent", audio_only=True)
            for p in (ann, bob):
                await p.post(f"/rooms/{room_id}/join")
            await on_stage(owner, ann, room_id)
            await bob.post(f"/rooms/{room_id}/hand", {"raised": True})
            before = (await owner.get(f"/rooms/{room_id}")).json()["room"]
    second = RunningServer(name="spaces-restart-2", allow_any_stream=False, extra_args=data)
    async with second:
        async with httpx.AsyncClient(base_url=f"{second.http_url}/spaces/api") as http:
            owner.http = ann.http = bob.http = http
            after = (await owner.get(f"/rooms/{room_id}")).json()["room"]
            assert after == before
            assert after["speakers"] == [owner.id, ann.id] and after["hands"] == [bob.id]
            # Same identities, same rights: Ann still gets a publish JWT (the app's tokens
            # were kept too), Bob does not.
            assert (await ann.post(f"/rooms/{room_id}/join")).json()["publisher"]["jwt"]
            assert (await bob.post(f"/rooms/{room_id}/join")).json()["publisher"] is None


async def test_standalone_spaces_against_a_remote_node(tmp_path: Path) -> None:
    """`hubbub serve --no-spaces` + `python -m hubbub.apps.spaces --hubbub-url ...`: the app
    talks to the node over HTTP only, and hands out the node's signaling URLs."""
    node = RunningServer(name="spaces-remote-node", allow_any_stream=False,
                         extra_args=["--no-spaces", "--api-secret", "remote-node-secret-0123"])
    async with node:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{node.http_url}/spaces/")).status_code == 404
        port = free_tcp_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hubbub.apps.spaces", "--hubbub-url", node.http_url,
            "--api-secret", "remote-node-secret-0123", "--host", "127.0.0.1",
            "--http-port", str(port), "--data-dir", str(tmp_path / "spaces"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=f"{base}/spaces/api", timeout=10) as http:
                for _ in range(200):
                    try:
                        if (await http.get(f"{base}/spaces/")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)
                owner = await person(http, "Remote owner")
                room_id = await room_of(owner)
                joined = (await owner.post(f"/rooms/{room_id}/join")).json()
            assert joined["publisher"]["urls"] == [f"ws://127.0.0.1:{node.http_port}/ws/v2/pub"]
            assert claims(joined["viewer"]["jwt"])["millicast"]["streamName"] == room_id
        finally:
            proc.terminate()
            await proc.wait()


async def test_media_reports_make_blocked_mics_and_video_visible(
    http: httpx.AsyncClient, srv: RunningServer
) -> None:
    owner, ann = await person(http, "O"), await person(http, "Ann")
    room_id = await room_of(owner, "Video room")
    await ann.post(f"/rooms/{room_id}/join")
    ws_owner = await in_room(srv, owner, room_id)
    try:
        def entry() -> Any:
            return next(r for r in listed if r["id"] == room_id)

        listed = (await http.get("/rooms")).json()["rooms"]
        assert entry()["video"] is False  # nothing published yet: not "with video"
        await owner.post(f"/rooms/{room_id}/media", {"micBlocked": False, "video": True})
        listed = (await http.get("/rooms")).json()["rooms"]
        assert entry()["video"] is True
        # A listener's report changes nothing: only speakers can have a blocked mic.
        state = (await ann.post(f"/rooms/{room_id}/media", {"micBlocked": True})).json()["room"]
        assert [p["micBlocked"] for p in state["participants"] if p["id"] == ann.id] == [False]
        await on_stage(owner, ann, room_id)
        state = (await ann.post(f"/rooms/{room_id}/media", {"micBlocked": True})).json()["room"]
        assert [p["micBlocked"] for p in state["participants"] if p["id"] == ann.id] == [True]
        # Off the stage, the mark goes with the role.
        state = (await owner.post(f"/rooms/{room_id}/demote", {"userId": ann.id})).json()["room"]
        assert [p["micBlocked"] for p in state["participants"] if p["id"] == ann.id] == [False]
        bad = await ann.post(f"/rooms/{room_id}/media", {"micBlocked": "yes"})
        assert bad.status_code == 400
    finally:
        await ws_owner.close()
