"""ClusterCoordinator: a node's membership in a cluster over Redis (control's Coordinator).

Local publishers' sources are claimed in the registry; a node with viewers of a stream pulls
every source of it from its origin over relay links (`origin.py`, `edge.py`); viewer counts
are summed across nodes (`counts.py`); the Director places clients (`placement.py`).

Everything that touches Redis or the node's state runs as a job of one task, in order: local
events (a publish, a viewer count) and messages from other nodes never interleave. Redis
is never used per packet. When Redis is unreachable media keeps flowing over the relays that
exist; after it comes back the node writes its part of the registry again and re-reads what
it follows, and no node is declared dead until the registry has had a heartbeat TTL to refill.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from hubbub.cluster import keys, messages, placement
from hubbub.cluster.bus import Bus
from hubbub.cluster.config import ClusterConfig
from hubbub.cluster.counts import ViewerCounts
from hubbub.cluster.edge import Edge
from hubbub.cluster.links import Links
from hubbub.cluster.membership import Membership
from hubbub.cluster.origin import Hosted, Origin
from hubbub.cluster.peer_keys import PeerKeys
from hubbub.cluster.records import DRAINING, LEFT, UP, NodeRecord, SourceClaim
from hubbub.cluster.store import Store
from hubbub.control.auth.keys import VerifyingKey
from hubbub.control.coordination import Interest
from hubbub.media.relay_link import LinkKey

if TYPE_CHECKING:
    from hubbub.control.node import Node
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
VIEW = "view"


class _Interest:
    def __init__(self, owner: ClusterCoordinator, stream: str, role: str) -> None:
        self._owner = owner
        self._stream = stream
        self._role = role
        self._released = False

    async def ready(self) -> None:
        if self._role == VIEW:
            await self._owner.pulled(self._stream)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._owner.release(self._stream, self._role)


class ClusterCoordinator:
    def __init__(self, config: ClusterConfig, jwk: dict[str, str],
                 key_retention: float = 900.0) -> None:
        self.config = config
        self.node_id = config.node_id
        self.draining = False
        self.store = Store(config.redis_url)
        self.membership = Membership(self.store, self.node_id, config.ttl)
        self._jwk = jwk
        self._link_key = LinkKey()
        self._peer_keys = PeerKeys(key_retention)
        self._keys_refreshed = float("-inf")
        self._refs: dict[str, dict[str, int]] = {}  # stream -> role -> local sessions
        self._watched: set[str] = set()  # streams whose channel we follow
        self._pull_done: dict[str, asyncio.Future[None]] = {}
        self._wants_sent: dict[str, frozenset[str]] = {}
        self._wants_due = False
        self._max_epoch = 0
        self._placed: dict[str, int] = {}
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._flush_due: asyncio.TimerHandle | None = None
        self._node: Node | None = None
        self.counts = ViewerCounts(self.node_id, self._report_total)

    # --- wiring --------------------------------------------------------------------------

    def attach(self, node: Node) -> None:
        self._node = node
        self.links = Links(node.port, self.node_id, self._link_key)
        self.origin = Origin(node.streams, self.links)
        self.edge = Edge(node.streams, self.links)

    @property
    def node(self) -> Node:
        assert self._node is not None, "ClusterCoordinator.attach() has not run"
        return self._node

    async def start(self) -> None:
        """Join: register, read the other nodes, follow our channel. Raises if Redis is
        unreachable (a node that cannot join must not pretend to)."""
        await self.store.ping()
        self.bus = Bus(self.store.redis, self._on_message)
        await self.bus.start([keys.node_channel(self.node_id)])
        await self._heartbeat()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._run_jobs()), loop.create_task(self._beat())]
        log.info("joined cluster at %s as %s (%d nodes)", self.store.stats()["url"],
                 self.node_id, len(self.nodes))

    async def stop(self) -> None:
        """Leave: give up our claims (edges get `inactive` now, not after the TTL), our
        viewer counts and our record."""
        try:  # what the last sessions' ends queued (releases, counts) goes out first
            await asyncio.wait_for(self._jobs.join(), 2.0)
        except TimeoutError:
            log.warning("leaving with %d cluster jobs undone", self._jobs.qsize())
        for task in self._tasks:
            task.cancel()
        try:
            async with asyncio.timeout(3.0):
                for hosted in list(self.origin.hosted.values()):
                    if hosted.claim is not None:
                        await self.store.release(hosted.claim, hosted.text)
                await self.store.set_viewers(
                    self.node_id, {s: 0 for s in self.counts.local})
                # "left" for one TTL, so the others tell a clean leave from a crash.
                await self.store.heartbeat(
                    dataclasses.replace(self._record(), state=LEFT), self.config.ttl)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("leaving the cluster uncleanly: %s", exc)
        await self.bus.stop()
        await self.store.close()
        self.links.close()

    def begin_drain(self) -> None:
        """SIGTERM: marked draining in the registry at once, so the Director sends no one
        here; the node keeps serving its clients until it stops."""
        if not self.draining:
            self.draining = True
            log.info("draining: no new clients are placed on %s", self.node_id)
            self._enqueue(self._heartbeat)

    # --- the job queue -------------------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        self._jobs.put_nowait(job)

    async def _run_jobs(self) -> None:
        while True:
            job = await self._jobs.get()
            try:
                await job()
            except (RedisError, OSError) as exc:
                self._lost_redis(exc)
            except Exception:
                log.exception("cluster job failed")
            finally:
                self._jobs.task_done()

    def _lost_redis(self, exc: BaseException) -> None:
        if self.membership.healthy:
            log.warning("Redis unreachable (%s): media continues, registry work waits", exc)
        self.membership.lost()

    async def _beat(self) -> None:
        last_wants = time.monotonic()
        while True:
            await asyncio.sleep(self.config.heartbeat)
            self._enqueue(self._heartbeat)
            if time.monotonic() - last_wants >= self.config.wants_refresh:
                last_wants = time.monotonic()
                self._enqueue(lambda: self._send_wants(full=True))

    # --- heartbeat, membership -----------------------------------------------------------

    def _record(self) -> NodeRecord:
        node = self.node
        return NodeRecord(
            id=self.node_id, url=self.config.url,
            media=(self.config.relay_host, node.port.local_addr[1]),
            link_key=self._link_key.public, jwk=self._jwk,
            state=DRAINING if self.draining else UP, load=len(node.port.transports),
            capacity=self.config.capacity, host=self.config.host, worker=self.config.worker,
        )

    async def _heartbeat(self) -> None:
        if await self.membership.beat(self._record()) and self._tasks:
            await self._resync()
        await self.refresh_nodes()

    @property
    def nodes(self) -> dict[str, NodeRecord]:
        return self.membership.nodes

    async def refresh_nodes(self) -> None:
        """Read the registry: who is alive, their loads and JWT keys; bury the dead."""
        changes = await self.membership.read()
        self._placed.clear()
        self._peer_keys.observe(self.nodes.values(), time.monotonic())
        claims: list[SourceClaim] = []
        for node_id in changes.left + changes.dead:
            claims += self._node_gone(node_id)
        for node_id in set(changes.expired) | set(changes.dead):
            await self._clean_up_after(node_id)
        for claim in claims:  # compare-and-delete: a newer claim stays
            await self.store.release(claim, claim.to_json())

    def _node_gone(self, node_id: str) -> list[SourceClaim]:
        """Everything that came from or went to a dead node ends; its claims we followed."""
        claims = self.edge.node_gone(node_id)
        self.origin.edge_gone(node_id)
        self.links.drop(node_id, "node gone")
        self.counts.node_gone(node_id)
        self._wants_sent.pop(node_id, None)
        self._wants_changed()
        return claims

    async def _clean_up_after(self, node_id: str) -> None:
        """Remove a dead node's traces we know of (others may do the same: idempotent)."""
        await self.store.forget_node(node_id)
        await self.store.drop_viewers_of(node_id, self._watched)

    async def refresh_keys(self) -> None:
        """A JWT names a key we have not seen: read the registry once more, in the job order,
        at most once a second whoever asks (an unknown `kid` costs a client nothing), and never
        fail: with Redis down the JWT is refused as unknown."""
        now = time.monotonic()
        if now - self._keys_refreshed < 1.0:
            return
        self._keys_refreshed = now
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def job() -> None:
            try:
                await self.refresh_nodes()
            finally:
                if not done.done():
                    done.set_result(None)

        self._enqueue(job)
        try:
            await asyncio.wait_for(asyncio.shield(done), self.config.ready_timeout)
        except TimeoutError:
            pass

    def verify_keys(self) -> list[VerifyingKey]:
        """The JWT keys of the cluster's nodes (see PeerKeys)."""
        return self._peer_keys.keys()

    async def _resync(self) -> None:
        await self.store.raise_epoch(self._max_epoch)
        for hosted in list(self.origin.hosted.values()):
            if hosted.claim is not None:
                written, _ = await self.store.claim(hosted.claim)
                if not written:
                    await self._check_claims(hosted.stream)
        await self.store.set_viewers(self.node_id, dict(self.counts.local))
        for stream in list(self._watched):
            self.counts.watch(stream, await self.store.viewers(stream), set(self.nodes))
        for stream in list(self.edge.pulled):
            await self._check_claims(stream)
        await self._send_wants(full=True)

    # --- interest (local sessions) -------------------------------------------------------

    def interest(self, stream: str, role: str) -> Interest:
        refs = self._refs.setdefault(stream, {})
        if not refs:
            self._enqueue(lambda: self._watch(stream))
        refs[role] = refs.get(role, 0) + 1
        if role == VIEW and refs[role] == 1 and stream not in self._pull_done:
            done = asyncio.get_running_loop().create_future()
            self._pull_done[stream] = done
            self._enqueue(lambda: self._pull(stream, done))
        return _Interest(self, stream, role)

    def release(self, stream: str, role: str) -> None:
        refs = self._refs.get(stream)
        if refs is None or refs.get(role, 0) <= 0:
            return
        refs[role] -= 1
        if role == VIEW and refs[role] == 0:
            self._enqueue(lambda: self._unpull(stream))
        if not any(refs.values()):
            del self._refs[stream]
            self._enqueue(lambda: self._unwatch(stream))

    async def pulled(self, stream: str) -> None:
        """Until the stream's remote sources are published here (bounded)."""
        done = self._pull_done.get(stream)
        if done is not None and not done.done():
            try:
                await asyncio.wait_for(asyncio.shield(done), self.config.ready_timeout)
            except TimeoutError:
                log.warning("view of %s answered before its remote sources arrived", stream)

    def _views(self, stream: str) -> int:
        return self._refs.get(stream, {}).get(VIEW, 0)

    async def _watch(self, stream: str) -> None:
        if stream not in self._refs or stream in self._watched:
            return
        self._watched.add(stream)
        await self.bus.subscribe(keys.stream_channel(stream))
        self.counts.watch(stream, await self.store.viewers(stream), set(self.nodes))

    async def _unwatch(self, stream: str) -> None:
        if stream in self._refs or stream not in self._watched:
            return
        self._watched.discard(stream)
        self.counts.unwatch(stream)
        await self.bus.unsubscribe(keys.stream_channel(stream))

    async def _pull(self, stream: str, done: asyncio.Future[None]) -> None:
        try:
            if self._views(stream) == 0 or stream in self.edge.pulled:
                return
            await self._watch(stream)
            self.edge.start(stream)
            await self._check_claims(stream)
        finally:
            if self._pull_done.get(stream) is done:
                del self._pull_done[stream]
            if not done.done():
                done.set_result(None)

    async def _unpull(self, stream: str) -> None:
        if self._views(stream) > 0 or stream not in self.edge.pulled:
            return
        self.edge.stop(stream)
        log.info("no viewers of %s left here: relays stop", stream)
        self._wants_changed()

    async def _check_claims(self, stream: str) -> None:
        """Read the stream's claims and follow each; a dead node's leftovers are removed."""
        claims = await self.store.claims(stream)
        if any(c.node != self.node_id and c.node not in self.nodes for c in claims):
            await self.refresh_nodes()  # a node that joined since our last heartbeat
        for claim in claims:
            if claim.node != self.node_id and claim.node not in self.nodes:
                if self.membership.settled():  # not an empty Redis refilling after a restart
                    await self.store.release(claim, claim.to_json())
                continue
            await self._apply_claim(claim)

    # --- local publishers (origin side) --------------------------------------------------

    def source_published(self, stream: Stream, source: Source) -> None:
        hosted = self.origin.published(stream.name, source, self.nodes)
        self._enqueue(lambda: self._claim(hosted))

    async def _claim(self, hosted: Hosted) -> None:
        key = (hosted.stream, hosted.source.source_id)
        if self.origin.hosted.get(key) is not hosted:
            return
        epoch = await self.store.next_epoch()
        self._max_epoch = max(self._max_epoch, epoch)
        claim = SourceClaim(
            stream=hosted.stream, source_id=hosted.source.source_id, node=self.node_id,
            epoch=epoch,
            tracks=hosted.claim_tracks(),
        )
        written, text = await self.store.claim(claim)
        if self.origin.hosted.get(key) is not hosted:  # ended while we wrote
            if written:
                await self.store.release(claim, text)
            return
        hosted.claim, hosted.text = claim, text
        if not written:
            await self._check_claims(hosted.stream)  # someone newer: follow them

    def source_unpublished(self, stream: Stream, source: Source) -> None:
        hosted = self.origin.unpublished(stream.name, source)
        if hosted is not None and hosted.claim is not None:
            claim, text = hosted.claim, hosted.text
            self._enqueue(lambda: self._release_claim(claim, text))

    async def _release_claim(self, claim: SourceClaim, text: str) -> None:
        await self.store.release(claim, text)

    def source_timed_out(self, stream: Stream, source: Source) -> bool:
        if not self.edge.is_copy(stream.name, source):
            return False
        # The origin ends its sources itself; a copy still silent while its claim is gone
        # missed the release (Redis was down): look.
        self._enqueue(lambda: self._check_copy(stream.name, source))
        return True

    async def _check_copy(self, stream: str, source: Source) -> None:
        copy = self.edge.current(stream, source.source_id)
        if copy is None or copy.source is not source:
            return
        current = {(c.source_id, c.node, c.epoch) for c in await self.store.claims(stream)}
        if (copy.claim.source_id, copy.claim.node, copy.claim.epoch) not in current:
            self.edge.release(stream, copy.claim.source_id, copy.claim.node, copy.claim.epoch)
            self._wants_changed()

    # --- claims from other nodes (edge side) ---------------------------------------------

    async def _apply_claim(self, claim: SourceClaim) -> None:
        if claim.node == self.node_id:
            return
        self._max_epoch = max(self._max_epoch, claim.epoch)
        key = (claim.stream, claim.source_id)
        hosted = self.origin.hosted.get(key)
        if hosted is not None and (hosted.claim is None or hosted.claim.epoch > claim.epoch):
            return  # ours is newer (or about to be: our epoch will be higher)
        origin = self.nodes.get(claim.node)
        if origin is None:
            await self.refresh_nodes()
            origin = self.nodes.get(claim.node)
            if origin is None:
                return
        if hosted is not None:
            self._give_up(hosted)
        if self.edge.apply(claim, origin):
            self._wants_changed()
        elif hosted is not None:
            # Not pulled here: nobody local needs the new feed, only the old one must go.
            stream = self.node.streams.get(claim.stream)
            owner = self.node.hub.owner_of(hosted.source)
            if stream is not None:
                stream.unpublish(hosted.source)
            if owner is not None:
                owner.replaced()

    def _give_up(self, hosted: Hosted) -> None:
        log.info("%s/%s was republished on another node: dropping the feed here",
                 hosted.stream, hosted.source.source_id)
        self.origin.give_up((hosted.stream, hosted.source.source_id))

    def _on_message(self, channel: str, data: str) -> None:
        """From the bus: counts are applied at once, everything else queued as a job."""
        try:
            msg = messages.decode(channel, data)
        except ValueError as exc:
            log.warning("ignoring a malformed cluster message on %s: %s", channel, exc)
            return
        match msg:
            case messages.Counted(stream, node, count):
                self.counts.on_message(stream, node, count)
            case messages.Claimed(claim):
                self._enqueue(lambda: self._apply_claim(claim))
            case messages.Released(stream, source_id, node, epoch):
                self._enqueue(lambda: self._on_release(stream, source_id, node, epoch))
            case messages.Wants(edge, streams):
                self._enqueue(lambda: self._on_wants(edge, set(streams)))
            case messages.Stop(stream, source_id, reason):
                self._stop_hosted(stream, source_id, reason)

    async def _on_release(self, stream: str, source_id: str | None, node: str,
                          epoch: int) -> None:
        if self.edge.release(stream, source_id, node, epoch):
            self._wants_changed()

    async def _on_wants(self, edge_id: str, streams: set[str]) -> None:
        record = self.nodes.get(edge_id)
        if record is None:
            await self.refresh_nodes()
            record = self.nodes.get(edge_id)
            if record is None:
                return
        self.origin.set_wants(record, streams)

    def _stop_hosted(self, stream: str, source_id: str, reason: str) -> None:
        hosted = self.origin.hosted.get((stream, source_id))
        owner = self.node.hub.owner_of(hosted.source) if hosted is not None else None
        if owner is not None:
            log.info("stopping %s/%s at another node's request", stream, source_id)
            owner.terminate(reason)

    async def stop_remote_source(self, stream: str, source_id: str, reason: str) -> bool:
        for claim in await self.store.claims(stream):
            if claim.source_id == source_id and claim.node != self.node_id:
                if claim.node not in self.nodes:
                    return False
                await self.store.send(keys.node_channel(claim.node),
                                      messages.stop(stream, source_id, reason))
                return True
        return False

    def _wants_changed(self) -> None:
        if not self._wants_due:
            self._wants_due = True
            self._enqueue(lambda: self._send_wants(full=False))

    async def _send_wants(self, full: bool) -> None:
        """Tell each origin the streams we pull from it (only changes, unless `full`)."""
        self._wants_due = False
        current = self.edge.origins()
        for origin_id in sorted(set(current) | set(self._wants_sent)):
            streams = frozenset(current.get(origin_id, ()))
            if not full and self._wants_sent.get(origin_id) == streams:
                continue
            if origin_id not in self.nodes:
                self._wants_sent.pop(origin_id, None)
                continue
            await self.store.send(keys.node_channel(origin_id),
                                  messages.wants(self.node_id, sorted(streams)))
            if streams:
                self._wants_sent[origin_id] = streams
            else:
                self._wants_sent.pop(origin_id, None)

    # --- viewer counts -------------------------------------------------------------------

    def viewers_changed(self, stream: str, local: int) -> None:
        self.counts.set_local(stream, local)
        if self._flush_due is None:
            # Coalesced: a flash crowd costs a few writes a second, not one per join.
            self._flush_due = asyncio.get_running_loop().call_later(0.2, self._flush_counts)

    def _flush_counts(self) -> None:
        self._flush_due = None
        self._enqueue(self._write_counts)

    async def _write_counts(self) -> None:
        counts = self.counts.take_dirty()
        try:
            await self.store.set_viewers(self.node_id, counts)
        except BaseException:
            self.counts.dirty.update(counts)  # written again after a resync
            raise

    def _report_total(self, stream: str, total: int) -> None:
        if self._node is not None:
            self._node.hub.total_viewers(stream, total)

    # --- the Director --------------------------------------------------------------------

    async def place(self, role: str, stream: str) -> str | None:
        others = [n for n in self.nodes.values() if n.id != self.node_id]
        if not others:
            return None
        # Viewers and publishers alike prefer nodes that carry the stream already: a room's
        # members then share a node while loads allow, and need no relay at all.
        carriers: set[str] = set()
        try:
            carriers = set(await self.store.viewers(stream))
            carriers |= {c.node for c in await self.store.claims(stream)}
        except (RedisError, OSError) as exc:
            self._lost_redis(exc)
        loads = {n.id: n.load + self._placed.get(n.id, 0) for n in others}
        loads[self.node_id] = len(self.node.port.transports)
        chosen = placement.choose([self._record(), *others], loads, carriers,
                                  self.config.placement_slack, self.node_id)
        if chosen is None or chosen.id == self.node_id:
            return None
        self._placed[chosen.id] = self._placed.get(chosen.id, 0) + 1
        return chosen.url

    def remote_viewers(self, stream: str) -> dict[str, int]:
        return dict(self.counts.remote.get(stream, {}))

    def stats(self) -> dict[str, Any]:
        return {
            "node": self.node_id, "cluster": True, "healthy": self.membership.healthy,
            "draining": self.draining,
            "nodes": {n.id: {"url": n.url, "state": n.state, "load": n.load}
                      for n in self.nodes.values()},
            "hosted": self.origin.stats(), "pulled": self.edge.stats(),
            "links": self.links.stats(), "redis": self.store.stats(),
            "busMessages": self.bus.messages,
        }
