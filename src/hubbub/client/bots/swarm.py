"""Many publisher and listener bots in one process and one event loop.

    swarm = Swarm(pub_url, sub_url, "room")
    swarm.add_publisher(source_id="a", frequency=440, schedule=alternating(2, 2, 60))
    swarm.add_listener(slots=3)
    await swarm.start()          # publish, view, ICE/DTLS for all; then every publisher's clock
    await swarm.run(30, progress=print_progress)
    await swarm.stop()

Run it on uvloop (`run(main())`): the bots' cost is dominated by per-datagram loop overhead.
One certificate serves every bot (the server tells peers apart by ICE ufrag and address).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import uvloop

from hubbub.client.bots.frames import FrameBook
from hubbub.client.bots.listener import ListenerBot
from hubbub.client.bots.opus import encode_tone
from hubbub.client.bots.publisher import PublisherBot
from hubbub.client.bots.schedule import Schedule
from hubbub.media.dtls import Certificate

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    elapsed: float
    duration: float
    sent: int  # RTP packets sent by all publishers
    received: int  # RTP packets received by all listeners
    lost: int  # sequence gaps over all listeners' m-lines
    cpu: float  # process CPU seconds so far (time.process_time)


ProgressCallback = Callable[[Progress], None]


class Swarm:
    def __init__(
        self, pub_url: str, sub_url: str, stream: str, *, token: str | None = None
    ) -> None:
        self.pub_url = pub_url
        self.sub_url = sub_url
        self.stream = stream
        self.token = token
        self.book = FrameBook()
        self.certificate = Certificate()
        self.publishers: list[PublisherBot] = []
        self.listeners: list[ListenerBot] = []
        self.t0 = 0.0  # loop time at which the publishers' schedules start
        self.t0_ns = 0  # the same instant on time.monotonic_ns()

    def add_publisher(
        self,
        *,
        source_id: str | None = None,
        frequency: float | None = None,
        schedule: Schedule | None = None,
        dtx: bool = True,
        dtx_keepalive: int = 0,
    ) -> PublisherBot:
        """A bot with id = its index; default frequency 300 + 50 * id Hz."""
        bot_id = len(self.publishers)
        frames = encode_tone(bot_id, frequency if frequency is not None else 300 + 50 * bot_id)
        bot = PublisherBot(self.pub_url, self.stream, frames, self.book, source_id=source_id,
                           schedule=schedule, dtx=dtx, dtx_keepalive=dtx_keepalive,
                           token=self.token,
                           certificate=self.certificate)
        self.publishers.append(bot)
        return bot

    def add_listener(self, **options: Any) -> ListenerBot:
        """Keywords of `ListenerBot` (slots, video, pinned_source_id, excluded_source_ids...)."""
        bot = ListenerBot(self.sub_url, self.stream, self.book, token=self.token,
                          certificate=self.certificate, **options)
        self.listeners.append(bot)
        return bot

    async def start(self, concurrency: int = 16, lead: float = 0.2) -> None:
        """Connect every publisher, then every listener (at most `concurrency` handshakes at
        once), then start all publisher clocks together `lead` s from now."""
        gate = asyncio.Semaphore(concurrency)

        async def limited(coro: Coroutine[Any, Any, None]) -> None:
            async with gate:
                await coro

        await asyncio.gather(*(limited(p.start()) for p in self.publishers))
        await asyncio.gather(*(limited(v.start()) for v in self.listeners))
        loop = asyncio.get_running_loop()
        self.t0 = loop.time() + lead
        self.t0_ns = time.monotonic_ns() + int(lead * 1e9)
        for publisher in self.publishers:
            publisher.begin(self.t0)

    def progress(self, duration: float = 0.0) -> Progress:
        loop = asyncio.get_running_loop()
        return Progress(
            elapsed=max(0.0, loop.time() - self.t0),
            duration=duration,
            sent=sum(p.sent for p in self.publishers),
            received=sum(v.packets for v in self.listeners),
            lost=sum(s.lost for v in self.listeners for s in v.mids.values()),
            cpu=time.process_time(),
        )

    async def run(
        self, duration: float, progress: ProgressCallback | None = None, every: float = 1.0
    ) -> None:
        """Let the bots work until `duration` s after the publishers' start."""
        loop = asyncio.get_running_loop()
        end = self.t0 + duration
        while (now := loop.time()) < end:
            await asyncio.sleep(min(every, end - now))
            if progress is not None:
                progress(self.progress(duration))

    async def stop(self) -> None:
        """Stop publishers first (their clocks), then listeners; closes every socket."""
        await asyncio.gather(*(p.stop() for p in self.publishers), return_exceptions=True)
        await asyncio.gather(*(v.stop() for v in self.listeners), return_exceptions=True)


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a uvloop event loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
