"""Abusive signaling clients against a real `hubbub serve`, with a canary viewer hearing a
440 Hz publisher throughout: the limit stops the attack (close code or error), the canary
keeps ≥ 45 frames a second, a new viewer can still join, and the log stays small.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from tests.helpers.canary import Canary, a_newcomer_hears, canary_of, log_size
from tests.helpers.server import RunningServer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = pytest.mark.slow

# Sends 100,000 commands without reading a reply, then reads until the server closes.
FLOOD = """
import json, sys
from websockets.sync.client import connect
from websockets.exceptions import ConnectionClosed
command = json.dumps({"type": "cmd", "transId": 1, "name": "x" * 60, "data": {}})
with connect(sys.argv[1], max_size=None) as ws:
    try:
        for _ in range(100_000):
            ws.send(command)
        while True:
            ws.recv()
    except ConnectionClosed as closed:
        rcvd = closed.rcvd
        print(json.dumps([rcvd.code, rcvd.reason] if rcvd else [None, ""]))
"""


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="abuse-signaling") as s:
        yield s


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def canary(srv: RunningServer) -> AsyncIterator[Canary]:
    async with canary_of(srv) as bird:
        yield bird


async def close_of(ws: object) -> tuple[int | None, str]:
    """Read until the server closes; its close code and reason."""
    try:
        while True:
            await ws.recv()  # type: ignore[attr-defined]
    except ConnectionClosed as closed:
        rcvd = closed.rcvd
        return (rcvd.code, rcvd.reason) if rcvd else (None, "")


@pytest.mark.asyncio(loop_scope="module")
async def test_a_command_flood_is_closed_and_starves_nobody(
    srv: RunningServer, canary: Canary,
) -> None:
    before = log_size(srv)

    async def flood() -> tuple[int | None, str]:
        # Another process, as an attacker is: the canary's decoding here must not compete
        # with the flood's own loop.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FLOOD, srv.ws_sub_url, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        code, reason = json.loads(out)
        return code, reason

    task = asyncio.ensure_future(flood())
    fps = await canary.fps_during(task)
    assert task.result() == (1008, "command flood: too many commands")
    assert fps >= 45, f"canary at {fps:.1f} frames/s during the flood"
    await a_newcomer_hears(srv)
    assert log_size(srv) - before < 20_000, "the flood flooded the log"


@pytest.mark.asyncio(loop_scope="module")
async def test_deep_and_huge_commands_get_an_error_and_a_bounded_log_line(
    srv: RunningServer, canary: Canary,
) -> None:
    before = log_size(srv)
    async with connect(srv.ws_sub_url, max_size=None) as ws:
        await ws.send('{"type": "cmd", "transId": 1, "name": "view", "data": '
                      + "[" * 50_000 + "]" * 50_000 + "}")
        reply = json.loads(await ws.recv())
        assert reply == {"type": "error", "transId": None,
                         "data": "JSON nested deeper than 32 levels"}
        for i in range(20):
            await ws.send(json.dumps({"type": "cmd", "transId": i, "name": "n" * 200_000}))
            reply = json.loads(await ws.recv())
            assert reply["data"] == "command name longer than 64 characters"
        await ws.send(json.dumps({"type": "cmd", "transId": 99, "name": "view",
                                  "data": {"sdp": "v=0\n" + "\x1b[31m" * 10_000}}))
        reply = json.loads(await ws.recv())
        assert reply["type"] == "error" and len(reply["data"]) < 400
    grown = srv.log_text()[-(log_size(srv) - before):] if log_size(srv) > before else ""
    assert len(grown) < 10_000, "attacker text reached the log"
    assert "Traceback" not in grown and "\x1b" not in grown
    assert canary.rec.frames > 0
    await a_newcomer_hears(srv)
