"""The cluster's message bus: Redis pub/sub, one connection per node.

One task reads; subscribing happens from any task and `subscribe` returns once Redis has
confirmed it, so a caller that reads state afterwards cannot miss a change published in
between. After a lost connection the reader reconnects with backoff and subscribes again;
what was published meanwhile is lost, which is why the coordinator re-reads the registry
after every outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Handler = Callable[[str, str], None]  # (channel, data)

RECONNECT_MIN = 0.2
RECONNECT_MAX = 2.0
SUBSCRIBE_TIMEOUT = 2.0


class Bus:
    def __init__(self, redis: aioredis.Redis, handler: Handler) -> None:
        self._pubsub = redis.pubsub(ignore_subscribe_messages=False)
        self._handler = handler
        self._channels: set[str] = set()
        self._confirm: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.connected = False
        self.messages = 0

    async def start(self, channels: list[str]) -> None:
        for channel in channels:
            self._channels.add(channel)
        await self._pubsub.subscribe(*channels)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        except (RedisError, OSError):
            pass

    async def subscribe(self, channel: str) -> None:
        if channel in self._channels:
            return
        self._channels.add(channel)
        done = self._confirm.get(channel)
        if done is None:
            done = self._confirm[channel] = asyncio.get_running_loop().create_future()
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(asyncio.shield(done), SUBSCRIBE_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            # The reader subscribes again after it reconnects; the caller re-reads then.
            log.info("subscribe %s not confirmed: %s", channel, exc)
        finally:
            if self._confirm.get(channel) is done and done.done():
                del self._confirm[channel]

    async def unsubscribe(self, channel: str) -> None:
        if channel not in self._channels:
            return
        self._channels.discard(channel)
        try:
            await self._pubsub.unsubscribe(channel)
        except (RedisError, OSError) as exc:
            log.info("unsubscribe %s failed: %s", channel, exc)

    async def _read(self) -> None:
        delay = RECONNECT_MIN
        while True:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning("cluster bus lost Redis: %s", exc)
                self.connected = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                await self._resubscribe()
                continue
            delay = RECONNECT_MIN
            if msg is None:
                continue
            self.connected = True
            kind = msg.get("type")
            channel = str(msg.get("channel"))
            if kind == "subscribe":
                waiter = self._confirm.pop(channel, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif kind == "message":
                self.messages += 1
                try:
                    self._handler(channel, str(msg.get("data")))
                except Exception:
                    log.exception("cluster message on %s failed", channel)

    async def _resubscribe(self) -> None:
        if not self._channels:
            return
        try:
            await self._pubsub.subscribe(*sorted(self._channels))
        except (RedisError, OSError):
            pass
