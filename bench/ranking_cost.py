#!/usr/bin/env python3
"""CPU cost of the multiplexer's per-stream voice-activity ranking and slot pass, in process.

Drives `hubbub.sfu` objects directly (no sockets): one Stream with S audio sources (sourceIds)
and V viewers with 3 slots each. Every simulated 20 ms step, `--talkers` sources send a loud
packet (RFC 6464 level 20); the talkers rotate every `--turn` s so the ranking changes and slots
move; the other sources are in DTX (send nothing), or send level-127 packets with
`--silent-packets`. Per step we time:

- ranking: `Stream.multiplexer.ranking.update(tracks, now)` — decay every meter and sort the
  speaking ones. Runs once per stream and tick, whatever the number of viewers.
- tick: `Stream.multiplexer.tick(now)` right after — its own re-rank finds no change, so this is
  the per-viewer slot pass (runs only for viewers whose ranking version is stale) plus a
  second, unchanged ranking.

Wall time with `time.perf_counter_ns` on an otherwise idle loop; CPU time per step is the same
on one thread. Reports µs per step (p50, p95, mean) for every (S, V) point.
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import common

from hubbub.media import rtp
from hubbub.sfu import SfuConfig, Streams
from hubbub.sfu.types import DownTrackParams, TrackParams

LEVEL_ID, MID_ID = 1, 4
OPUS_PT = 111
PAYLOAD = bytes(60)


class NullSink:
    def send_rtp(self, data: bytes) -> None:
        pass

    def send_rtcp(self, data: bytes) -> None:
        pass


class Quiet:
    """StreamListener that ignores everything (vad events are counted)."""

    def __init__(self) -> None:
        self.slot_changes = 0

    def source_active(self, *a: Any) -> None: ...
    def source_inactive(self, *a: Any) -> None: ...
    def stopped(self, *a: Any) -> None: ...
    def viewer_count(self, *a: Any) -> None: ...
    def source_timed_out(self, *a: Any) -> None: ...

    def slot_changed(self, *a: Any) -> None:
        self.slot_changes += 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def point(sources: int, viewers: int, args: Any) -> dict[str, Any]:
    clock = Clock()
    listener = Quiet()
    streams = Streams(listener, SfuConfig(), clock, lambda: (0, 0))
    stream = streams.get_or_create("room")
    if not hasattr(stream, "multiplexer"):
        sys.exit("hubbub.sfu.Stream has no multiplexer yet: nothing to measure")
    ext = {rtp.AUDIO_LEVEL: LEVEL_ID, rtp.SDES_MID: MID_ID}
    stream.publish(None, [TrackParams("audio", "0", "opus", OPUS_PT, 48000, "", [1], dict(ext))],
                   NullSink())
    srcs = []
    for i in range(sources):
        ssrc = 100 + i
        srcs.append((ssrc, stream.publish(
            f"s{i}", [TrackParams("audio", "0", "opus", OPUS_PT, 48000, "", [ssrc], dict(ext))],
            NullSink())))
    down_ext = {rtp.AUDIO_LEVEL: 1, rtp.SDES_MID: 4}
    for v in range(viewers):
        params = [DownTrackParams("audio", str(m), (v << 3) + m + 1, {"opus": 111},
                                  dict(down_ext)) for m in range(4)]
        stream.add_viewer(params, NullSink(), None, None)
    tracks = [t for _, s in srcs if (t := s.track("audio")) is not None]
    mux = stream.multiplexer
    ranking_ns: list[int] = []
    tick_ns: list[int] = []
    steps = int(args.seconds / 0.02)
    per_turn = max(1, int(args.turn / 0.02))
    seq = 0
    for step in range(steps):
        clock.now += 0.02
        seq += 1
        first = (step // per_turn) * args.talkers
        talking = {(first + k) % sources for k in range(min(args.talkers, sources))}
        for i, (ssrc, source) in enumerate(srcs):
            if i in talking:
                level = 20
            elif args.silent_packets:
                level = 127
            else:
                continue
            source.on_rtp(rtp.build_packet(
                OPUS_PT, seq & 0xFFFF, (seq * 960) & 0xFFFFFFFF, ssrc, PAYLOAD, False,
                [(LEVEL_ID, bytes((level | (0x80 if level < 127 else 0),))), (MID_ID, b"0")]))
        t0 = time.perf_counter_ns()
        mux.ranking.update(tracks, clock.now)
        t1 = time.perf_counter_ns()
        mux.tick(clock.now)
        t2 = time.perf_counter_ns()
        ranking_ns.append(t1 - t0)
        tick_ns.append(t2 - t1)

    def stats(values: list[int]) -> dict[str, float]:
        us = sorted(v / 1000 for v in values)
        return {"p50": round(us[len(us) // 2], 2), "p95": round(us[int(0.95 * len(us))], 2),
                "mean": round(statistics.fmean(us), 2)}

    return {"sources": sources, "viewers": viewers, "steps": steps,
            "ranking_us": stats(ranking_ns), "slot_pass_tick_us": stats(tick_ns),
            "slot_changes": listener.slot_changes, "switches": mux.switches}


def main(args: Any) -> dict[str, Any]:
    points = []
    for sources in args.sources:
        for viewers in args.viewers:
            p = point(sources, viewers, args)
            points.append(p)
            if not args.quiet:
                print(f"S={sources:5d} V={viewers:5d}  ranking p50 {p['ranking_us']['p50']:8.1f} µs"
                      f"  tick p50 {p['slot_pass_tick_us']['p50']:8.1f} µs"
                      f" (p95 {p['slot_pass_tick_us']['p95']:.1f})  vad {p['slot_changes']}",
                      file=sys.stderr)
    return {"points": points}


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0], "ranking_cost.json", server=False)
    p.add_argument("--sources", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--viewers", type=int, nargs="+", default=[1, 10, 100, 1000])
    p.add_argument("--seconds", type=float, default=5.0, help="simulated seconds per point")
    p.add_argument("--talkers", type=int, default=3, help="sources talking at once")
    p.add_argument("--turn", type=float, default=1.0, help="seconds before the talkers rotate")
    p.add_argument("--silent-packets", action="store_true",
                   help="non-talkers send level-127 packets instead of nothing (DTX)")
    args = p.parse_args()
    result = main(args)
    common.write_result(args.output, vars(args), result)
