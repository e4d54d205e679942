"""Shared bench plumbing: argument parsing, a `hubbub serve` child process, result files."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"
# Every bot connects from 127.0.0.1, hundreds at ~130 joins/s: past a production node's
# per-address cap and rate (control/connections.py), which are no part of what is measured.
NO_CONNECTION_LIMITS = ("--max-connections-per-ip", "0", "--new-connections-per-ip", "0")


def parser(description: str, default_output: str, server: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if server:
        p.add_argument("--ws", default=None,
                       help="base ws:// URL of a running hubbub (/ws/v2/pub and /sub are "
                            "added); default: start `hubbub serve --allow-any-stream` on free "
                            "ports")
    p.add_argument("--output", default=str(RESULTS_DIR / default_output),
                   help="JSON result file")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def server(ws: str | None, extra_args: Sequence[str] = (), *, cpu: int | None = None,
           src: str | None = None, log_name: str = ".server.log"
           ) -> Iterator[tuple[str, int | None]]:
    """Yields (base ws URL, server pid or None when --ws named an existing server).

    `cpu`: pin the server to that core (taskset); `src`: run it from another checkout (its
    src/ on PYTHONPATH, e.g. an export of an older commit), leaving out the connection-limit
    flags when that version does not know them."""
    if ws is not None:
        yield ws.rstrip("/"), None
        return
    http, media = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    env, cwd = dict(os.environ), REPO_ROOT
    if src is not None:
        env["PYTHONPATH"] = str(Path(src) / "src")
        cwd = Path(src)
    base = [sys.executable, "-m", "hubbub", "serve"]
    limits: Sequence[str] = NO_CONNECTION_LIMITS
    if src is not None:
        known = subprocess.run([*base, "--help"], capture_output=True, text=True, env=env,
                               cwd=cwd).stdout
        limits = NO_CONNECTION_LIMITS if NO_CONNECTION_LIMITS[0] in known else ()
    pin = ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []
    args = [*pin, *base, "--host", HOST, "--http-port", str(http), "--media-port", str(media),
            "--allow-any-stream", *limits, *extra_args]
    log = open(RESULTS_DIR / log_name, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"hubbub serve exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{http}/healthz", timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("hubbub serve did not become healthy") from None
                time.sleep(0.05)
        yield f"ws://{HOST}:{http}", proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def process_cpu(pid: int | None) -> float | None:
    """utime + stime of a process in seconds (from /proc), None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """count, p50, p95, p99, max (nearest-rank) of `values`."""
    data = sorted(values)
    if not data:
        return {"count": 0, "p50": None, "p95": None, "p99": None, "max": None}

    def rank(q: float) -> float:
        return data[min(len(data) - 1, max(0, int(q * len(data) + 0.5) - 1))]

    return {"count": len(data), "p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99),
            "max": data[-1]}


def write_result(path: str, params: dict[str, Any], result: dict[str, Any]) -> None:
    """Write `result` with the command line that produced it and the parameters used."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {"command": [sys.argv[0], *sys.argv[1:]], "params": params,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **result}
    out.write_text(json.dumps(data, indent=2) + "\n")


def progress_printer(quiet: bool) -> Any:
    if quiet:
        return None

    def show(p: Any) -> None:
        print(f"\r{p.elapsed:6.1f}/{p.duration:.0f} s  sent {p.sent}  received {p.received}  "
              f"lost {p.lost}  bot cpu {p.cpu:.1f} s", end="", file=sys.stderr, flush=True)

    return show
