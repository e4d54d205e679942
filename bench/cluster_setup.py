"""Plumbing of `cluster.py`: a private redis-server, `hubbub serve` nodes and worker
supervisors on loopback, CPU of process trees, and the bots of one audio room.

Every process started here runs in its own session and is stopped by its own pid; logs go to
`bench/results/.cluster-<name>.log` (not committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common

from hubbub.client.bots import FrameBook, ListenerBot, PublisherBot, Schedule, encode_tone
from hubbub.client.bots.drain import Drain
from hubbub.client.bots.janus import CountingPeer, use_counting_peer
from hubbub.client.bots.publisher import PTIME
from hubbub.media.dtls import Certificate

HOST = "127.0.0.1"
API_SECRET = "bench-cluster-secret"
STREAM = "room"
TALKERS = 3


def log(msg: str, quiet: bool = False, end: str = "\n") -> None:
    if not quiet:
        print(msg, end=end, file=sys.stderr, flush=True)


# --- ports, processes, CPU ------------------------------------------------------------------


def free_ports(kind: int, count: int = 1) -> int:
    """The first of `count` consecutive ports that were all free a moment ago."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((HOST, 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no consecutive free ports")


def pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc/<pid>/task/*/children)."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(x) for x in (task / "children").read_text().split()]
    return out


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants that are alive now."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children(p)
    return out


def cpu_of(pids: Sequence[int]) -> dict[int, float]:
    """utime + stime per pid (s); a pid that is gone is left out."""
    out = {}
    for pid in pids:
        value = common.process_cpu(pid)
        if value is not None:
            out[pid] = value
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


class MachineCpu:
    """Busy share of all cores between two reads of /proc/stat (1.0 = every core busy)."""

    def __init__(self) -> None:
        self._busy, self._total = self._read()

    @staticmethod
    def _read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields) - idle, sum(fields)

    def busy_share(self) -> float:
        busy, total = self._read()
        share = (busy - self._busy) / max(1, total - self._total)
        self._busy, self._total = busy, total
        return round(share, 3)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path,
                  timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not become healthy; see {log_path}") from None
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def http_json(url: str, body: Any = None, secret: str | None = API_SECRET) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


# --- redis-server ---------------------------------------------------------------------------


class Redis:
    """This bench's own redis-server on a free loopback port (no persistence)."""

    def __init__(self, cpu: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (Debian: apt install redis-server)")
        self.port = free_ports(socket.SOCK_STREAM)
        self.url = f"redis://{HOST}:{self.port}/0"
        self.log_path = common.RESULTS_DIR / ".cluster-redis.log"
        self.proc = subprocess.Popen(
            [*pin(cpu), binary, "--bind", HOST, "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--logfile", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            start_new_session=True)
        import redis

        self.client = redis.Redis(host=HOST, port=self.port, socket_timeout=5)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                break
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start; see {self.log_path}") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def commandstats(self) -> dict[str, int]:
        """Calls per command since the start (INFO commandstats), INFO itself left out."""
        stats = self.client.info("commandstats")
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()
                if k != "cmdstat_info"}

    def close(self) -> None:
        self.client.close()
        _stop(self.proc)


# --- nodes ----------------------------------------------------------------------------------


@dataclass
class Node:
    """One `hubbub serve` process (a cluster node with `redis`, a lone node without)."""

    name: str
    proc: subprocess.Popen[bytes]
    http: int
    media: int
    data_dir: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.http}"

    @property
    def ws(self) -> str:
        return f"ws://{HOST}:{self.http}"

    def cluster(self) -> dict[str, Any]:
        """The node's GET /api/cluster."""
        stats: dict[str, Any] = http_json(f"{self.base}/api/cluster")
        return stats

    def stop(self) -> None:
        try:
            _stop(self.proc, 15)
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def start_node(name: str, redis_url: str | None, cpu: int | None,
               extra: Sequence[str] = ()) -> Node:
    """`hubbub serve --allow-any-stream` on free ports with its own data dir (as a node on
    another host would have), pinned to `cpu`; returns once /healthz answers."""
    http, media = free_ports(socket.SOCK_STREAM), free_ports(socket.SOCK_DGRAM)
    data_dir = tempfile.mkdtemp(prefix=f"hubbub-bench-{name}-")
    args = [*pin(cpu), sys.executable, "-m", "hubbub", "serve", "--host", HOST,
            "--http-port", str(http), "--media-port", str(media), "--allow-any-stream",
            "--api-secret", API_SECRET, "--data-dir", data_dir, "--no-spaces",
            "--drain-grace", "0", *common.NO_CONNECTION_LIMITS, *extra]
    if redis_url:
        args += ["--redis", redis_url]
    log_path = common.RESULTS_DIR / f".cluster-{name}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - the child keeps it; closed below
    try:
        proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT,
                                cwd=common.REPO_ROOT, start_new_session=True)
    finally:
        log_file.close()
    node = Node(name, proc, http, media, data_dir, log_path)
    try:
        _wait_healthy(proc, f"{node.base}/healthz", log_path)
    except BaseException:
        node.stop()
        raise
    return node


def wait_cluster(nodes: Sequence[Node], timeout: float = 15.0) -> None:
    """Until every node's registry view lists all of them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if all(len(n.cluster()["nodes"]) >= len(nodes) for n in nodes):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the nodes did not all see each other in Redis")
        time.sleep(0.2)


@contextlib.contextmanager
def cluster(names: Sequence[str], cpu: int | None, extra: Sequence[str] = (),
            redis_cpu: int | None = None) -> Iterator[tuple[Redis, list[Node]]]:
    """A redis-server and one node per name, all registered."""
    redis = Redis(redis_cpu)
    nodes: list[Node] = []
    try:
        for name in names:
            nodes.append(start_node(name, redis.url, cpu, extra))
        wait_cluster(nodes)
        yield redis, nodes
    finally:
        for node in nodes:
            node.stop()
        redis.close()


@dataclass
class Workers:
    """`hubbub serve --workers N` (the supervisor; its children are the workers and, without
    --redis, the private redis-server)."""

    proc: subprocess.Popen[bytes]
    count: int
    http: int
    data_dir: str

    def ws(self, index: int) -> str:
        return f"ws://{HOST}:{self.http + index}"

    def base(self, index: int) -> str:
        return f"http://{HOST}:{self.http + index}"

    def processes(self) -> dict[int, str]:
        """pid -> supervisor, worker<i> or redis-server, for the whole process tree."""
        out = {}
        for pid in tree(self.proc.pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if pid == self.proc.pid:
                out[pid] = "supervisor" if self.count > 1 else "worker0"  # 1: no supervisor
            elif b"--worker-index" in argv:
                out[pid] = "worker" + argv[argv.index(b"--worker-index") + 1].decode()
            else:
                out[pid] = comm(pid)
        return out

    def stop(self) -> None:
        try:
            _stop(self.proc, 20)
        finally:
            shutil.rmtree(self.data_dir, ignore_errors=True)


@contextlib.contextmanager
def workers(count: int, extra: Sequence[str] = ()) -> Iterator[Workers]:
    http = free_ports(socket.SOCK_STREAM, count)
    media = free_ports(socket.SOCK_DGRAM, count)
    data_dir = tempfile.mkdtemp(prefix="hubbub-bench-workers-")
    args = [sys.executable, "-m", "hubbub", "serve", "--host", HOST, "--http-port", str(http),
            "--media-port", str(media), "--allow-any-stream", "--api-secret", API_SECRET,
            "--data-dir", data_dir, "--no-spaces", "--drain-grace", "0",
            "--workers", str(count), *common.NO_CONNECTION_LIMITS, *extra]
    log_path = common.RESULTS_DIR / f".cluster-workers{count}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - the child keeps it; closed below
    try:
        proc = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT,
                                cwd=common.REPO_ROOT, start_new_session=True)
    finally:
        log_file.close()
    running = Workers(proc, count, http, data_dir)
    try:
        for index in range(count):
            _wait_healthy(proc, f"{running.base(index)}/healthz", log_path)
        if count > 1:
            deadline = time.monotonic() + 15
            while True:
                views = [http_json(f"{running.base(i)}/api/cluster") for i in range(count)]
                if all(len(v["nodes"]) >= count for v in views):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the workers did not see each other; see {log_path}")
                time.sleep(0.2)
        yield running
    finally:
        running.stop()


# --- bots -----------------------------------------------------------------------------------


@dataclass
class Group:
    """Listener bots on one node; most only count packets (C drain), a few decrypt and measure
    one-way latency."""

    name: str
    listeners: list[ListenerBot] = field(default_factory=list)
    counting: list[CountingPeer | None] = field(default_factory=list)
    failed: int = 0

    def totals(self) -> tuple[int, int]:
        """(packets, lost) over every listener of the group."""
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

    def keep_joined(self, errors: Sequence[BaseException | None]) -> None:
        keep = [i for i, e in enumerate(errors) if e is None]
        self.failed += len(errors) - len(keep)
        self.listeners = [self.listeners[i] for i in keep]
        self.counting = [self.counting[i] for i in keep]


@dataclass
class Room:
    """One stream: `TALKERS` always-talking publishers with sourceIds s0.. spread over the
    20 ms frame, plus a silent main publisher (no sourceId, one level-127 frame a second) that
    holds the viewers' main m-line, as in audio_room.py; listener groups per node, 3 slots."""

    book: FrameBook = field(default_factory=FrameBook)
    certificate: Certificate = field(default_factory=Certificate)
    publishers: list[PublisherBot] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    def add_publishers(self, ws: str, talkers: int = TALKERS, stream: str = STREAM) -> None:
        for i in range(talkers):
            self.publishers.append(PublisherBot(
                ws + "/ws/v2/pub", stream, encode_tone(i, 300 + 50 * i), self.book,
                source_id=f"s{i}", dtx=False, certificate=self.certificate))
        self.publishers.append(PublisherBot(
            ws + "/ws/v2/pub", stream, encode_tone(talkers, 200), self.book,
            schedule=Schedule.never(), dtx=True, dtx_keepalive=50,
            certificate=self.certificate))

    @property
    def talkers(self) -> list[PublisherBot]:
        return [p for p in self.publishers if p.source_id is not None]

    async def start_publishers(self) -> None:
        await asyncio.gather(*(p.start() for p in self.publishers))
        t0 = asyncio.get_running_loop().time() + 0.1
        talkers = max(1, len(self.talkers))
        for i, p in enumerate(self.publishers):
            p.begin(t0 + (i % talkers) * PTIME / talkers)

    def add_group(self, name: str, ws: str, listeners: int, decrypting: int,
                  drain: Drain | None, stream: str = STREAM) -> Group:
        group = Group(name)
        full = timed(listeners, decrypting)
        for i in range(listeners):
            bot = ListenerBot(ws + "/ws/v2/sub", stream, self.book, slots=TALKERS,
                              certificate=self.certificate)
            bot.peer.drain = drain
            group.listeners.append(bot)
            group.counting.append(None if i in full else use_counting_peer(bot))
        self.groups.append(group)
        return group

    def sent(self) -> int:
        return sum(p.sent for p in self.talkers)

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.publishers), return_exceptions=True)
        await asyncio.gather(*(v.stop() for g in self.groups for v in g.listeners),
                             return_exceptions=True)


def timed(listeners: int, count: int) -> set[int]:
    """Indexes of the decrypting listeners, spread evenly over the join order (the server
    fans out in join order; see audio_room.timed_listeners)."""
    count = min(count, listeners)
    return {round((k + 1) * listeners / count) - 1 for k in range(count)} if count else set()


async def join_all(coros: Sequence[Any], concurrency: int, what: str,
                   quiet: bool) -> list[BaseException | None]:
    """Run with at most `concurrency` at once; each one's exception or None."""
    gate = asyncio.Semaphore(concurrency)
    done = 0

    async def one(coro: Any) -> None:
        nonlocal done
        async with gate:
            await coro
        done += 1
        if done % 50 == 0 or done == len(coros):
            log(f"\r  {what} {done}/{len(coros)}", quiet, end="")

    results = await asyncio.gather(*(one(c) for c in coros), return_exceptions=True)
    log("", quiet)
    return [r if isinstance(r, BaseException) else None for r in results]


def rounded(stats: dict[str, Any], digits: int = 3) -> dict[str, Any]:
    return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in stats.items()}
