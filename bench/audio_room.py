#!/usr/bin/env python3
"""Audio room, hubbub vs Janus: 3 talking publishers, L listeners each receiving all 3 speakers.

Per server and L, a fresh server process pinned to one core (`--server-cpu`, taskset) and this
load generator pinned to another (`--bots-cpu`). hubbub: listeners view with 3 multiplexed
slots (the main m-line is pinned to a 4th, silent publisher that sends one level-127 frame per
second); Janus: one VideoRoom multistream subscriber per listener for the 3 feeds. Same packets
on the wire: 50 pps tagged Opus with RFC 6464 levels, SRTP AES_CM_128_HMAC_SHA1_80 or GCM.

Measured over a steady window after everybody joined: server CPU seconds (utime+stime from
/proc/<pid>/stat) per million packets the listeners received, loss (sequence gaps per SSRC on
every listener), p50/p99 one-way latency (publisher send -> listener arrival, same process
clock, measured by `--latency-listeners` decrypting listeners; the rest count packets from the
clear RTP header without decrypting), server RSS growth per listener, and this process's own
CPU (the bots must not be the bottleneck).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR / "janus"))
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402
import janus_server  # noqa: E402

from hubbub.client.bots import FrameBook, ListenerBot, PublisherBot, Schedule, encode_tone  # noqa: E402
from hubbub.client.bots import run as run_uvloop  # noqa: E402
from hubbub.client.bots.drain import Drain  # noqa: E402
from hubbub.client.bots.janus import (  # noqa: E402
    CountingPeer,
    JanusApi,
    JanusListenerBot,
    JanusPublisherBot,
    use_counting_peer,
)
from hubbub.client.bots.publisher import PTIME  # noqa: E402
from hubbub.media.dtls import Certificate  # noqa: E402

HOST = "127.0.0.1"
ROOM = 4242
TALKERS = 3
MAX_LOSS_PCT = 0.1
MAX_P99_MS = 5.0


def log(msg: str, quiet: bool = False, end: str = "\n") -> None:
    if not quiet:
        print(msg, end=end, file=sys.stderr, flush=True)


# --- servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def hubbub_server(cpu: int | None) -> Iterator[tuple[str, int]]:
    """`hubbub serve` on free loopback ports, pinned to `cpu`; yields (ws base URL, pid)."""
    with common.server(None, cpu=cpu) as (base, pid):
        assert pid is not None
        yield base, pid


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# --- one point ----------------------------------------------------------------------------


@dataclass
class Room:
    """The bots of one point, whichever server they talk to."""

    book: FrameBook = field(default_factory=FrameBook)
    certificate: Certificate = field(default_factory=Certificate)
    talkers: list[PublisherBot] = field(default_factory=list)
    others: list[PublisherBot] = field(default_factory=list)  # hubbub's silent main source
    listeners: list[ListenerBot] = field(default_factory=list)
    counting: list[CountingPeer | None] = field(default_factory=list)

    def add_listener(self, bot: ListenerBot, full: bool, drain: Drain | None) -> None:
        bot.peer.drain = drain  # kept by use_counting_peer
        self.listeners.append(bot)
        self.counting.append(None if full else use_counting_peer(bot))

    def totals(self) -> tuple[int, int]:
        """(packets, lost) over every listener."""
        packets = lost = 0
        for bot, peer in zip(self.listeners, self.counting, strict=True):
            if peer is None:
                packets += sum(s.packets for s in bot.mids.values())
                lost += sum(s.lost for s in bot.mids.values())
            else:
                p, n = peer.totals()
                packets += p
                lost += n
        return packets, lost

    def latencies_ms(self) -> list[float]:
        return [x / 1e6 for bot, peer in zip(self.listeners, self.counting, strict=True)
                if peer is None for s in bot.mids.values() for x in s.latency_ns]

    def clear_latencies(self) -> None:
        for bot in self.listeners:
            for s in bot.mids.values():
                del s.latency_ns[:]


async def _gather_limited(coros: Sequence[Any], concurrency: int, what: str,
                          quiet: bool) -> list[BaseException | None]:
    """Run with at most `concurrency` at once; returns each one's exception or None."""
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(coro: Any) -> None:
        nonlocal done
        async with gate:
            await coro
        done += 1
        if done % 25 == 0 or done == len(coros):
            log(f"\r  {what} {done}/{len(coros)}", quiet, end="")

    results = await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)
    log("", quiet)
    return [r if isinstance(r, BaseException) else None for r in results]


def timed_listeners(listeners: int, count: int) -> set[int]:
    """Indexes of the decrypting listeners, spread evenly over the join order (the last one
    included): the server fans a packet out in join order, so the first listeners alone would
    see only the start of each burst."""
    count = min(count, listeners)
    return {round((k + 1) * listeners / count) - 1 for k in range(count)} if count else set()


async def build_hubbub(room: Room, base: str, listeners: int, full: set[int],
                       drain: Drain | None) -> list[Any]:
    pub, sub = base + "/ws/v2/pub", base + "/ws/v2/sub"
    for i in range(TALKERS):
        room.talkers.append(PublisherBot(pub, "room", encode_tone(i, 300 + 50 * i), room.book,
                                         source_id=f"s{i}", dtx=False,
                                         certificate=room.certificate))
    # The main m-line is pinned to a silent source (no sourceId): one silence frame a second.
    room.others.append(PublisherBot(pub, "room", encode_tone(TALKERS, 200), room.book,
                                    schedule=Schedule.never(), dtx=True, dtx_keepalive=50,
                                    certificate=room.certificate))
    for i in range(listeners):
        room.add_listener(ListenerBot(sub, "room", room.book, slots=TALKERS,
                                      certificate=room.certificate), i in full, drain)
    return []


async def build_janus(room: Room, url: str, listeners: int, full: set[int],
                      drain: Drain | None) -> list[Any]:
    api = JanusApi(url)
    await api.open()
    handle = await api.attach()
    await api.request(handle, {"request": "create", "room": ROOM, "publishers": 8,
                               "audiocodec": "opus", "audiolevel_ext": True,
                               "notify_joining": False, "bitrate": 128000})
    for i in range(TALKERS):
        room.talkers.append(JanusPublisherBot(api, ROOM, encode_tone(i, 300 + 50 * i), room.book,
                                              dtx=False, certificate=room.certificate))
    talkers = room.talkers

    def feeds() -> list[int]:
        return [p.feed_id for p in talkers if isinstance(p, JanusPublisherBot)]

    for i in range(listeners):
        room.add_listener(JanusListenerBot(api, ROOM, feeds, room.book,
                                           certificate=room.certificate), i in full, drain)
    return [api]


async def measure_point(kind: str, listeners: int, args: argparse.Namespace) -> dict[str, Any]:
    quiet = args.quiet
    full = timed_listeners(listeners, args.latency_listeners)
    drain = Drain(args.poll_ms / 1000 if args.poll_ms > 0 else None) if args.drain else None
    stack = contextlib.ExitStack()
    if kind == "hubbub":
        base, pid = stack.enter_context(hubbub_server(args.server_cpu))
    else:
        server = stack.enter_context(janus_server.running(
            rtp_ports=(args.janus_ports, args.janus_ports + 2 * listeners + 100),
            cpu=args.server_cpu, event_loops=args.janus_event_loops))
        base, pid = server.url, server.pid
    room = Room()
    apis: list[Any] = []
    with stack:
        try:
            if kind == "hubbub":
                apis = await build_hubbub(room, base, listeners, full, drain)
            else:
                apis = await build_janus(room, base, listeners, full, drain)
            log(f"{kind} L={listeners}: server pid {pid}", quiet)
            publishers = room.talkers + room.others
            await asyncio.gather(*(p.start() for p in publishers))
            loop = asyncio.get_running_loop()
            t0 = loop.time() + 0.1
            # The talkers are spread over the 20 ms frame, as independent senders would be: in
            # phase, every server packet would queue behind the other talkers' fan-outs.
            for i, p in enumerate(publishers):
                p.begin(t0 + (i % TALKERS) * PTIME / TALKERS)
            await asyncio.sleep(1.5)
            rss0 = rss_bytes(pid)
            joined_at = time.monotonic()
            errors = await _gather_limited([v.start(timeout=30) for v in room.listeners],
                                           args.concurrency, "listeners joined", quiet)
            join_s = time.monotonic() - joined_at
            # A listener that could not join (server too busy to finish ICE/DTLS in 30 s) is
            # reported and left out of the counts; the point then misses the target.
            join_failures = sum(e is not None for e in errors)
            if join_failures:
                log(f"  {join_failures} listeners failed to join: {errors[0]!r}", quiet)
                keep = [i for i, e in enumerate(errors) if e is None]
                room.listeners = [room.listeners[i] for i in keep]
                room.counting = [room.counting[i] for i in keep]
            await asyncio.sleep(args.warmup)
            cpu0, bots0 = common.process_cpu(pid), time.process_time()
            sent0 = sum(p.sent for p in room.talkers)
            packets0, lost0 = room.totals()
            room.clear_latencies()
            w0 = time.monotonic()
            end = w0 + args.duration
            while (now := time.monotonic()) < end:
                await asyncio.sleep(min(1.0, end - now))
                packets, _ = room.totals()
                log(f"\r  measuring {time.monotonic() - w0:4.1f}/{args.duration:.0f} s  "
                    f"received {packets - packets0}", quiet, end="")
            log("", quiet)
            window = time.monotonic() - w0
            cpu1, bots1 = common.process_cpu(pid), time.process_time()
            sent1 = sum(p.sent for p in room.talkers)
            packets1, lost1 = room.totals()
            rss1 = rss_bytes(pid)
            latencies = room.latencies_ms()
        finally:
            await asyncio.gather(*(p.stop() for p in room.talkers + room.others),
                                 return_exceptions=True)
            await asyncio.gather(*(v.stop() for v in room.listeners), return_exceptions=True)
            for api in apis:
                await api.close()
            if drain is not None:
                drain.close()
    assert cpu0 is not None and cpu1 is not None
    received = packets1 - packets0
    lost = lost1 - lost0
    server_cpu = cpu1 - cpu0
    lat = common.percentiles(latencies)
    loss_pct = 100.0 * lost / (received + lost) if received + lost else 100.0
    expected = (sent1 - sent0) * listeners
    result = {
        "server": kind,
        "listeners": listeners,
        "bots_receive": (f"C drain (recvmmsg, SO_TIMESTAMPNS, poll {args.poll_ms} ms)"
                         if drain else "asyncio"),
        "window_s": round(window, 3),
        "join_s": round(join_s, 2),
        "join_failures": join_failures,
        "forwarded_packets": received,
        "forwarded_pps": round(received / window, 1),
        "talker_packets_expected": expected,
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_share": round(server_cpu / window, 3),
        "cpu_s_per_million_packets": round(server_cpu / received * 1e6, 3) if received else None,
        "loss_pct": round(loss_pct, 4),
        "latency_ms": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in lat.items()},
        "rss_before_listeners_mb": round(rss0 / 2**20, 1),
        "rss_after_mb": round(rss1 / 2**20, 1),
        "rss_per_listener_kb": round((rss1 - rss0) / listeners / 1024, 1),
        "bots_cpu_s": round(bots1 - bots0, 3),
        "bots_cpu_share": round((bots1 - bots0) / window, 3),
    }
    p99 = lat["p99"]
    result["within_target"] = bool(loss_pct < MAX_LOSS_PCT and p99 is not None
                                   and p99 < MAX_P99_MS and not join_failures)
    result["bots_saturated"] = result["bots_cpu_share"] > 0.9
    return result


# --- sweep, summary, plot -----------------------------------------------------------------


def capacity(points: list[dict[str, Any]]) -> int:
    """Largest L within target, counting only up to the first L that failed."""
    best = 0
    for point in sorted(points, key=lambda p: p["listeners"]):
        if not point["within_target"]:
            break
        best = point["listeners"]
    return best


def summarize(points: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for p in points:
        by.setdefault(p["server"], {})[p["listeners"]] = p
    summary: dict[str, Any] = {
        "capacity": {k: capacity(list(v.values())) for k, v in by.items()},
        "bots_saturated_at": {k: sorted(L for L, p in v.items() if p["bots_saturated"])
                              for k, v in by.items()},
    }
    if "hubbub" in by and "janus" in by:
        ratios = {}
        for L in sorted(set(by["hubbub"]) & set(by["janus"])):
            h, j = by["hubbub"][L], by["janus"][L]
            if h["cpu_s_per_million_packets"] and j["cpu_s_per_million_packets"]:
                ratios[L] = round(h["cpu_s_per_million_packets"]
                                  / j["cpu_s_per_million_packets"], 2)
        summary["cpu_per_packet_ratio_hubbub_over_janus"] = ratios
        if ratios:
            top = max(ratios)
            summary["line"] = (
                f"hubbub/Janus CPU per forwarded packet = {ratios[top]:.2f}x at L={top} "
                f"(all L: {ratios}); capacity (loss<{MAX_LOSS_PCT}%, p99<{MAX_P99_MS} ms, one "
                f"core): hubbub {summary['capacity']['hubbub']}, "
                f"janus {summary['capacity']['janus']}")
    return summary


def plot(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    panels = [("cpu_s_per_million_packets", "server CPU s / million forwarded packets"),
              ("loss_pct", "loss %"), ("p99", "p99 one-way latency (ms)"),
              ("rss_per_listener_kb", "server RSS per listener (KiB)")]
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for server in sorted({p["server"] for p in points}):
            rows = sorted((p for p in points if p["server"] == server),
                          key=lambda p: p["listeners"])
            xs = [p["listeners"] for p in rows]
            ys = [p["latency_ms"]["p99"] if key == "p99" else p[key] for p in rows]
            ax.plot(xs, ys, marker="o", label=server)
        ax.set_title(title)
        ax.set_xlabel("listeners (3 speakers each)")
        ax.set_xscale("log", base=2)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("audio room: 3 talking publishers, server pinned to one core")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


async def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = []
    for kind in args.servers:
        for listeners in args.listeners:
            point = await measure_point(kind, listeners, args)
            points.append(point)
            lat = point["latency_ms"]
            log(f"  {kind} L={listeners}: {point['cpu_s_per_million_packets']} cpu-s/Mpkt, "
                f"server {point['server_cpu_share']:.0%} core, loss {point['loss_pct']}%, "
                f"p50 {lat['p50']} ms p99 {lat['p99']} ms, "
                f"{point['rss_per_listener_kb']} KiB/listener, bots "
                f"{point['bots_cpu_share']:.0%} core", args.quiet)
            if args.partial:
                common.write_result(args.output, vars(args), {"points": points, "partial": True})
            if point["loss_pct"] > args.stop_loss or point["join_failures"]:
                log(f"  {kind}: loss above {args.stop_loss}%, sweep stops here", args.quiet)
                break
    return points


def main() -> None:
    p = common.parser(__doc__.splitlines()[0], "audio_room.json", server=False)
    p.add_argument("--servers", default="hubbub,janus",
                   type=lambda s: [x for x in s.split(",") if x],
                   help="comma-separated: hubbub, janus")
    p.add_argument("--listeners", default="50,100,200,400,800",
                   type=lambda s: [int(x) for x in s.split(",") if x],
                   help="comma-separated sweep of L")
    p.add_argument("--duration", type=float, default=10.0, help="measured window, s")
    p.add_argument("--warmup", type=float, default=3.0, help="s after all joined before it")
    p.add_argument("--latency-listeners", type=int, default=20,
                   help="listeners that decrypt and measure latency (the rest only count)")
    p.add_argument("--concurrency", type=int, default=16, help="handshakes at once")
    p.add_argument("--server-cpu", type=int, default=1, help="core for the server (-1: none)")
    p.add_argument("--bots-cpu", type=int, default=0, help="core for this process (-1: none)")
    p.add_argument("--janus-ports", type=int, default=20000, help="first Janus RTP port")
    p.add_argument("--janus-event-loops", type=int, default=0,
                   help="Janus event_loops (0 = its default, one thread per handle)")
    p.add_argument("--stop-loss", type=float, default=5.0,
                   help="stop a server's sweep after a point with more loss (%%)")
    p.add_argument("--no-drain", dest="drain", action="store_false",
                   help="bots receive through asyncio even when the C drain is built")
    p.add_argument("--poll-ms", type=float, default=4.0,
                   help="the C drain polls the listener sockets every this many ms instead of "
                        "sleeping on them (0: wake per datagram; see hubbub.client.bots.drain)")
    p.add_argument("--partial", action="store_true",
                   help="rewrite the output after every point (long sweeps)")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="no run: combine the points of earlier result files (later files "
                        "replace earlier points of the same server and L)")
    p.add_argument("--plot", default=None, help="PNG path (default: output with .png)")
    args = p.parse_args()
    for kind in args.servers:
        if kind not in ("hubbub", "janus"):
            p.error(f"unknown server {kind!r}")
    if "janus" in args.servers and not janus_server.available():
        p.error("janus is not installed (apt install janus)")
    if args.server_cpu < 0:
        args.server_cpu = None
    if args.bots_cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.bots_cpu})
    if args.merge:
        merged: dict[tuple[str, int], dict[str, Any]] = {}
        for name in args.merge:
            for point in json.loads(Path(name).read_text())["points"]:
                merged[(point["server"], point["listeners"])] = point
        points = sorted(merged.values(), key=lambda p: (p["server"], p["listeners"]))
    else:
        args.drain = args.drain and Drain.available()
        points = run_uvloop(sweep(args))
    summary = summarize(points)
    result = {"points": points, "summary": summary,
              "targets": {"loss_pct_below": MAX_LOSS_PCT, "p99_ms_below": MAX_P99_MS},
              "machine": {"cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()}}
    common.write_result(args.output, vars(args), result)
    plot_path = Path(args.plot) if args.plot else Path(args.output).with_suffix(".png")
    try:
        plot(points, plot_path)
    except ImportError:
        log("matplotlib missing: no plot (pip install -e '.[bench]')", args.quiet)
    print(summary.get("line") or json.dumps(summary))


if __name__ == "__main__":
    main()
