#!/usr/bin/env python3
"""Multiplexer stability: needless slot switches in a steady two-speaker conversation.

Two publisher bots (sourceIds "a", "b") hold a conversation: turns of 2-5 s, some overlapping the
previous turn, others after a short pause (hubbub.client.bots.conversation). A silent main
publisher (no sourceId, sending level-127 silence frames so the server's media timeout keeps it
live) takes the main m-line so both speakers go to slots.
Listener bots have 3 slots. Once both speakers hold a slot, every further `vad` event is a
needless switch (there are 3 slots for 2 speakers). Target: 0 per minute, at most 1.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import common

from hubbub.client.bots import ListenerBot, Schedule, Swarm, conversation, run


def analyse(listener: ListenerBot, t0_ns: int, end_ns: int) -> dict[str, Any]:
    """vad events between the start and `end_ns` (the end of the schedules: publishers
    leaving afterwards empties slots, which is not a switch)."""
    holders: dict[str, str | None] = {}
    both_ns: int | None = None
    needless: list[dict[str, Any]] = []
    for at, mid, source in listener.vad:
        if at > end_ns:
            break
        if both_ns is not None:
            needless.append({"t_s": round((at - t0_ns) / 1e9, 3), "mid": mid, "sourceId": source})
        holders[mid] = source
        if both_ns is None and {"a", "b"} <= set(holders.values()):
            both_ns = at
    # Cross-check from the media: a slot whose sender changes after both were placed.
    media_changes = 0
    if both_ns is not None:
        for mid in listener.slot_mids:
            media_changes += sum(1 for at, _ in listener.mids[mid].changes if at > both_ns)
    minutes = (end_ns - both_ns) / 60e9 if both_ns is not None else 0.0
    return {
        "vad_events": sum(1 for at, _, _ in listener.vad if at <= end_ns),
        "both_placed_at_s": None if both_ns is None else round((both_ns - t0_ns) / 1e9, 3),
        "needless_switches": len(needless),
        "needless": needless[:50],
        "media_sender_changes_after_placed": media_changes,
        "minutes_observed": round(minutes, 3),
        "slot_packets": {mid: listener.mids[mid].packets for mid in listener.slot_mids},
        "slot_senders": {mid: listener.mids[mid].per_bot for mid in listener.slot_mids},
        "lost": sum(s.lost for s in listener.mids.values()),
    }


async def main(args: Any) -> dict[str, Any]:
    with common.server(args.ws) as (base, pid):
        swarm = Swarm(base + "/ws/v2/pub", base + "/ws/v2/sub", "stability")
        a, b = conversation(args.duration, seed=args.seed)
        swarm.add_publisher(source_id=None, schedule=Schedule.never(), dtx=False)
        swarm.add_publisher(source_id="a", frequency=440, schedule=a, dtx=not args.no_dtx)
        swarm.add_publisher(source_id="b", frequency=660, schedule=b, dtx=not args.no_dtx)
        for _ in range(args.listeners):
            swarm.add_listener(slots=3, record_latency=False)
        await swarm.start()
        cpu0 = common.process_cpu(pid)
        await swarm.run(args.duration, progress=common.progress_printer(args.quiet))
        end_ns = time.monotonic_ns()
        await asyncio.sleep(0.2)
        cpu1 = common.process_cpu(pid)
        await swarm.stop()
    if not args.quiet:
        print(file=sys.stderr)
    per_listener = [analyse(v, swarm.t0_ns, end_ns) for v in swarm.listeners]
    needless = sum(r["needless_switches"] for r in per_listener)
    minutes = sum(r["minutes_observed"] for r in per_listener)
    return {
        "duration_s": args.duration,
        "turns": {"a": len(a.intervals), "b": len(b.intervals)},
        "switches": sum(r["vad_events"] for r in per_listener),
        "needless_switches": needless,
        "needless_per_minute": round(needless / minutes, 3) if minutes else None,
        "target_per_minute": 1,
        "server_cpu_s": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 3),
        "listeners": per_listener,
    }


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0], "mux_stability.json")
    p.add_argument("--duration", type=float, default=180.0, help="seconds of conversation")
    p.add_argument("--listeners", type=int, default=2, help="listener bots (3 slots each)")
    p.add_argument("--seed", type=int, default=1, help="conversation random seed")
    p.add_argument("--no-dtx", action="store_true",
                   help="speakers send level-127 silence frames instead of nothing")
    args = p.parse_args()
    result = run(main(args))
    common.write_result(args.output, vars(args), result)
    print(f"needless switches: {result['needless_switches']} "
          f"({result['needless_per_minute']} per minute) over {args.duration:.0f} s")
