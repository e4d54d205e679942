"""Webhooks: the node's sender. `emit` only enqueues; sender tasks POST, retry and log.

Never in the way of media or signaling: `emit` is synchronous, allocates one event, appends it
to the bounded queue of each receiver that wants its type, and returns (no await, no raise).
Each receiver has one sender task that delivers its events one at a time, in order, retrying
with exponential backoff; attempts in flight are bounded node-wide (`concurrency`), so a slow
or dead receiver holds its own queue and one slot, never another receiver's events.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from hubbub.config import WebhookConfig
from hubbub.control.webhooks import signing
from hubbub.control.webhooks.events import TEST, WebhookEvent
from hubbub.logs import clip

log = logging.getLogger(__name__)

LOG_INTERVAL = 60.0  # drops and failures are summed into one line per this many seconds
USER_AGENT = "hubbub-webhooks/1"


@dataclass(frozen=True)
class Webhook:
    """A registration (store.py keeps them); `secret` signs every delivery to `url`."""

    id: int
    url: str
    secret: str
    types: frozenset[str]
    description: str = ""
    active: bool = True
    created_on: float = 0.0
    updated_on: float = 0.0

    def wants(self, type: str) -> bool:
        return self.active and type in self.types


@dataclass(frozen=True)
class Attempt:
    """One POST of one event to one webhook: a row of the delivery log."""

    webhook_id: int
    event: WebhookEvent
    attempt: int
    delivered: bool
    final: bool
    """No further attempt follows (delivered, refused for good, or out of attempts/age)."""
    status_code: int | None
    error: str | None
    at: float
    duration: float


class Registry(Protocol):
    """Where the registrations live and attempts are logged (store.WebhookStore)."""

    async def webhooks(self) -> list[Webhook]: ...
    async def record(self, attempt: Attempt) -> None: ...


@dataclass
class _Receiver:
    hook: Webhook
    pending: deque[WebhookEvent] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    dropped: int = 0


@dataclass
class WebhookStats:
    emitted: int = 0
    delivered: int = 0
    failed: int = 0
    """Events given up on after their last attempt."""
    retried: int = 0
    dropped: int = 0
    """Events pushed out of a full queue before any attempt."""


class Webhooks:
    """The node's dispatcher (`node.webhooks`). Harmless with nothing registered: `emit`
    returns at once. `start(registry)` loads the registrations and begins sending."""

    def __init__(self, config: WebhookConfig | None = None) -> None:
        self.config = config or WebhookConfig()
        self.stats = WebhookStats()
        self._receivers: dict[int, _Receiver] = {}
        self._registry: Registry | None = None
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._logging: set[asyncio.Task[None]] = set()
        self._changes = 0  # registrations changed here; a re-read begun before one is stale
        self._dropped_unlogged = 0
        self._drop_logged_at = -LOG_INTERVAL

    # --- the interface the rest of the node uses -----------------------------------------

    def emit(self, type: str, event: str, data: dict[str, object]) -> None:
        """Queue `{type, event, timestamp: now, data}` for every webhook subscribed to `type`.
        Synchronous and non-blocking; never raises. `data` is copied (shallowly)."""
        try:
            targets = [r for r in self._receivers.values() if r.hook.wants(type)]
            if not targets:
                return
            occurrence = WebhookEvent(type, event, dict(data))
            self.stats.emitted += 1
            for receiver in targets:
                if len(receiver.pending) >= self.config.queue_size:
                    receiver.pending.popleft()
                    receiver.dropped += 1
                    self._dropped(receiver.hook)
                receiver.pending.append(occurrence)
                receiver.wake.set()
        except Exception:
            log.exception("webhook %s/%s not queued", clip(type), clip(event))

    def ping(self, hook: Webhook) -> WebhookEvent:
        """Queue a `test`/`ping` event for one webhook whatever its types (an operator checking
        the receiver and its signature check); registers it here if this node has not re-read
        it yet."""
        receiver = self._receivers.get(hook.id)
        if receiver is None:
            self.put(hook)
            receiver = self._receivers[hook.id]
        occurrence = WebhookEvent(TEST, "ping", {"webhookId": hook.id})
        if len(receiver.pending) >= self.config.queue_size:
            receiver.pending.popleft()
            self._dropped(receiver.hook)
        receiver.pending.append(occurrence)
        receiver.wake.set()
        return occurrence

    def wants(self, type: str) -> bool:
        """Whether any webhook would get an event of `type` (skip building it if not)."""
        return any(r.hook.wants(type) for r in self._receivers.values())

    # --- life ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._client is not None

    async def start(self, registry: Registry | None = None) -> None:
        self._registry = registry
        self._slots = asyncio.Semaphore(max(1, self.config.concurrency))
        self._client = httpx.AsyncClient(
            timeout=self.config.timeout, follow_redirects=False, trust_env=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=max(1, self.config.concurrency)),
        )
        if registry is not None:
            await self.refresh()
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_loop())
        for receiver in self._receivers.values():
            self._ensure_sender(receiver)

    async def stop(self) -> None:
        """Stop sending; events still queued are lost (they are in memory only)."""
        tasks = [r.task for r in self._receivers.values() if r.task is not None]
        if self._refresher is not None:
            tasks.append(self._refresher)
            self._refresher = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, *self._logging, return_exceptions=True)
        for receiver in self._receivers.values():
            receiver.task = None
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    # --- registrations ---------------------------------------------------------------------

    def webhooks(self) -> list[Webhook]:
        return [r.hook for r in self._receivers.values()]

    def set_webhooks(self, hooks: list[Webhook]) -> None:
        """Make `hooks` the registrations: new ones get a queue and a sender, changed ones
        keep their queue, removed ones stop (their queued events are dropped)."""
        wanted = {h.id: h for h in hooks}
        for hook_id in list(self._receivers):
            if hook_id not in wanted:
                receiver = self._receivers.pop(hook_id)
                if receiver.task is not None:
                    receiver.task.cancel()
        for hook in hooks:
            receiver = self._receivers.setdefault(hook.id, _Receiver(hook))
            receiver.hook = hook
            if self.running:
                self._ensure_sender(receiver)

    def put(self, hook: Webhook) -> None:
        """Add or change one registration (the API, right after writing it)."""
        self._changes += 1
        self.set_webhooks([*(h for h in self.webhooks() if h.id != hook.id), hook])

    def remove(self, hook_id: int) -> None:
        self._changes += 1
        self.set_webhooks([h for h in self.webhooks() if h.id != hook_id])

    async def refresh(self) -> None:
        if self._registry is None:
            return
        changes = self._changes
        hooks = await self._registry.webhooks()
        if changes == self._changes:  # else it may predate a change made here: next time
            self.set_webhooks(hooks)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_interval)
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("webhook registrations not re-read: %s", clip(exc))

    def queued(self, hook_id: int) -> int:
        receiver = self._receivers.get(hook_id)
        return len(receiver.pending) if receiver is not None else 0

    # --- sending ---------------------------------------------------------------------------

    def _ensure_sender(self, receiver: _Receiver) -> None:
        if receiver.task is None or receiver.task.done():
            receiver.task = asyncio.get_running_loop().create_task(self._send_all(receiver))

    async def _send_all(self, receiver: _Receiver) -> None:
        while True:
            if not receiver.pending:
                receiver.wake.clear()
                await receiver.wake.wait()
                continue
            occurrence = receiver.pending.popleft()
            try:
                await self._deliver(receiver, occurrence)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook %d: delivery of %s failed", receiver.hook.id,
                              occurrence.id)

    async def _deliver(self, receiver: _Receiver, occurrence: WebhookEvent) -> None:
        body = occurrence.body()
        attempt = 0
        while True:
            attempt += 1
            hook = receiver.hook  # re-read: an update (new URL, paused) applies to retries
            if not hook.active or self._receivers.get(hook.id) is not receiver:
                return
            started = time.monotonic()
            status, error = await self._post(hook, occurrence, body)
            duration = time.monotonic() - started
            delivered = status is not None and 200 <= status < 300
            age = time.time() - occurrence.timestamp / 1000
            delay = self._backoff(attempt)
            retry = (not delivered and _retryable(status)
                     and attempt < self.config.max_attempts
                     and age + delay < self.config.max_age)
            self._log_attempt(Attempt(
                hook.id, occurrence, attempt, delivered, not retry, status, error,
                at=time.time(), duration=duration))
            if delivered:
                self.stats.delivered += 1
                return
            if not retry:
                self.stats.failed += 1
                log.warning("webhook %d gave up on %s/%s after %d attempts: %s", hook.id,
                            occurrence.type, occurrence.event, attempt,
                            error or f"HTTP {status}")
                return
            self.stats.retried += 1
            await asyncio.sleep(delay)

    async def _post(self, hook: Webhook, occurrence: WebhookEvent,
                    body: bytes) -> tuple[int | None, str | None]:
        client, slots = self._client, self._slots
        if client is None or slots is None:
            return None, "not running"
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.SIGNATURE_HEADER: signing.signature(hook.secret, timestamp, body),
            signing.EVENT_ID_HEADER: occurrence.id,
        }
        async with slots:
            try:
                # The total time too (a receiver trickling its answer byte by byte).
                async with asyncio.timeout(self.config.timeout):
                    response = await client.post(hook.url, content=body, headers=headers)
            except TimeoutError:
                return None, f"timed out after {self.config.timeout:g} s"
            except httpx.HTTPError as exc:
                return None, clip(f"{type(exc).__name__}: {exc}", 300)
        return response.status_code, None if response.is_success else \
            clip(f"HTTP {response.status_code} {response.reason_phrase}", 300)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.config.retry_base * 2.0 ** (attempt - 1), self.config.retry_max_delay)
        return float(delay * random.uniform(0.8, 1.2))

    def _log_attempt(self, attempt: Attempt) -> None:
        registry = self._registry
        if registry is None:
            return
        task = asyncio.get_running_loop().create_task(self._record(registry, attempt))
        self._logging.add(task)
        task.add_done_callback(self._logging.discard)

    async def _record(self, registry: Registry, attempt: Attempt) -> None:
        try:
            await registry.record(attempt)
        except Exception as exc:
            log.warning("webhook delivery log not written: %s", clip(exc))

    def _dropped(self, hook: Webhook) -> None:
        self.stats.dropped += 1
        self._dropped_unlogged += 1
        now = time.monotonic()
        if now - self._drop_logged_at >= LOG_INTERVAL:
            log.warning("webhook queue full (webhook %d, %d events): dropped %d oldest "
                        "events in the last %.0f s", hook.id, self.config.queue_size,
                        self._dropped_unlogged, LOG_INTERVAL)
            self._drop_logged_at = now
            self._dropped_unlogged = 0


def _retryable(status: int | None) -> bool:
    """Network errors, timeouts, 5xx, 408 and 429 are worth another try; any other answer
    (a 4xx, a redirect) is the receiver's final word."""
    return status is None or status >= 500 or status in (408, 429)
