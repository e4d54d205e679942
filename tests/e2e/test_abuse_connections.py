"""Silent TCP connections against a real `hubbub serve` with default limits, with a canary viewer
hearing a 440 Hz publisher throughout (issue 13: 20,100 connections that sent nothing took every
descriptor, and /healthz, the Director and new viewers failed with nothing logged).

The attacker, another process on 127.0.0.2, opens thousands of connections that send nothing:
past the per-address cap they are refused at once, the admitted ones are closed after the
request timeout, then it churns connections as fast as it can (the per-address rate). Meanwhile
the server's descriptors stay bounded, /healthz from 127.0.0.1 answers 200, a new viewer joins
and hears 440 Hz, the canary keeps ≥ 45 frames/s, and the log holds one line for the first
refusal and then one per interval with the counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from tests.helpers.canary import Canary, a_newcomer_hears, canary_of, log_size
from tests.helpers.server import RunningServer

pytestmark = pytest.mark.slow

CAP = 500  # the defaults: --max-connections-per-ip, --new-connections-per-ip, --request-timeout
RATE = 50
TIMEOUT = 10.0
LOG_INTERVAL = 5.0
SILENT = 3000
CHURN_SECONDS = 3.0

# argv: port, connections, churn seconds. Prints one JSON line per phase.
ATTACK = r"""
import json, socket, sys, time
port, count, churn = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])

def dial():
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s

def answer(s):
    # None while the server keeps the connection open and silent, else what it sent ("" = FIN)
    try:
        data = s.recv(64, socket.MSG_PEEK)
    except BlockingIOError:
        return None
    except OSError:
        return "reset"
    return data.decode(errors="replace")

def report(**fields):
    print(json.dumps(fields), flush=True)

# 1. Many silent connections at once.
opened = []
start = time.monotonic()
for _ in range(count):
    opened.append((dial(), time.monotonic()))
report(phase="opened", seconds=round(time.monotonic() - start, 2))
time.sleep(1.0)
answers = [answer(s) for s, _ in opened]
held = [(s, t) for (s, t), a in zip(opened, answers) if a is None]
report(phase="held", held=len(held), refused=len(opened) - len(held),
       refused_429=sum(1 for a in answers if a and a.startswith("HTTP/1.1 429")))

# 2. The held ones are closed by the server after its request timeout.
closed_after = []
deadline = time.monotonic() + 30
while held and time.monotonic() < deadline:
    still = []
    for s, t in held:
        if answer(s) is None:
            still.append((s, t))
        else:
            closed_after.append(time.monotonic() - t)
    held = still
    time.sleep(0.05)
report(phase="timed_out", closed=len(closed_after), still_open=len(held),
       first=round(min(closed_after, default=0), 2), last=round(max(closed_after, default=0), 2))
for s, _ in opened:
    s.close()

# 3. Churn: connect as fast as possible, see which are kept, close them.
admitted = refused = 0
end = time.monotonic() + churn
while time.monotonic() < end:
    batch = [dial() for _ in range(100)]
    time.sleep(0.1)
    for s in batch:
        if answer(s) is None:
            admitted += 1
        else:
            refused += 1
        s.close()
report(phase="churned", admitted=admitted, refused=refused, seconds=churn)
"""


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="abuse-connections",
                       extra_args=["--limits-log-interval", str(LOG_INTERVAL)]) as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def canary(srv: RunningServer) -> AsyncIterator[Canary]:
    async with canary_of(srv) as bird:
        yield bird


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Watch(threading.Thread):
    """In a thread, so the attack cannot hide behind this test's event loop: the server's
    descriptor count and /healthz from 127.0.0.1, every 100 ms."""

    def __init__(self, srv: RunningServer) -> None:
        super().__init__(daemon=True)
        self.srv = srv
        self.pid = srv.pid or 0
        self.most_fds = 0
        self.health: list[int | str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.most_fds = max(self.most_fds, fd_count(self.pid))
            try:
                with urllib.request.urlopen(self.srv.http_url + "/healthz", timeout=2) as reply:
                    self.health.append(reply.status)
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                self.health.append(repr(exc))
            self.stopping.wait(0.1)


@pytest.mark.asyncio(loop_scope="module")
async def test_silent_connections_are_capped_timed_out_and_starve_nobody(
    srv: RunningServer, canary: Canary,
) -> None:
    assert srv.pid is not None
    baseline = fd_count(srv.pid)
    log_before = log_size(srv)
    phases: dict[str, dict[str, Any]] = {}
    held = asyncio.Event()

    async def attack() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", ATTACK, str(srv.http_port), str(SILENT), str(CHURN_SECONDS),
            stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        async for line in proc.stdout:
            report = json.loads(line)
            phases[report["phase"]] = report
            if report["phase"] == "held":
                held.set()
        assert await asyncio.wait_for(proc.wait(), 60) == 0

    async def meanwhile() -> None:
        await held.wait()
        # The attacker holds its whole cap: a new viewer from another address still joins.
        await a_newcomer_hears(srv)

    watch = Watch(srv)
    watch.start()
    try:
        task = asyncio.ensure_future(asyncio.gather(attack(), meanwhile()))
        fps = await canary.fps_during(task)
    finally:
        watch.stopping.set()
        watch.join()

    # Past the cap, refused at once with a 429; the admitted silent ones closed after 10 s.
    assert phases["held"]["held"] == CAP, phases
    assert phases["held"]["refused"] == SILENT - CAP
    assert phases["held"]["refused_429"] > 0.9 * (SILENT - CAP)  # the rest: a reset
    timed_out = phases["timed_out"]
    assert timed_out["closed"] == CAP and timed_out["still_open"] == 0, timed_out
    assert TIMEOUT - 0.5 <= timed_out["first"] and timed_out["last"] <= TIMEOUT + 3, timed_out
    # Churning: the burst (the cap) plus the rate, however fast it connects.
    churned = phases["churned"]
    assert churned["refused"] > churned["admitted"], churned
    assert churned["admitted"] <= CAP + RATE * (CHURN_SECONDS + 2), churned

    assert watch.most_fds <= baseline + CAP + 60, (watch.most_fds, baseline)
    assert fd_count(srv.pid) <= baseline + 10
    assert watch.health and all(status == 200 for status in watch.health), watch.health
    assert fps >= 45, f"canary at {fps:.1f} frames/s during the attack"

    # One line for the first refusal, then one per interval with the counts.
    await asyncio.sleep(LOG_INTERVAL + 1)
    grown = srv.log_text()[-(log_size(srv) - log_before):]
    assert len(grown) < 10_000, "the attack flooded the log"
    firsts = [line for line in grown.splitlines() if "connections from 127.0.0.2 refused" in line]
    assert len(firsts) == 1, grown
    assert f"cap of {CAP} open per address reached ({CAP} open)" in firsts[0]
    counted = [int(m) for m in re.findall(r"by address: 127\.0\.0\.2 (\d+) refused", grown)]
    refusals = phases["held"]["refused"] + churned["refused"]
    assert len(counted) >= 2 and refusals * 0.95 <= 1 + sum(counted) <= refusals * 1.05, (
        counted, refusals, grown)
    assert f"no request or first message within {TIMEOUT:g} s: {CAP}" in grown
    print(f"\nattack: {phases}\nserver fds: baseline {baseline}, most {watch.most_fds}; "
          f"canary {fps:.1f} frames/s; /healthz {len(watch.health)} x 200; log +{len(grown)} B")
    await a_newcomer_hears(srv)
