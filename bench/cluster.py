#!/usr/bin/env python3
"""Cluster mode (issue 12) on loopback: relay cost, workers, Redis traffic, Director join time.

    python bench/cluster.py relay     # CPU per forwarded packet, edge (fed by a relay) / origin
    python bench/cluster.py workers   # --workers 1 vs 2: capacity, CPU per forwarded packet
    python bench/cluster.py redis     # Redis commands per publish, per join, per second
    python bench/cluster.py join      # Director POST -> first audio packet, 3-node cluster

Every subcommand starts its own redis-server and `hubbub serve` processes on free loopback
ports, drives them with the cheap RTP bots (real ICE/DTLS/SRTP, no decoding) of this process,
and writes JSON to bench/results/cluster-<subcommand>.json. See bench/README.md, "cluster".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cluster_setup as cs  # noqa: E402
import common  # noqa: E402
from cluster_setup import log  # noqa: E402

from hubbub.client.bots import ListenerBot  # noqa: E402
from hubbub.client.bots import run as run_uvloop  # noqa: E402
from hubbub.client.bots.drain import Drain  # noqa: E402

MAX_LOSS_PCT = 0.1
RELAY_TARGET = 1.1
JOIN_P50_TARGET_MS = 150.0
# A node's heartbeat (Store.heartbeat + Store.nodes): SET and SADD of its record, SMEMBERS and
# MGET of everybody's, once per --heartbeat (1 s) per node.
HEARTBEAT_COMMANDS = ("set", "sadd", "smembers", "mget")


def per_packet_us(cpu_s: float, packets: int) -> float | None:
    return round(cpu_s / packets * 1e6, 3) if packets else None


def loss_pct(packets: int, lost: int) -> float:
    return round(100.0 * lost / (packets + lost), 4) if packets + lost else 100.0


def latency(groups: Sequence[cs.Group]) -> dict[str, Any]:
    return cs.rounded(common.percentiles([x for g in groups for x in g.latencies_ms()]))


def new_drain(args: argparse.Namespace) -> Drain | None:
    if not args.drain or not Drain.available():
        return None
    return Drain(args.poll_ms / 1000 if args.poll_ms > 0 else None)


async def join_groups(groups: Sequence[cs.Group], args: argparse.Namespace) -> float:
    """Join every group's listeners, interleaved over the groups (so every node fills at the
    same pace); failed joins are counted and dropped. Returns the seconds it took."""
    order = [(g, i) for i in range(max(len(g.listeners) for g in groups)) for g in groups
             if i < len(g.listeners)]
    t0 = time.monotonic()
    errors = await cs.join_all([g.listeners[i].start(timeout=30) for g, i in order],
                               args.concurrency, "listeners joined", args.quiet)
    for group in groups:
        group.keep_joined([e for (g, _), e in zip(order, errors, strict=True) if g is group])
        if group.failed:
            first = next(e for (g, _), e in zip(order, errors, strict=True)
                         if g is group and e is not None)
            log(f"  {group.failed} listeners of {group.name} failed to join: {first!r}",
                args.quiet)
    return time.monotonic() - t0


async def window(room: cs.Room, groups: Sequence[cs.Group], pids: dict[str, list[int]],
                 duration: float, quiet: bool) -> dict[str, Any]:
    """One steady window: CPU of each named set of server pids, packets and loss of each
    listener group, one-way latency over all decrypting listeners, the bots' own CPU."""
    machine = cs.MachineCpu()
    all_pids = sorted({p for ps in pids.values() for p in ps})
    cpu0, bots0 = cs.cpu_of(all_pids), time.process_time()
    counts0 = [g.totals() for g in groups]
    sent0 = room.sent()
    for g in groups:
        g.clear_latencies()
    t0 = time.monotonic()
    end = t0 + duration
    while (now := time.monotonic()) < end:
        await asyncio.sleep(min(1.0, end - now))
        log(f"\r  measuring {time.monotonic() - t0:4.1f}/{duration:.0f} s", quiet, end="")
    log("", quiet)
    elapsed = time.monotonic() - t0
    cpu1, bots1 = cs.cpu_of(all_pids), time.process_time()
    out: dict[str, Any] = {"window_s": round(elapsed, 3),
                           "talker_packets_sent": room.sent() - sent0}
    cpu = {p: cpu1[p] - cpu0[p] for p in all_pids if p in cpu0 and p in cpu1}
    out["cpu_s"] = {name: round(sum(cpu.get(p, 0.0) for p in ps), 3)
                    for name, ps in pids.items()}
    out["groups"] = {}
    for g, (p0, l0) in zip(groups, counts0, strict=True):
        p1, l1 = g.totals()
        out["groups"][g.name] = {"listeners": len(g.listeners), "join_failures": g.failed,
                                 "packets": p1 - p0, "pps": round((p1 - p0) / elapsed, 1),
                                 "loss_pct": loss_pct(p1 - p0, l1 - l0),
                                 "latency_ms": latency([g])}
    out["latency_ms"] = latency(groups)
    out["bots_cpu_share"] = round((bots1 - bots0) / elapsed, 3)
    out["machine_busy_share"] = machine.busy_share()
    # Cores busy with anything but this bench (other users of the shared machine).
    ours = sum(cpu.values()) / elapsed + out["bots_cpu_share"]
    out["other_cores_busy"] = round(max(0.0, out["machine_busy_share"] * (os.cpu_count() or 1)
                                        - ours), 3)
    return out


# --- 1. relay cost --------------------------------------------------------------------------


async def relay_point(listeners: int, args: argparse.Namespace) -> dict[str, Any]:
    """Origin A (publishers + L listeners) and edge B (L listeners, fed by A's relay); with
    `baseline`, the same workload on a lone node without Redis first."""
    drain = new_drain(args)
    result: dict[str, Any] = {"listeners_per_node": listeners}
    dec = args.latency_listeners
    try:
        if args.baseline:
            node = cs.start_node("lone", None, args.server_cpu)
            room = cs.Room()
            try:
                room.add_publishers(node.ws)
                await room.start_publishers()
                await asyncio.sleep(1.0)
                lone = room.add_group("lone", node.ws, listeners, dec, drain)
                result["baseline_join_s"] = round(await join_groups([lone], args), 2)
                await asyncio.sleep(args.warmup)
                w = await window(room, [lone], {"lone": [node.pid]}, args.duration, args.quiet)
                g = w["groups"]["lone"]
                w["cpu_us_per_forwarded_packet"] = per_packet_us(w["cpu_s"]["lone"],
                                                                 g["packets"])
                result["baseline"] = w
                log(f"  lone node: {w['cpu_us_per_forwarded_packet']} us/pkt, "
                    f"{w['cpu_s']['lone'] / w['window_s']:.0%} core", args.quiet)
            finally:
                await room.stop()
                node.stop()
        with cs.cluster(["origin", "edge"], args.server_cpu,
                        redis_cpu=args.server_cpu) as (redis, (a, b)):
            room = cs.Room()
            try:
                room.add_publishers(a.ws)
                await room.start_publishers()
                await asyncio.sleep(1.0)
                ga = room.add_group("origin", a.ws, listeners, dec, drain)
                gb = room.add_group("edge", b.ws, listeners, dec, drain)
                result["join_s"] = round(await join_groups([ga, gb], args), 2)
                await asyncio.sleep(args.warmup)
                result["windows"] = []
                for _ in range(args.windows):
                    before = a.cluster(), b.cluster()
                    w = await window(room, [ga, gb],
                                     {"origin": [a.pid], "edge": [b.pid], "redis": [redis.pid]},
                                     args.duration, args.quiet)
                    after = a.cluster(), b.cluster()
                    w["relay"] = relay_counters(before, after)
                    for name in ("origin", "edge"):
                        w[name] = {"cpu_us_per_forwarded_packet": per_packet_us(
                            w["cpu_s"][name], w["groups"][name]["packets"]),
                            "cpu_share": round(w["cpu_s"][name] / w["window_s"], 3)}
                    o = w["origin"]["cpu_us_per_forwarded_packet"]
                    e = w["edge"]["cpu_us_per_forwarded_packet"]
                    w["ratio_edge_over_origin"] = round(e / o, 3) if o and e else None
                    result["windows"].append(w)
                    log(f"  L={listeners}/node: origin {o} us/pkt "
                        f"({w['origin']['cpu_share']:.0%} core), edge {e} us/pkt "
                        f"({w['edge']['cpu_share']:.0%} core), ratio "
                        f"{w['ratio_edge_over_origin']}, loss {w['groups']['origin']['loss_pct']}"
                        f" / {w['groups']['edge']['loss_pct']} %, bots "
                        f"{w['bots_cpu_share']:.0%}, machine {w['machine_busy_share']:.0%} "
                        f"(others {w['other_cores_busy']} cores)",
                        args.quiet)
                result["cluster_after"] = {"origin": a.cluster(), "edge": b.cluster()}
            finally:
                await room.stop()
    finally:
        if drain is not None:
            drain.close()
    ratios = sorted(w["ratio_edge_over_origin"] for w in result["windows"]
                    if w["ratio_edge_over_origin"])
    result["ratio_median"] = ratios[len(ratios) // 2] if ratios else None
    result["ratios"] = ratios
    return result


def relay_counters(before: tuple[dict[str, Any], dict[str, Any]],
                   after: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, int]:
    """Relay packets in the window: sent by the origin's feeds, received on the edge's link."""
    def feeds(view: dict[str, Any]) -> int:
        return sum(sum(h["feeds"].values()) for h in view["hosted"])

    def link_in(view: dict[str, Any]) -> int:
        return sum(link["rtpIn"] for link in view["links"])

    def errors(view: dict[str, Any]) -> int:
        return sum(link["srtpErrors"] + link["unrouted"] for link in view["links"])

    return {"origin_feed_packets": feeds(after[0]) - feeds(before[0]),
            "edge_link_rtp_in": link_in(after[1]) - link_in(before[1]),
            "edge_link_errors": errors(after[1]) - errors(before[1])}


async def relay(args: argparse.Namespace) -> dict[str, Any]:
    points = []
    for listeners in args.listeners:
        points.append(await relay_point(listeners, args))
        if args.partial:
            common.write_result(args.output, params_of(args), {"points": points, "partial": True})
    summary = {str(p["listeners_per_node"]): {
        "ratio_edge_over_origin_median": p["ratio_median"], "ratios": p["ratios"],
        "origin_us_per_pkt": [w["origin"]["cpu_us_per_forwarded_packet"] for w in p["windows"]],
        "edge_us_per_pkt": [w["edge"]["cpu_us_per_forwarded_packet"] for w in p["windows"]],
        "lone_node_us_per_pkt": (p["baseline"]["cpu_us_per_forwarded_packet"]
                                 if "baseline" in p else None),
        "within_target": p["ratio_median"] is not None and p["ratio_median"] <= RELAY_TARGET,
    } for p in points}
    return {"points": points, "summary": summary, "target_ratio_at_most": RELAY_TARGET}


# --- 2. workers -----------------------------------------------------------------------------


async def workers_point(count: int, total: int, args: argparse.Namespace) -> dict[str, Any]:
    """`hubbub serve --workers count`: publishers on worker 0, `total` listeners split evenly
    over the workers (connected directly, not through the Director)."""
    drain = new_drain(args)
    result: dict[str, Any] = {"workers": count, "listeners": total}
    try:
        with cs.workers(count) as w:
            room = cs.Room()
            try:
                room.add_publishers(w.ws(0))
                await room.start_publishers()
                await asyncio.sleep(1.0)
                groups = []
                for i in range(count):
                    n = total // count + (1 if i < total % count else 0)
                    groups.append(room.add_group(f"worker{i}", w.ws(i), n,
                                                 args.latency_listeners // count, drain))
                result["join_s"] = round(await join_groups(groups, args), 2)
                await asyncio.sleep(args.warmup)
                procs = w.processes()
                result["processes"] = {str(p): name for p, name in procs.items()}
                pids = {"total": list(procs)}
                for p, name in procs.items():
                    pids.setdefault(name, []).append(p)
                win = await window(room, groups, pids, args.duration, args.quiet)
            finally:
                await room.stop()
    finally:
        if drain is not None:
            drain.close()
    packets = sum(g["packets"] for g in win["groups"].values())
    lost_pct = [g["loss_pct"] for g in win["groups"].values()]
    failures = sum(g["join_failures"] for g in win["groups"].values())
    result.update(win)
    result["forwarded_packets"] = packets
    result["forwarded_pps"] = round(packets / win["window_s"], 1)
    result["cpu_us_per_forwarded_packet"] = per_packet_us(win["cpu_s"]["total"], packets)
    result["server_cpu_share"] = round(win["cpu_s"]["total"] / win["window_s"], 3)
    result["loss_pct"] = max(lost_pct)
    result["join_failures"] = failures
    p99 = win["latency_ms"]["p99"]
    result["within_loss_target"] = result["loss_pct"] < MAX_LOSS_PCT and not failures
    result["within_strict_target"] = bool(result["within_loss_target"] and p99 is not None
                                          and p99 < 5.0)
    log(f"  workers={count} L={total}: {result['cpu_us_per_forwarded_packet']} us/pkt, "
        f"server {result['server_cpu_share']:.0%} of a core, loss {result['loss_pct']} %, "
        f"p50/p99 {win['latency_ms']['p50']}/{p99} ms, bots {win['bots_cpu_share']:.0%}, "
        f"machine {win['machine_busy_share']:.0%} (others {win['other_cores_busy']} cores)",
        args.quiet)
    return result


async def workers_bench(args: argparse.Namespace) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    for count in args.workers:
        for total in args.listeners:
            point = await workers_point(count, total, args)
            points.append(point)
            if args.partial:
                common.write_result(args.output, params_of(args),
                                    {"points": points, "partial": True})
            if point["loss_pct"] > args.stop_loss or point["join_failures"]:
                log(f"  workers={count}: loss above {args.stop_loss} %, sweep stops", args.quiet)
                break
    summary: dict[str, Any] = {}
    for count in args.workers:
        rows = sorted((p for p in points if p["workers"] == count), key=lambda p: p["listeners"])
        capacity = strict = 0
        for p in rows:
            if not p["within_loss_target"]:
                break
            capacity = p["listeners"]
        for p in rows:
            if not p["within_strict_target"]:
                break
            strict = p["listeners"]
        summary[str(count)] = {
            "capacity_loss_below_0.1pct": capacity,
            "capacity_strict_p99_below_5ms": strict,
            "us_per_pkt": {p["listeners"]: p["cpu_us_per_forwarded_packet"] for p in rows},
            "server_cpu_share": {p["listeners"]: p["server_cpu_share"] for p in rows},
            "machine_busy_share": {p["listeners"]: p["machine_busy_share"] for p in rows},
        }
    return {"points": points, "summary": summary}


# --- 3. Redis traffic -----------------------------------------------------------------------


class RedisMeter:
    """Deltas of the bench redis-server's INFO commandstats (everything every client sent,
    including commands run inside the nodes' Lua scripts) and of each node's own counter
    (`redis.commands` in /api/cluster), phase by phase."""

    def __init__(self, redis: cs.Redis, nodes: Sequence[cs.Node], quiet: bool) -> None:
        self.redis = redis
        self.nodes = nodes
        self.quiet = quiet
        self.phases: dict[str, dict[str, Any]] = {}
        self._mark()

    def _snap(self) -> tuple[float, dict[str, int], dict[str, int]]:
        return (time.monotonic(), self.redis.commandstats(),
                {n.name: int(n.cluster()["redis"]["commands"]) for n in self.nodes})

    def _mark(self) -> None:
        self._last = self._snap()

    def phase(self, name: str, count: int | None = None, unit: str = "") -> dict[str, Any]:
        """Close the phase that started at the last mark; per `unit` if `count` is given."""
        t0, stats0, nodes0 = self._last
        t1, stats1, nodes1 = self._last = self._snap()
        delta = {k: v - stats0.get(k, 0) for k, v in stats1.items() if v - stats0.get(k, 0)}
        total = sum(delta.values())
        seconds = t1 - t0
        out: dict[str, Any] = {"seconds": round(seconds, 2), "commands": total,
                               "by_command": dict(sorted(delta.items())),
                               "per_second": round(total / seconds, 2),
                               "node_counters": {k: nodes1[k] - nodes0.get(k, 0)
                                                 for k in nodes1}}
        beats = sum(delta.get(c, 0) for c in HEARTBEAT_COMMANDS)
        out["heartbeat_commands"] = beats
        if count:
            out[unit] = count
            out[f"per_{unit}"] = round(total / count, 2)
            # Heartbeats go on during the phase: what the phase itself cost.
            out[f"per_{unit}_without_heartbeats"] = round((total - beats) / count, 2)
        self.phases[name] = out
        log(f"  {name}: {total} commands in {seconds:.1f} s"
            + (f", {out[f'per_{unit}_without_heartbeats']} per {unit} without heartbeats"
               if count else f", {out['per_second']}/s"), self.quiet)
        return out


async def wait_first_packet(bot: ListenerBot, timeout: float = 5.0) -> int:
    """monotonic_ns of the first RTP packet on any of the bot's m-lines."""
    deadline = time.monotonic() + timeout
    while True:
        firsts = [s.first_ns for s in bot.mids.values() if s.packets]
        if firsts:
            return min(firsts)
        if time.monotonic() > deadline:
            raise TimeoutError("no audio packet")
        await asyncio.sleep(0.001)


async def director(entry: cs.Node, stream: str = cs.STREAM) -> dict[str, Any]:
    """POST /api/director/subscribe without a token (the nodes run --open-viewing '*'); in a
    thread, so the bots' clocks in this loop keep running."""
    reply = await asyncio.to_thread(cs.http_json, f"{entry.base}/api/director/subscribe",
                                    {"streamName": stream}, None)
    data: dict[str, Any] = reply["data"]
    return data


async def redis_bench(args: argparse.Namespace) -> dict[str, Any]:
    extra = ["--open-viewing", "*"]
    with cs.cluster(["a", "b"], None, extra) as (redis, nodes):
        a = nodes[0]
        meter = RedisMeter(redis, nodes, args.quiet)
        room = cs.Room()
        viewers: list[ListenerBot] = []
        try:
            await asyncio.sleep(args.idle)
            meter.phase("idle")
            room.add_publishers(a.ws)
            await room.start_publishers()
            await asyncio.sleep(2.0)
            meter.phase("publish", len(room.publishers), "publish")

            # Joins one at a time, each heard before the next (the viewer-count writes are
            # coalesced over 0.2 s, so this is the most a join can cost).
            for i in range(args.joins):
                node = nodes[i % 2]
                bot = ListenerBot(node.ws + "/ws/v2/sub", cs.STREAM, room.book,
                                  slots=cs.TALKERS, certificate=room.certificate)
                await bot.start()
                viewers.append(bot)
                await wait_first_packet(bot)
                await asyncio.sleep(args.pace)
            meter.phase("joins_direct_paced", args.joins, "join")

            for i in range(args.joins):
                data = await director(nodes[i % 2])
                bot = ListenerBot(data["urls"][0], cs.STREAM, room.book, slots=cs.TALKERS,
                                  token=data["jwt"], certificate=room.certificate)
                await bot.start()
                viewers.append(bot)
                await wait_first_packet(bot)
                await asyncio.sleep(args.pace)
            meter.phase("joins_director_paced", args.joins, "join")

            burst = [ListenerBot(nodes[i % 2].ws + "/ws/v2/sub", cs.STREAM, room.book,
                                 slots=cs.TALKERS, certificate=room.certificate)
                     for i in range(args.burst)]
            errors = await cs.join_all([v.start(timeout=30) for v in burst], 16, "burst joined",
                                       args.quiet)
            viewers += [v for v, e in zip(burst, errors, strict=True) if e is None]
            await asyncio.sleep(1.0)
            meter.phase("joins_burst", args.burst, "join")

            await asyncio.sleep(1.0)
            meter.phase("settle")
            received0 = sum(v.packets for v in viewers)
            await asyncio.sleep(args.steady)
            steady = meter.phase("steady")
            forwarded = sum(v.packets for v in viewers) - received0
            steady["forwarded_packets"] = forwarded
            steady["forwarded_pps"] = round(forwarded / steady["seconds"], 1)
            steady["viewers"] = len(viewers)
            other = steady["commands"] - steady["heartbeat_commands"]
            steady["non_heartbeat_per_second"] = round(other / steady["seconds"], 3)
            steady["non_heartbeat_per_forwarded_packet"] = (
                round(other / forwarded, 7) if forwarded else None)

            await asyncio.gather(*(v.stop() for v in viewers), return_exceptions=True)
            count = len(viewers)
            viewers = []
            await asyncio.sleep(2.0)
            meter.phase("leaves", count, "leave")
            await room.stop()
            await asyncio.sleep(2.0)
            meter.phase("unpublish", len(room.publishers), "unpublish")
        finally:
            await asyncio.gather(*(v.stop() for v in viewers), return_exceptions=True)
            await room.stop()
        views = {n.name: n.cluster() for n in nodes}
    return {"phases": meter.phases,
            "nodes_at_end": {k: {"redis": v["redis"], "busMessages": v["busMessages"]}
                             for k, v in views.items()}}


# --- 4. join time through the Director ------------------------------------------------------


async def one_join(entry: cs.Node, room: cs.Room,
                   names: dict[int, str]) -> tuple[dict[str, Any], ListenerBot]:
    """Director POST to `entry`, view on the node it names; times from the POST."""
    t0 = time.monotonic_ns()
    data = await director(entry)
    t1 = time.monotonic_ns()
    url = data["urls"][0]
    bot = ListenerBot(url, cs.STREAM, room.book, slots=cs.TALKERS, token=data["jwt"],
                      certificate=room.certificate)
    await bot.start()
    t2 = time.monotonic_ns()
    first = await wait_first_packet(bot)
    port = urllib.parse.urlsplit(url).port or 0
    sample = {"placed": names.get(port, str(port)),
              "director_ms": round((t1 - t0) / 1e6, 3),
              "connected_ms": round((t2 - t0) / 1e6, 3),
              "first_packet_ms": round((first - t0) / 1e6, 3)}
    return sample, bot


def join_summary(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("director_ms", "connected_ms", "first_packet_ms"):
        out[key] = cs.rounded(common.percentiles([s[key] for s in samples]))
    placed: dict[str, int] = {}
    for s in samples:
        placed[s["placed"]] = placed.get(s["placed"], 0) + 1
    out["placed"] = placed
    return out


async def join_phases(entries: Sequence[cs.Node], names: dict[int, str], room: cs.Room,
                      args: argparse.Namespace, label: str) -> dict[str, Any]:
    """`cold`: each viewer leaves after its first packet and the next comes `cold_pause` s
    later (an edge placed anew must pull the stream again); `warm`: viewers stay."""
    out: dict[str, Any] = {}
    cold: list[dict[str, Any]] = []
    for i in range(args.cold_joins):
        entry = entries[i % len(entries)]
        sample, bot = await one_join(entry, room, names)
        sample["entry"] = entry.name
        cold.append(sample)
        await bot.stop()
        await asyncio.sleep(args.cold_pause)
    warm: list[dict[str, Any]] = []
    bots: list[ListenerBot] = []
    try:
        for i in range(args.joins):
            entry = entries[i % len(entries)]
            sample, bot = await one_join(entry, room, names)
            sample["entry"] = entry.name
            bots.append(bot)
            warm.append(sample)
            await asyncio.sleep(args.pause)
    finally:
        await asyncio.gather(*(b.stop() for b in bots), return_exceptions=True)
    for name, samples in (("cold", cold), ("warm", warm)):
        if samples:
            out[name] = {"summary": join_summary(samples), "samples": samples}
            s = out[name]["summary"]
            log(f"  {label} {name}: first packet p50 {s['first_packet_ms']['p50']} ms, p95 "
                f"{s['first_packet_ms']['p95']} ms (director p50 {s['director_ms']['p50']}, "
                f"connected p50 {s['connected_ms']['p50']}); placed {s['placed']}", args.quiet)
    return out


async def join_bench(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    extra = ["--open-viewing", "*", "--node-capacity", str(args.node_capacity)]
    if args.baseline:
        node = cs.start_node("lone", None, None, ["--open-viewing", "*"])
        room = cs.Room()
        try:
            room.add_publishers(node.ws)
            await room.start_publishers()
            await asyncio.sleep(1.0)
            result["lone_node"] = await join_phases([node], {node.http: "lone"}, room, args,
                                                    "lone node")
        finally:
            await room.stop()
            node.stop()
    with cs.cluster(["a", "b", "c"], None, extra) as (_redis, nodes):
        room = cs.Room()
        try:
            room.add_publishers(nodes[0].ws)  # the origin: a
            await room.start_publishers()
            await asyncio.sleep(1.0)
            names = {n.http: n.name for n in nodes}
            result["cluster"] = await join_phases(nodes, names, room, args, "3 nodes")
        finally:
            await room.stop()
    every = [s for phase in result["cluster"].values() for s in phase["samples"]]
    overall = join_summary(every)
    result["summary"] = {"cluster_all_joins": overall,
                         "p50_within_target": overall["first_packet_ms"]["p50"]
                         <= JOIN_P50_TARGET_MS}
    result["target_p50_ms_at_most"] = JOIN_P50_TARGET_MS
    return result


# --- command line ---------------------------------------------------------------------------


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k != "fn"}


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    top = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                  formatter_class=argparse.RawDescriptionHelpFormatter,
                                  epilog="\n".join(__doc__.splitlines()[2:7]))
    sub = top.add_subparsers(dest="bench", required=True)
    fmt = argparse.ArgumentDefaultsHelpFormatter

    def add(name: str, help_text: str, fn: Callable[[argparse.Namespace], Any],
            bots_cpu: int) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=fmt)
        p.add_argument("--output", default=str(common.RESULTS_DIR / f"cluster-{name}.json"),
                       help="JSON result file")
        p.add_argument("--quiet", action="store_true", help="no progress lines")
        p.add_argument("--bots-cpu", type=int, default=bots_cpu,
                       help="core for this process (-1: not pinned)")
        p.set_defaults(fn=fn)
        return p

    def load_options(p: argparse.ArgumentParser, listeners: str) -> None:
        p.add_argument("--listeners", type=ints, default=ints(listeners),
                       help="comma-separated sweep of listener counts")
        p.add_argument("--duration", type=float, default=10.0, help="measured window, s")
        p.add_argument("--warmup", type=float, default=3.0, help="s after all joined")
        p.add_argument("--latency-listeners", type=int, default=20,
                       help="listeners that decrypt and measure latency (the rest only count)")
        p.add_argument("--concurrency", type=int, default=16, help="handshakes at once")
        p.add_argument("--no-drain", dest="drain", action="store_false",
                       help="bots receive through asyncio instead of the C drain")
        p.add_argument("--poll-ms", type=float, default=4.0,
                       help="the C drain polls the listener sockets every this many ms")
        p.add_argument("--partial", action="store_true",
                       help="rewrite the output after every point")

    p = add("relay", "CPU per forwarded packet on an edge fed by a relay / on the origin",
            relay, 0)
    load_options(p, "100,250,400")
    p.add_argument("--windows", type=int, default=3, help="steady windows per point")
    p.add_argument("--server-cpu", type=int, default=1,
                   help="core for both nodes and redis-server (-1: not pinned)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the lone-node (no Redis) run of the same workload")

    p = add("workers", "--workers 1 vs 2: capacity and CPU per forwarded packet", workers_bench, -1)
    load_options(p, "400,600,800,1000,1200,1400,1600,1800")
    p.add_argument("--workers", type=ints, default=ints("1,2"), help="worker counts to compare")
    p.add_argument("--stop-loss", type=float, default=5.0,
                   help="stop a worker count's sweep after a point with more loss (%%)")

    p = add("redis", "Redis commands per publish, per join, per second", redis_bench, -1)
    p.add_argument("--idle", type=float, default=10.0, help="idle window before publishing, s")
    p.add_argument("--steady", type=float, default=10.0, help="steady window with media, s")
    p.add_argument("--joins", type=int, default=20, help="paced joins (direct, then Director)")
    p.add_argument("--pace", type=float, default=0.5, help="s between paced joins")
    p.add_argument("--burst", type=int, default=100, help="viewers joined at once")

    p = add("join", "Director POST to the first audio packet on a 3-node cluster", join_bench, -1)
    p.add_argument("--joins", type=int, default=50, help="warm joins (viewers stay)")
    p.add_argument("--cold-joins", type=int, default=30,
                   help="cold joins (each viewer leaves before the next one comes)")
    p.add_argument("--pause", type=float, default=0.2, help="s between warm joins")
    p.add_argument("--cold-pause", type=float, default=1.5,
                   help="s between cold joins (the edge drops its relay meanwhile)")
    p.add_argument("--node-capacity", type=int, default=20,
                   help="--node-capacity of the nodes (the Director spreads viewers over "
                        "nodes within 5 %% of capacity of the least loaded)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the lone-node run")

    args = top.parse_args()
    if getattr(args, "server_cpu", 0) is not None and getattr(args, "server_cpu", 0) < 0:
        args.server_cpu = None
    if args.bots_cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.bots_cpu})
    fn = args.fn
    params = params_of(args)
    t0 = time.monotonic()
    result = run_uvloop(fn(args))
    result["machine"] = {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg(),
                         "run_s": round(time.monotonic() - t0, 1)}
    common.write_result(args.output, params, result)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
