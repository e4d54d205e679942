#!/usr/bin/env python3
"""Join storm: N listeners join one stage as fast as the bots can, while other media flows.

Per phase, a fresh `hubbub serve` pinned to `--server-cpu` carries:

- a canary room (`media_junk.Canary`: 4 always-talking publishers, 2 listeners with 3
  multiplexed slots, 200 packets/s each), joined before the storm: media already flowing;
- a stage: one main publisher. In the `quiet` phase it is silent (DTX, one frame a second),
  so the server's CPU during the storm is the joins' own; in the `live` phase it talks (50
  packets/s), so every listener that joined adds to what the server forwards meanwhile.

Then `--listeners` bots (this process, pinned to `--bots-cpu`, uvloop; receiving through the C
`Drain`, counting SRTP packets without decrypting) join the stage, at most `--concurrency` at
a time. A join is a bot's whole `view`: WebSocket connect, `view` command and answer, ICE
checks, DTLS handshake, SRTP keys. Reported per phase:

- joins/s over the storm (first connect to last join) and join time p50/p95/p99/max;
- the server's CPU per join (its CPU during the storm less what the canary alone cost in the
  same span, measured just before) and the joins one server core would do at that cost;
- the canary's loss during the storm, and the stage listeners' loss over `--window` s after;
- server RSS per listener: RSS with the N listeners connected (after `--settle` s) less RSS
  before the storm, over N (`quiet` phase; `live` adds nothing per listener but the rate);
- the bots' CPU share: near 1 means the bots, not the server, set the join rate.

`--server-src DIR` runs the server from another checkout (an export of an older commit) for a
before/after comparison; flags it does not know are left out.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402
from media_junk import Canary  # noqa: E402

from hubbub.client.bots import FrameBook, ListenerBot, PublisherBot, Schedule, encode_tone  # noqa: E402
from hubbub.client.bots import run as run_uvloop  # noqa: E402
from hubbub.client.bots.drain import Drain  # noqa: E402
from hubbub.client.bots.janus import CountingPeer, use_counting_peer  # noqa: E402
from hubbub.media.dtls import Certificate  # noqa: E402

MAX_CANARY_LOSS = 0.01  # the target: < 1 % during a 1,000-listener storm


def log(msg: str, quiet: bool, end: str = "\n") -> None:
    if not quiet:
        print(msg, end=end, file=sys.stderr, flush=True)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _loss(before: tuple[int, int], after: tuple[int, int]) -> tuple[int, int, float | None]:
    packets, lost = after[0] - before[0], after[1] - before[1]
    return packets, lost, (lost / (packets + lost) if packets + lost else None)


def _counted(peers: list[CountingPeer]) -> tuple[int, int]:
    packets = lost = 0
    for peer in peers:
        p, n = peer.totals()
        packets += p
        lost += n
    return packets, lost


async def phase(args: Any, name: str) -> dict[str, Any]:
    live = name == "live"
    quiet = args.quiet
    drain = Drain(0.005) if Drain.available() else None
    with common.server(None, ["--no-spaces"], cpu=args.server_cpu, src=args.server_src,
                       log_name=f".join_storm-{name}.log") as (base, server_pid):
        assert server_pid is not None
        pid = server_pid
        canary = Canary(base)
        book = FrameBook()
        cert = Certificate()
        talk: dict[str, Any] = ({"dtx": False} if live else
                                {"dtx": True, "schedule": Schedule.never(), "dtx_keepalive": 50})
        stage = PublisherBot(base + "/ws/v2/pub", "stage", encode_tone(7, 600), book,
                             certificate=cert, **talk)
        bots = [ListenerBot(base + "/ws/v2/sub", "stage", book, certificate=cert,
                            record_latency=False) for _ in range(args.listeners)]
        counting = []
        for bot in bots:
            bot.peer.drain = drain
            counting.append(use_counting_peer(bot))
        join_ms: list[float] = []
        failures: list[str] = []
        try:
            await canary.start()
            await stage.start()
            stage.begin(asyncio.get_running_loop().time() + 0.05)
            await asyncio.sleep(1.0)
            # What the canary (and a silent stage) cost before the storm: subtracted below.
            cpu_a, t_a = common.process_cpu(pid), time.monotonic()
            await asyncio.sleep(args.baseline)
            cpu_b, t_b = common.process_cpu(pid), time.monotonic()
            assert cpu_a is not None and cpu_b is not None
            baseline_share = (cpu_b - cpu_a) / (t_b - t_a)
            rss0 = rss_bytes(pid)
            canary0 = canary.totals()
            gate = asyncio.Semaphore(args.concurrency)

            async def join(bot: ListenerBot) -> None:
                async with gate:
                    t = time.perf_counter()
                    try:
                        await bot.start(timeout=args.join_timeout)
                    except Exception as exc:
                        failures.append(repr(exc))
                        return
                    join_ms.append((time.perf_counter() - t) * 1000)
                    done = len(join_ms) + len(failures)
                    if done % 100 == 0:
                        log(f"\r  {name}: {done}/{len(bots)} joined", quiet, end="")

            cpu0, bots0, t0 = common.process_cpu(pid), time.process_time(), time.monotonic()
            await asyncio.gather(*(join(b) for b in bots))
            t1 = time.monotonic()
            cpu1, bots1 = common.process_cpu(pid), time.process_time()
            log("", quiet)
            await asyncio.sleep(0.5)  # packets in flight at the storm's end
            canary1 = canary.totals()
            await asyncio.sleep(args.settle)
            rss1 = rss_bytes(pid)
            joined = [p for p, bot in zip(counting, bots, strict=True) if bot.peer.srtp]
            stage0 = _counted(joined)
            await asyncio.sleep(args.window)
            stage1 = _counted(joined)
        finally:
            await canary.stop()
            await stage.stop()
            await asyncio.gather(*(b.stop() for b in bots), return_exceptions=True)
            if drain is not None:
                drain.close()
    assert cpu0 is not None and cpu1 is not None
    storm_s = t1 - t0
    joins = len(join_ms)
    join_cpu = (cpu1 - cpu0) - baseline_share * storm_s
    c_packets, c_lost, c_loss = _loss(canary0, canary1)
    s_packets, s_lost, s_loss = _loss(stage0, stage1)
    result = {
        "phase": name,
        "stage": "talking, 50 packets/s" if live else "silent (DTX, 1 frame/s)",
        "listeners": args.listeners,
        "joined": joins,
        "failures": len(failures),
        "failure_example": failures[0] if failures else None,
        "storm_s": round(storm_s, 3),
        "joins_per_s": round(joins / storm_s, 1),
        "join_ms": {k: (round(v, 1) if isinstance(v, float) else v)
                    for k, v in common.percentiles(join_ms).items()},
        "server_cpu_s": round(cpu1 - cpu0, 3),
        "server_cpu_share": round((cpu1 - cpu0) / storm_s, 3),
        "server_cpu_baseline_share": round(baseline_share, 3),
        "server_ms_per_join": round(join_cpu / joins * 1000, 3) if joins else None,
        "joins_per_server_core_s": round(joins / join_cpu) if joins and join_cpu > 0 else None,
        "bots_cpu_share": round((bots1 - bots0) / storm_s, 3),
        "canary": {"packets": c_packets, "lost": c_lost,
                   "loss": round(c_loss, 5) if c_loss is not None else None},
        "stage_after": {"window_s": args.window, "listeners": len(joined),
                        "packets": s_packets, "lost": s_lost,
                        "loss": round(s_loss, 5) if s_loss is not None else None},
        "rss_before_mb": round(rss0 / 2**20, 1),
        "rss_after_mb": round(rss1 / 2**20, 1),
        "rss_per_listener_kb": round((rss1 - rss0) / max(1, joins) / 1024, 1),
    }
    log(f"  {name}: {joins} joined in {storm_s:.2f} s = {result['joins_per_s']}/s; join p50 "
        f"{result['join_ms']['p50']} ms p99 {result['join_ms']['p99']} ms; server "
        f"{result['server_ms_per_join']} ms CPU/join (one core: "
        f"{result['joins_per_server_core_s']}/s); bots CPU {result['bots_cpu_share']}; "
        f"canary loss {c_loss}; stage loss after {s_loss}; "
        f"RSS {result['rss_per_listener_kb']} KB/listener", quiet)
    return result


def _median(values: list[Any]) -> Any:
    ordered = sorted(v for v in values if v is not None)
    return ordered[len(ordered) // 2] if ordered else None


async def main(args: Any) -> dict[str, Any]:
    phases = [await phase(args, name) for _ in range(args.repeat) for name in args.phases]
    summary: dict[str, Any] = {}
    # Medians over --repeat runs of each phase; the CPU per join also as the best run (the
    # machine is shared: another tenant's work only ever adds to what a run measures).
    quiet = [p for p in phases if p["phase"] == "quiet"]
    if quiet:
        summary |= {
            "joins_per_s": _median([p["joins_per_s"] for p in quiet]),
            "join_p50_ms": _median([p["join_ms"]["p50"] for p in quiet]),
            "join_p99_ms": _median([p["join_ms"]["p99"] for p in quiet]),
            "server_ms_per_join": _median([p["server_ms_per_join"] for p in quiet]),
            "server_ms_per_join_best": min(p["server_ms_per_join"] or 1e9 for p in quiet),
            "joins_per_server_core_s": _median([p["joins_per_server_core_s"] for p in quiet]),
            "rss_per_listener_kb": _median([p["rss_per_listener_kb"] for p in quiet]),
            "failures": sum(p["failures"] for p in quiet)}
    live = [p for p in phases if p["phase"] == "live"]
    if live:
        summary |= {
            "live_joins_per_s": _median([p["joins_per_s"] for p in live]),
            "live_join_p99_ms": _median([p["join_ms"]["p99"] for p in live]),
            "canary_loss_during_storm": max(p["canary"]["loss"] or 0 for p in live),
            "stage_loss_after_storm": max(p["stage_after"]["loss"] or 0 for p in live),
            "live_failures": sum(p["failures"] for p in live)}
    return {"phases": phases, "summary": summary, "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg()}


if __name__ == "__main__":
    p = common.parser(__doc__.split("\n\n")[0], "join_storm.json", server=False)
    p.add_argument("--listeners", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=100,
                   help="joins in flight at once")
    p.add_argument("--phases", type=lambda s: s.split(","), default=["quiet", "live"],
                   help="comma-separated: quiet (silent stage), live (talking stage)")
    p.add_argument("--baseline", type=float, default=3.0,
                   help="seconds of canary alone before the storm (the server's baseline CPU)")
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds after the storm before RSS is read")
    p.add_argument("--window", type=float, default=3.0,
                   help="seconds over which the stage listeners' loss is counted after")
    p.add_argument("--join-timeout", type=float, default=30.0)
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of each phase (fresh server each); the summary gives medians")
    p.add_argument("--server-cpu", type=int, default=1)
    p.add_argument("--bots-cpu", type=int, default=0)
    p.add_argument("--server-src", default=None,
                   help="run the server from this checkout (its src/ on PYTHONPATH)")
    args = p.parse_args()
    if args.bots_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.bots_cpu})
    result = run_uvloop(main(args))
    common.write_result(args.output, vars(args), result)
    for key, value in result["summary"].items():
        print(f"{key:28} {value}")
