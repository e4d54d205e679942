"""A flash crowd: listener bots joining one stream as fast as they can (issue 13), run as its
own process so it does not share an event loop with what it measures.

    python -m hubbub.client.bots.crowd ws://127.0.0.1:8080/ws/v2/sub STREAM \\
        --listeners 400 --concurrency 50 --hold 3

Each bot makes a whole join (WebSocket, `view`, ICE checks, DTLS, SRTP keys) and then counts
the packets it receives without decrypting them (through the C `Drain` when it is built).
Prints `joining` when the first join starts, `joined N` when every join has ended (the hold
begins), and one JSON line at the end: how many joined,
failures (with the first error), join time p50/p99/max in ms from the bot's connect to its
SRTP keys, how long the storm took, and the packets received and lost (sequence gaps) over
`--hold` seconds once everybody had joined.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from hubbub.client.bots.drain import Drain
from hubbub.client.bots.frames import FrameBook
from hubbub.client.bots.janus import CountingPeer, use_counting_peer
from hubbub.client.bots.junk import say
from hubbub.client.bots.listener import ListenerBot
from hubbub.client.bots.swarm import run
from hubbub.media.dtls import Certificate


def _percentile(values: list[float], q: float) -> float | None:
    data = sorted(values)
    if not data:
        return None
    return round(data[min(len(data) - 1, max(0, int(q * len(data) + 0.5) - 1))], 1)


async def storm(url: str, stream: str, listeners: int, concurrency: int, hold: float,
                timeout: float = 30.0) -> dict[str, Any]:
    drain = Drain(0.005) if Drain.available() else None
    certificate = Certificate()
    book = FrameBook()
    bots = [ListenerBot(url, stream, book, certificate=certificate, record_latency=False)
            for _ in range(listeners)]
    peers: list[CountingPeer] = []
    for bot in bots:
        bot.peer.drain = drain
        peers.append(use_counting_peer(bot))
    gate = asyncio.Semaphore(concurrency)
    join_ms: list[float] = []
    failures: list[str] = []

    async def join(bot: ListenerBot) -> None:
        async with gate:
            t = time.perf_counter()
            try:
                await bot.start(timeout=timeout)
            except Exception as exc:
                failures.append(repr(exc))
                return
            join_ms.append((time.perf_counter() - t) * 1000)

    say("joining")
    start = time.monotonic()
    try:
        await asyncio.gather(*(join(bot) for bot in bots))
        seconds = time.monotonic() - start
        joined = [peer for peer, bot in zip(peers, bots, strict=True) if bot.peer.srtp]
        say(f"joined {len(join_ms)}")
        before = [peer.totals() for peer in joined]
        await asyncio.sleep(hold)
        after = [peer.totals() for peer in joined]
    finally:
        await asyncio.gather(*(bot.stop() for bot in bots), return_exceptions=True)
        if drain is not None:
            drain.close()
    packets = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    lost = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    return {"listeners": listeners, "joined": len(join_ms), "failures": len(failures),
            "first_failure": failures[0] if failures else None,
            "seconds": round(seconds, 3),
            "joins_per_s": round(len(join_ms) / seconds, 1) if seconds else None,
            "join_ms": {"p50": _percentile(join_ms, 0.5), "p99": _percentile(join_ms, 0.99),
                        "max": round(max(join_ms), 1) if join_ms else None},
            "hold_s": hold, "packets": packets, "lost": lost}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("url", help="the view WebSocket, e.g. ws://127.0.0.1:8080/ws/v2/sub")
    parser.add_argument("stream")
    parser.add_argument("--listeners", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=50, help="joins in flight at once")
    parser.add_argument("--hold", type=float, default=3.0,
                        help="seconds to stay and count packets once everybody joined")
    parser.add_argument("--timeout", type=float, default=30.0, help="per join, seconds")
    args = parser.parse_args(argv)
    result = run(storm(args.url, args.stream, args.listeners, args.concurrency, args.hold,
                       args.timeout))
    say(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
