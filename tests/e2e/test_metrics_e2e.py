"""/metrics and the stream stats API of a real `hubbub serve` with a real aiortc publisher (one
Opus source, a 440 Hz tone) and viewer: the counters move by what was sent."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families
from tests.helpers.server import RunningServer

from hubbub.client.media import ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

ADMIN = "admin-secret-for-metrics-e2e-0123456789"
METRICS_TOKEN = "scrape-token-e2e-0123456789"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "hubbub-dashboard.json"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    args = ["--api-secret", ADMIN, "--metrics-token", METRICS_TOKEN]
    with RunningServer(name="metrics-e2e", extra_args=args) as s:
        yield s


async def scrape(srv: RunningServer) -> Samples:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"{srv.http_url}/metrics",
                                 headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert reply.status_code == 200, reply.text
    out: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


async def wait_for(srv: RunningServer, name: str, wanted: float, timeout: float = 10.0,
                   **labels: str) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(srv)
        if value(samples, name, **labels) == wanted or time.monotonic() > deadline:
            assert value(samples, name, **labels) == wanted, (name, labels)
            return samples
        await asyncio.sleep(0.1)


async def stream_stats(srv: RunningServer, name: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"{srv.http_url}/api/streams/{name}",
                                 headers={"Authorization": f"Bearer {ADMIN}"})
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


async def test_metrics_need_the_token(srv: RunningServer) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{srv.http_url}/metrics")).status_code == 401
        reply = await client.get(f"{srv.http_url}/api/streams")
        assert reply.status_code == 401


async def test_one_opus_source_and_a_viewer_move_the_counters(srv: RunningServer) -> None:
    name = "metrics-opus"
    start = await scrape(srv)
    async with Publisher(srv.ws_pub_url, name, tracks=[ToneTrack(440)]) as pub:
        await pub.wait_connected()
        await wait_for(srv, "hubbub_sources", 1)
        await asyncio.sleep(1.5)  # past the first packets' start-up
        first, t0 = await scrape(srv), time.monotonic()
        await asyncio.sleep(6.0)  # long enough that one late burst stays within the range
        second, t1 = await scrape(srv), time.monotonic()
        received = (value(second, "hubbub_packets_received_total", kind="audio")
                    - value(first, "hubbub_packets_received_total", kind="audio"))
        rate = received / (t1 - t0)
        assert 40 <= rate <= 60, f"{rate:.1f} Opus packets/s in, expected about 50"
        assert value(second, "hubbub_bytes_received_total") > value(
            first, "hubbub_bytes_received_total")

        async with Viewer(srv.ws_sub_url, name, video=False) as viewer:
            await viewer.wait_connected()
            watching = await wait_for(srv, "hubbub_viewers", 1)
            await asyncio.sleep(2.5)  # the stats API's rates are over 2 s windows
            later = await scrape(srv)
            assert value(later, "hubbub_bytes_sent_total") > value(
                watching, "hubbub_bytes_sent_total")
            sent = (value(later, "hubbub_packets_sent_total", kind="audio")
                    - value(watching, "hubbub_packets_sent_total", kind="audio"))
            assert sent > 50, sent

            stats = await stream_stats(srv, name)
            assert stats["live"] is True and stats["uptime"] > 5
            assert stats["viewers"]["total"] == 1
            (source,) = stats["sources"]
            (track,) = source["tracks"]
            assert (track["kind"], track["codec"]) == ("audio", "opus")
            assert 6_000 <= track["bitrate"] <= 300_000, track
            assert track["packets"] > 200 and track["packetsLost"] == 0

        left = await wait_for(srv, "hubbub_viewers", 0)
        assert value(left, "hubbub_packets_sent_total", kind="audio") >= value(
            later, "hubbub_packets_sent_total", kind="audio")  # never backwards
    gone = await wait_for(srv, "hubbub_sources", 0)
    assert value(gone, "hubbub_packets_received_total", kind="audio") >= value(
        second, "hubbub_packets_received_total", kind="audio")
    for role in ("publish", "view"):
        joins = (value(gone, "hubbub_join_seconds_count", role=role)
                 - value(start, "hubbub_join_seconds_count", role=role))
        assert joins == 1, role
    assert value(gone, "hubbub_event_loop_lag_seconds_count") > 0


async def test_a_refused_token_is_counted(srv: RunningServer) -> None:
    before = value(await scrape(srv), "hubbub_token_refusals_total", reason="malformed")
    url = f"{srv.ws_sub_url}?token=not-a-jwt"
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    after = value(await scrape(srv), "hubbub_token_refusals_total", reason="malformed")
    assert after == before + 1


async def test_every_metric_the_dashboard_queries_is_served(srv: RunningServer) -> None:
    from tests.control.test_metrics import dashboard_metric_names

    served = {name for name, _ in await scrape(srv)}
    wanted = dashboard_metric_names(json.loads(DASHBOARD.read_text()))
    assert wanted and wanted <= served, wanted - served
