"""Webhooks of a real `hubbub serve`, registered through its admin API, delivered to a real
HTTP receiver on 127.0.0.1: payloads of a publish with aiortc, token events, retries until a
receiver comes up (and the delivery log saying so), joins unaffected by a receiver that sleeps
10 s, and registrations refused with clear messages."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from tests.helpers.server import RunningServer, free_tcp_port
from tests.helpers.webhook_receiver import Receiver

from hubbub.client.media import ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

ADMIN = "admin-secret-for-webhook-tests-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
_names = itertools.count()


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    env = {"HUBBUB_WEBHOOKS__VIEWER_INTERVAL": "1"}
    with RunningServer(name="webhooks", extra_args=["--api-secret", ADMIN,
                                                    "--media-timeout", "3"], env=env) as s:
        yield s


@pytest.fixture
async def api(srv: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=srv.http_url, headers=AUTH, timeout=10) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


class Hooks:
    """Registers webhooks for one test and deletes them after it (events of other tests then
    reach nobody's receiver)."""

    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.ids: list[int] = []

    async def add(self, url: str, *types: str) -> dict[str, Any]:
        reply = await self.api.post("/api/webhooks", json={"url": url, "types": list(types)})
        assert reply.status_code == 201, reply.text
        data: dict[str, Any] = reply.json()["data"]
        self.ids.append(data["id"])
        return data

    async def deliveries(self, hook_id: int, **params: int) -> dict[str, Any]:
        reply = await self.api.get(f"/api/webhooks/{hook_id}/deliveries", params=params)
        assert reply.status_code == 200, reply.text
        data: dict[str, Any] = reply.json()["data"]
        return data


@pytest.fixture
async def hooks(api: httpx.AsyncClient) -> AsyncIterator[Hooks]:
    registered = Hooks(api)
    yield registered
    for hook_id in registered.ids:
        await api.delete(f"/api/webhooks/{hook_id}")


def stream_name() -> str:
    return f"wh{next(_names)}-{int(time.time())}"


async def create_token(api: httpx.AsyncClient, name: str = "demo*") -> dict[str, Any]:
    reply = await api.post("/api/publish_token", json={"label": "cam",
                                                      "streams": [{"streamName": name}]})
    assert reply.status_code == 201, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


# --- payloads ------------------------------------------------------------------------------


async def test_feeds_started_live_ended_offline_for_an_aiortc_publish(
        srv: RunningServer, hooks: Hooks, receiver: Receiver) -> None:
    hook = await hooks.add(receiver.url, "feeds")
    name = stream_name()
    before = int(time.time() * 1000)
    pub = Publisher(srv.ws_pub_url, name, source_id="cam", tracks=[ToneTrack(440)])
    await pub.connect()
    started = await receiver.wait_event("feeds", "started", name=name)
    live = await receiver.wait_event("feeds", "live", name=name)
    await pub.close()
    ended = await receiver.wait_event("feeds", "ended", name=name)
    offline = await receiver.wait_event("feeds", "offline", name=name)
    ours = [r.json() for r in receiver.received if r.json()["data"].get("name") == name]
    assert [b["event"] for b in ours] == ["started", "live", "ended", "offline"]
    assert all(r.verifies(hook["secret"]) for r in (started, live, ended, offline))

    on = started.json()["data"]
    assert on == {"feedId": on["feedId"], "accountId": "hubbub", "name": name,
                  "streamId": f"hubbub/{name}", "sourceId": "cam", "started": on["started"],
                  "active": True}
    assert len(on["feedId"]) == 16 and before <= on["started"] <= started.json()["timestamp"]
    assert live.json()["data"] == {"accountId": "hubbub", "name": name,
                                   "streamId": f"hubbub/{name}", "live": True, "sources": 1}
    off = ended.json()["data"]
    assert off == {**on, "active": False, "ended": off["ended"]}
    assert on["started"] <= off["ended"] <= ended.json()["timestamp"]
    assert offline.json()["data"] == {"accountId": "hubbub", "name": name,
                                      "streamId": f"hubbub/{name}", "live": False,
                                      "sources": 0}


async def test_viewer_counts(srv: RunningServer, hooks: Hooks, receiver: Receiver) -> None:
    await hooks.add(receiver.url, "viewerConnection")
    name = stream_name()
    async with Publisher(srv.ws_pub_url, name, tracks=[ToneTrack(440)]):
        async with Viewer(srv.ws_sub_url, name, video=False):
            one = await receiver.wait_event("viewerConnection", "count", name=name, viewers=1)
        zero = await receiver.wait_event("viewerConnection", "count", name=name, viewers=0)
    assert one.json()["data"] == {"accountId": "hubbub", "name": name,
                                  "streamId": f"hubbub/{name}", "viewers": 1,
                                  "nodeId": one.json()["data"]["nodeId"]}
    # at most one per stream per interval (1 s here)
    assert zero.at - one.at >= 0.9


async def test_token_events_on_create_update_revoke_delete(
        api: httpx.AsyncClient, hooks: Hooks, receiver: Receiver) -> None:
    hook = await hooks.add(receiver.url, "tokens")
    token = await create_token(api)
    tid = token["id"]
    assert (await api.put(f"/api/publish_token/{tid}", json={"label": "cam2"})).is_success
    assert (await api.post(f"/api/publish_token/{tid}/revoke")).is_success
    assert (await api.post(f"/api/publish_token/{tid}/revoke")).is_success  # already: no event
    assert (await api.delete(f"/api/publish_token/{tid}")).is_success
    got = await receiver.wait_for(4)
    await asyncio.sleep(0.3)
    bodies = [r.json() for r in receiver.received]
    assert [(b["type"], b["event"]) for b in bodies] == [
        ("tokens", "created"), ("tokens", "updated"), ("tokens", "revoked"),
        ("tokens", "deleted")]
    assert all(r.verifies(hook["secret"]) for r in got)
    created = bodies[0]["data"]
    assert created["id"] == tid and created["tokenType"] == "publish"
    assert created["label"] == "cam" and "token" not in created  # never the secret
    assert token["token"] not in b"".join(r.body for r in got).decode()
    assert bodies[1]["data"]["label"] == "cam2"
    assert bodies[2]["data"]["isActive"] is False and bodies[2]["data"]["revokedOn"]


# --- delivery ------------------------------------------------------------------------------


async def test_a_receiver_that_is_down_is_retried_until_it_is_up(
        api: httpx.AsyncClient, hooks: Hooks) -> None:
    port = free_tcp_port()
    hook = await hooks.add(f"http://127.0.0.1:{port}/hook", "tokens")
    await create_token(api)
    async with asyncio.timeout(15):
        while (await hooks.deliveries(hook["id"]))["total"] < 2:
            await asyncio.sleep(0.1)
    receiver = await Receiver(port).start()
    try:
        (got,) = await receiver.wait_for(1, timeout=15)
        assert got.verifies(hook["secret"]) and got.json()["event"] == "created"
        async with asyncio.timeout(5):
            while not (log := await hooks.deliveries(hook["id"]))["items"][0]["delivered"]:
                await asyncio.sleep(0.1)
    finally:
        await receiver.stop()
    items = log["items"]  # newest first
    attempts = len(items)
    assert attempts >= 3 and log["total"] == attempts
    assert [i["attempt"] for i in items] == list(range(attempts, 0, -1))
    assert items[0] | {"attemptedOn": "", "eventTime": "", "durationMs": 0, "id": 0} == {
        "id": 0, "eventId": got.headers["x-hubbub-event-id"], "type": "tokens",
        "event": "created", "attempt": attempts, "delivered": True, "final": True,
        "statusCode": 200, "error": None, "eventTime": "", "attemptedOn": "", "durationMs": 0}
    for failed in items[1:]:
        assert not failed["delivered"] and not failed["final"]
        assert failed["statusCode"] is None and "Connect" in failed["error"]
        assert failed["eventId"] == items[0]["eventId"]
    page = await hooks.deliveries(hook["id"], offset=1, limit=1)
    assert page["items"] == [items[1]] and page["total"] == attempts


async def test_a_receiver_that_sleeps_10_s_does_not_delay_a_join(
        srv: RunningServer, api: httpx.AsyncClient, hooks: Hooks) -> None:
    slow = await Receiver(delay=10.0).start()
    try:
        await hooks.add(slow.url, "feeds", "viewerConnection", "tokens")
        await create_token(api)
        await slow.wait_for(1)
        assert slow.in_flight == 1
        name = stream_name()
        began = time.monotonic()
        pub = Publisher(srv.ws_pub_url, name, tracks=[ToneTrack(440)])
        await pub.connect()
        published = time.monotonic() - began
        viewer = Viewer(srv.ws_sub_url, name, video=False)
        await viewer.connect()
        viewed = time.monotonic() - began - published
        try:
            active = await viewer.wait_for_event("active")
            assert active["streamId"].endswith("/" + name)
        finally:
            await viewer.close()
            await pub.close()
        # The receiver held its first request all along; the join's events wait behind it.
        assert slow.in_flight == 1 and len(slow.received) == 1
        assert published < 3.0 and viewed < 3.0, (published, viewed)
        hook_id = hooks.ids[0]
        queued = (await api.get(f"/api/webhooks/{hook_id}")).json()["data"]["queued"]
        assert queued >= 2  # feeds started, live (and a viewer count) wait their turn
    finally:
        await slow.stop()


# --- the API -------------------------------------------------------------------------------


async def test_registration_lifecycle_and_the_secret_shown_once(
        api: httpx.AsyncClient, hooks: Hooks, receiver: Receiver) -> None:
    created = await hooks.add(receiver.url, "feeds", "tokens")
    hid = created["id"]
    assert len(created["secret"]) == 64
    assert created | {"id": 0, "secret": "", "createdOn": "", "updatedOn": ""} == {
        "id": 0, "url": receiver.url, "types": ["feeds", "tokens"], "description": "",
        "active": True, "createdOn": "", "updatedOn": "", "secret": "", "queued": 0}
    got = (await api.get(f"/api/webhooks/{hid}")).json()["data"]
    assert "secret" not in got or got["secret"] is None
    listing = (await api.get("/api/webhooks")).json()["data"]
    assert hid in [h["id"] for h in listing["items"]]
    changed = (await api.put(f"/api/webhooks/{hid}", json={
        "types": ["recordings"], "description": "backend", "active": False})).json()["data"]
    assert changed["types"] == ["recordings"] and changed["description"] == "backend"
    assert changed["active"] is False and changed["url"] == receiver.url
    rotated = (await api.put(f"/api/webhooks/{hid}", json={"rotateSecret": True})).json()
    assert len(rotated["data"]["secret"]) == 64
    assert rotated["data"]["secret"] != created["secret"]
    assert (await api.delete(f"/api/webhooks/{hid}")).json()["data"] == {
        "id": hid, "deleted": True}
    assert (await api.get(f"/api/webhooks/{hid}")).status_code == 404
    assert (await api.get(f"/api/webhooks/{hid}/deliveries")).status_code == 404


async def test_a_test_ping_reaches_the_receiver_signed(
        api: httpx.AsyncClient, hooks: Hooks, receiver: Receiver) -> None:
    hook = await hooks.add(receiver.url, "recordings")  # any types: a ping goes anyway
    reply = await api.post(f"/api/webhooks/{hook['id']}/test")
    assert reply.status_code == 202, reply.text
    event_id = reply.json()["data"]["eventId"]
    (got,) = await receiver.wait_for(1)
    assert got.verifies(hook["secret"]) and got.headers["x-hubbub-event-id"] == event_id
    body = got.json()
    assert (body["type"], body["event"], body["data"]) == ("test", "ping",
                                                           {"webhookId": hook["id"]})
    assert (await api.put(f"/api/webhooks/{hook['id']}", json={"active": False})).is_success
    paused = await api.post(f"/api/webhooks/{hook['id']}/test")
    assert paused.status_code == 409 and "not active" in paused.text
    assert (await api.post("/api/webhooks/999999/test")).status_code == 404


@pytest.mark.parametrize(("body", "message"), [
    ({"url": "ftp://example.test/x", "types": ["feeds"]}, "url: Value error, must be an "
     "http:// or https:// URL"),
    ({"url": "not a url at all", "types": ["feeds"]}, "spaces or control characters"),
    ({"url": "http:///path", "types": ["feeds"]}, "must name a host"),
    ({"url": "http://127.0.0.1/x#frag", "types": ["feeds"]}, "must not have a #fragment"),
    ({"url": "http://127.0.0.1/x", "types": []}, "types: List should have at least 1 item"),
    ({"url": "http://127.0.0.1/x", "types": ["nope"]}, "types.0: Input should be 'feeds'"),
    ({"url": "http://127.0.0.1/x"}, "types: Field required"),
    ({"types": ["feeds"]}, "url: Field required"),
    ({"url": "http://127.0.0.1/x", "types": ["feeds"], "secret": "mine"},
     "secret: Extra inputs are not permitted"),
    ({"url": "http://127.0.0.1/x", "types": ["feeds"], "description": "a\nb"},
     "description: Value error, must not contain control characters"),
    ({"url": "http://127.0.0.1/" + "x" * 2048, "types": ["feeds"]}, "at most 2048"),
])
async def test_bad_registrations_are_refused(api: httpx.AsyncClient, body: dict[str, Any],
                                             message: str) -> None:
    reply = await api.post("/api/webhooks", json=body)
    assert reply.status_code == 400, reply.text
    assert reply.json()["status"] == "fail"
    assert message in reply.json()["data"]["message"], reply.json()


async def test_the_api_needs_the_admin_secret_and_real_ids(
        srv: RunningServer, api: httpx.AsyncClient, hooks: Hooks, receiver: Receiver) -> None:
    async with httpx.AsyncClient(base_url=srv.http_url) as anonymous:
        assert (await anonymous.get("/api/webhooks")).status_code == 401
        wrong = await anonymous.post("/api/webhooks", headers={"Authorization": "Bearer nope"},
                                     json={"url": receiver.url, "types": ["feeds"]})
        assert wrong.status_code == 401
    assert (await api.get("/api/webhooks/999999")).status_code == 404
    assert (await api.get("/api/webhooks/0")).status_code == 400
    assert (await api.get("/api/webhooks?limit=0")).status_code == 400
    hook = await hooks.add(receiver.url, "feeds")
    nulled = await api.put(f"/api/webhooks/{hook['id']}", json={"url": None})
    assert nulled.status_code == 400 and "url cannot be null" in nulled.text
    paths = (await api.get("/openapi.json")).json()["paths"]
    assert {"/api/webhooks", "/api/webhooks/{hook_id}",
            "/api/webhooks/{hook_id}/deliveries"} <= set(paths)
