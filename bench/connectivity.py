#!/usr/bin/env python3
"""ICE-TCP and TURN against UDP (issue 15): server CPU per forwarded packet, and join time.

CPU: a fresh `hubbub serve` pinned to one core (`--server-cpu`), the bots on the other. One
publisher bot talks (50 packets/s of Opus), `--listeners` listener bots receive it, all over
UDP in one phase and all over ICE-TCP (RFC 4571 frames on one TCP connection each) in the
other; over a steady `--window` the server's CPU seconds (utime+stime) are divided by the
packets the listeners counted, less what the server spent with the publisher alone
(`--baseline`). The bots count from the clear RTP header, without decrypting.

Join time: an aiortc viewer (the Python SDK) joins a talking stream `--joins` times, one after
the other, and the time from sending `view` to the peer connection being `connected` is kept:
over UDP, over ICE-TCP (aioice has no ICE-TCP: through the tests' RFC 4571 bridge,
tests/helpers/ice_tcp.py, which adds a loopback hop), and through a real coturn over TURN/TCP
(relay-only policy; coturn relays to hubbub over UDP), with the Director's iceServers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(BENCH_DIR.parent))

import common  # noqa: E402

from hubbub.client.bots import FrameBook, ListenerBot, PublisherBot, encode_tone  # noqa: E402
from hubbub.client.bots import run as run_uvloop  # noqa: E402
from hubbub.client.bots.drain import Drain  # noqa: E402
from hubbub.client.bots.janus import CountingPeer, use_counting_peer  # noqa: E402
from hubbub.client.media import ToneTrack  # noqa: E402
from hubbub.client.publisher import Publisher  # noqa: E402
from hubbub.client.viewer import Viewer  # noqa: E402
from hubbub.media.dtls import Certificate  # noqa: E402

TURN_SECRET = "bench-connectivity-turn-secret"


def log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((common.HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _counted(peers: list[CountingPeer]) -> tuple[int, int]:
    totals = [p.totals() for p in peers]
    return sum(t[0] for t in totals), sum(t[1] for t in totals)


async def cpu_phase(args: Any, over: str) -> dict[str, Any]:
    tcp = over == "tcp"
    drain = Drain(0.005) if Drain.available() and not tcp else None
    extra = ["--no-spaces", "--media-tcp-port", str(free_tcp_port())]
    with common.server(None, extra, cpu=args.server_cpu,
                       log_name=f".connectivity-{over}.log") as (base, pid):
        book = FrameBook()
        cert = Certificate()
        stage = PublisherBot(base + "/ws/v2/pub", "stage", encode_tone(7, 600), book,
                             certificate=cert, dtx=False)
        bots = [ListenerBot(base + "/ws/v2/sub", "stage", book, certificate=cert,
                            record_latency=False, tcp=tcp) for _ in range(args.listeners)]
        counting = []
        for bot in bots:
            bot.peer.drain = drain
            counting.append(use_counting_peer(bot))
        try:
            await stage.start()
            stage.begin(asyncio.get_running_loop().time() + 0.05)
            await asyncio.sleep(1.0)
            # What the server spends with the stage alone (ticks, its one publisher): not
            # forwarding, so subtracted below.
            base0, tb0 = common.process_cpu(pid), time.monotonic()
            await asyncio.sleep(args.baseline)
            base1, tb1 = common.process_cpu(pid), time.monotonic()
            assert base0 is not None and base1 is not None
            baseline_share = (base1 - base0) / (tb1 - tb0)
            gate = asyncio.Semaphore(20)

            async def join(bot: ListenerBot) -> None:
                async with gate:
                    await bot.start(timeout=30)

            await asyncio.gather(*(join(b) for b in bots))
            await asyncio.sleep(args.settle)
            packets0, lost0 = _counted(counting)
            cpu0, bots0, t0 = common.process_cpu(pid), time.process_time(), time.monotonic()
            await asyncio.sleep(args.window)
            cpu1, bots1, t1 = common.process_cpu(pid), time.process_time(), time.monotonic()
            packets1, lost1 = _counted(counting)
        finally:
            await stage.stop()
            await asyncio.gather(*(b.stop() for b in bots), return_exceptions=True)
            if drain is not None:
                drain.close()
    assert cpu0 is not None and cpu1 is not None
    packets, lost = packets1 - packets0, lost1 - lost0
    seconds = t1 - t0
    forwarding = (cpu1 - cpu0) - baseline_share * seconds
    result = {
        "over": over, "listeners": args.listeners, "window_s": round(seconds, 2),
        "packets": packets, "lost": lost,
        "loss": round(lost / (packets + lost), 5) if packets + lost else None,
        "server_cpu_share": round((cpu1 - cpu0) / seconds, 3),
        "server_baseline_share": round(baseline_share, 3),
        "server_us_per_packet": round(forwarding / packets * 1e6, 2) if packets else None,
        "bots_cpu_share": round((bots1 - bots0) / seconds, 3),
    }
    log(f"  cpu over {over}: {packets} packets to {args.listeners} listeners in "
        f"{seconds:.1f} s, server {result['server_cpu_share']} of a core = "
        f"{result['server_us_per_packet']} us/packet, loss {result['loss']}, bots "
        f"{result['bots_cpu_share']}", args.quiet)
    return result


async def join_times(args: Any) -> dict[str, Any]:
    from tests.helpers.ice_tcp import IceTcpBridge, TcpViewer

    tcp_port = free_tcp_port()
    turn = _start_coturn() if "turn" in args.joins_over else None
    extra = ["--no-spaces", "--media-tcp-port", str(tcp_port), "--open-viewing", "joins"]
    if turn is not None:
        extra += ["--turn-server", turn.uri("tcp"), "--turn-secret", TURN_SECRET]
    out: dict[str, Any] = {}
    try:
        with common.server(None, extra, log_name=".connectivity-join.log") as (base, _):
            http = base.replace("ws://", "http://")
            async with Publisher(base + "/ws/v2/pub", "joins", tracks=[ToneTrack(440)]):
                for over in args.joins_over:
                    times: list[float] = []
                    for _ in range(args.joins):
                        bridge = None
                        if over == "tcp":
                            bridge = await IceTcpBridge((common.HOST, tcp_port)).start()
                            viewer: Viewer = TcpViewer(bridge, base + "/ws/v2/sub", "joins",
                                                       video=False)
                        elif over == "turn":
                            viewer = await _turn_viewer(http, base)
                        else:
                            viewer = Viewer(base + "/ws/v2/sub", "joins", video=False)
                        started = time.perf_counter()
                        try:
                            await viewer.connect()
                            times.append((time.perf_counter() - started) * 1000)
                        finally:
                            await viewer.close()
                            if bridge is not None:
                                bridge.close()
                    out[over] = {k: (round(v, 1) if isinstance(v, float) else v)
                                 for k, v in common.percentiles(times).items()}
                    out[over]["mean"] = round(statistics.fmean(times), 1)
                    log(f"  join over {over}: p50 {out[over]['p50']} ms, p95 "
                        f"{out[over]['p95']} ms ({args.joins} joins)", args.quiet)
    finally:
        if turn is not None:
            turn.stop()
    if "udp" in out:
        for over in ("tcp", "turn"):
            if over in out and out["udp"]["p50"]:
                out[f"{over}_over_udp_p50"] = round(out[over]["p50"] / out["udp"]["p50"], 2)
    return out


def _start_coturn() -> Any:
    from tests.helpers.coturn import Coturn

    if shutil.which("turnserver") is None:
        raise SystemExit("turnserver (Debian package coturn) is not installed")
    return Coturn(secret=TURN_SECRET, host=common.HOST).start()


async def _turn_viewer(http: str, base: str) -> Viewer:
    from hubbub.client.director import connect_info

    info = await connect_info(http, "subscribe", "joins", None)
    return Viewer(base + "/ws/v2/sub", "joins", token=info.jwt, video=False,
                  ice_servers=info.ice_servers, ice_transport_policy="relay")


async def main(args: Any) -> dict[str, Any]:
    phases = []
    for _ in range(args.repeat):
        for over in args.cpu_over:
            phases.append(await cpu_phase(args, over))
    summary: dict[str, Any] = {}
    by = {over: [p["server_us_per_packet"] for p in phases if p["over"] == over]
          for over in args.cpu_over}
    for over, values in by.items():
        summary[f"server_us_per_packet_{over}"] = statistics.median(values) if values else None
    if by.get("udp") and by.get("tcp"):
        summary["cpu_tcp_over_udp"] = round(statistics.median(by["tcp"])
                                            / statistics.median(by["udp"]), 2)
    joins = await join_times(args) if args.joins else {}
    return {"phases": phases, "joins": joins, "summary": summary, "cpus": os.cpu_count(),
            "loadavg_start": os.getloadavg()}


if __name__ == "__main__":
    p = common.parser(__doc__.split("\n\n")[0], "connectivity.json", server=False)
    p.add_argument("--listeners", type=int, default=300)
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--settle", type=float, default=2.0)
    p.add_argument("--baseline", type=float, default=5.0,
                   help="seconds of the stage alone: the server's CPU that is not forwarding")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--cpu-over", type=lambda s: [x for x in s.split(",") if x],
                   default=["udp", "tcp"], help="comma-separated; empty: no CPU phases")
    p.add_argument("--joins", type=int, default=20, help="joins per transport (0: none)")
    p.add_argument("--joins-over", type=lambda s: s.split(","), default=["udp", "tcp", "turn"])
    p.add_argument("--server-cpu", type=int, default=1)
    p.add_argument("--bots-cpu", type=int, default=0)
    args = p.parse_args()
    if args.bots_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.bots_cpu})
    result = run_uvloop(main(args))
    common.write_result(args.output, vars(args), result)
    for key, value in result["summary"].items():
        print(f"{key:28} {value}")
    for key, value in result["joins"].items():
        print(f"join {key:23} {value}")
