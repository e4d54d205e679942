"""The in-process book of who sent which payload, and when.

The SFU rewrites SSRC, sequence number and timestamp but never the payload, so a listener
identifies a packet by its payload bytes (one dict lookup) and finds its send time in the
publisher's ring of send times, indexed by frame index. Publishers and listeners share the
process and therefore `time.monotonic_ns()`; no timestamp travels in the packet.

A ring slot is overwritten when the frame is sent again one cycle (50 frames = 1 s) later, so
a latency sample is only right when the one-way delay is below one cycle: far above anything
loopback forwarding shows; listeners drop samples outside (0, 1 s).
"""

from __future__ import annotations

from hubbub.client.bots.opus import FrameSet


class FrameBook:
    """payload bytes -> (bot id, frame index); frame index == len(tone) is the silence frame."""

    def __init__(self) -> None:
        self.owner: dict[bytes, tuple[int, int]] = {}
        self.sent_ns: dict[int, list[int]] = {}
        self.sets: dict[int, FrameSet] = {}

    def register(self, frames: FrameSet) -> list[int]:
        """Add a bot's frames; returns the ring its publisher writes send times into."""
        if frames.bot_id in self.sets:
            raise ValueError(f"bot id {frames.bot_id} is already registered")
        payloads = [*frames.tone, frames.silence]
        for index, payload in enumerate(payloads):
            other = self.owner.get(payload)
            if other is not None:
                raise ValueError(f"bot {frames.bot_id} frame {index} equals bot {other[0]}'s")
        for index, payload in enumerate(payloads):
            self.owner[payload] = (frames.bot_id, index)
        ring = [0] * len(payloads)
        self.sent_ns[frames.bot_id] = ring
        self.sets[frames.bot_id] = frames
        return ring

    def is_silence(self, bot_id: int, index: int) -> bool:
        return index == len(self.sets[bot_id].tone)
