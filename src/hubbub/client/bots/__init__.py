"""Cheap RTP bots for tests and benchmarks: no aiortc peer, no decoding.

A bot is asyncio + one UDP socket: controlling ICE checks (`ice`), a DTLS client over a memory
BIO (`dtls`), pylibsrtp, and RTP packed with `struct`. Publishers send pre-encoded Opus frames
(`opus`) on a talk/silence `schedule`; listeners record per mid which publisher's frames arrive
(`frames.FrameBook`), with one-way latency from send times kept in the same process.
"""

from hubbub.client.bots.frames import FrameBook
from hubbub.client.bots.listener import ListenerBot, MidStats
from hubbub.client.bots.opus import FrameSet, encode_tone
from hubbub.client.bots.publisher import PublisherBot
from hubbub.client.bots.schedule import Schedule, alternating, conversation
from hubbub.client.bots.swarm import Progress, Swarm, run

__all__ = [
    "FrameBook",
    "FrameSet",
    "ListenerBot",
    "MidStats",
    "Progress",
    "PublisherBot",
    "Schedule",
    "Swarm",
    "alternating",
    "conversation",
    "encode_tone",
    "run",
]
