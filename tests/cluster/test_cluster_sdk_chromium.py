"""The official `@millicast/sdk` (node_modules, unmodified) against a three-node cluster that
checks tokens: a real redis-server, one PostgreSQL token database, no --allow-any-stream.

The SDK runs in headless Chromium through tests/e2e/sdk/harness.js, exactly as in
tests/e2e/test_millicast_sdk.py: only `Director.setEndpoint(<node A>)` points it at hubbub.
Where the Director sent each client is read from what the page itself did (Playwright's
`websocket` and `response` events: the socket URL the SDK opened, the Director reply it read),
and confirmed by the nodes' `/api/cluster` views.

Nodes run with --node-capacity 4 (see tests/cluster/test_cluster_tokens.py): one peer
connection makes a node clearly more loaded than an idle one, so the viewer is not put on
the publisher's node merely because it already carries the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Response, WebSocket

from tests.helpers.browser import REPO_ROOT, PageFactory, StaticServer, wait_until
from tests.helpers.cluster import cluster_stats
from tests.helpers.redis import RedisServer
from tests.helpers.secured_cluster import (
    ACCOUNT,
    create_token,
    jwks_kid,
    node_id,
    secured_node,
    start_all,
    wait_idle,
)
from tests.helpers.server import RunningServer

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

SDK_FILE = REPO_ROOT / "node_modules" / "@millicast" / "sdk" / "dist" / "millicast.mjs"
SDK_DIR = "/tests/e2e/sdk"
CAPACITY = 4
PATTERN = "sdkc-*"

Json = dict[str, Any]


@pytest.fixture(scope="module")
def nodes(redis: RedisServer, database_url: str) -> Iterator[list[RunningServer]]:
    if not SDK_FILE.is_file():
        pytest.fail(f"{SDK_FILE} missing: run `npm ci` (scripts/test does)", pytrace=False)
    started = [secured_node(redis, f"cluster-sdk-{n}", database_url, node_capacity=CAPACITY)
               for n in "abc"]
    start_all(started)
    try:
        yield started
    finally:
        for node in started:
            node.stop()


@pytest.fixture(scope="module")
def repo_pages() -> Iterator[StaticServer]:
    """The repository root over http://127.0.0.1: the harness page and node_modules."""
    pages = StaticServer(REPO_ROOT).start()
    yield pages
    pages.stop()


@pytest_asyncio.fixture
async def pages(
    browser: Browser, repo_pages: StaticServer, request: pytest.FixtureRequest
) -> AsyncIterator[PageFactory]:
    factory = PageFactory(browser, repo_pages.url + SDK_DIR, name=f"sdk-{request.node.name}")
    yield factory
    await factory.close()


@dataclass
class Seen:
    """What a page did on the network: WebSocket URLs opened, Director replies received."""

    sockets: list[str] = field(default_factory=list)
    director: list[Response] = field(default_factory=list)

    async def director_replies(self) -> list[Json]:
        return [await r.json() for r in self.director]


async def harness(pages: PageFactory, director_node: RunningServer) -> tuple[Page, Seen]:
    page = await pages("harness.html")
    seen = Seen()

    def on_socket(ws: WebSocket) -> None:
        seen.sockets.append(ws.url)

    def on_response(response: Response) -> None:
        if "/api/director/" in response.url:
            seen.director.append(response)

    page.on("websocket", on_socket)
    page.on("response", on_response)
    await page.wait_for_function("window.sdk && window.sdk.ready", timeout=15000)
    endpoint = await page.evaluate("(url) => sdk.setEndpoint(url)", director_node.http_url)
    assert endpoint == director_node.http_url
    return page, seen


async def inbound(page: Page, client: str = "v") -> dict[str, Json]:
    stats: dict[str, Json] = await page.evaluate("(c) => sdk.inbound(c)", client)
    return stats


async def wait_grows(page: Page, mid: str, stat: str, minimum: float, timeout: float = 15
                     ) -> None:
    """Until inbound `stat` of `mid` grows by at least `minimum` within one second."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        before = (await inbound(page)).get(mid, {}).get(stat, 0)
        await asyncio.sleep(1.0)
        after = (await inbound(page)).get(mid, {}).get(stat, 0)
        if after - before >= minimum:
            return
        if loop.time() > deadline:
            raise AssertionError(f"mid {mid} {stat} grew {after - before} < {minimum} in 1 s; "
                                 f"{await inbound(page)}")


async def events(page: Page, client: str, name: str) -> list[Json]:
    got: list[Json] = await page.evaluate("([c, n]) => sdk.events(c, n)", [client, name])
    return got


async def test_sdk_publisher_and_viewer_are_placed_on_different_nodes_and_media_flows(
    nodes: list[RunningServer], pages: PageFactory
) -> None:
    a, b, c = nodes
    stream = "sdkc-room"
    publish_token = await create_token(a, "publish", PATTERN)
    subscribe_token = await create_token(a, "subscribe", PATTERN)
    await wait_idle(nodes)

    # Publish through A's Director: every node idle, A keeps the publisher.
    pub_page, pub_seen = await harness(pages, a)
    result = await pub_page.evaluate(
        "(o) => sdk.publish('p', o)",
        {"token": publish_token["token"], "streamName": stream, "codec": "vp8"})
    assert result["ok"], (result, pages.log_tail())
    await wait_until(pub_page, "() => sdk.state('p') === 'connected'", timeout=20)
    [pub_reply] = await pub_seen.director_replies()
    pub_jwt = pub_reply["data"]["jwt"]
    assert pub_reply["data"]["urls"] == [a.ws_pub_url]
    assert pub_seen.sockets == [f"{a.ws_pub_url}?token={pub_jwt}"]

    # View through A's Director: A now carries one peer connection of 4, B and C none.
    view_page, view_seen = await harness(pages, a)
    result = await view_page.evaluate(
        "(o) => sdk.view('v', o)",
        {"streamName": stream, "subscriberToken": subscribe_token["token"]})
    assert result["ok"], (result, pages.log_tail())
    [view_reply] = await view_seen.director_replies()
    view_url, view_jwt = view_reply["data"]["urls"][0], view_reply["data"]["jwt"]
    assert view_reply == {"status": "success", "data": {
        "urls": [view_url], "wsUrl": view_url, "jwt": view_jwt, "streamAccountId": ACCOUNT,
        "iceServers": [], "subscribeRequiresAuth": True,
    }}
    assert view_url in (b.ws_sub_url, c.ws_sub_url), view_url
    assert view_seen.sockets == [f"{view_url}?token={view_jwt}"]
    edge = b if view_url == b.ws_sub_url else c
    # The viewer's JWT was signed by A and is accepted by the edge node.
    assert pyjwt.get_unverified_header(view_jwt)["kid"] == await jwks_kid(a)

    # Media crosses the relay: the edge pulls the stream from A, the SDK decodes it.
    await wait_until(view_page, "() => sdk.events('v', 'active').length > 0", timeout=15)
    [active] = await events(view_page, "v", "active")
    assert active["data"]["streamId"] == f"{ACCOUNT}/{stream}"
    assert active["data"]["sourceId"] is None
    assert sorted(t["media"] for t in active["data"]["tracks"]) == ["audio", "video"]
    await wait_until(view_page, "() => sdk.tracks('v').length >= 2", timeout=15)
    tracks = await view_page.evaluate("sdk.tracks('v')")
    assert [(t["mid"], t["kind"]) for t in tracks] == [("0", "video"), ("1", "audio")]
    await wait_grows(view_page, "0", "framesDecoded", 5)
    await wait_grows(view_page, "1", "packetsReceived", 10)
    await wait_grows(view_page, "1", "totalAudioEnergy", 1e-9)
    stats = await inbound(view_page)
    assert stats["0"]["codec"].startswith("video/VP8")
    assert stats["1"]["codec"].startswith("audio/opus")
    assert stats["0"]["frameWidth"] > 0 and stats["0"]["frameHeight"] > 0

    hosted = cluster_stats(a)["hosted"]
    assert [(h["stream"], list(h["feeds"])) for h in hosted] == [(stream, [node_id(edge)])]
    pulled = cluster_stats(edge)["pulled"]
    assert [(p["stream"], p["origin"]) for p in pulled] == [(stream, node_id(a))]

    # The publisher on A hears of its first viewer, on another node.
    await wait_until(pub_page, "() => sdk.events('p', 'active').length > 0", timeout=10)
    assert (await events(pub_page, "p", "active"))[-1]["data"] == {
        "streamId": f"{ACCOUNT}/{stream}"}

    # The publisher leaves: the viewer on the edge is told, source and stream.
    await pub_page.evaluate("sdk.stop('p')")
    await wait_until(view_page, "() => sdk.events('v', 'stopped').length > 0", timeout=15)
    assert [e["data"] for e in await events(view_page, "v", "inactive")] == [
        {"streamId": f"{ACCOUNT}/{stream}", "sourceId": None}]
    assert [e["data"] for e in await events(view_page, "v", "stopped")] == [
        {"streamId": f"{ACCOUNT}/{stream}"}]
