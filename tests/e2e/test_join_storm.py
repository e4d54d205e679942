"""A flash crowd on a real `hubbub serve` (issue 13): 400 listener bots, in their own process
(`hubbub.client.bots.crowd`), join the stream a canary viewer is hearing (a 440 Hz publisher)
as fast as they can. The canary keeps ≥ 45 frames/s throughout, every bot joins and then
receives the publisher with (almost) no loss, a newcomer still hears the tone, the log grows by
a few lines, and each listener costs the server at most 64 KB of RSS. The node runs with its
default connection limits: 400 joins from one address fit their burst."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from tests.helpers.canary import STREAM, a_newcomer_hears, canary_of, log_size
from tests.helpers.server import RunningServer

pytestmark = pytest.mark.slow

LISTENERS = 400
HOLD = 4.0  # seconds the crowd stays once everybody joined
MAX_RSS_PER_LISTENER = 64 * 1024


def rss(pid: int | None) -> int:
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_flash_crowd_joins_without_starving_the_canary() -> None:
    srv = RunningServer(name="join-storm", extra_args=["--drain-grace", "0"])
    await srv.start_async()
    try:
        async with canary_of(srv) as canary:
            await asyncio.sleep(1.0)  # the canary's own allocations settle
            rss_before, log_before = rss(srv.pid), log_size(srv)
            crowd = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hubbub.client.bots.crowd", srv.ws_sub_url, STREAM,
                "--listeners", str(LISTENERS), "--concurrency", "50", "--hold", str(HOLD),
                stdout=asyncio.subprocess.PIPE)
            out = crowd.stdout
            assert out is not None
            assert await asyncio.wait_for(out.readline(), 30) == b"joining\n"

            async def storm() -> tuple[int, dict[str, object]]:
                """(server RSS while the crowd is held, the crowd's result)"""
                assert out is not None
                joined = await asyncio.wait_for(out.readline(), 120)
                assert joined.startswith(b"joined "), joined
                await asyncio.sleep(1.0)
                held = rss(srv.pid)
                line = await asyncio.wait_for(out.readline(), HOLD + 30)
                await crowd.wait()
                return held, json.loads(line)

            task = asyncio.ensure_future(storm())
            fps = await canary.fps_during(task)
            rss_held, result = task.result()
            assert result["joined"] == LISTENERS, result
            assert fps >= 45, f"canary at {fps:.1f} frames/s while {LISTENERS} joined: {result}"
            packets, lost = int(str(result["packets"])), int(str(result["lost"]))
            assert packets > 0.9 * LISTENERS * 50 * HOLD, result  # 50 packets/s each
            assert lost < 0.01 * packets, result
            per_listener = (rss_held - rss_before) / LISTENERS
            assert per_listener <= MAX_RSS_PER_LISTENER, (
                f"{per_listener / 1024:.1f} KB of server RSS per listener")
            await a_newcomer_hears(srv)
            # Joins are logged a few lines a minute, not one line each.
            grown = log_size(srv) - log_before
            assert grown < 5_000, f"the storm grew the log by {grown} bytes"
    finally:
        await asyncio.to_thread(srv.stop)
