"""A cluster that checks tokens, for tests: the options of `tests.helpers.cluster.cluster_node`
without `--allow-any-stream`, every node on one token database (`--database-url`, e.g. a
private PostgreSQL from `tests.helpers.postgres`), each with its own data dir and so its own
JWT signing key. Plus the admin and Director calls tests make against such nodes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx

from tests.helpers.cluster import API_SECRET, HEARTBEAT, TTL, cluster_stats
from tests.helpers.redis import RedisServer
from tests.helpers.server import OptionValue, RunningServer

ACCOUNT = "hubbub"

Json = dict[str, Any]


def secured_node(
    redis: RedisServer | str, name: str, database_url: str, **options: OptionValue
) -> RunningServer:
    """A not-yet-started cluster node that requires JWTs (cluster_node's options, minus
    --allow-any-stream, plus --database-url)."""
    url = redis if isinstance(redis, str) else redis.url
    merged: dict[str, OptionValue] = {
        "redis": url, "heartbeat": HEARTBEAT, "node_ttl": TTL, "api_secret": API_SECRET,
        "no_spaces": True, "drain_grace": 1, "database_url": database_url,
    }
    merged.update(options)
    return RunningServer(name=name, options=merged, allow_any_stream=False)


def start_all(nodes: Sequence[RunningServer], members_timeout: float = 10.0) -> None:
    """Start the nodes together (they migrate the shared database concurrently), wait until
    each is healthy and every node's registry view lists all of them as up."""
    try:
        for node in nodes:
            node.spawn()
        for node in nodes:
            node.wait_healthy()
        deadline = time.monotonic() + members_timeout
        while True:
            views = [cluster_stats(node)["nodes"] for node in nodes]
            if all(len(v) == len(nodes) and all(n["state"] == "up" for n in v.values())
                   for v in views):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the nodes never all saw each other: {views}")
            time.sleep(0.1)
    except BaseException:
        for node in nodes:
            node.stop()
        raise


def node_id(node: RunningServer) -> str:
    """The node's id in the registry."""
    return str(cluster_stats(node)["node"])


async def wait_idle(nodes: Sequence[RunningServer], timeout: float = 10.0) -> None:
    """Until every node's registry view shows every node up with no peer connection (the
    Director's placement then depends only on what the test does next)."""
    deadline = time.monotonic() + timeout
    while True:
        views = [await asyncio.to_thread(cluster_stats, node) for node in nodes]
        if all(len(v["nodes"]) == len(nodes)
               and all(n["state"] == "up" and n["load"] == 0 for n in v["nodes"].values())
               for v in views):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the cluster never went idle: {[v['nodes'] for v in views]}")
        await asyncio.sleep(HEARTBEAT / 5)


async def admin(node: RunningServer, method: str, path: str, body: Json | None = None
                ) -> httpx.Response:
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
        return await client.request(method, path, json=body,
                                    headers={"Authorization": f"Bearer {API_SECRET}"})


async def create_token(node: RunningServer, kind: str, pattern: str, **fields: Any) -> Json:
    """A publish/subscribe token made through `node`'s admin API: its JSON (with `token`)."""
    reply = await admin(node, "POST", f"/api/{kind}_token",
                        {"streams": [{"streamName": pattern}], **fields})
    assert reply.status_code == 201, reply.text
    data: Json = reply.json()["data"]
    return data


async def director(node: RunningServer, kind: str, stream: str, token: str | None
                   ) -> httpx.Response:
    """POST /api/director/{kind} on `node`, with the body the SDK sends."""
    body: Json = {"streamName": stream}
    if kind == "publish":
        body["streamType"] = "WebRtc"
    else:
        body["streamAccountId"] = ACCOUNT
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
        return await client.post(f"/api/director/{kind}", json=body, headers=headers)


async def jwks_kid(node: RunningServer) -> str:
    """The key id of the one key `node` signs its Director JWTs with."""
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as client:
        reply = await client.get("/.well-known/jwks.json")
    keys = reply.json()["keys"]
    assert len(keys) == 1, keys
    return str(keys[0]["kid"])


def b64url_json(part: str) -> Json:
    """A JWT's header or payload, decoded without any check."""
    decoded: Json = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def b64url(data: Json) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
