"""The cluster registry in Redis: a few commands per join, per publish and per heartbeat, none
per packet. Writes that must not race another node (claiming a sourceId, giving it up) are
Lua scripts, so the compare and the write are one step and their message is published in the
same order as the writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis

from hubbub.cluster import keys, messages
from hubbub.cluster.records import NodeRecord, SourceClaim

log = logging.getLogger(__name__)

# KEYS[1] sources hash; ARGV: field, claim JSON, epoch, channel, message.
# Written unless a claim with the same or a newer epoch is there.
_CLAIM = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local ok, c = pcall(cjson.decode, old)
  if ok and type(c) == 'table' and tonumber(c.epoch) and tonumber(c.epoch) >= tonumber(ARGV[3])
  then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""

# KEYS[1] sources hash; ARGV: field, the claim JSON we wrote, channel, message.
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
return 0
"""

# KEYS[1] epoch counter; ARGV[1] the highest epoch this node knows (after a Redis restart the
# counter must not hand out epochs that live claims already carry).
_EPOCH_FLOOR = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return 0
"""


class Store:
    """Typed operations on the registry. Every method may raise `redis.RedisError`."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self.url = url
        self.redis: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
        )
        self._claim = self.redis.register_script(_CLAIM)
        self._release = self.redis.register_script(_RELEASE)
        self._floor = self.redis.register_script(_EPOCH_FLOOR)
        # Calls this node made through the store (a script counts as one; the bus's SUBSCRIBEs
        # are not here): an order of magnitude for /api/cluster. bench/cluster.py counts
        # exactly, with Redis's own INFO commandstats.
        self.commands = 0

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> None:
        self.commands += 1
        await self.redis.ping()

    # --- nodes ---------------------------------------------------------------------------

    async def heartbeat(self, record: NodeRecord, ttl: float) -> bool:
        """Write our record; False if it was not there (first beat, a Redis restart, or the
        others took us for dead after a stall longer than the TTL)."""
        self.commands += 2
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.node(record.id), record.to_json(), px=int(ttl * 1000), get=True)
            pipe.sadd(keys.NODES, record.id)
            previous, _ = await pipe.execute()
        return previous is not None

    async def nodes(self) -> tuple[dict[str, NodeRecord], list[str]]:
        """Live nodes by id, and the ids in the node set whose record has expired."""
        self.commands += 1
        ids = sorted(str(i) for i in await self.redis.smembers(keys.NODES))
        if not ids:
            return {}, []
        self.commands += 1
        values = await self.redis.mget([keys.node(i) for i in ids])
        live: dict[str, NodeRecord] = {}
        gone: list[str] = []
        for node_id, value in zip(ids, values, strict=True):
            if value is None:
                gone.append(node_id)
                continue
            try:
                live[node_id] = NodeRecord.from_json(value)
            except ValueError as exc:
                log.warning("ignoring malformed node record %s: %s", node_id, exc)
        return live, gone

    async def forget_node(self, node_id: str) -> None:
        self.commands += 2
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.srem(keys.NODES, node_id)
            pipe.delete(keys.node(node_id))
            await pipe.execute()

    # --- sources -------------------------------------------------------------------------

    async def next_epoch(self) -> int:
        self.commands += 1
        return int(await self.redis.incr(keys.EPOCH))

    async def raise_epoch(self, floor: int) -> None:
        self.commands += 1
        await self._floor(keys=[keys.EPOCH], args=[floor])

    async def claim(self, claim: SourceClaim) -> tuple[bool, str]:
        """Write `claim` unless a newer one is there; (written, the JSON written)."""
        text = claim.to_json()
        self.commands += 1
        written = await self._claim(
            keys=[keys.sources(claim.stream)],
            args=[keys.source_field(claim.source_id), text, claim.epoch,
                  keys.stream_channel(claim.stream), messages.claim(text)],
        )
        return bool(written), text

    async def release(self, claim: SourceClaim, text: str) -> bool:
        """Remove our claim if it is still the current one (not taken over meanwhile)."""
        self.commands += 1
        return bool(await self._release(
            keys=[keys.sources(claim.stream)],
            args=[keys.source_field(claim.source_id), text, keys.stream_channel(claim.stream),
                  messages.release(claim)],
        ))

    async def claims(self, stream: str) -> list[SourceClaim]:
        self.commands += 1
        raw = await self.redis.hgetall(keys.sources(stream))
        out = []
        for source_field, value in raw.items():
            try:
                claim = SourceClaim.from_json(value)
            except ValueError as exc:
                log.warning("ignoring malformed claim %s/%s: %s", stream, source_field, exc)
                continue
            if claim.stream == stream and keys.source_field(claim.source_id) == source_field:
                out.append(claim)
        return out

    # --- viewer counts -------------------------------------------------------------------

    async def set_viewers(self, node_id: str, counts: dict[str, int]) -> None:
        """This node's viewer count per stream (0 removes it), each announced on the stream's
        channel; one round trip for all."""
        if not counts:
            return
        self.commands += 2 * len(counts)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, count in counts.items():
                if count > 0:
                    pipe.hset(keys.viewers(stream), node_id, count)
                else:
                    pipe.hdel(keys.viewers(stream), node_id)
                pipe.publish(keys.stream_channel(stream), messages.count(node_id, count))
            await pipe.execute()

    async def viewers(self, stream: str) -> dict[str, int]:
        self.commands += 1
        raw = await self.redis.hgetall(keys.viewers(stream))
        out: dict[str, int] = {}
        for node_id, value in raw.items():
            try:
                out[str(node_id)] = max(0, int(value))
            except ValueError:
                continue
        return out

    async def drop_viewers_of(self, node_id: str, streams: Iterable[str]) -> None:
        streams = list(streams)
        if not streams:
            return
        self.commands += len(streams)
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.hdel(keys.viewers(stream), node_id)
            await pipe.execute()

    # --- messages ------------------------------------------------------------------------

    async def send(self, channel: str, text: str) -> None:
        self.commands += 1
        await self.redis.publish(channel, text)

    def stats(self) -> dict[str, Any]:
        return {"url": _redacted(self.url), "commands": self.commands}


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
