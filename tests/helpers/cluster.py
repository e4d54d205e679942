"""Several `hubbub serve --redis` processes on loopback as one cluster, for tests.

Heartbeats every 0.5 s and a 3 s TTL keep fault tests short; the admin secret is fixed so
tests can read `/api/cluster` (each node's view: hosted and pulled sources, relay links).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.helpers.redis import RedisServer
from tests.helpers.server import OptionValue, RunningServer

API_SECRET = "cluster-test-secret"
HEARTBEAT = 0.5
TTL = 3.0


def cluster_node(redis: RedisServer | str, name: str, **options: OptionValue) -> RunningServer:
    """A not-yet-started node of the cluster registered in `redis` (a server or a URL)."""
    url = redis if isinstance(redis, str) else redis.url
    merged: dict[str, OptionValue] = {
        "redis": url, "heartbeat": HEARTBEAT, "node_ttl": TTL, "api_secret": API_SECRET,
        "no_spaces": True, "drain_grace": 1,
    }
    merged.update(options)
    return RunningServer(name=name, options=merged)


@contextmanager
def running_cluster(redis: RedisServer | str, prefix: str, names: str = "ab",
                    **options: OptionValue) -> Iterator[list[RunningServer]]:
    """Started nodes `prefix-<n>` for each letter of `names`, stopped on exit (those that
    started, if one fails to)."""
    nodes = [cluster_node(redis, f"{prefix}-{n}", **options) for n in names]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()


def get_json(url: str, secret: str | None = API_SECRET, body: Any = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as resp:
        return json.loads(resp.read())


def cluster_stats(node: RunningServer, http_url: str | None = None) -> dict[str, Any]:
    """The node's `/api/cluster` view."""
    stats: dict[str, Any] = get_json(f"{http_url or node.http_url}/api/cluster")
    return stats
