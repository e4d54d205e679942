"""Junk on the media port of a real `hubbub serve` (issue 13), with a canary viewer hearing a
440 Hz publisher throughout. Attacker processes send Binding requests with a wrong
MESSAGE-INTEGRITY for the canary viewer's live ufrag, from one source port (its budget runs
out) and sprayed over 40,000 source ports (more than a budget table holds), and a mix of
unknown-ufrag STUN, junk DTLS and junk RTP sprayed over 20,000 ports: the canary keeps ≥ 45
frames/s, a newcomer joins and hears the tone during the attack, the log grows by a few lines,
the kernel drops (almost) nothing, and the port's counters (its closing log line) show every
kind of drop.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

import pytest
from tests.helpers.canary import a_newcomer_hears, canary_of, log_size
from tests.helpers.server import RunningServer

pytestmark = pytest.mark.slow

SECONDS = 6.0
# (kind, datagrams/s, source ports): forged requests from one port (over budget after 80),
# forged requests from 40,000 ports (each port new: no budget is spent twice, the table of
# 16,384 addresses evicts), unknown ufrags + junk DTLS + junk RTP from 20,000 ports.
ATTACKS = [("bad-mi", 10_000, 1), ("bad-mi", 10_000, 40_000), ("mix", 6_000, 20_000)]
RATE = sum(rate for _, rate, _ in ATTACKS)


def kernel_drops(port: int) -> int:
    """Datagrams the kernel dropped on the UDP socket bound to `port` (buffer full)."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}"):
            return int(fields[-1])
    return 0


class Attacker:
    """`python -m hubbub.client.bots.junk` in its own process. (`mix` is given no ufrag: it
    then sends unknown-ufrag STUN, DTLS and RTP.)"""

    def __init__(self, srv: RunningServer, kind: str, rate: int, sources: int,
                 ufrag: str) -> None:
        self.args = [sys.executable, "-m", "hubbub.client.bots.junk",
                     f"127.0.0.1:{srv.media_port}", "--kind", kind,
                     *(["--ufrag", ufrag] if kind == "bad-mi" else []), "--rate", str(rate),
                     "--duration", str(SECONDS), "--sources", str(sources)]
        self.proc: asyncio.subprocess.Process | None = None

    async def started(self) -> None:
        """Returns once the first datagram went out (starting Python takes ~0.7 s)."""
        self.proc = await asyncio.create_subprocess_exec(*self.args,
                                                         stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        assert await asyncio.wait_for(self.proc.stdout.readline(), 30) == b"sending\n"

    async def result(self) -> dict[str, object]:
        """What it sent, once it is done."""
        assert self.proc is not None and self.proc.stdout is not None
        out = await asyncio.wait_for(self.proc.stdout.read(), SECONDS + 30)
        await self.proc.wait()
        result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
        return result


def closing_counters(log: str) -> dict[str, int]:
    match = re.search(r"media port dropped since the last report: (.*)", log)
    assert match, "the port logs its drop counters when it closes"
    return {name: int(count) for name, count in
            (part.rsplit(" ", 1) for part in match.group(1).split(", "))}


async def test_junk_on_the_media_port_starves_nobody() -> None:
    srv = RunningServer(name="abuse-media", extra_args=["--drain-grace", "0"])
    await srv.start_async()
    try:
        assert re.search(r"media port receive buffer: 4194304 bytes|rmem_max", srv.log_text())
        async with canary_of(srv) as canary:
            remote_sdp = canary.viewer.pc.remoteDescription.sdp
            ufrag = re.search(r"a=ice-ufrag:(\S+)", remote_sdp)
            assert ufrag is not None
            log_before, drops_before = log_size(srv), kernel_drops(srv.media_port)
            attackers = [Attacker(srv, kind, rate, sources, ufrag.group(1))
                         for kind, rate, sources in ATTACKS]
            await asyncio.gather(*(a.started() for a in attackers))
            attack = asyncio.gather(*(a.result() for a in attackers))

            async def newcomer() -> float:
                await asyncio.sleep(0.5)
                await a_newcomer_hears(srv)
                return time.monotonic()

            joined = asyncio.ensure_future(newcomer())
            fps = await canary.fps_during(attack)
            ended = time.monotonic()
            # A new viewer joined and heard the tone while the junk came in.
            assert await joined < ended, "the newcomer was not done before the attack ended"
            sent = sum(int(str(result["sent"])) for result in attack.result())
            assert sent > 0.8 * RATE * SECONDS, attack.result()
            assert fps >= 45, f"canary at {fps:.1f} frames/s during {sent} junk datagrams"
            grown = log_size(srv) - log_before
            assert grown < 5_000, f"the junk grew the log by {grown} bytes"
            drops = kernel_drops(srv.media_port) - drops_before
            assert drops < 0.01 * sent, f"the kernel dropped {drops} of {sent} datagrams"
    finally:
        await asyncio.to_thread(srv.stop)
    counters = closing_counters(srv.log_text())
    # One source port over its budget: its forged requests cost no HMAC.
    assert counters.get("stun_over_budget", 0) > 0.5 * ATTACKS[0][1] * SECONDS, counters
    # The sprays: each forged request went through the HMAC and was dropped unanswered; the
    # budget table stayed at its size; unknown ufrags, DTLS and RTP cost a dict lookup.
    assert counters.get("stun_bad_integrity", 0) > 0.5 * ATTACKS[1][1] * SECONDS, counters
    assert counters.get("budget_evictions", 0) > 5_000, counters
    assert counters.get("stun_unknown_ufrag", 0) > 1_000, counters
    assert counters.get("dropped_unknown_peer", 0) > 2_000, counters


def test_the_receive_buffer_flag_reaches_the_socket() -> None:
    # Below net.core.rmem_max (208 KiB by default), so any process gets it; the kernel
    # reports twice the size (it counts its bookkeeping against the same figure).
    with RunningServer(name="abuse-media-rcvbuf",
                       extra_args=["--media-recv-buffer", "150000"]) as srv:
        assert ("media port receive buffer: 150000 bytes (kernel accounting 300000)"
                in srv.log_text())
