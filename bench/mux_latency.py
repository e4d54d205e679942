#!/usr/bin/env python3
"""Multiplexer switch latency: a silent source's first speech packet (sent) to its first packet
in a listener's slot.

`--speakers` publisher bots (sourceIds s0, s1, ...) take turns in a fixed rotation: each talks
`--talk` s once every speakers × `--turn` s, so with 5 speakers and 3 slots every turn start is
a switch into a slot that is free (the first three) or held by a silent source (afterwards). A
silent main publisher (no sourceId, level-127 frames) holds the main m-line. Listener bots have
3 slots. Send times and arrival times come from the same process clock (FrameBook), so the figure
includes the bots' own socket and SRTP costs, as a browser's would. Target: p95 <= 60 ms.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import common

from hubbub.client.bots import ListenerBot, PublisherBot, Schedule, Swarm, alternating, run


def classify(listener: ListenerBot, source_id: str, at_ns: int) -> str:
    """Slot state just before `at_ns`, from the vad events received until then."""
    slots: dict[str, str | None] = dict.fromkeys(listener.slot_mids)
    for t, mid, source in listener.vad:
        if t >= at_ns:
            break
        slots[mid] = source
    if source_id in slots.values():
        return "resume"
    return "free" if None in slots.values() else "held"


def measure(listener: ListenerBot, pub: PublisherBot, window_ns: int) -> list[dict[str, Any]]:
    onsets = sorted(
        (at, mid) for mid in listener.slot_mids for at, bot in listener.mids[mid].onsets
        if bot == pub.bot_id
    )
    vads = [(t, mid) for t, mid, source in listener.vad if source == pub.source_id]
    samples = []
    for start in pub.talk_starts_ns:
        kind = classify(listener, str(pub.source_id), start)
        arrival = next(((at, mid) for at, mid in onsets if start <= at < start + window_ns), None)
        vad = next((t for t, _ in vads if start <= t < start + window_ns), None)
        samples.append({
            "kind": kind,
            "latency_ms": None if arrival is None else (arrival[0] - start) / 1e6,
            "vad_ms": None if vad is None else (vad - start) / 1e6,
            "mid": None if arrival is None else arrival[1],
        })
    return samples


async def main(args: Any) -> dict[str, Any]:
    cycle = args.speakers * args.turn
    with common.server(args.ws) as (base, pid):
        swarm = Swarm(base + "/ws/v2/pub", base + "/ws/v2/sub", "latency")
        swarm.add_publisher(source_id=None, schedule=Schedule.never(), dtx=False)
        speakers = [
            swarm.add_publisher(
                source_id=f"s{i}",
                schedule=alternating(args.talk, cycle - args.talk, args.duration,
                                     offset=1.0 + i * args.turn),
                dtx=not args.no_dtx,
            )
            for i in range(args.speakers)
        ]
        for _ in range(args.listeners):
            swarm.add_listener(slots=3)
        await swarm.start()
        cpu0 = common.process_cpu(pid)
        await swarm.run(args.duration, progress=common.progress_printer(args.quiet))
        await asyncio.sleep(0.2)
        cpu1 = common.process_cpu(pid)
        await swarm.stop()
    if not args.quiet:
        print(file=sys.stderr)
    window = int((args.talk + 0.5) * 1e9)
    samples = [s for v in swarm.listeners for p in speakers for s in measure(v, p, window)]
    switches = [s for s in samples if s["kind"] != "resume"]
    lat = [s["latency_ms"] for s in switches if s["latency_ms"] is not None]
    forwarding = [x / 1e6 for v in swarm.listeners for m in v.mids.values() for x in m.latency_ns]
    by_kind = {
        kind: common.percentiles([s["latency_ms"] for s in samples
                                  if s["kind"] == kind and s["latency_ms"] is not None])
        for kind in ("free", "held", "resume")
    }
    result = {
        "duration_s": args.duration,
        "switch_latency_ms": common.percentiles(lat),
        "by_slot_state_ms": by_kind,
        "vad_event_after_speech_ms": common.percentiles(
            [s["vad_ms"] for s in switches if s["vad_ms"] is not None]),
        "missed_switches": sum(1 for s in switches if s["latency_ms"] is None),
        "talk_starts": len(samples),
        "forwarding_latency_ms": common.percentiles(forwarding),
        "lost": sum(m.lost for v in swarm.listeners for m in v.mids.values()),
        "target_p95_ms": 60,
        "server_cpu_s": None if cpu0 is None or cpu1 is None else round(cpu1 - cpu0, 3),
        "bots_cpu_s": round(time.process_time(), 3),
    }
    return result


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0], "mux_latency.json")
    p.add_argument("--duration", type=float, default=70.0, help="seconds of talking")
    p.add_argument("--speakers", type=int, default=5, help="rotating speaker bots")
    p.add_argument("--turn", type=float, default=1.0, help="seconds between turn starts")
    p.add_argument("--talk", type=float, default=0.7, help="seconds of speech per turn")
    p.add_argument("--listeners", type=int, default=2, help="listener bots (3 slots each)")
    p.add_argument("--no-dtx", action="store_true",
                   help="speakers send level-127 silence frames instead of nothing")
    args = p.parse_args()
    if args.talk >= args.turn * args.speakers:
        p.error("--talk must be shorter than speakers × turn")
    result = run(main(args))
    common.write_result(args.output, vars(args), result)
    s = result["switch_latency_ms"]
    print(f"switch latency over {s['count']} switches: p50 {s['p50']} ms, p95 {s['p95']} ms, "
          f"max {s['max']} ms; missed {result['missed_switches']}")
