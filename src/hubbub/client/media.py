"""Test media: synthetic sources to publish, and sinks that consume received tracks.

Sources pace themselves in real time like aiortc's own test tracks. Sinks run one task each that
pulls frames from a track until it ends (or ``stop()``), so a remote track never piles up frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import time
from collections import Counter, deque

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, VideoFrame
from av.frame import Frame
from av.packet import Packet

AUDIO_PTIME = 0.020  # 20 ms per frame, what Opus senders use


class ToneTrack(MediaStreamTrack):
    """A mono sine as 20 ms s16 frames. ``frequency`` and ``amplitude`` (0..1 of full scale) may
    be changed while running; the phase stays continuous. ``amplitude = 0`` sends silence, which
    aiortc marks as such in the RFC 6464 audio level it writes on every packet."""

    kind = "audio"

    def __init__(self, frequency: float, sample_rate: int = 48000, amplitude: float = 0.3) -> None:
        super().__init__()
        if sample_rate <= 0 or sample_rate * AUDIO_PTIME != int(sample_rate * AUDIO_PTIME):
            raise ValueError(f"sample_rate must give whole 20 ms frames, got {sample_rate}")
        self.frequency = frequency
        self.amplitude = amplitude
        self.sample_rate = sample_rate
        self.samples_per_frame = int(sample_rate * AUDIO_PTIME)
        self._phase = 0.0
        self._pts = 0
        self._start: float | None = None

    def next_samples(self) -> np.ndarray:
        """The next frame's samples as int16 (advances the phase; no pacing)."""
        n = self.samples_per_frame
        step = 2 * math.pi * self.frequency / self.sample_rate
        phases = self._phase + step * np.arange(n)
        self._phase = float((self._phase + step * n) % (2 * math.pi))
        amplitude = min(max(self.amplitude, 0.0), 1.0) * 32767
        samples: np.ndarray = np.round(amplitude * np.sin(phases)).astype(np.int16)
        return samples

    async def recv(self) -> Frame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self.samples_per_frame
            await asyncio.sleep(self._start + self._pts / self.sample_rate - time.monotonic())
        frame = AudioFrame.from_ndarray(
            self.next_samples().reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        return frame


class PatternTrack(MediaStreamTrack):
    """A moving diagonal luma ramp (yuv420p), ``fps`` frames a second with a 90 kHz clock."""

    kind = "video"

    def __init__(self, width: int = 320, height: int = 240, fps: float = 15) -> None:
        super().__init__()
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"width and height must be positive and even, got {width}x{height}")
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.width = width
        self.height = height
        self.fps = fps
        y, x = np.mgrid[0:height, 0:width]
        self._ramp = ((x + y) % 256).astype(np.uint8)
        self._chroma = np.full((height // 2, width), 128, dtype=np.uint8)
        self._index = 0
        self._start: float | None = None

    def next_image(self) -> np.ndarray:
        """The next frame's yuv420p planes stacked as ``(height * 3 // 2, width)`` uint8."""
        luma = self._ramp + np.uint8((self._index * 4) % 256)  # uint8 wraps: the ramp moves
        self._index += 1
        return np.vstack([luma, self._chroma])

    async def recv(self) -> Frame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            await asyncio.sleep(self._start + self._index / self.fps - time.monotonic())
        pts = round(self._index * 90000 / self.fps)
        frame = VideoFrame.from_ndarray(self.next_image(), format="yuv420p")
        frame.pts = pts
        frame.time_base = fractions.Fraction(1, 90000)
        return frame


def file_tracks(path: str, *, loop: bool = False) -> list[MediaStreamTrack]:
    """The audio and/or video tracks of a media file, decoded by aiortc's MediaPlayer."""
    player = MediaPlayer(path, loop=loop)
    tracks = [t for t in (player.audio, player.video) if t is not None]
    if not tracks:
        raise ValueError(f"{path}: no audio or video stream")
    return tracks


class _FrameSink:
    """Pulls frames from a track in a task and counts them."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.frames = 0
        self.last_frame_at: float | None = None  # time.monotonic() of the last frame
        self.ended = False
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()

    def start(self) -> _FrameSink:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{type(self).__name__}")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for_frames(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` frames in total were received (``EOFError`` if the track ends)."""
        async with asyncio.timeout(timeout):
            while self.frames < count:
                if self.ended:
                    raise EOFError(f"track ended after {self.frames} of {count} frames")
                self._progress.clear()
                await self._progress.wait()

    async def _run(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                if isinstance(frame, Packet):
                    continue
                self._consume(frame)
                self.frames += 1
                self.last_frame_at = time.monotonic()
                self._progress.set()
        except MediaStreamError:
            pass
        finally:
            self.ended = True
            self._progress.set()

    def _consume(self, frame: Frame) -> None:
        raise NotImplementedError


class AudioRecorder(_FrameSink):
    """Keeps the last ``seconds`` of received audio as mono float64 samples in [-1, 1].

    ``AudioRecorder(track).start()``; read ``samples()``, ``sample_rate``, ``frames``.
    """

    def __init__(self, track: MediaStreamTrack, seconds: float = 5.0) -> None:
        super().__init__(track)
        self.seconds = seconds
        self.sample_rate = 0
        self.total_samples = 0
        self._chunks: deque[np.ndarray] = deque()
        self._kept = 0

    def start(self) -> AudioRecorder:
        super().start()
        return self

    def samples(self, seconds: float | None = None) -> np.ndarray:
        """The most recent ``seconds`` (default: all kept) of mono samples."""
        data = np.concatenate(list(self._chunks)) if self._chunks else np.zeros(0)
        if seconds is not None:
            data = data[max(0, len(data) - int(seconds * self.sample_rate)):]
        return data

    def clear(self) -> None:
        """Forget the kept samples (e.g. after a source switch); counters keep going."""
        self._chunks.clear()
        self._kept = 0

    def _consume(self, frame: Frame) -> None:
        assert isinstance(frame, AudioFrame)
        mono = to_mono(frame)
        if frame.sample_rate != self.sample_rate:
            self.clear()  # never mix rates in one buffer
            self.sample_rate = frame.sample_rate
        self._chunks.append(mono)
        self._kept += len(mono)
        self.total_samples += len(mono)
        limit = int(self.seconds * self.sample_rate)
        while self._kept - len(self._chunks[0]) >= limit:
            self._kept -= len(self._chunks.popleft())


def to_mono(frame: AudioFrame) -> np.ndarray:
    """Average the channels of an audio frame into float64 samples scaled to [-1, 1]."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        array = array.reshape(channels, -1)
    else:
        array = array.reshape(-1, channels).T  # packed: interleaved L R L R ...
    samples: np.ndarray = array.astype(np.float64).mean(axis=0)
    if np.issubdtype(array.dtype, np.signedinteger):
        samples /= float(2 ** (8 * array.dtype.itemsize - 1))  # s16: 32768
    return samples


class VideoCounter(_FrameSink):
    """Counts decoded video frames and their sizes: ``frames``, ``sizes[(w, h)]``, ``last_size``."""

    def __init__(self, track: MediaStreamTrack) -> None:
        super().__init__(track)
        self.sizes: Counter[tuple[int, int]] = Counter()
        self.last_size: tuple[int, int] | None = None

    def start(self) -> VideoCounter:
        super().start()
        return self

    def _consume(self, frame: Frame) -> None:
        assert isinstance(frame, VideoFrame)
        self.last_size = (frame.width, frame.height)
        self.sizes[self.last_size] += 1
