"""RID simulcast across the cluster relay, end to end: Chromium publishes q/h/f over WHIP
(tests/e2e/simulcast/rid.html) on node A, an aiortc viewer on node B pinned to `h` decodes
640x360, then `select`s `q` and decodes 320x180. Two `hubbub serve --redis` processes and a
real redis-server; B's copy of the source gets every layer from A under the same ids."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser

from hubbub.client.media import VideoCounter
from hubbub.client.viewer import Viewer
from tests.e2e.test_simulcast_chromium import SWITCH_LIMIT, rid_sizes, wait_size
from tests.helpers.browser import REPO_ROOT, PageFactory, StaticServer, wait_for_state
from tests.helpers.cluster import API_SECRET, cluster_stats, running_cluster
from tests.helpers.redis import RedisServer
from tests.helpers.server import RunningServer

pytestmark = [pytest.mark.chromium, pytest.mark.slow]


@pytest.fixture(scope="module")
def nodes(redis: RedisServer) -> Iterator[list[RunningServer]]:
    with running_cluster(redis, "cluster-sim", "ab") as started:
        yield started


@pytest.fixture(scope="module")
def repo_pages() -> Iterator[StaticServer]:
    pages = StaticServer(REPO_ROOT).start()
    yield pages
    pages.stop()


async def test_rid_simulcast_on_a_is_selectable_layer_by_layer_on_b(
    nodes: list[RunningServer], repo_pages: StaticServer, browser: Browser,
) -> None:
    a, b = nodes
    stream = "simrelay"
    # The page always sends a Bearer token: a publish token of A's (REST API).
    reply = httpx.post(f"{a.http_url}/api/publish_token", timeout=10,
                       json={"streams": [{"streamName": stream}]},
                       headers={"Authorization": f"Bearer {API_SECRET}"})
    assert reply.status_code == 201, reply.text
    token = str(reply.json()["data"]["token"])
    factory = PageFactory(browser, repo_pages.url + "/tests/e2e/simulcast",
                          name="cluster-simulcast-rid")
    try:
        page = await factory("rid.html", endpoint=f"{a.http_url}/api/whip/{stream}",
                             token=token)
        await wait_for_state(page, "connected", timeout=20)
        assert "a=simulcast:recv q;h;f" in await page.evaluate("hubbub.answer")
        sizes = await rid_sizes(page)
        assert sizes == {"q": (320, 180), "h": (640, 360), "f": (1280, 720)}, sizes

        # aiortc decodes in Python threads: pinned to h, then q (never the 1280x720 layer).
        async with Viewer(b.ws_sub_url, stream, layer={"encodingId": "h"}) as viewer:
            assert viewer.video_mid is not None
            counter = VideoCounter(viewer.tracks_by_mid[viewer.video_mid]).start()
            started = time.monotonic()
            await wait_size(counter, (640, 360), 15)
            took_h = time.monotonic() - started
            origin = cluster_stats(a)["node"]
            pulled = cluster_stats(b)["pulled"]
            assert [(p["stream"], p["origin"]) for p in pulled] == [(stream, origin)]
            started = time.monotonic()
            assert await viewer.command("select", {"layer": {"encodingId": "q"}}) is not None
            await wait_size(counter, (320, 180), SWITCH_LIMIT)
            took_q = time.monotonic() - started
            (hosted,) = cluster_stats(a)["hosted"]
            print(f"\nrelayed RID simulcast: B's viewer 640x360 after {took_h:.1f} s, select q "
                  f"-> 320x180 in {took_q:.2f} s; A hosted {hosted}; decoded "
                  f"{dict(counter.sizes)}")
            await counter.stop()
    finally:
        await factory.close()
