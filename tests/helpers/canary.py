"""A canary for abuse tests: a 440 Hz publisher and a viewer decoding it throughout an attack
on a real `hubbub serve`, to show the attack starves nobody (≥ 45 frames/s of the 50), plus
the checks every abuse test makes: a newcomer can still join and hear it, the log stays small.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from tests.helpers.server import RunningServer

STREAM = "canary"


class Canary:
    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.rec = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], seconds=3).start()

    async def fps_during(self, attack: asyncio.Future[object] | asyncio.Task[object]) -> float:
        """Frames a second the canary decodes while `attack` runs (at least 2 s)."""
        start, frames = time.monotonic(), self.rec.frames
        await asyncio.gather(attack, asyncio.sleep(2.0))
        return (self.rec.frames - frames) / (time.monotonic() - start)


@asynccontextmanager
async def canary_of(srv: RunningServer) -> AsyncIterator[Canary]:
    """A publisher sending 440 Hz to `STREAM` and a viewer decoding it, 50 frames in."""
    async with Publisher(srv.ws_pub_url, STREAM, tracks=[ToneTrack(440)]):
        async with Viewer(srv.ws_sub_url, STREAM, video=False) as viewer:
            bird = Canary(viewer)
            await bird.rec.wait_for_frames(50, timeout=10)
            yield bird
            await bird.rec.stop()


async def a_newcomer_hears(srv: RunningServer) -> None:
    """A new viewer joins the canary stream and hears 440 Hz."""
    async with Viewer(srv.ws_sub_url, STREAM, video=False) as late:
        rec = AudioRecorder(late.tracks_by_mid[late.audio_mid or ""], seconds=2).start()
        await rec.wait_for_frames(50, timeout=10)
        assert abs(dominant_frequency(rec.samples(1.0), rec.sample_rate) - 440) < 5
        await rec.stop()


def log_size(srv: RunningServer) -> int:
    return os.path.getsize(srv.log_path)
