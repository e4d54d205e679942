#!/usr/bin/env python3
"""Junk on the media port: datagrams/s of each attack kind the port absorbs before a canary
listener loses more than 1 % of its packets.

A fresh `hubbub serve` per attack kind (pinned to `--server-cpu`) carries a canary room: 4
always-talking publisher bots (a main source and 3 sourced ones, 50 pps each) and 2 listener
bots with 3 slots, so each listener receives 200 packets/s (this process, pinned to
`--bots-cpu`, on uvloop; the listeners' sockets get a 4 MiB receive buffer so a starved bot
does not count its own drops as the server's). The attacker is a separate process
(`python -m hubbub.client.bots.junk`, also pinned to `--bots-cpu`) sending one kind at a rising
rate, each step for `--step` s; the canary's loss (sequence gaps at the listeners) is counted
over the step after its first 0.5 s. A kind's figure is the highest rate whose loss stayed
≤ 1 %; the sweep stops at the first step above it, or when the attacker cannot reach the rate
it was asked for (then the figure is a lower bound, "attacker-bound").

Kinds: `bad-mi` (Binding requests for the canary listener's live server ufrag with a wrong
MESSAGE-INTEGRITY), `unknown-ufrag`, `dtls` (junk DTLS records), `rtp` (junk RTP), each from
one source port and from many (`--many`, a raw socket with a new source port per datagram
when run as root). Per step the JSON has the server's CPU share, the kernel's drops on the
server's socket (/proc/net/udp), the canary's loss and every core's busy share (this is a
shared machine: a core busier than its pinned process says someone else ran there). Because
the absorbed rate depends on who else runs, each kind also gets a figure that does not: the
server's CPU per junk datagram (its CPU in a step less its CPU for the canary alone, over the
rate, at the highest step without kernel drops) and the rate one core would absorb at that
cost. Per kind, the server's own drop counters come from its log (`media port dropped
since the last report: ...`, written at stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import common

from hubbub.client.bots import FrameBook, ListenerBot, PublisherBot, encode_tone
from hubbub.client.bots import run as run_uvloop
from hubbub.client.bots.publisher import PTIME
from hubbub.media.dtls import Certificate

HOST = "127.0.0.1"
MAX_LOSS = 0.01
KINDS = ("bad-mi", "unknown-ufrag", "dtls", "rtp")


def log(msg: str, quiet: bool, end: str = "\n") -> None:
    if not quiet:
        print(msg, end=end, file=sys.stderr, flush=True)


def _pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def hubbub_server(args: Any, name: str) -> Iterator[tuple[str, int, int, Path]]:
    """`hubbub serve` pinned to --server-cpu; yields (ws base URL, pid, media port, log)."""
    http, media = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    cmd = [*_pin(args.server_cpu), sys.executable, "-m", "hubbub", "serve", "--host", HOST,
           "--http-port", str(http), "--media-port", str(media), "--allow-any-stream",
           "--no-spaces", "--drain-grace", "0"]
    if args.recv_buffer is not None:
        cmd += ["--media-recv-buffer", str(args.recv_buffer)]
    env = dict(os.environ)
    if args.server_src:
        env["PYTHONPATH"] = str(Path(args.server_src) / "src")
    log_path = common.RESULTS_DIR / f".media_junk-{name}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                            cwd=args.server_src or common.REPO_ROOT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hubbub serve exited with {proc.returncode}; see {log_path}")
            try:
                import urllib.request

                with urllib.request.urlopen(f"http://{HOST}:{http}/healthz", timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("hubbub serve did not become healthy") from None
                time.sleep(0.05)
        yield f"ws://{HOST}:{http}", proc.pid, media, log_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log_file.close()


def kernel_drops(port: int) -> int | None:
    """Datagrams the kernel dropped on the UDP socket bound to `port` (receive buffer full)."""
    needle = f":{port:04X} "
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 12 and (fields[1] + " ").endswith(needle):
                return int(fields[-1])
    return None


def cpu_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    out: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            ticks = [int(v) for v in values[:8]]
            idle = ticks[3] + ticks[4]
            out[name] = (sum(ticks) - idle, sum(ticks))
    return out


def busy_between(a: dict[str, tuple[int, int]], b: dict[str, tuple[int, int]]) -> dict[str, float]:
    return {cpu: round((b[cpu][0] - a[cpu][0]) / max(1, b[cpu][1] - a[cpu][1]), 3)
            for cpu in a if cpu in b}


def server_counters(log_path: Path) -> dict[str, int]:
    """The media port's drop counters from its closing log line."""
    found: dict[str, int] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        match = re.search(r"media port dropped since the last report: (.*)$", line)
        if match:
            for part in match.group(1).split(", "):
                name, _, count = part.rpartition(" ")
                if count.isdigit():
                    found[name] = found.get(name, 0) + int(count)
    return found


class Canary:
    """4 publishers (main + 3 sourced) and 2 listeners with 3 slots each."""

    def __init__(self, base: str) -> None:
        pub, sub = base + "/ws/v2/pub", base + "/ws/v2/sub"
        book = FrameBook()
        cert = Certificate()
        self.publishers = [
            PublisherBot(pub, "canary", encode_tone(i, 300 + 50 * i), book,
                         source_id=None if i == 0 else f"s{i}", dtx=False, certificate=cert)
            for i in range(4)]
        self.listeners = [ListenerBot(sub, "canary", book, slots=3, certificate=cert,
                                      record_latency=False) for _ in range(2)]

    async def start(self) -> None:
        await asyncio.gather(*(p.start() for p in self.publishers))
        t0 = asyncio.get_running_loop().time() + 0.1
        for i, p in enumerate(self.publishers):
            p.begin(t0 + i * PTIME / len(self.publishers))
        for listener in self.listeners:
            await listener.start()
            transport = getattr(listener.peer, "_transport", None)
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)

    def server_ufrag(self) -> str:
        ice = getattr(self.listeners[0].peer, "_ice", None)
        assert ice is not None, "the listener has not connected"
        return str(ice.username).split(":", 1)[0]

    def totals(self) -> tuple[int, int]:
        packets = sum(s.packets for v in self.listeners for s in v.mids.values())
        lost = sum(s.lost for v in self.listeners for s in v.mids.values())
        return packets, lost

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.publishers), return_exceptions=True)
        await asyncio.gather(*(v.stop() for v in self.listeners), return_exceptions=True)


async def attack_step(canary: Canary, args: Any, kind: str, sources: int, rate: int,
                      media: int, pid: int) -> dict[str, Any]:
    cmd = [*_pin(args.bots_cpu), sys.executable, "-m", "hubbub.client.bots.junk",
           f"{HOST}:{media}", "--kind", kind, "--rate", str(rate), "--duration",
           str(args.step), "--sources", str(sources)]
    if kind == "bad-mi":
        cmd += ["--ufrag", canary.server_ufrag()]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                cwd=common.REPO_ROOT)
    assert proc.stdout is not None
    await proc.stdout.readline()  # "sending": Python has started and the first datagram left
    await asyncio.sleep(0.5)  # queues filling: the steady state is what is measured
    packets0, lost0 = canary.totals()
    cpu0, drops0, t0 = common.process_cpu(pid), kernel_drops(media), time.monotonic()
    cores0 = cpu_times()
    out = await proc.stdout.read()
    await proc.wait()
    packets1, lost1 = canary.totals()
    cpu1, drops1, t1 = common.process_cpu(pid), kernel_drops(media), time.monotonic()
    cores = busy_between(cores0, cpu_times())
    sender = json.loads(out.decode().strip().splitlines()[-1])
    received, lost = packets1 - packets0, lost1 - lost0
    expected = received + lost
    return {
        "rate_asked": rate,
        "rate_sent": sender["rate"],
        "sent": sender["sent"],
        "send_errors": sender["errors"],
        "sources": sender["sources"],
        "raw_socket": sender["raw"],
        "window_s": round(t1 - t0, 2),
        "canary_received": received,
        "canary_lost": lost,
        "canary_loss": round(lost / expected, 4) if expected else None,
        "server_cpu": (round((cpu1 - cpu0) / (t1 - t0), 3)
                       if cpu0 is not None and cpu1 is not None else None),
        "kernel_drops": (drops1 - drops0 if drops0 is not None and drops1 is not None
                         else None),
        # Each core's busy share in the window (everything on it: the server's core should be
        # busy about `server_cpu`; more is another user of this shared machine).
        "cores_busy": cores,
    }


async def sweep(args: Any, kind: str, sources: int) -> dict[str, Any]:
    name = f"{kind}-{'many' if sources > 1 else 'one'}"
    steps: list[dict[str, Any]] = []
    absorbed: int | None = 0
    bound = "loss"
    with hubbub_server(args, name) as (base, pid, media, log_path):
        canary = Canary(base)
        try:
            await canary.start()
            await asyncio.sleep(1.0)
            # The server's CPU for the canary alone: what a step costs beyond it is the junk's.
            cpu0, t0 = common.process_cpu(pid), time.monotonic()
            await asyncio.sleep(args.quiet_window)
            cpu1, t1 = common.process_cpu(pid), time.monotonic()
            quiet_cpu = ((cpu1 - cpu0) / (t1 - t0)
                         if cpu0 is not None and cpu1 is not None else None)
            quiet_packets, quiet_lost = canary.totals()
            for rate in args.rates:
                step = await attack_step(canary, args, kind, sources, rate, media, pid)
                if quiet_cpu is not None and step["server_cpu"] is not None:
                    step["server_us_per_datagram"] = round(
                        (step["server_cpu"] - quiet_cpu) / step["rate_sent"] * 1e6, 2)
                steps.append(step)
                log(f"  {name:20} {rate:>7}/s asked, {step['rate_sent']:>9.0f}/s sent: canary "
                    f"loss {100 * (step['canary_loss'] or 0):5.2f} %, server cpu "
                    f"{step['server_cpu']} ({step.get('server_us_per_datagram')} µs/datagram), "
                    f"kernel drops {step['kernel_drops']}, cores busy {step['cores_busy']}",
                    args.quiet)
                if step["canary_loss"] is None or step["canary_loss"] > MAX_LOSS:
                    bound = "loss"
                    break
                absorbed = round(step["rate_sent"])
                if step["rate_sent"] < 0.9 * rate:
                    bound = "attacker"  # the sender could not go faster on its core
                    break
                await asyncio.sleep(args.pause)
            else:
                bound = "ladder"  # the highest rate asked for was absorbed
        finally:
            await canary.stop()
    time.sleep(0.2)
    # The cost at the highest rate the server kept up with (no kernel drops): per datagram it
    # falls with the rate (more datagrams per event-loop wakeup), so low rates overstate it.
    kept_up = [s for s in steps if "server_us_per_datagram" in s and not s["kernel_drops"]]
    cost = kept_up[-1]["server_us_per_datagram"] if kept_up else None
    return {"kind": kind, "sources": sources, "absorbed_per_s": absorbed,
            "limited_by": bound, "server_cpu_quiet": quiet_cpu,
            "server_us_per_datagram": cost,
            # What one core would absorb at that cost, besides the canary: an estimate that
            # does not depend on what else ran on the machine (see the README).
            "one_core_estimate_per_s": (round((1 - quiet_cpu) / cost * 1e6)
                                        if cost and quiet_cpu is not None else None),
            "canary_before": {"received": quiet_packets, "lost": quiet_lost},
            "server_counters": server_counters(log_path), "steps": steps}


async def micro(args: Any) -> dict[str, Any]:
    """In process, no socket I/O: `MediaPort.datagram_received` per junk datagram of each kind
    (the Python cost the port controls; the kernel's receive and the event loop come on top).
    Answers the port would send are counted, not sent. Runs whatever `hubbub` is importable,
    so `PYTHONPATH=<old checkout>/src` measures an older port."""
    from hubbub.config import MediaConfig
    from hubbub.media.transport import RemoteParameters
    from hubbub.media.udp import MediaPort

    # The junk payloads are this checkout's, whichever hubbub is measured.
    spec = importlib.util.spec_from_file_location(
        "junk", common.REPO_ROOT / "src" / "hubbub" / "client" / "bots" / "junk.py")
    assert spec is not None and spec.loader is not None
    junk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(junk)

    port = MediaPort(MediaConfig(host=HOST, port=0))
    await port.start()
    transport = port.create_transport(RemoteParameters("peer", "p" * 24, [("sha-256", "AA")]))
    answers = 0

    def count(data: bytes, addr: Any) -> None:
        nonlocal answers
        answers += 1

    port.sendto = count  # type: ignore[method-assign]
    logging.getLogger("hubbub").setLevel(logging.WARNING)
    out: dict[str, Any] = {}
    n = args.micro_datagrams
    for kind in args.kinds:
        data = junk.payloads(kind, transport.local_ufrag)
        for sources in (1, args.many):
            addrs = [(HOST, 20000 + i % sources) for i in range(n)]
            answers = 0
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                for i, addr in enumerate(addrs):
                    port.datagram_received(data[i & 255], addr)
                best = min(best, time.perf_counter() - t0)
            key = f"{kind}/{'one' if sources == 1 else 'many'}"
            out[key] = {"us_per_datagram": round(best / n * 1e6, 2),
                        "answers_per_datagram": round(answers / (3 * n), 3)}
            log(f"  {key:20} {out[key]['us_per_datagram']:6.2f} µs/datagram, "
                f"{out[key]['answers_per_datagram']} answers/datagram", args.quiet)
    await port.stop()
    import hubbub.media.udp as udp_module

    return {"micro": out, "port_module": udp_module.__file__}


async def main(args: Any) -> dict[str, Any]:
    if args.micro:
        return await micro(args)
    results = []
    for kind in args.kinds:
        for sources in (1, args.many):
            log(f"{kind}, {sources} source port(s)", args.quiet)
            results.append(await sweep(args, kind, sources))
    return {"max_loss": MAX_LOSS, "results": results,
            "summary": {f"{r['kind']}/{'one' if r['sources'] == 1 else 'many'}":
                        {"absorbed_per_s": r["absorbed_per_s"], "limited_by": r["limited_by"],
                         "server_us_per_datagram": r["server_us_per_datagram"],
                         "one_core_estimate_per_s": r["one_core_estimate_per_s"]}
                        for r in results},
            "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}


if __name__ == "__main__":
    p = common.parser(__doc__.splitlines()[0], "media_junk.json", server=False)
    p.add_argument("--kinds", type=lambda s: s.split(","), default=list(KINDS),
                   help="comma-separated attack kinds")
    p.add_argument("--rates", type=lambda s: [int(x) for x in s.split(",")],
                   default=[10000, 20000, 40000, 60000, 80000, 100000, 120000, 140000,
                            160000],
                   help="attack rates to step through, datagrams/s")
    p.add_argument("--many", type=int, default=20000,
                   help="source ports of the 'many' variant (more than the budget tables "
                        "hold: 16,384)")
    p.add_argument("--step", type=float, default=5.0, help="seconds per attack step")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between steps")
    p.add_argument("--quiet-window", type=float, default=3.0,
                   help="seconds of canary alone, for the server's baseline CPU")
    p.add_argument("--server-cpu", type=int, default=1)
    p.add_argument("--bots-cpu", type=int, default=0,
                   help="CPU of this process and of the attacker")
    p.add_argument("--recv-buffer", type=int, default=None,
                   help="--media-recv-buffer for the server (default: the server's own)")
    p.add_argument("--micro", action="store_true",
                   help="only the in-process cost per datagram of each kind (no server)")
    p.add_argument("--micro-datagrams", type=int, default=100_000)
    p.add_argument("--server-src", default=None,
                   help="run the server from this checkout (its src/ on PYTHONPATH), e.g. "
                        "an export of an older commit for a before/after comparison")
    args = p.parse_args()
    if args.bots_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.bots_cpu})
    result = run_uvloop(main(args))
    common.write_result(args.output, vars(args), result)
    for key, value in result.get("summary", {}).items():
        print(f"{key:22} {value['absorbed_per_s']:>8} datagrams/s ({value['limited_by']}); "
              f"{value['server_us_per_datagram']} µs/datagram, one core ≈ "
              f"{value['one_core_estimate_per_s']}/s")
