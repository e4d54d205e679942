"""`hubbub serve --workers N`: N worker processes on one host, each a node of the cluster.

Each worker is a full node with its own event loop, HTTP port (`--http-port` + i), media
port (`--media-port` + i) and RTMP port (`--rtmp-port` + i, unless off); a client's peer
connection lives on one worker and the Director of any worker places clients on the
least-loaded one. Workers find each other in Redis: the
one given with `--redis`, else a private `redis-server` this supervisor starts on a Unix
socket in the data dir (no TCP port, nothing persisted). A worker that dies is started
again; SIGTERM or Ctrl-C drains and stops them all.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0
REDIS_START_TIMEOUT = 10.0


def worker_count(value: str) -> int:
    """`--workers`: a positive number, or `auto` for one per core."""
    if value == "auto":
        return os.cpu_count() or 1
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--workers must be a number or 'auto', not {value!r}") from None
    if count < 1:
        raise ValueError("--workers must be at least 1")
    return count


class PrivateRedis:
    """A `redis-server` for this host's workers only: Unix socket, no persistence."""

    def __init__(self, run_dir: Path) -> None:
        self.socket = run_dir / "redis.sock"
        self._run_dir = run_dir
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "--workers > 1 needs Redis: install redis-server (Debian: apt install "
                "redis-server) or give --redis redis://HOST:PORT/DB"
            )
        self._run_dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self._proc = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm",
             "700", "--save", "", "--appendonly", "no", "--loglevel", "warning",
             "--logfile", str(self._run_dir / "redis.log")],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while not self.socket.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the private redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.socket.unlink(missing_ok=True)


class Supervisor:
    """Runs the workers: `argv` is the `serve` command line, each worker gets it plus its own
    ports, index and the Redis URL (later flags win in argparse)."""

    def __init__(self, argv: Sequence[str], count: int, http_port: int, media_port: int,
                 redis_url: str, stop_grace: float, media_tcp_port: int | None = None,
                 rtmp_port: int = -1) -> None:
        self._argv = list(argv)
        self._count = count
        self._http_port = http_port
        self._media_port = media_port
        self._media_tcp_port = media_tcp_port  # None: each worker's UDP number; -1: off
        self._rtmp_port = rtmp_port  # -1: off
        self._redis_url = redis_url
        self._stop_grace = stop_grace
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def _spawn(self, index: int) -> None:
        args = [sys.executable, "-m", "hubbub", "serve", *self._argv,
                "--workers", "1", "--worker-index", str(index), "--redis", self._redis_url,
                "--http-port", str(self._http_port + index),
                "--media-port", str(self._media_port + index)]
        if self._media_tcp_port is not None and self._media_tcp_port >= 0:
            args += ["--media-tcp-port", str(self._media_tcp_port + index)]
        if self._rtmp_port >= 0:
            args += ["--rtmp-port", str(self._rtmp_port + index)]
        if index > 0:
            args.append("--no-spaces")  # one Spaces app per host (its presence is in-process)
        self._procs[index] = subprocess.Popen(args, stdin=subprocess.DEVNULL)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for index in range(self._count):
            self._spawn(index)
        while not self._stopping:
            time.sleep(0.2)
            for index, proc in list(self._procs.items()):
                code = proc.poll()
                if code is not None and not self._stopping:
                    log.warning("worker %d exited with %s; starting it again", index, code)
                    time.sleep(RESTART_DELAY)
                    self._spawn(index)
        return self._stop()

    def _stop(self) -> int:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # each worker drains (see cli.serve)
        deadline = time.monotonic() + self._stop_grace + 10.0
        for proc in self._procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return 0
