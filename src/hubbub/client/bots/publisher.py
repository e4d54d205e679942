"""PublisherBot: sends pre-encoded Opus frames on a talk/silence schedule over ICE/DTLS/SRTP.

Every 20 ms one RTP packet (RFC 7587): while talking a tone frame with the audio level of the
tone and the V flag set (RFC 6464 §3); while silent nothing (DTX) or a silence frame with
level 127. Each send time is written into the bot's ring in the shared `FrameBook`, so
listeners in the same process measure one-way latency without any timestamp on the wire.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time

from hubbub.client.bots.frames import FrameBook
from hubbub.client.bots.offer import (
    EXT_AUDIO_LEVEL,
    EXT_MID,
    OPUS_PT,
    parse_answer,
    publisher_offer,
)
from hubbub.client.bots.opus import FrameSet
from hubbub.client.bots.peer import BotPeer
from hubbub.client.bots.schedule import Schedule
from hubbub.client.signaling import Signaling
from hubbub.media.dtls import Certificate

PTIME = 0.020
_HEADER = struct.Struct("!BBHII")
_RESYNC = 0.2  # after a loop stall longer than this, skip the missed frames instead of bursting


def _extensions(level_byte: int, mid: bytes) -> bytes:
    """RFC 8285 §4.2 one-byte header extension block: audio level, then MID, padded to words."""
    body = bytes((EXT_AUDIO_LEVEL << 4, level_byte, (EXT_MID << 4) | (len(mid) - 1))) + mid
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("!HH", 0xBEDE, len(body) // 4) + body


class PublisherBot:
    """One publishing bot. `await start()` publishes and connects; `begin(t0)` starts sending.

    `dtx=True`: silence sends nothing, or with `dtx_keepalive=k` one silence frame every k
    frames (libopus DTX: k = 20, i.e. 400 ms). A source that sends nothing for the server's
    media timeout (10 s) is dropped, so long silent bots want `dtx=False` or a keepalive.
    """

    def __init__(
        self,
        url: str,
        stream: str,
        frames: FrameSet,
        book: FrameBook,
        *,
        source_id: str | None = None,
        schedule: Schedule | None = None,
        dtx: bool = True,
        dtx_keepalive: int = 0,
        token: str | None = None,
        certificate: Certificate | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.frames = frames
        self.bot_id = frames.bot_id
        self.source_id = source_id
        self.schedule = schedule if schedule is not None else Schedule.always()
        self.dtx = dtx
        # libopus DTX sends one silence frame every 400 ms (20 frames); 0 = send nothing at all.
        self.dtx_keepalive = dtx_keepalive
        self.token = token
        self.peer = BotPeer(certificate or Certificate())
        self.ssrc = secrets.randbits(32) or 1
        self.signaling: Signaling | None = None
        self._ring = book.register(frames)
        self._talk_ext = _extensions(0x80 | frames.level, b"0")  # V=1: voice activity
        self._silence_ext = _extensions(127, b"0")
        self._seq = secrets.randbits(16)
        self._ts0 = secrets.randbits(32)
        self._n = 0
        self._t0 = 0.0
        self._was_talking = False
        self._timer: asyncio.TimerHandle | None = None
        self.sent = 0
        self.talk_starts_ns: list[int] = []  # send time of each talk interval's first packet

    async def start(self, timeout: float = 10.0) -> None:
        offer = publisher_offer(self.peer.local, self.ssrc, f"bot{self.bot_id}", self.dtx)
        self.signaling = Signaling(self.url, self.token)
        await self.signaling.connect()
        data: dict[str, object] = {"name": self.stream, "sdp": offer}
        if self.source_id is not None:
            data["sourceId"] = self.source_id
        reply = await self.signaling.command("publish", data, timeout=timeout)
        await self.peer.connect(parse_answer(str(reply["sdp"])), timeout=timeout)

    def begin(self, t0: float | None = None) -> None:
        """Start the 20 ms clock at loop time `t0` (default now); schedules count from t0."""
        loop = asyncio.get_running_loop()
        self._t0 = loop.time() if t0 is None else t0
        self._n = 0
        self._timer = loop.call_at(self._t0, self._tick)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        elapsed = loop.time() - self._t0
        if elapsed - self._n * PTIME > _RESYNC:
            self._n = int(elapsed / PTIME)
        n = self._n
        self._n = n + 1
        self._timer = loop.call_at(self._t0 + self._n * PTIME, self._tick)
        talking = self.schedule.talking(n * PTIME)
        if talking:
            index = n % len(self.frames.tone)
            payload = self.frames.tone[index]
            ext = self._talk_ext
            # RFC 3551 §4.1: marker on the first packet of a talkspurt after DTX silence
            marker = 0x80 if not self._was_talking and self.dtx else 0
        elif self.dtx and (not self.dtx_keepalive or n % self.dtx_keepalive):
            self._was_talking = False
            return
        else:
            index = len(self.frames.tone)
            payload = self.frames.silence
            ext = self._silence_ext
            marker = 0
        now = time.monotonic_ns()
        if talking and not self._was_talking:
            self.talk_starts_ns.append(now)
        self._was_talking = talking
        self._ring[index] = now
        seq = self._seq
        self._seq = (seq + 1) & 0xFFFF
        # V=2, X=1 (RFC 3550 §5.1); timestamp counts 48 kHz samples, also across DTX gaps
        header = _HEADER.pack(0x90, marker | OPUS_PT, seq, (self._ts0 + n * 960) & 0xFFFFFFFF,
                              self.ssrc)
        self.peer.send_rtp(header + ext + payload)
        self.sent += 1

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.peer.close()
        if self.signaling is not None:
            await self.signaling.close()
