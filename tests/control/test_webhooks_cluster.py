"""Webhooks of a two-node cluster (`hubbub serve --redis`, one PostgreSQL token store): a feed
is reported once, by the node its publisher is on, not by the edge that pulls a copy; viewer
counts come from the node the viewers are on; one registration serves both nodes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.helpers.cluster import API_SECRET, cluster_node
from tests.helpers.postgres import PostgresCluster
from tests.helpers.redis import RedisServer
from tests.helpers.server import RunningServer
from tests.helpers.webhook_receiver import Receiver

from hubbub.client.media import ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

_names = itertools.count()


@pytest.fixture
async def two_nodes(postgres: PostgresCluster, monkeypatch: pytest.MonkeyPatch
                    ) -> AsyncIterator[list[RunningServer]]:
    database = await postgres.new_database()
    # The nodes take the test's environment: re-read registrations and count viewers sooner.
    monkeypatch.setenv("HUBBUB_WEBHOOKS__REFRESH_INTERVAL", "0.5")
    monkeypatch.setenv("HUBBUB_WEBHOOKS__VIEWER_INTERVAL", "1")
    with RedisServer(name="webhooks-redis") as redis:
        nodes = [cluster_node(redis, f"webhooks-{n}", database_url=database) for n in "ab"]
        try:
            for node in nodes:
                await node.start_async()
            yield nodes
        finally:
            for node in nodes:
                node.stop()


async def test_an_edge_reports_no_feed_and_its_own_viewers(two_nodes: list[RunningServer]) -> None:
    origin, edge = two_nodes
    receiver = await Receiver().start()
    try:
        async with httpx.AsyncClient(
                base_url=origin.http_url, headers={"Authorization": f"Bearer {API_SECRET}"}) as api:
            reply = await api.post("/api/webhooks", json={
                "url": receiver.url, "types": ["feeds", "viewerConnection"]})
            assert reply.status_code == 201, reply.text
            secret = reply.json()["data"]["secret"]
        await asyncio.sleep(1.5)  # the edge re-reads the registrations every 0.5 s here
        name = f"whc{next(_names)}"
        async with Publisher(origin.ws_pub_url, name, source_id="cam", tracks=[ToneTrack(440)]):
            await receiver.wait_event("feeds", "started", name=name)
            async with Viewer(edge.ws_sub_url, name, video=False) as viewer:
                await viewer.wait_for_event("active")  # the edge pulled a copy of the source
                count = await receiver.wait_event("viewerConnection", "count", name=name,
                                                  viewers=1)
        await receiver.wait_event("feeds", "offline", name=name, timeout=15)
        await asyncio.sleep(2.0)  # anything the edge would send by mistake has arrived by now
        ours = [r for r in receiver.received if r.json()["data"].get("name") == name]
        feeds = [r.json()["event"] for r in ours if r.json()["type"] == "feeds"]
        assert feeds == ["started", "live", "ended", "offline"]
        assert all(r.verifies(secret) for r in ours)
        counts = [(r.json()["data"]["nodeId"], r.json()["data"]["viewers"])
                  for r in ours if r.json()["type"] == "viewerConnection"]
        edge_id = count.json()["data"]["nodeId"]
        assert counts == [(edge_id, 1), (edge_id, 0)]
    finally:
        await receiver.stop()
