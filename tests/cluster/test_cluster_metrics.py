"""Stats API and /metrics in a cluster (two `hubbub serve --redis` and a real redis-server): a
publisher on a, a viewer on b. The origin's stream stats count b's viewer under b's node id
(the coordinator's stream-wide counts); each node's relay gauge shows its side of the relay."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hubbub.client.media import ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from tests.helpers.cluster import cluster_stats, get_json, running_cluster
from tests.helpers.redis import RedisServer
from tests.helpers.server import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nodes(redis: RedisServer) -> Iterator[list[RunningServer]]:
    with running_cluster(redis, "metrics", "ab") as started:
        yield started


def gauge(node: RunningServer, name: str, **labels: str) -> float:
    with urllib.request.urlopen(f"{node.http_url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    raise AssertionError(f"{name}{labels} not served")


async def eventually(check: Any, timeout: float = 10.0) -> Any:
    """`check()` once it returns something truthy (it may raise meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await asyncio.to_thread(check)
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.2)


async def test_origin_counts_viewers_per_node_and_relays_show(nodes: list[RunningServer]) -> None:
    a, b = nodes
    a_id, b_id = cluster_stats(a)["node"], cluster_stats(b)["node"]
    async with Publisher(a.ws_pub_url, "clmetrics", tracks=[ToneTrack(440)]) as pub:
        await pub.wait_connected()
        async with Viewer(b.ws_sub_url, "clmetrics", video=False) as viewer:
            await viewer.wait_connected()

            def viewers_on_a() -> dict[str, Any] | None:
                data: dict[str, Any] = get_json(f"{a.http_url}/api/streams/clmetrics")["data"]
                return data if data["viewers"]["nodes"].get(b_id) == 1 else None

            stats = await eventually(viewers_on_a)
            assert stats["viewers"] == {"total": 1, "nodes": {a_id: 0, b_id: 1}}
            assert [s["tracks"][0]["codec"] for s in stats["sources"]] == ["opus"]
            await eventually(lambda: gauge(b, "hubbub_viewers") == 1)
            assert gauge(a, "hubbub_viewers") == 0
            assert gauge(a, "hubbub_relays", direction="out") == 1
            assert gauge(b, "hubbub_relays", direction="in") == 1
            on_b = get_json(f"{b.http_url}/api/streams/clmetrics")["data"]
            assert on_b["viewers"]["nodes"][b_id] == 1
