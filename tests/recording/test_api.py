"""The recordings REST API in process (a real app and Node, a Source fed in process): the
admin secret, start/stop, list/get/download/delete, errors, and the recordings/done webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from hubbub.control.node import Node
from hubbub.media import rtp
from tests.helpers.inprocess import node_app
from tests.recording.rtp_media import opus_frames
from tests.sfu.fakes import FakeSink, audio_params

ADMIN = "admin-secret-recording-api-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Node, httpx.AsyncClient]]:
    async with node_app(tmp_path, ADMIN) as made:
        yield made


def data(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["status"] == "success"
    return body["data"]


async def test_secret_required(env: tuple[Node, httpx.AsyncClient]) -> None:
    _, client = env
    for method, path in (("GET", "/api/recordings"), ("POST", "/api/streams/s/record"),
                         ("GET", "/api/recordings/rec_0123456789abcdef/file")):
        assert (await client.request(method, path)).status_code == 401
        wrong = await client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


async def test_record_list_download_delete(env: tuple[Node, httpx.AsyncClient]) -> None:
    node, client = env
    emitted: list[tuple[str, str, dict[str, object]]] = []
    node.webhooks.emit = lambda t, e, d: emitted.append((t, e, d))  # type: ignore[method-assign,assignment]
    assert (await client.post("/api/streams/s/record", headers=AUTH)).status_code == 404
    stream = node.streams.get_or_create("s")
    source = stream.publish("mic", [audio_params(1111, "0")], FakeSink())
    (started,) = data(await client.post("/api/streams/s/record", headers=AUTH), 201)
    assert started["state"] == "recording" and started["sourceId"] == "mic"
    assert started["format"] == "webm" and started["mediaType"] == "video/webm"
    busy = await client.delete(f"/api/recordings/{started['id']}", headers=AUTH)
    assert busy.status_code == 409 and busy.json()["status"] == "fail"
    growing = await client.get(f"/api/recordings/{started['id']}/file", headers=AUTH)
    assert growing.status_code == 409
    for i, payload in enumerate(opus_frames(100)):
        source.on_rtp(rtp.build_packet(111, i, i * 960, 1111, payload, False, []))
    (done,) = data(await client.delete("/api/streams/s/record?sourceId=mic", headers=AUTH))
    assert done["id"] == started["id"] and done["state"] == "done"
    assert 1.9 < done["duration"] < 2.1 and done["size"] > 1000
    assert (await client.delete("/api/streams/s/record", headers=AUTH)).status_code == 404
    listed = data(await client.get("/api/recordings?streamName=s", headers=AUTH))
    assert [r["id"] for r in listed] == [started["id"]]
    assert data(await client.get("/api/recordings?streamName=other", headers=AUTH)) == []
    assert data(await client.get(f"/api/recordings/{started['id']}", headers=AUTH)) == done
    file = await client.get(f"/api/recordings/{started['id']}/file", headers=AUTH)
    assert file.status_code == 200 and file.headers["content-type"] == "video/webm"
    assert file.content[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file
    assert len(file.content) == done["size"]
    (event,) = [d for t, e, d in emitted if (t, e) == ("recordings", "done")]
    assert event["recordingId"] == started["id"] and event["name"] == "s"
    assert event["sourceId"] == "mic" and event["mediaType"] == "video/webm"
    assert event["size"] == done["size"] and event["duration"] == done["duration"]
    data(await client.delete(f"/api/recordings/{started['id']}", headers=AUTH))
    for path in (f"/api/recordings/{started['id']}", f"/api/recordings/{started['id']}/file"):
        assert (await client.get(path, headers=AUTH)).status_code == 404
    assert (await client.get("/api/recordings/..%2F..%2Fx", headers=AUTH)).status_code in (
        400, 404, 422)


async def test_stop_by_post_and_every_source(env: tuple[Node, httpx.AsyncClient]) -> None:
    node, client = env
    stream = node.streams.get_or_create("multi")
    stream.publish("a", [audio_params(1, "0")], FakeSink())
    stream.publish("b", [audio_params(2, "0")], FakeSink())
    started = data(await client.post("/api/streams/multi/record", headers=AUTH), 201)
    assert sorted(r["sourceId"] for r in started) == ["a", "b"]
    stopped = data(await client.post("/api/streams/multi/record/stop", headers=AUTH))
    assert sorted(r["sourceId"] for r in stopped) == ["a", "b"]
    assert all(r["state"] == "done" for r in stopped)
