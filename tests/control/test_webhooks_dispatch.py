"""The webhook sender in-process, against a real HTTP receiver on 127.0.0.1: signatures,
retries until a receiver comes up, slow receivers kept apart, bounded queues, throttling."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from tests.helpers.server import free_tcp_port
from tests.helpers.webhook_receiver import Receiver

from hubbub.config import WebhookConfig
from hubbub.control.webhooks import signing
from hubbub.control.webhooks.dispatcher import Attempt, Webhook, Webhooks
from hubbub.control.webhooks.feeds import FeedEvents
from hubbub.media.relay_link import RelayLink

SECRET = "a-webhook-secret"


class MemoryRegistry:
    """The store's role, in memory: registrations and the attempts logged."""

    def __init__(self, hooks: list[Webhook]) -> None:
        self.hooks = hooks
        self.attempts: list[Attempt] = []

    async def webhooks(self) -> list[Webhook]:
        return self.hooks

    async def record(self, attempt: Attempt) -> None:
        self.attempts.append(attempt)

    async def wait_attempts(self, count: int, timeout: float = 10.0) -> list[Attempt]:
        async with asyncio.timeout(timeout):
            while len(self.attempts) < count:
                await asyncio.sleep(0.02)
        return self.attempts


def hook(hook_id: int, url: str, *types: str) -> Webhook:
    return Webhook(hook_id, url, SECRET, frozenset(types or ("feeds",)))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def started(registry: MemoryRegistry, **config: float) -> Webhooks:
    sender = Webhooks(WebhookConfig(**config))  # type: ignore[arg-type]
    await sender.start(registry)
    return sender


async def test_body_is_millicast_shaped_and_the_signature_verifies(receiver: Receiver) -> None:
    sender = await started(MemoryRegistry([hook(1, receiver.url, "feeds")]))
    try:
        before = int(time.time() * 1000)
        sender.emit("feeds", "started", {"name": "demo", "sourceId": None})
        (got,) = await receiver.wait_for(1)
        body = got.json()
        assert list(body) == ["type", "event", "timestamp", "data"]
        assert body["type"] == "feeds" and body["event"] == "started"
        assert body["data"] == {"name": "demo", "sourceId": None}
        assert before <= body["timestamp"] <= int(time.time() * 1000)
        assert got.headers["content-type"] == "application/json"
        stamp = got.headers["x-hubbub-timestamp"]
        assert abs(int(stamp) - time.time()) < 5
        # The documented recipe: HMAC-SHA256(secret, timestamp + "." + body), hex.
        expected = hmac.new(SECRET.encode(), f"{stamp}.".encode() + got.body,
                            hashlib.sha256).hexdigest()
        assert got.headers["x-hubbub-signature"] == f"sha256={expected}"
        assert got.verifies(SECRET)
        assert not got.verifies("another-secret")
        assert not signing.verify(SECRET, stamp, got.body + b" ", got.headers[
            "x-hubbub-signature"])
        assert len(got.headers["x-hubbub-event-id"]) == 24
    finally:
        await sender.stop()


async def test_only_subscribed_types_are_sent(receiver: Receiver) -> None:
    sender = await started(MemoryRegistry([hook(1, receiver.url, "tokens")]))
    try:
        assert not sender.wants("feeds") and sender.wants("tokens")
        sender.emit("feeds", "started", {})
        sender.emit("tokens", "created", {"tokenId": 1})
        (got,) = await receiver.wait_for(1)
        await asyncio.sleep(0.2)
        assert len(receiver.received) == 1 and got.json()["type"] == "tokens"
    finally:
        await sender.stop()


async def test_a_receiver_that_is_down_gets_retries_then_the_event() -> None:
    port = free_tcp_port()
    registry = MemoryRegistry([hook(1, f"http://127.0.0.1:{port}/hook")])
    sender = await started(registry, retry_base=0.2)
    receiver = Receiver(port)
    try:
        sender.emit("feeds", "started", {"name": "demo"})
        failed = await registry.wait_attempts(2)
        assert [a.delivered for a in failed[:2]] == [False, False]
        assert all(a.status_code is None and a.error for a in failed[:2])
        assert not failed[1].final
        await receiver.start()
        (got,) = await receiver.wait_for(1)
        await asyncio.sleep(0.1)  # the delivered attempt is logged after the answer
        attempts = registry.attempts
        assert attempts[-1].delivered and attempts[-1].final
        assert attempts[-1].status_code == 200
        assert [a.attempt for a in attempts] == list(range(1, len(attempts) + 1))
        assert {a.event.id for a in attempts} == {got.headers["x-hubbub-event-id"]}
        assert got.verifies(SECRET)  # signed afresh at the attempt that got through
        assert sender.stats.delivered == 1 and sender.stats.retried == len(attempts) - 1
    finally:
        await sender.stop()
        await receiver.stop()


async def test_backoff_doubles_and_gives_up_after_max_attempts() -> None:
    port = free_tcp_port()
    registry = MemoryRegistry([hook(1, f"http://127.0.0.1:{port}/hook")])
    sender = await started(registry, retry_base=0.1, max_attempts=4)
    try:
        sender.emit("feeds", "started", {})
        attempts = await registry.wait_attempts(4)
        await asyncio.sleep(1.0)
        assert len(registry.attempts) == 4
        assert [a.final for a in attempts] == [False, False, False, True]
        gaps = [b.at - a.at for a, b in zip(attempts, attempts[1:], strict=False)]
        # 0.1, 0.2, 0.4 s ±20 % jitter (plus the failed connect's own time)
        for gap, base in zip(gaps, (0.1, 0.2, 0.4), strict=True):
            assert base * 0.8 <= gap <= base * 1.2 + 0.15, gaps
        assert sender.stats.failed == 1
    finally:
        await sender.stop()


async def test_an_event_is_not_tried_past_its_max_age() -> None:
    port = free_tcp_port()
    registry = MemoryRegistry([hook(1, f"http://127.0.0.1:{port}/hook")])
    sender = await started(registry, retry_base=0.2, max_age=1.0)
    try:
        sender.emit("feeds", "started", {})
        await asyncio.sleep(2.0)
        attempts = registry.attempts
        # at 0, ~0.2, ~0.6 s; the next (~1.4 s) would be past the age: given up at ~0.6 s
        assert 2 <= len(attempts) <= 3 and attempts[-1].final
        assert attempts[-1].at - attempts[0].at < 1.0
        assert sender.stats.failed == 1
    finally:
        await sender.stop()


async def test_a_4xx_answer_is_final(receiver: Receiver) -> None:
    receiver.status = 400
    registry = MemoryRegistry([hook(1, receiver.url)])
    sender = await started(registry, retry_base=0.05)
    try:
        sender.emit("feeds", "started", {})
        (attempt,) = await registry.wait_attempts(1)
        await asyncio.sleep(0.3)
        assert len(registry.attempts) == 1
        assert attempt.status_code == 400 and attempt.final and not attempt.delivered
        assert attempt.error is not None and "400" in attempt.error
    finally:
        await sender.stop()


async def test_a_slow_receiver_holds_neither_emit_nor_other_receivers(receiver: Receiver) -> None:
    slow = await Receiver(delay=10.0).start()
    registry = MemoryRegistry([hook(1, slow.url), hook(2, receiver.url)])
    sender = await started(registry)
    try:
        sender.emit("feeds", "started", {"n": 0})
        await slow.wait_for(1)
        assert slow.in_flight == 1
        began = time.monotonic()
        for n in range(1, 200):
            sender.emit("feeds", "started", {"n": n})
        assert time.monotonic() - began < 0.05  # emit only enqueues
        got = await receiver.wait_for(200, timeout=5)
        assert [r.json()["data"]["n"] for r in got] == list(range(200))  # in order
        assert slow.in_flight == 1 and len(slow.received) == 1
        assert sender.queued(1) == 199
    finally:
        await sender.stop()
        await slow.stop()


async def test_a_full_queue_drops_the_oldest(caplog: pytest.LogCaptureFixture) -> None:
    slow = await Receiver(delay=10.0).start()
    sender = await started(MemoryRegistry([hook(1, slow.url)]), queue_size=3)
    try:
        sender.emit("feeds", "started", {"n": 0})
        await slow.wait_for(1)  # n=0 is in flight, out of the queue
        for n in range(1, 8):
            sender.emit("feeds", "started", {"n": n})
        assert sender.queued(1) == 3 and sender.stats.dropped == 4
        drops = [r for r in caplog.records if "queue full" in r.getMessage()]
        assert len(drops) == 1  # one line a minute, with the count
        receiver = sender._receivers[1]
        assert [e.data["n"] for e in receiver.pending] == [5, 6, 7]
    finally:
        await sender.stop()
        await slow.stop()


async def test_emit_with_nothing_registered_is_harmless() -> None:
    sender = Webhooks()
    sender.emit("feeds", "started", {"x": object()})  # not started, nothing registered
    await sender.start()
    sender.set_webhooks([hook(1, "http://127.0.0.1:9/hook")])
    sender.emit("feeds", "started", {"x": object()})  # unserializable: sent as a string
    await sender.stop()
    assert sender.stats.emitted == 1


class SlowRegistry(MemoryRegistry):
    async def webhooks(self) -> list[Webhook]:
        read = list(self.hooks)
        await asyncio.sleep(0.05)  # the database answers after a while
        return read


async def test_a_re_read_begun_before_a_change_does_not_undo_it(receiver: Receiver) -> None:
    registry = SlowRegistry([])
    sender = await started(registry)
    try:
        reading = asyncio.ensure_future(sender.refresh())
        await asyncio.sleep(0.01)  # it has read [] ...
        registry.hooks.append(hook(1, receiver.url))  # ... when the API writes one
        sender.put(registry.hooks[0])
        await reading
        assert [h.id for h in sender.webhooks()] == [1]
    finally:
        await sender.stop()


async def test_removing_a_webhook_stops_its_deliveries(receiver: Receiver) -> None:
    registry = MemoryRegistry([hook(1, receiver.url)])
    sender = await started(registry)
    try:
        sender.remove(1)
        sender.emit("feeds", "started", {})
        await asyncio.sleep(0.2)
        assert receiver.received == [] and sender.stats.emitted == 0
    finally:
        await sender.stop()


class Collected:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, object]]] = []

    def wants(self, type: str) -> bool:
        return True

    def emit(self, type: str, event: str, data: dict[str, object]) -> None:
        self.events.append((type, event, json.loads(json.dumps(data))))


async def test_viewer_counts_are_throttled_per_stream() -> None:
    sent = Collected()
    feeds = FeedEvents(sent, "hubbub", "node-a", interval=0.3)
    for count in (1, 2, 3):
        feeds.viewer_count("demo", count)
    feeds.viewer_count("other", 1)
    await asyncio.sleep(0.05)
    assert [(e[2]["name"], e[2]["viewers"]) for e in sent.events] == [("demo", 3), ("other", 1)]
    assert sent.events[0] == ("viewerConnection", "count", {
        "accountId": "hubbub", "name": "demo", "streamId": "hubbub/demo", "viewers": 3,
        "nodeId": "node-a"})
    for count in (4, 5, 2):
        feeds.viewer_count("demo", count)
    await asyncio.sleep(0.1)
    assert len(sent.events) == 2  # within the interval: held
    await asyncio.sleep(0.3)
    assert [e[2]["viewers"] for e in sent.events[2:]] == [2]  # then the latest, once
    feeds.viewer_count("demo", 2)
    await asyncio.sleep(0.4)
    assert len(sent.events) == 3  # unchanged: not sent again


def fake(**fields: object) -> Any:
    return SimpleNamespace(**fields)


async def test_feeds_fire_for_local_sources_only_and_live_once_per_stream() -> None:
    sent = Collected()
    feeds = FeedEvents(sent, "hubbub", "node-a", interval=5.0)
    stream = fake(name="demo")
    cam = fake(source_id="cam", sink=object())
    screen = fake(source_id=None, sink=object())
    relayed = fake(source_id="far", sink=RelayLink.__new__(RelayLink))  # an edge's copy
    feeds.source_active(stream, cam)
    feeds.source_active(stream, relayed)
    feeds.source_active(stream, screen)
    feeds.source_inactive(stream, relayed)
    feeds.source_inactive(stream, cam)
    feeds.source_inactive(stream, screen)
    assert [(e[1], e[2].get("sourceId")) for e in sent.events] == [
        ("started", "cam"), ("live", None), ("started", None), ("ended", "cam"),
        ("ended", None), ("offline", None)]
    started, ended = sent.events[0][2], sent.events[3][2]
    assert started["feedId"] == ended["feedId"] != sent.events[2][2]["feedId"]
    assert ended["active"] is False and isinstance(ended["ended"], int)
    assert sent.events[1][2] == {"accountId": "hubbub", "name": "demo",
                                 "streamId": "hubbub/demo", "live": True, "sources": 1}


async def test_a_feed_taken_over_by_another_publisher_continues_until_inactive() -> None:
    sent = Collected()
    feeds = FeedEvents(sent, "hubbub", "node-a", interval=5.0)
    stream = fake(name="demo")
    local = fake(source_id="cam", sink=object())
    # The publisher moved to another node: its relayed copy replaced the local source here
    # (Stream.publish tells nobody), and ends later.
    copy = fake(source_id="cam", sink=RelayLink.__new__(RelayLink))
    feeds.source_active(stream, local)
    feeds.source_inactive(stream, copy)
    assert [e[1] for e in sent.events] == ["started", "live", "ended", "offline"]
    assert sent.events[0][2]["feedId"] == sent.events[2][2]["feedId"]
