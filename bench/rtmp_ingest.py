#!/usr/bin/env python3
"""RTMP ingest (issue 16): server CPU per RTMP stream, streams per core, glass-to-glass delay.

Three parts (`--parts`), each against a fresh `hubbub serve --allow-any-stream --rtmp-port P`
pinned to `--server-cpu` (taskset); every ffmpeg and this process (the aiortc viewer) are
pinned to `--ffmpeg-cpu`, so the server's core carries the server alone.

`cpu`: one RTMP publication at realistic settings (640x360 30 fps libx264 baseline -bf 0
-tune zerolatency ~1.5 Mb/s, AAC 128k stereo 48 kHz), pre-encoded once into an FLV file and
pushed with `ffmpeg -re -stream_loop -1 -i file.flv -c copy` (the server sees exactly what a
live encoder sends, and ffmpeg costs ~1 % of the other core). Phases: the server idle; video
and audio (`av`); audio only (`-vn`: AAC decode, resample, Opus encode); video only (`-an`:
RFC 6184 repacketization); `av` with one aiortc viewer (forwarding on top); `av-live`, ffmpeg
encoding the same settings live from lavfi sources (the server's side must match `av`).
Server CPU is utime+stime from /proc/<pid>/stat over `--window` s, in % of one core; `net`
subtracts the idle phase.

`scale`: N simultaneous pushes of that file (stream names s0..sN-1, starts 0.2 s apart) for
each N of `--streams`; server CPU per stream = (CPU(N) - idle) / N and streams per core =
100 % / that. Keeping up: every ffmpeg is still running with nothing on stderr, every
publication is live before and after the window (asked of the server: per stream a
signaling-only `view`, no ICE, which gets `active` with the source's audio and video tracks;
not the server log, whose lines are rate-limited per cause), the server's /healthz answered
within `--window` (probed every second, latency kept), and after the window an aiortc viewer on
the last stream receives `--check` s of audio and video (frame rates).

`delay`: glass to glass. Instead of `-re` (whose start instant is unknown), this process plays
camera and microphone: two threads write raw 640x360 gray frames (30 fps) and s16le stereo
48 kHz chunks (10 ms) into two FIFOs in real time, and ffmpeg encodes them live (same x264 and
AAC settings, -g 30) to RTMP. Every `--period` s, from `--first-onset` s on, the picture turns
white and a 440 Hz tone starts for 200 ms. The capture time of an onset is when its first
white frame / first tone chunk was written to the FIFO (a microphone delivers a 10 ms buffer
when it is full: the onset chunk is written 10 ms after the onset). An aiortc viewer of the
stream stamps every RTP packet as it leaves SRTP (`packet`: before aiortc's jitter buffer)
and every decoded frame (`decoded`: after aiortc's jitter buffer and decoder, which add
~1 frame for video and the prefetch of 4 packets for audio: browsers differ), finds the
onsets in the decoded frames (first tone sample / first bright frame) and takes the arrival
of the packet with that frame's RTP timestamp. A second run sends the same capture to
`ffmpeg ... -f flv pipe:1` and stamps each FLV tag as it comes out (decoding the AAC to find
the tone): that is the encoder's part (x264, AAC's 1024-sample frames and priming, ffmpeg's
interleaving), the rest is RTMP, the server (AAC -> Opus in 20 ms frames), the SFU and
WebRTC.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import av
import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402

from hubbub.client.media import AudioRecorder, VideoCounter, to_mono  # noqa: E402
from hubbub.client.signaling import Signaling  # noqa: E402
from hubbub.client.viewer import Viewer  # noqa: E402

FFMPEG = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error"]
WIDTH, HEIGHT, FPS = 640, 360, 30
RATE, CHANNELS = 48000, 2
CHUNK_MS = 10
BURST_S = 0.2
TONE_HZ = 440.0
# The realistic settings; -g is added per use (60 for the file, 30 for the delay run).
VIDEO_CODEC = ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline",
               "-tune", "zerolatency", "-bf", "0", "-b:v", "1500k", "-maxrate", "1500k",
               "-bufsize", "1500k", "-pix_fmt", "yuv420p"]
AUDIO_CODEC = ["-c:a", "aac", "-b:a", "128k", "-ac", str(CHANNELS), "-ar", str(RATE)]
LAVFI = ["-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}",
         "-f", "lavfi", "-i", f"sine=frequency={TONE_HZ:g}:sample_rate={RATE}"]


def log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def pin(cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind((common.HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def stats(values: list[float], digits: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {k: (round(v, digits) if isinstance(v, float) else v)
                           for k, v in common.percentiles(values).items()}
    out["min"] = round(min(values), digits) if values else None
    return out


# --- the server and the pushers ----------------------------------------------------------


@dataclass
class Server:
    ws: str
    pid: int
    rtmp_port: int
    log_path: Path

    @property
    def http(self) -> str:
        return self.ws.replace("ws://", "http://")

    def rtmp_url(self, stream: str) -> str:
        return f"rtmp://{common.HOST}:{self.rtmp_port}/v2/pub/{stream}"

    def problems(self) -> list[str]:
        """Warnings, errors, tracebacks and AAC frames the transcoder refused."""
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines()
                if any(n in line for n in (" WARNING ", " ERROR ", "Traceback",
                                           "not decoded", "not converted"))]


@contextlib.contextmanager
def server(args: Any, name: str) -> Any:
    port = free_tcp_port()
    log_name = f".rtmp_ingest-{name}.log"
    with common.server(None, ["--rtmp-port", str(port)], cpu=args.server_cpu,
                       src=args.server_src, log_name=log_name) as (ws, pid):
        assert pid is not None
        yield Server(ws, pid, port, common.RESULTS_DIR / log_name)


class Pusher:
    """One ffmpeg process (stderr to a file, read when it is stopped)."""

    def __init__(self, argv: list[str], stderr_path: Path) -> None:
        self.argv = argv
        self.stderr_path = stderr_path
        self._stderr: IO[bytes] | None = None
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, stdin: int | None = asyncio.subprocess.DEVNULL,
                    stdout: int | None = asyncio.subprocess.DEVNULL) -> Pusher:
        self._stderr = self.stderr_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(*self.argv, stdin=stdin, stdout=stdout,
                                                         stderr=self._stderr)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def cpu(self) -> float | None:
        return common.process_cpu(self.proc.pid if self.proc else None)

    async def stop(self) -> str:
        """Kills it if still running; returns what it printed on stderr."""
        if self.proc is not None:
            if self.proc.returncode is None:
                self.proc.kill()
            await self.proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return self.stderr_path.read_text(errors="replace").strip()

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace").strip()


def pre_encode(path: Path, seconds: float, cpu: int | None) -> dict[str, Any]:
    """The realistic stream, encoded once (GOP 2 s, as streaming services ask)."""
    argv = [*pin(cpu), *FFMPEG, "-y", *LAVFI, "-t", str(seconds), *VIDEO_CODEC, "-g",
            str(2 * FPS), *AUDIO_CODEC, "-f", "flv", str(path)]
    started = time.monotonic()
    subprocess.run(argv, check=True)
    size = path.stat().st_size
    return {"file_seconds": seconds, "file_kbps": round(size * 8 / seconds / 1000),
            "encode_s": round(time.monotonic() - started, 1), "ffmpeg": argv[len(pin(cpu)):]}


def copy_argv(src: Path, url: str, cpu: int | None, drop: list[str]) -> list[str]:
    return [*pin(cpu), *FFMPEG, "-re", "-stream_loop", "-1", "-i", str(src), *drop,
            "-c", "copy", "-f", "flv", url]


async def healthz_ms(http: str) -> float | None:
    def probe() -> float | None:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(http + "/healthz", timeout=2.0) as reply:
                reply.read()
        except OSError:
            return None
        return (time.perf_counter() - started) * 1000

    return await asyncio.to_thread(probe)


async def cpu_window(srv: Server, seconds: float,
                     pushers: Sequence[Pusher] = ()) -> dict[str, Any]:
    """Server CPU over `seconds` (and the pushers', this process's), /healthz every second."""
    cpu0, push0, own0 = common.process_cpu(srv.pid), [p.cpu() for p in pushers], \
        time.process_time()
    t0 = time.monotonic()
    probes: list[float | None] = []
    while time.monotonic() - t0 < seconds:
        probes.append(await healthz_ms(srv.http))
        await asyncio.sleep(max(0.0, min(1.0, t0 + seconds - time.monotonic())))
    cpu1, push1, own1 = common.process_cpu(srv.pid), [p.cpu() for p in pushers], \
        time.process_time()
    dt = time.monotonic() - t0
    assert cpu0 is not None and cpu1 is not None
    ffmpeg_cpu = sum((b or 0.0) - (a or 0.0) for a, b in zip(push0, push1, strict=True))
    answered = [p for p in probes if p is not None]
    return {"window_s": round(dt, 2), "server_cpu_pct": round((cpu1 - cpu0) / dt * 100, 2),
            "ffmpeg_cpu_pct": round(ffmpeg_cpu / dt * 100, 2),
            "bench_cpu_pct": round((own1 - own0) / dt * 100, 2),
            "healthz_failed": len(probes) - len(answered),
            "healthz_max_ms": round(max(answered), 1) if answered else None}


def main_source(data: dict[str, Any]) -> bool:
    return data.get("sourceId") is None


_OFFER: list[str] = []


async def probe_offer() -> str:
    """One recvonly audio offer from aiortc, made once and reused by every probe (the server
    answers it; ICE never starts: the probe applies no answer)."""
    if not _OFFER:
        from aiortc import RTCPeerConnection

        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        _OFFER.append(pc.localDescription.sdp)
        await pc.close()
    return _OFFER[0]


async def live_streams(srv: Server, names: Sequence[str], timeout: float,
                       media: frozenset[str] = frozenset({"audio", "video"})) -> dict[str, Any]:
    """Which of `names` have a live main source with the tracks of `media`, asked of the
    server itself (not its log, which rate-limits lines per cause and may be late): per stream
    a signaling-only `view` (WebSocket, no ICE, no media); the server sends `active` with the
    source's tracks right after its reply for a live source, or later when the source goes
    live. Waits up to `timeout` s in all; returns the count, the stragglers (with why) and
    when the last went live (s after the probes started)."""
    offer = await probe_offer()
    t0 = time.monotonic()
    deadline = t0 + timeout

    async def probe(name: str) -> float | str:
        live = asyncio.Event()

        def on_event(event: str, data: dict[str, Any]) -> None:
            tracks = data.get("tracks") or []
            kinds = {t.get("media") for t in tracks if isinstance(t, dict)}
            if event == "active" and main_source(data) and media <= kinds:
                live.set()

        try:
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                async with Signaling(srv.ws + "/ws/v2/sub", on_event=on_event) as sig:
                    await sig.command("view", {"streamId": name, "sdp": offer,
                                               "events": ["active", "inactive"]})
                    await live.wait()
        except TimeoutError:
            return "no active event in time"
        except Exception as error:  # noqa: BLE001 - reported in the result
            return repr(error)[:200]
        return time.monotonic() - t0

    seen = await asyncio.gather(*(probe(name) for name in names))
    times = [when for when in seen if isinstance(when, float)]
    missing = {name: why for name, why in zip(names, seen, strict=True) if isinstance(why, str)}
    return {"live": len(times), "missing": dict(list(missing.items())[:5]),
            "all_live_after_s": round(max(times), 2) if times and not missing else None}


@contextlib.asynccontextmanager
async def watching(srv: Server, stream: str) -> AsyncIterator[tuple[Viewer, AudioRecorder,
                                                                    VideoCounter]]:
    async with Viewer(srv.ws + "/ws/v2/sub", stream) as viewer:
        await viewer.wait_connected()
        audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], 1).start()
        video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid or ""]).start()
        try:
            yield viewer, audio, video
        finally:
            await audio.stop()
            await video.stop()


# --- part 1: CPU per stream ----------------------------------------------------------------


async def cpu_part(args: Any, src: Path, tmp: Path) -> dict[str, Any]:
    phases: list[dict[str, Any]] = []
    live_argv = [*FFMPEG, "-re", *LAVFI, *VIDEO_CODEC, "-g", str(2 * FPS), *AUDIO_CODEC]
    plan: list[tuple[str, list[str] | None, bool]] = [
        ("idle", None, False), ("av", [], False), ("audio", ["-vn"], False),
        ("video", ["-an"], False), ("av+viewer", [], True), ("av-live", None, False)]
    with server(args, "cpu") as srv:
        for index, (name, drop, with_viewer) in enumerate(plan):
            if name not in args.cpu_phases:
                continue
            stream = f"cpu{index}"
            url = srv.rtmp_url(stream)
            if name == "idle":
                await asyncio.sleep(args.settle)
                phases.append({"phase": name, **await cpu_window(srv, args.window)})
            elif with_viewer:
                async with watching(srv, stream) as (viewer, audio, video):
                    pusher = await Pusher(copy_argv(src, url, args.ffmpeg_cpu, drop or []),
                                          tmp / f"{stream}.err").start()
                    try:
                        await viewer.wait_for_event("active", main_source, timeout=15)
                        await asyncio.sleep(args.settle)
                        a0, v0 = audio.frames, video.frames
                        window = await cpu_window(srv, args.window, [pusher])
                        window["viewer_audio_fps"] = round((audio.frames - a0)
                                                           / window["window_s"], 1)
                        window["viewer_video_fps"] = round((video.frames - v0)
                                                           / window["window_s"], 1)
                        window["viewer_video_size"] = video.last_size
                    finally:
                        err = await pusher.stop()
                phases.append({"phase": name, **window, "ffmpeg_stderr": err[-500:]})
            else:
                argv = [*pin(args.ffmpeg_cpu), *live_argv, "-f", "flv", url] if drop is None \
                    else copy_argv(src, url, args.ffmpeg_cpu, drop)
                pusher = await Pusher(argv, tmp / f"{stream}.err").start()
                try:
                    await asyncio.sleep(args.settle)
                    kinds = {"audio", "video"} - {"-vn": {"video"}, "-an": {"audio"}}.get(
                        (drop or [""])[0], set())
                    live = await live_streams(srv, [stream], args.live_timeout,
                                              frozenset(kinds))
                    window = await cpu_window(srv, args.window, [pusher])
                    alive = pusher.running
                finally:
                    err = await pusher.stop()
                phases.append({"phase": name, **window, "live": live["live"],
                               "ffmpeg_alive": alive, "ffmpeg_stderr": err[-500:]})
            last = phases[-1]
            log(f"  cpu {name:10} server {last['server_cpu_pct']:6.2f} % "
                f"(ffmpeg {last['ffmpeg_cpu_pct']:.1f} %, bench {last['bench_cpu_pct']:.1f} %)",
                args.quiet)
            await asyncio.sleep(1.0)  # the publication ends before the next phase
        problems = srv.problems()
    idle = next((p["server_cpu_pct"] for p in phases if p["phase"] == "idle"), 0.0)
    for phase in phases:
        phase["net_cpu_pct"] = round(phase["server_cpu_pct"] - idle, 2)
    return {"phases": phases, "server_log_problems": problems[:20]}


# --- part 2: streams per core -------------------------------------------------------------


async def scale_part(args: Any, src: Path, tmp: Path) -> dict[str, Any]:
    points: list[dict[str, Any]] = []
    with server(args, "scale") as srv:
        await asyncio.sleep(args.settle)
        idle = await cpu_window(srv, args.window)
        log(f"  scale idle: server {idle['server_cpu_pct']:.2f} %", args.quiet)
        for n in args.streams:
            names = [f"n{n}s{i}" for i in range(n)]
            pushers: list[Pusher] = []
            try:
                for name in names:
                    pushers.append(await Pusher(copy_argv(src, srv.rtmp_url(name),
                                                          args.ffmpeg_cpu, []),
                                                tmp / f"{name}.err").start())
                    await asyncio.sleep(0.2)
                await asyncio.sleep(args.settle)
                # every publication live before the window, still live after it
                live_before = await live_streams(srv, names, args.live_timeout)
                window = await cpu_window(srv, args.window, pushers)
                live_after = await live_streams(srv, names, args.live_timeout)
                async with watching(srv, names[-1]) as (viewer, audio, video):
                    await viewer.wait_for_event("active", main_source, timeout=10)
                    await video.wait_for_frames(1, timeout=10)  # a keyframe came (GOP 2 s)
                    a0, v0, t0 = audio.frames, video.frames, time.monotonic()
                    await asyncio.sleep(args.check)
                    dt = time.monotonic() - t0
                    check = {"viewer_audio_fps": round((audio.frames - a0) / dt, 1),
                             "viewer_video_fps": round((video.frames - v0) / dt, 1)}
                alive = sum(p.running for p in pushers)
            finally:
                errors = [e for e in [await p.stop() for p in pushers] if e]
            net = window["server_cpu_pct"] - idle["server_cpu_pct"]
            point = {"streams": n, **window, "net_cpu_pct": round(net, 2),
                     "per_stream_pct": round(net / n, 2),
                     "streams_per_core": round(100 / (net / n), 1) if net > 0 else None,
                     "live_before": live_before, "live_after": live_after, "ffmpeg_alive": alive,
                     "ffmpeg_errors": errors[:3], **check}
            point["kept_up"] = bool(alive == n and not errors
                                    and live_before["live"] == n and live_after["live"] == n
                                    and window["healthz_failed"] == 0
                                    and check["viewer_audio_fps"] >= 45
                                    and check["viewer_video_fps"] >= 25)
            points.append(point)
            log(f"  scale N={n:2}: server {window['server_cpu_pct']:6.2f} % = "
                f"{point['per_stream_pct']:.2f} %/stream -> {point['streams_per_core']} per "
                f"core; viewer {check['viewer_audio_fps']} audio / "
                f"{check['viewer_video_fps']} video fps, healthz max "
                f"{window['healthz_max_ms']} ms, live {live_before['live']}/"
                f"{live_after['live']} of {n} (all after {live_before['all_live_after_s']} s), "
                f"kept up: {point['kept_up']}", args.quiet)
            await asyncio.sleep(2.0)
            if not point["kept_up"]:
                break
        problems = srv.problems()
    return {"idle": idle, "points": points, "server_log_problems": problems[:20]}


# --- part 3: glass to glass ---------------------------------------------------------------


@dataclass
class Capture:
    """Camera and microphone: raw frames and PCM into two FIFOs, in real time."""

    dir: Path
    first_onset: float
    period: float
    onsets: int
    video_writes: list[float] = field(default_factory=list)  # monotonic, per frame index
    audio_writes: list[float] = field(default_factory=list)  # per 10 ms chunk
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.video_fifo = self.dir / "video.fifo"
        self.audio_fifo = self.dir / "audio.fifo"
        self.dir.mkdir(parents=True, exist_ok=True)
        for fifo in (self.video_fifo, self.audio_fifo):
            with contextlib.suppress(FileNotFoundError):
                fifo.unlink()
            os.mkfifo(fifo)
        self.seconds = self.first_onset + self.onsets * self.period + 0.5
        self.t0 = 0.0
        self._barrier = threading.Barrier(2, action=self._set_t0, timeout=30)
        self._threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                         for f in (self._video, self._audio)]

    def ffmpeg_inputs(self) -> list[str]:
        live = ["-thread_queue_size", "64", "-probesize", "32", "-analyzeduration", "0"]
        return ["-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS),
                *live, "-i", str(self.video_fifo),
                "-f", "s16le", "-ar", str(RATE), "-ac", str(CHANNELS), *live,
                "-i", str(self.audio_fifo)]

    def onset_times(self) -> list[float]:
        return [self.first_onset + k * self.period for k in range(self.onsets)]

    def _lit(self, t: float) -> bool:
        k = math.floor((t - self.first_onset) / self.period + 1e-9)
        return 0 <= k < self.onsets and t - (self.first_onset + k * self.period) < BURST_S

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _set_t0(self) -> None:
        self.t0 = time.monotonic() + 0.05

    def _guard(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            self.error = error
            self._barrier.abort()

    def _sleep_until(self, when: float) -> None:
        delay = when - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _video(self) -> None:
        black = bytes(WIDTH * HEIGHT)
        white = b"\xeb" * (WIDTH * HEIGHT)
        with open(self.video_fifo, "wb", buffering=0) as fifo:
            # ffmpeg reads the first frame before it opens its second input: frame 0 goes at
            # once, frame j >= 1 at t0 + j / FPS (on the audio's clock).
            self.video_writes.append(time.monotonic())
            fifo.write(black)
            self._barrier.wait()
            for j in range(1, int(self.seconds * FPS)):
                self._sleep_until(self.t0 + j / FPS)
                self.video_writes.append(time.monotonic())
                fifo.write(white if self._lit(j / FPS) else black)

    def _audio(self) -> None:
        n = RATE * CHUNK_MS // 1000
        silence = bytes(n * CHANNELS * 2)
        with open(self.audio_fifo, "wb", buffering=0) as fifo:
            self._barrier.wait()
            for i in range(int(self.seconds * 1000 / CHUNK_MS)):
                start = i * n
                # a microphone hands over a buffer when it is full
                self._sleep_until(self.t0 + (start + n) / RATE)
                t = np.arange(start, start + n) / RATE
                k = np.floor((t - self.first_onset) / self.period + 1e-9)
                lit = (k >= 0) & (k < self.onsets) & (
                    t - (self.first_onset + k * self.period) < BURST_S)
                if lit.any():
                    on = np.where(lit, 0.5 * np.sin(2 * np.pi * TONE_HZ * t), 0.0)
                    samples = np.repeat((on * 32767).astype("<i2"), CHANNELS).tobytes()
                else:
                    samples = silence
                self.audio_writes.append(time.monotonic())
                fifo.write(samples)

    def onset_writes(self) -> tuple[list[float], list[float]]:
        """Capture time of each onset: its first white frame, its first tone chunk."""
        video = [self.video_writes[round(s * FPS)] for s in self.onset_times()
                 if round(s * FPS) < len(self.video_writes)]
        audio = [self.audio_writes[round(s * 1000 / CHUNK_MS)] for s in self.onset_times()
                 if round(s * 1000 / CHUNK_MS) < len(self.audio_writes)]
        return video, audio


def match(captured: list[float], seen: Sequence[tuple[float, ...]]) -> list[tuple[int, float]]:
    """(onset index, delay ms) for each onset seen at time seen[i][0]: the latest capture
    before it (onsets are `--period` apart, delays far shorter)."""
    out: dict[int, float] = {}
    for when, *_ in seen:
        before = [k for k, c in enumerate(captured) if c <= when]
        if before and before[-1] not in out:
            out[before[-1]] = (when - captured[before[-1]]) * 1000
    return sorted(out.items())


class Onsets:
    """Finds the onsets in decoded frames of a viewer, and stamps RTP packets by timestamp."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.arrivals: dict[int, float] = {}  # RTP timestamp -> last packet's arrival
        self.found: list[tuple[float, float]] = []  # (packet arrival, decoded at)
        self.frames = 0
        self.lit = False
        self.unmatched = 0
        self.receiver: Any = None
        # tone peak 0.5 vs silence; white (Y 235 -> ~0.85) vs black (Y 16 -> ~0.06)
        self.on, self.off = (0.3, 0.05) if kind == "audio" else (0.5, 0.3)

    def hook(self, receiver: Any) -> None:
        self.receiver = receiver
        original = receiver._handle_rtp_packet
        arrivals = self.arrivals

        async def stamped(packet: Any, arrival_time_ms: int) -> None:
            arrivals[packet.timestamp] = time.monotonic()
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = stamped

    async def run(self, track: Any) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                self.frames += 1
                if self.kind == "audio":
                    level = float(np.abs(to_mono(frame)).max())
                else:
                    level = float(frame.to_ndarray()[:frame.height].mean()) / 255
                if not self.lit and level > self.on:
                    self.lit = True
                    # aiortc's decoded pts = RTP timestamp - that of its first frame
                    mapper = self.receiver._RTCRtpReceiver__timestamp_mapper
                    arrival = self.arrivals.get((frame.pts + mapper._origin) & 0xFFFFFFFF)
                    if arrival is None:
                        self.unmatched += 1
                        arrival = now
                    self.found.append((arrival, now))
                elif self.lit and level < self.off:
                    self.lit = False


def read_flv(stdout: IO[bytes], found: dict[str, list[tuple[float]]]) -> None:
    """Stamps each FLV tag ffmpeg writes; an onset is the first video tag of a white frame
    (its index) and the first AAC tag whose decoded samples hold the tone."""
    if len(stdout.read(13)) < 13:  # header + PreviousTagSize0
        return
    decoder: Any = None
    lit = False
    video_index = -1
    found["video_tags"] = []
    while True:
        head = stdout.read(11)
        if len(head) < 11:
            return
        size = int.from_bytes(head[1:4], "big")
        data = stdout.read(size + 4)[:size]
        now = time.monotonic()
        if head[0] == 9 and len(data) > 1 and data[1] == 1:
            video_index += 1
            found["video_tags"].append((now,))
        elif head[0] == 8 and len(data) > 1 and data[1] == 0:
            decoder = av.CodecContext.create("aac", "r")
            decoder.extradata = data[2:]
        elif head[0] == 8 and len(data) > 1 and decoder is not None:
            for frame in decoder.decode(av.Packet(data[2:])):
                level = float(np.abs(to_mono(frame)).max())
                if not lit and level > 0.3:
                    found["audio"].append((now,))
                    lit = True
                elif lit and level < 0.05:
                    lit = False


async def delay_run(args: Any, tmp: Path, to_server: bool) -> dict[str, Any]:
    capture = Capture(tmp / ("rtmp" if to_server else "enc"), args.first_onset, args.period,
                      args.onsets)
    encode = [*VIDEO_CODEC, "-g", str(FPS), *AUDIO_CODEC, "-flush_packets", "1", "-f", "flv"]
    out: dict[str, Any] = {}
    if not to_server:
        argv = [*pin(args.ffmpeg_cpu), *FFMPEG, *capture.ffmpeg_inputs(), *encode, "pipe:1"]
        err_path = capture.dir / "ffmpeg.err"
        found: dict[str, list[tuple[float]]] = {"audio": []}
        with err_path.open("wb") as err_file:
            # blocking reads in a thread: a tag's time is when its bytes left ffmpeg
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=err_file, bufsize=0)
            assert proc.stdout is not None
            reader = threading.Thread(target=read_flv, args=(proc.stdout, found), daemon=True)
            reader.start()
            capture.start()
            try:
                await asyncio.to_thread(capture.join, capture.seconds + 30)
                await asyncio.to_thread(proc.wait, 30)
                await asyncio.to_thread(reader.join, 10)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
        err = err_path.read_text(errors="replace").strip()
        video_cap, audio_cap = capture.onset_writes()
        # video: the tag of the onset's frame index (one tag per frame, no B-frames)
        tags = found.get("video_tags", [])
        video_seen = [tags[round(s * FPS)] for s in capture.onset_times()
                      if round(s * FPS) < len(tags)]
        out["video_ms"] = [d for _, d in match(video_cap, video_seen)]
        out["audio_ms"] = [d for _, d in match(audio_cap, found["audio"])]
        out["ffmpeg_stderr"] = err[-500:]
    else:
        with server(args, "delay") as srv:
            stream = "glass"
            async with Viewer(srv.ws + "/ws/v2/sub", stream) as viewer:
                await viewer.wait_connected()
                watchers = {"video": Onsets("video"), "audio": Onsets("audio")}
                tasks = []
                for transceiver in viewer.pc.getTransceivers():
                    kind = {viewer.video_mid: "video", viewer.audio_mid: "audio"}.get(
                        transceiver.mid)
                    if kind is not None:
                        watchers[kind].hook(transceiver.receiver)
                        tasks.append(asyncio.create_task(
                            watchers[kind].run(viewer.tracks_by_mid[transceiver.mid or ""])))
                argv = [*pin(args.ffmpeg_cpu), *FFMPEG, *capture.ffmpeg_inputs(), *encode,
                        srv.rtmp_url(stream)]
                pusher = await Pusher(argv, capture.dir / "ffmpeg.err").start()
                try:
                    capture.start()
                    await asyncio.to_thread(capture.join, capture.seconds + 30)
                    await asyncio.sleep(1.0)
                finally:
                    err = await pusher.stop()
                    for task in tasks:
                        task.cancel()
            video_cap, audio_cap = capture.onset_writes()
            for kind, captured in (("video", video_cap), ("audio", audio_cap)):
                w = watchers[kind]
                out[f"{kind}_packet_ms"] = [d for _, d in match(captured, w.found)]
                out[f"{kind}_decoded_ms"] = [d for _, d in match(
                    captured, [(dec, arr) for arr, dec in w.found])]
                out[f"{kind}_frames"] = w.frames
                out[f"{kind}_unstamped"] = w.unmatched
            out["ffmpeg_stderr"] = err[-500:]
    if capture.error is not None:
        out["capture_error"] = repr(capture.error)
    out["onsets"] = capture.onsets
    return out


async def delay_part(args: Any, tmp: Path) -> dict[str, Any]:
    runs = {"encoder": await delay_run(args, tmp, to_server=False),
            "rtmp": await delay_run(args, tmp, to_server=True)}
    summary: dict[str, Any] = {}
    for key, values in (("encoder_video", runs["encoder"]["video_ms"]),
                        ("encoder_audio", runs["encoder"]["audio_ms"]),
                        ("video_packet", runs["rtmp"]["video_packet_ms"]),
                        ("video_decoded", runs["rtmp"]["video_decoded_ms"]),
                        ("audio_packet", runs["rtmp"]["audio_packet_ms"]),
                        ("audio_decoded", runs["rtmp"]["audio_decoded_ms"])):
        summary[key] = stats(values)
        log(f"  delay {key:14} n={len(values):2} p50 {summary[key]['p50']} ms, p95 "
            f"{summary[key]['p95']} ms", args.quiet)
    for kind in ("video", "audio"):
        enc, pkt = summary[f"encoder_{kind}"]["p50"], summary[f"{kind}_packet"]["p50"]
        if enc is not None and pkt is not None:
            summary[f"{kind}_after_encoder_p50"] = round(pkt - enc, 1)
    for run in runs.values():
        for key in list(run):
            if key.endswith("_ms"):
                run[key] = [round(v, 1) for v in run[key]]
    return {"runs": runs, "summary": summary}


async def main(args: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                              "ffmpeg": subprocess.run(["ffmpeg", "-version"],
                                                       capture_output=True, text=True
                                                       ).stdout.splitlines()[0],
                              "pinning": f"server on core {args.server_cpu}, ffmpeg and this "
                                         f"process (aiortc viewer) on core {args.ffmpeg_cpu}"}
    with tempfile.TemporaryDirectory(prefix="rtmp_ingest-") as tmpdir:
        tmp = Path(tmpdir)
        src = tmp / "src.flv"
        if {"cpu", "scale"} & set(args.parts):
            result["source"] = pre_encode(src, args.file_seconds, args.ffmpeg_cpu)
            log(f"  pre-encoded {src.name}: {result['source']['file_kbps']} kb/s", args.quiet)
        if "cpu" in args.parts:
            result["cpu"] = await cpu_part(args, src, tmp)
        if "scale" in args.parts:
            result["scale"] = await scale_part(args, src, tmp)
        if "delay" in args.parts:
            result["delay"] = await delay_part(args, tmp)
    result["loadavg_end"] = os.getloadavg()
    result["summary"] = summarize(result)
    return result


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for phase in result.get("cpu", {}).get("phases", []):
        summary[f"cpu_{phase['phase']}_pct"] = phase["net_cpu_pct"]
    points = result.get("scale", {}).get("points", [])
    kept = [p for p in points if p["kept_up"]]
    if kept:
        summary["per_stream_pct_at_max_n"] = kept[-1]["per_stream_pct"]
        summary["streams_per_core_at_max_n"] = kept[-1]["streams_per_core"]
        summary["max_n_kept_up"] = kept[-1]["streams"]
    delay = result.get("delay", {}).get("summary", {})
    for key in ("video_decoded", "video_packet", "audio_decoded", "audio_packet",
                "encoder_video", "encoder_audio"):
        if key in delay:
            summary[f"delay_{key}_ms"] = {"p50": delay[key]["p50"], "p95": delay[key]["p95"],
                                         "count": delay[key]["count"]}
    return summary


def csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def csv_words(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


if __name__ == "__main__":
    p = common.parser(__doc__.split("\n\n")[0], "rtmp_ingest.json", server=False)
    p.add_argument("--parts", type=csv_words, default=["cpu", "scale", "delay"],
                   help="comma-separated: cpu, scale, delay")
    p.add_argument("--cpu-phases", type=csv_words,
                   default=["idle", "av", "audio", "video", "av+viewer", "av-live"])
    p.add_argument("--streams", type=csv_ints, default=[1, 2, 4, 8, 16],
                   help="simultaneous RTMP pushes per scale point (stops at the first that "
                        "does not keep up)")
    p.add_argument("--window", type=float, default=15.0, help="CPU window, s")
    p.add_argument("--settle", type=float, default=3.0, help="s after the pushes start")
    p.add_argument("--live-timeout", type=float, default=10.0,
                   help="s to wait for every publication to be live (signaling-only views)")
    p.add_argument("--check", type=float, default=3.0, help="viewer check after a scale "
                                                           "window, s")
    p.add_argument("--file-seconds", type=float, default=30.0,
                   help="length of the pre-encoded FLV (looped)")
    p.add_argument("--onsets", type=int, default=20, help="delay: tone/white bursts")
    p.add_argument("--period", type=float, default=1.0, help="delay: s between onsets")
    p.add_argument("--first-onset", type=float, default=3.0, help="delay: s before the first")
    p.add_argument("--server-cpu", type=int, default=1)
    p.add_argument("--server-src", default=None,
                   help="run the server from another checkout (its src/ on PYTHONPATH), "
                        "e.g. `git archive HEAD src | tar -x -C DIR` plus the built *.so")
    p.add_argument("--ffmpeg-cpu", type=int, default=0,
                   help="core of every ffmpeg and of this process")
    args = p.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("needs ffmpeg")
    os.environ["PYTHONUNBUFFERED"] = "1"  # the server's log lines (publications) at once
    if args.ffmpeg_cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.ffmpeg_cpu})
    result = asyncio.run(main(args))
    common.write_result(args.output, vars(args), result)
    for key, value in result["summary"].items():
        print(f"{key:34} {value}")
