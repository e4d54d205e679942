"""WHIP and WHEP in-process: the HTTP side of RFC 9725 and the WHEP drafts (status codes,
headers, token rules, PATCH, DELETE, CORS, the SSE channel) against a node whose media port is
bound on loopback. Real browsers' offers (tests/media/data/sdp) stand in for the peers: no
media flows here; tests/e2e/test_whip_whep.py has the real ones."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from hubbub.config import Config
from hubbub.control.app import create_app
from hubbub.control.auth import datadir
from hubbub.control.auth.service import Auth
from hubbub.control.http_sessions import HttpSessions
from hubbub.control.node import Node
from hubbub.control.sse import EventChannel, record

ADMIN = "admin-secret-for-whip-tests-0123456789"
SDP_DIR = Path(__file__).parent.parent / "media" / "data" / "sdp"
PUBLISH_OFFER = (SDP_DIR / "chromium156_publish.sdp").read_text()
VIEW_OFFER = (SDP_DIR / "chromium156_view.sdp").read_text()
SESSION_URL = re.compile(r"^/api/(whip|whep)/session/[A-Za-z0-9_-]{22}$")


@dataclass
class Env:
    node: Node
    sessions: HttpSessions
    client: httpx.AsyncClient

    async def token(self, kind: str = "publish", **fields: Any) -> str:
        return str((await self.token_record(kind, **fields))["token"])

    async def token_record(self, kind: str = "publish", **fields: Any) -> dict[str, Any]:
        body = {"streams": [{"streamName": "cam*"}], **fields}
        reply = await self.client.post(f"/api/{kind}_token", json=body,
                                       headers={"Authorization": f"Bearer {ADMIN}"})
        assert reply.status_code == 201, reply.text
        data: dict[str, Any] = reply.json()["data"]
        return data

    async def whip(self, stream: str, token: str | None, query: str = "",
                   sdp: str = PUBLISH_OFFER, **headers: str) -> httpx.Response:
        headers = {"Content-Type": "application/sdp", **headers}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.post(f"/api/whip/{stream}{query}", content=sdp,
                                      headers=headers)

    async def whep(self, stream: str, token: str | None = None, account: str = "hubbub",
                   sdp: str = VIEW_OFFER) -> httpx.Response:
        headers = {"Content-Type": "application/sdp"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.post(f"/api/whep/{account}/{stream}", content=sdp,
                                      headers=headers)


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    config = Config()
    config.media.host = "127.0.0.1"
    config.media.port = 0
    config.auth.data_dir = str(tmp_path / "data")
    config.auth.api_secret = ADMIN
    config.auth.open_viewing = ["cam-open*"]
    node = Node(config)
    auth = Auth(config.auth, datadir.prepare(config.auth))
    app = create_app(node, auth)
    await auth.start()
    await node.start()
    sessions: HttpSessions = app.state.http_sessions
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://media.test") as c:
        yield Env(node, sessions, c)
    sessions.close_all("test over")
    await node.stop()
    await auth.stop()


def refused(reply: httpx.Response, status: int, text: str) -> None:
    assert reply.status_code == status, (reply.status_code, reply.text)
    assert reply.headers["content-type"].startswith("text/plain")
    assert text in reply.text, reply.text


async def test_whip_answers_201_with_a_session_url_and_delete_ends_it(env: Env) -> None:
    reply = await env.whip("cam1", await env.token())
    assert reply.status_code == 201, reply.text
    assert reply.headers["content-type"] == "application/sdp"
    assert reply.text.startswith("v=0\r\n") and "a=recvonly" in reply.text
    assert "a=ice-lite" in reply.text and "a=candidate:" in reply.text
    location = reply.headers["location"]
    assert SESSION_URL.match(location), location
    assert re.fullmatch(r'"[^"]+"', reply.headers["etag"])
    assert reply.headers["accept-patch"] == "application/trickle-ice-sdpfrag"
    assert len(env.sessions) == 1
    # RFC 9725 §4.4: If-Match is not checked on DELETE (simple-whip-client sends its ETag).
    deleted = await env.client.delete(location, headers={"If-Match": '"stale"'})
    assert deleted.status_code == 200
    assert len(env.sessions) == 0
    refused(await env.client.delete(location), 404, "no WHIP session here")


async def test_whip_token_rules_are_the_websockets(env: Env) -> None:
    node = env.node
    token = await env.token()
    single = await env.token(streams=[{"streamName": "cam1"}])
    expired = await env.token_record()
    revoked = await env.token_record()
    headers = {"Authorization": f"Bearer {ADMIN}"}
    reply = await env.client.put(f"/api/publish_token/{expired['id']}",
                                 json={"expiresOn": "2000-01-01T00:00:00Z"}, headers=headers)
    assert reply.status_code == 200, reply.text
    reply = await env.client.post(f"/api/publish_token/{revoked['id']}/revoke",
                                  headers=headers)
    assert reply.status_code == 200, reply.text
    director = await env.client.post("/api/director/publish", json={"streamName": "cam9"},
                                     headers={"Authorization": f"Bearer {token}"})
    jwt_cam9 = director.json()["data"]["jwt"]

    missing = await env.whip("cam1", None)
    refused(missing, 401, "missing Authorization header")
    assert missing.headers["www-authenticate"].startswith("Bearer")
    refused(await env.whip("cam1", "not-a-token"), 401, "Invalid token")
    refused(await env.whip("cam1", expired["token"]), 401, "token expired")
    refused(await env.whip("cam1", revoked["token"]), 401, "token revoked")
    refused(await env.whip("cam2", single), 403, "does not cover stream 'cam2'")
    refused(await env.whip("cam1", jwt_cam9), 403, "the token is for 'cam9'")
    refused(await env.whip("cam1", token, "?sourceId=s1"), 403, "multisource")
    refused(await env.whip("bad name!", token), 400, "invalid stream name")
    refused(await env.whip("cam1", token, "?codec=mp3"), 400, "unsupported codec 'mp3'")
    refused(await env.whip("cam1", token, **{"Content-Type": "text/plain"}), 415,
            "application/sdp")
    refused(await env.whip("cam1", token, sdp="v=0\r\nnonsense"), 422, "Unprocessable")
    assert len(env.sessions) == 0
    assert not node.port._by_ufrag, "a refused offer left a transport behind"
    # and the good ones
    assert (await env.whip("cam9", jwt_cam9)).status_code == 201
    multi = await env.token(multisource=True)
    assert (await env.whip("cam1", multi, "?sourceId=s1&codec=vp8&priority=2")).status_code \
        == 201


async def test_patch_takes_trickle_refuses_a_restart_and_keeps_the_session(env: Env) -> None:
    reply = await env.whip("cam1", await env.token())
    location, etag = reply.headers["location"], reply.headers["etag"]
    frag = ("a=ice-ufrag:2vtS\r\na=ice-pwd:YtWcZpK2lp7yMhLhog/EFcfr\r\nm=audio 9 "
            "UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2122260223 192.0.2.1 "
            "50000 typ host\r\na=end-of-candidates\r\n")
    sdpfrag = {"Content-Type": "application/trickle-ice-sdpfrag"}
    trickle = await env.client.patch(location, content=frag, headers=sdpfrag)
    assert trickle.status_code == 204 and trickle.content == b""
    with_tag = await env.client.patch(location, content=frag,
                                      headers={**sdpfrag, "If-Match": etag})
    assert with_tag.status_code == 204
    refused(await env.client.patch(location, content=frag,
                                   headers={**sdpfrag, "If-Match": '"other"'}), 412,
            "Precondition Failed")
    restart = frag.replace("2vtS", "n3wU").replace("YtWc", "ZZZZ")
    refused(await env.client.patch(location, content=restart,
                                   headers={**sdpfrag, "If-Match": "*"}), 422,
            "ICE restart is not supported")
    refused(await env.client.patch(location, content=frag,
                                    headers={"Content-Type": "application/sdp"}), 415,
            "trickle-ice-sdpfrag")
    assert len(env.sessions) == 1, "a refused restart must keep the session"
    refused(await env.client.patch(location.replace("whip", "whep"), content=frag,
                                   headers=sdpfrag), 404, "no WHEP session")


async def test_whep_needs_a_subscribe_token_unless_the_stream_is_open(env: Env) -> None:
    refused(await env.whep("cam1"), 401, "requires a subscribe token")
    refused(await env.whep("cam1", await env.token()), 401, "Invalid token")
    refused(await env.whep("cam-open", account="someone"), 404,
            "unknown streamAccountId 'someone'")
    reply = await env.whep("cam1", await env.token("subscribe"))
    assert reply.status_code == 201, reply.text
    assert "a=sendonly" in reply.text
    opened = await env.whep("cam-open")
    assert opened.status_code == 201, opened.text
    location = opened.headers["location"]
    assert SESSION_URL.match(location), location
    links = opened.headers.get_list("link")
    assert (f'<{location}/sse>; rel="urn:ietf:params:whep:ext:core:server-sent-events"; '
            'events="active,inactive,vad,layers,viewercount,stopped"') in links
    assert f'<{location}/layer>; rel="urn:ietf:params:whep:ext:core:layer"' in links
    # the layer extension is `select`: an object, {} for automatic
    assert (await env.client.post(f"{location}/layer", json={"encodingId": "h"})).status_code \
        == 204
    assert (await env.client.post(f"{location}/layer", json={})).status_code == 204
    refused(await env.client.post(f"{location}/layer", json=[1]), 400, "JSON object")
    refused(await env.client.post(f"{location}/sse", content=b"{"), 400, "JSON list")
    subscribed = await env.client.post(f"{location}/sse", json=["active", "nonsense"])
    assert subscribed.status_code == 201
    assert subscribed.headers["location"] == f"{location}/sse/stream"


async def test_cors_lets_a_web_page_call_whip(env: Env) -> None:
    preflight = await env.client.options("/api/whip/cam1", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    plain = await env.client.options("/api/whip/cam1")
    assert plain.status_code == 204 and plain.headers["accept-post"] == "application/sdp"
    reply = await env.whip("cam1", await env.token(), Origin="https://app.example")
    assert reply.status_code == 201
    exposed = reply.headers["access-control-expose-headers"]
    for header in ("Location", "Link", "ETag"):
        assert header in exposed, exposed


async def test_a_full_node_answers_503_and_a_greedy_address_429(env: Env) -> None:
    token = await env.token()
    env.sessions.per_address = 1
    first = await env.whip("cam1", token)
    assert first.status_code == 201
    greedy = await env.whip("cam2", token)
    refused(greedy, 429, "at most 1 WHIP/WHEP sessions per client address")
    assert greedy.headers["retry-after"] == "10"
    assert (await env.client.delete(first.headers["location"])).status_code == 200
    assert (await env.whip("cam2", token)).status_code == 201, "the count went down"
    env.sessions.per_address = 10
    env.sessions.limit = 1
    full = await env.whip("cam3", token)
    refused(full, 503, "too many WHIP/WHEP sessions")
    assert full.headers["retry-after"] == "10"


async def test_a_session_whose_transport_closes_is_forgotten(env: Env) -> None:
    reply = await env.whip("cam1", await env.token())
    (entry,) = list(env.sessions._by_id.values())
    entry.transport.fail("consent expired", ice_failed=True)  # what the ICE sweep does
    await asyncio.sleep(0)
    assert len(env.sessions) == 0
    refused(await env.client.delete(reply.headers["location"]), 404, "no WHIP session")


# --- the SSE channel ---------------------------------------------------------------------

async def read_until(stream: AsyncIterator[bytes], needle: bytes, timeout: float = 2) -> bytes:
    seen = b""
    async with asyncio.timeout(timeout):
        while needle not in seen:
            seen += await anext(stream)
    return seen


async def test_sse_records_wait_for_a_reader_and_a_new_reader_takes_over() -> None:
    channel = EventChannel(4096, lambda: [record("active", {"sourceId": None})])
    channel.push(record("vad", {"mediaId": "1", "sourceId": "s1"}))
    first = channel.stream()
    text = await read_until(first, b"event: vad")
    assert text.startswith(b"retry: 2000\n\n")
    assert b'event: active\ndata: {"sourceId":null}\n\n' in text
    assert b'data: {"mediaId":"1","sourceId":"s1"}\n\n' in text
    second = channel.stream()
    await anext(second)  # the retry line; the first reader now ends
    channel.push(record("inactive", {"sourceId": None}))
    assert b"event: inactive" in await read_until(second, b"event: inactive")
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(first), 1)


async def test_sse_reader_that_does_not_keep_up_starts_over_from_a_snapshot() -> None:
    snapshot = [record("active", {"sourceId": "a"})]
    channel = EventChannel(300, lambda: list(snapshot))
    reader = channel.stream()
    await anext(reader)
    await read_until(reader, b"event: active")
    started = time.monotonic()
    for i in range(20):  # nobody reads: the queue overflows
        channel.push(record("vad", {"mediaId": str(i), "sourceId": "a"}))
    assert channel.overflows >= 1
    with pytest.raises(StopAsyncIteration):  # the slow reader's stream ended
        await asyncio.wait_for(anext(reader), 1)
    again = await read_until(channel.stream(), b"event: active")
    assert b'"mediaId":"0"' not in again, "the lost records must not come back"
    assert time.monotonic() - started < 2
    channel.close()


async def test_sse_records_queued_before_the_end_still_reach_the_reader() -> None:
    channel = EventChannel(4096, list)
    reader = channel.stream()
    await anext(reader)
    channel.push(record("error", {"code": "ice-failed", "message": "consent expired"}))
    channel.close()
    channel.push(record("vad", {}))  # after the end: dropped
    rest = b"".join([chunk async for chunk in reader])
    assert rest == (b'event: error\ndata: {"code":"ice-failed","message":"consent expired"}'
                    b"\n\n")
