"""/metrics in-process: the Prometheus text parses, every documented name is there, counters
read at scrape time move with what happened (sfu packets, dropped datagrams, refused tokens),
the bearer token guards it when set, the loop-lag histogram fills. tests/e2e/test_metrics_e2e.py
has the real publisher and viewer."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from tests.helpers.inprocess import node_app
from tests.sfu.fakes import FakeSink, audio_packet, audio_params, down_audio

from hubbub.config import Config
from hubbub.control.auth.refusals import REASONS, reason_of
from hubbub.control.node import Node

ADMIN = "admin-secret-for-metrics-tests-0123456789"
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "hubbub-dashboard.json"
METRICS_TOKEN = "scrape-token-0123456789"

# Every name docs/OPERATIONS.md lists (sample names, as the parser reports them).
DOCUMENTED = {
    "hubbub_info", "hubbub_streams", "hubbub_live_streams", "hubbub_sources", "hubbub_viewers",
    "hubbub_peer_connections", "hubbub_relays", "hubbub_relay_links",
    "hubbub_ice_tcp_connections_total", "hubbub_packets_received_total",
    "hubbub_packets_sent_total", "hubbub_bytes_received_total", "hubbub_bytes_sent_total",
    "hubbub_rtcp_packets_total", "hubbub_srtp_errors_total",
    "hubbub_media_bytes_received_total", "hubbub_nacks_received_total",
    "hubbub_retransmissions_total", "hubbub_nack_requests_sent_total",
    "hubbub_plis_received_total", "hubbub_plis_sent_total", "hubbub_multiplexer_switches_total",
    "hubbub_dropped_datagrams_total", "hubbub_token_refusals_total",
    "hubbub_join_seconds_bucket", "hubbub_join_seconds_count", "hubbub_join_seconds_sum",
    "hubbub_event_loop_lag_seconds_bucket", "hubbub_event_loop_lag_seconds_count",
    "hubbub_event_loop_lag_seconds_sum",
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def dashboard_metric_names(dashboard: dict[str, Any]) -> set[str]:
    """Every hubbub_* series name the dashboard's queries (panels and variables) use."""
    text = json.dumps([dashboard["panels"], dashboard["templating"]])
    return set(re.findall(r"\bhubbub_[a-z_]+", text))


@dataclass
class Env:
    node: Node
    client: httpx.AsyncClient

    async def scrape(self, token: str | None = None) -> Samples:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = await self.client.get("/metrics", headers=headers)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"].startswith("text/plain")
        return parse(reply.text)


async def make_env(tmp_path: Path, metrics_token: str = "") -> AsyncIterator[Env]:
    def guard(config: Config) -> None:
        config.control.metrics_token = metrics_token

    async with node_app(tmp_path, ADMIN, guard, "http://media.test") as (node, client):
        yield Env(node, client)


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for made in make_env(tmp_path):
        yield made


@pytest_asyncio.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Env]:
    async for made in make_env(tmp_path, METRICS_TOKEN):
        yield made


async def test_every_documented_metric_is_served_and_parses(env: Env) -> None:
    samples = await env.scrape()
    names = {name for name, _ in samples}
    assert DOCUMENTED <= names, DOCUMENTED - names
    assert value(samples, "hubbub_viewers") == 0
    assert value(samples, "hubbub_relays", direction="in") == 0
    for reason in REASONS:
        assert value(samples, "hubbub_token_refusals_total", reason=reason) == 0
    for role in ("publish", "view"):
        assert value(samples, "hubbub_join_seconds_count", role=role) == 0
    for outcome in ("emitted", "delivered", "failed", "retried", "dropped"):
        assert value(samples, "hubbub_webhook_events_total", outcome=outcome) == 0


async def test_webhook_outcomes_are_the_dispatchers_counts(env: Env) -> None:
    """The dispatcher counts (tests/control/test_webhooks_* drive it against real receivers);
    /metrics reads those counts at scrape time."""
    stats = env.node.webhooks.stats
    stats.emitted, stats.delivered, stats.retried = 3, 2, 1
    samples = await env.scrape()
    assert value(samples, "hubbub_webhook_events_total", outcome="emitted") == 3
    assert value(samples, "hubbub_webhook_events_total", outcome="delivered") == 2
    assert value(samples, "hubbub_webhook_events_total", outcome="retried") == 1


async def test_sfu_counters_move_and_never_go_back_when_objects_leave(env: Env) -> None:
    stream = env.node.streams.get_or_create("room")
    source = stream.publish(None, [audio_params()], FakeSink())
    viewer = stream.add_viewer([down_audio()], FakeSink())
    for seq in range(50):
        source.on_rtp(audio_packet(seq, seq * 960))
    live = await env.scrape()
    assert value(live, "hubbub_packets_received_total", kind="audio") == 50
    assert value(live, "hubbub_packets_sent_total", kind="audio") == 50
    assert value(live, "hubbub_viewers") == 1
    assert value(live, "hubbub_sources") == 1
    assert value(live, "hubbub_live_streams") == 1
    stream.remove_viewer(viewer)
    stream.unpublish(source)
    gone = await env.scrape()
    assert value(gone, "hubbub_viewers") == 0 and value(gone, "hubbub_streams") == 0
    assert value(gone, "hubbub_packets_received_total", kind="audio") == 50
    assert value(gone, "hubbub_packets_sent_total", kind="audio") == 50


async def test_a_garbage_datagram_is_counted_by_reason(env: Env) -> None:
    before = value(await env.scrape(), "hubbub_dropped_datagrams_total",
                   reason="dropped_garbage")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\xff" * 40, ("127.0.0.1", env.node.port.local_addr[1]))
    for _ in range(100):
        samples = await env.scrape()
        if value(samples, "hubbub_dropped_datagrams_total", reason="dropped_garbage") > before:
            break
        await asyncio.sleep(0.02)
    assert value(samples, "hubbub_dropped_datagrams_total",
                 reason="dropped_garbage") == before + 1


async def test_refused_tokens_are_counted_by_reason(env: Env) -> None:
    reply = await env.client.post("/api/director/publish", json={"streamName": "cam"},
                                  headers={"Authorization": "Bearer not-a-token-we-made"})
    assert reply.status_code == 401
    reply = await env.client.post("/api/whip/cam", content="v=0\r\n",
                                  headers={"Authorization": "Bearer a.b.c",
                                           "Content-Type": "application/sdp"})
    assert reply.status_code == 401
    samples = await env.scrape()
    assert value(samples, "hubbub_token_refusals_total", reason="unknown_token") == 1
    assert value(samples, "hubbub_token_refusals_total", reason="malformed") == 1


async def test_the_loop_lag_histogram_fills(env: Env) -> None:
    await asyncio.sleep(1.2)  # a sample every 0.5 s (fewer on a loaded machine)
    samples = await env.scrape()
    assert value(samples, "hubbub_event_loop_lag_seconds_count") >= 1
    assert value(samples, "hubbub_event_loop_lag_seconds_sum") >= 0


async def test_with_a_token_metrics_needs_it(guarded: Env) -> None:
    reply = await guarded.client.get("/metrics")
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    reply = await guarded.client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert reply.status_code == 401
    assert "hubbub_viewers" in {name for name, _ in await guarded.scrape(METRICS_TOKEN)}


@pytest.mark.parametrize(("message", "reason"), [
    ("Unauthorized: token required", "missing"),
    ("Unauthorized: this node verifies no tokens", "missing"),
    ("Unauthorized: malformed token", "malformed"),
    ("Unauthorized: token too long", "malformed"),
    ("Unauthorized: token expired", "expired"),
    ("Unauthorized: token not yet valid", "not_yet_valid"),
    ("Unauthorized: token revoked", "revoked"),
    ("Unauthorized: Invalid token", "unknown_token"),
    ("Unauthorized: invalid token signature", "bad_signature"),
    ("Unauthorized: token algorithm 'expired' not allowed", "bad_signature"),
    ("Unauthorized: token signed by an unknown key", "unknown_key"),
    ("Forbidden: token is for viewing, not publish", "wrong_kind"),
    ("Unauthorized: token type must be 'JWT'", "wrong_kind"),
    ("Forbidden: stream not allowed by token: 'expired' (the token is for 'a')",
     "stream_not_allowed"),
    ("Forbidden: token does not cover stream 'origin'", "stream_not_allowed"),
    ("Forbidden: origin not allowed by token", "origin_not_allowed"),
    ("Forbidden: client address not allowed by token", "address_not_allowed"),
    ("Unauthorized: token lacks claim 'exp'", "invalid"),
])
def test_refusal_messages_map_to_a_fixed_reason(message: str, reason: str) -> None:
    assert reason_of(message) == reason
    assert reason in REASONS


async def test_the_grafana_dashboard_imports_and_queries_served_metrics(env: Env) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    # Importable: a datasource input the importer asks for, used by every panel and query.
    (source,) = dashboard["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == (
        "DS_PROMETHEUS", "datasource", "prometheus")
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["uid"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["targets"] and all(t["expr"] for t in panel["targets"])
    served = {name for name, _ in await env.scrape()}
    wanted = dashboard_metric_names(dashboard)
    assert "hubbub_join_seconds_bucket" in wanted and "hubbub_packets_received_total" in wanted
    assert wanted <= served, wanted - served
