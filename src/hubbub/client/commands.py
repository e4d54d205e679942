"""`hubbub publish` and `hubbub view`: argument definitions and the async command bodies.

Both print JSON lines on stdout (one object per line) so scripts and tests can read them; errors
go to stderr as ``{"error": "..."}`` with exit status 1. ``--duration 0`` runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRecorder, MediaRelay

from hubbub.client import director
from hubbub.client.analysis import dominant_frequency, rms
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter, file_tracks
from hubbub.client.publisher import PROTOCOL_CODECS, Publisher
from hubbub.client.session import PeerSession
from hubbub.client.signaling import SignalingError
from hubbub.client.viewer import Viewer

VIDEO_CONTAINERS = {".mp4", ".mkv", ".webm", ".mov"}


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws/v2/pub")
    parser.add_argument("--stream", required=True, help="stream name")
    parser.add_argument("--source-id", default=None, help="sourceId (default: the main source)")
    parser.add_argument("--token", default=None,
                        help="publish JWT (sent as ?token=), or with --director the publish token")
    parser.add_argument("--director", default=None, metavar="URL",
                        help="node base URL (http://host:8080): trade --token for a JWT there")
    _add_ice_arguments(parser)
    parser.add_argument("--codec", default="vp8", choices=PROTOCOL_CODECS)
    media = parser.add_mutually_exclusive_group()
    media.add_argument("--tone", type=float, default=440.0, metavar="HZ", help="sine tone")
    media.add_argument("--file", default=None, metavar="PATH", help="media file to send")
    parser.add_argument("--video", action=argparse.BooleanOptionalAction, default=False,
                        help="also send a moving test pattern (with --tone)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until Ctrl-C")


def add_view_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="ws://127.0.0.1:8080/ws/v2/sub")
    parser.add_argument("--stream", required=True, help="stream name")
    parser.add_argument("--token", default=None,
                        help="subscribe JWT (sent as ?token=), or with --director the "
                        "subscribe token (none for streams open for viewing)")
    parser.add_argument("--director", default=None, metavar="URL",
                        help="node base URL (http://host:8080): trade --token for a JWT there")
    _add_ice_arguments(parser)
    parser.add_argument("--pin", default=None, metavar="SOURCE_ID", help="pinnedSourceId")
    parser.add_argument("--exclude", action="append", default=None, metavar="SOURCE_ID",
                        help="excludedSourceIds entry (repeatable)")
    parser.add_argument("--multiplex", type=int, default=0, metavar="N",
                        help="multiplexed audio tracks")
    parser.add_argument("--video", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--audio", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until Ctrl-C")
    parser.add_argument("--record", default=None, metavar="PATH",
                        help="record the main audio (and video for .mp4/.mkv/.webm) to PATH")


def _add_ice_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--turn-transport", choices=("udp", "tcp"), default=None,
                        help="with --director: use the Director's TURN URLs of this transport "
                        "first (aiortc uses only one TURN URL; tcp where UDP is blocked)")
    parser.add_argument("--relay-only", action="store_true",
                        help="with --director: gather only TURN candidates, so media goes "
                        "through the Director's TURN server or not at all")


async def _resolve(args: argparse.Namespace, kind: str, emit: Callable[[dict[str, Any]], None]
                   ) -> bool:
    """With --director, replace --url/--token by the Director's WebSocket URL and JWT, and
    take its `iceServers` (TURN) for the peer connection."""
    args.ice_servers = []
    if args.director is None:
        if args.relay_only or args.turn_transport:
            sys.stderr.write(json.dumps(
                {"error": "--relay-only and --turn-transport need --director (the TURN "
                 "servers come from the Director)"}) + "\n")
            return False
        return True
    try:
        info = await director.connect_info(args.director, kind, args.stream, args.token)
    except (director.DirectorError, OSError) as exc:
        sys.stderr.write(json.dumps({"error": str(exc), "director": args.director}) + "\n")
        return False
    args.url, args.token = info.url, info.jwt
    args.ice_servers = (info.ice_servers if args.turn_transport is None
                        else info.ice_servers_preferring(args.turn_transport))
    if args.relay_only and not any(str(s.urls).startswith("turn") for s in args.ice_servers):
        sys.stderr.write(json.dumps({"error": "--relay-only: the Director offers no TURN "
                                     "server aiortc can use", "director": args.director}) + "\n")
        return False
    emit({"director": {"url": info.url, "iceServers": [s.urls for s in args.ice_servers]}})
    return True


async def publish(args: argparse.Namespace, out: TextIO | None = None) -> int:
    emit = _emitter(out or sys.stdout)
    if not await _resolve(args, "publish", emit):
        return 1
    if args.file is not None:
        tracks = file_tracks(args.file)
    else:
        tracks = [ToneTrack(args.tone)] + ([PatternTrack()] if args.video else [])
    publisher = Publisher(
        args.url, args.stream, source_id=args.source_id, token=args.token, codec=args.codec,
        tracks=tracks, events=["active", "inactive", "viewercount"],
        ice_servers=args.ice_servers, ice_transport_policy=_policy(args),
        on_event=lambda name, data: emit({"event": name, "data": data}),
    )
    try:
        await publisher.connect()
    except (SignalingError, OSError, TimeoutError, ConnectionError) as exc:
        return _fail(publisher, exc)
    emit({"publisherId": publisher.publisher_id, "streamId": publisher.response.get("streamId")})

    async def tick(elapsed: float) -> None:
        emit({"t": round(elapsed, 1), "sent": await _outbound_stats(publisher)})

    try:
        return await _run(publisher, args.duration, tick)
    finally:
        await publisher.close()
        for track in tracks:
            track.stop()


async def view(args: argparse.Namespace, out: TextIO | None = None) -> int:
    emit = _emitter(out or sys.stdout)
    if not await _resolve(args, "subscribe", emit):
        return 1
    viewer = Viewer(
        args.url, args.stream, token=args.token, pinned_source_id=args.pin,
        excluded_source_ids=args.exclude, multiplexed_audio_tracks=args.multiplex,
        video=args.video, audio=args.audio,
        ice_servers=args.ice_servers, ice_transport_policy=_policy(args),
        on_event=lambda name, data: emit({"event": name, "data": data}),
    )
    try:
        await viewer.connect()
    except (SignalingError, OSError, TimeoutError, ConnectionError) as exc:
        return _fail(viewer, exc)
    emit({"subscriberId": viewer.subscriber_id, "streamId": viewer.response.get("streamId"),
          "mids": {mid: track.kind for mid, track in viewer.tracks_by_mid.items()}})

    tracks = dict(viewer.tracks_by_mid)
    recorder: MediaRecorder | None = None
    if args.record is not None:
        recorder, tracks = _recording(args.record, viewer, tracks)
        await recorder.start()
    sinks = {mid: _sink(track) for mid, track in tracks.items()}
    previous = {mid: 0 for mid in sinks}

    async def tick(elapsed: float) -> None:
        report: dict[str, Any] = {}
        for mid, sink in sinks.items():
            entry: dict[str, Any] = {"frames": sink.frames, "fps": sink.frames - previous[mid]}
            previous[mid] = sink.frames
            if isinstance(sink, AudioRecorder):
                recent = sink.samples(0.5)
                entry["frequency"] = round(dominant_frequency(recent, sink.sample_rate or 1), 1)
                entry["rms"] = round(rms(recent), 4)
                if mid in viewer.slots:
                    entry["sourceId"] = viewer.slots[mid]
            elif isinstance(sink, VideoCounter) and sink.last_size is not None:
                entry["size"] = f"{sink.last_size[0]}x{sink.last_size[1]}"
            report[mid] = entry
        emit({"t": round(elapsed, 1), "received": report})

    try:
        return await _run(viewer, args.duration, tick)
    finally:
        await viewer.close()
        for sink in sinks.values():
            await sink.stop()
        if recorder is not None:
            await recorder.stop()


def _policy(args: argparse.Namespace) -> str:
    return "relay" if args.relay_only else "all"


def _sink(track: MediaStreamTrack) -> AudioRecorder | VideoCounter:
    sink = AudioRecorder(track, seconds=1.0) if track.kind == "audio" else VideoCounter(track)
    return sink.start()


def _recording(
    path: str, viewer: Viewer, tracks: dict[str, MediaStreamTrack]
) -> tuple[MediaRecorder, dict[str, MediaStreamTrack]]:
    """A MediaRecorder fed with the main audio (and video, for video containers); the recorded
    tracks are split with a MediaRelay so the statistics sinks still see every frame."""
    mids = [viewer.audio_mid or next(iter(viewer.multiplexed_mids), None)]
    if Path(path).suffix.lower() in VIDEO_CONTAINERS:
        mids.append(viewer.video_mid)
    recorder = MediaRecorder(path)
    relay = MediaRelay()
    for mid in mids:
        if mid is not None and mid in tracks:
            original = tracks[mid]
            recorder.addTrack(relay.subscribe(original))
            tracks[mid] = relay.subscribe(original)
    return recorder, tracks


async def _outbound_stats(session: PeerSession) -> dict[str, dict[str, int]]:
    stats: dict[str, dict[str, int]] = {}
    for item in (await session.pc.getStats()).values():
        if getattr(item, "type", None) == "outbound-rtp":
            stats[str(item.kind)] = {"packets": item.packetsSent, "bytes": item.bytesSent}
    return stats


async def _run(
    session: PeerSession, duration: float, tick: Callable[[float], Any]
) -> int:
    """Call ``tick(elapsed)`` once a second until ``duration`` (0 = forever), Ctrl-C/SIGTERM,
    or the server closing the socket (exit status 1)."""
    stop = asyncio.Event()
    started = time.monotonic()
    with _stop_on_signals(stop):
        while not stop.is_set():
            remaining = 1.0 if duration <= 0 else min(1.0, started + duration - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(remaining, 0.0))
            elapsed = time.monotonic() - started
            await tick(elapsed)
            if session.closed:
                sys.stderr.write(json.dumps({"error": "server closed the connection"}) + "\n")
                return 1
            if duration > 0 and elapsed >= duration:
                break
    return 0


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _emitter(out: TextIO) -> Callable[[dict[str, Any]], None]:
    def emit(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj, default=str) + "\n")
        out.flush()

    return emit


def _fail(session: PeerSession, exc: BaseException) -> int:
    reason = str(exc) or type(exc).__name__
    sys.stderr.write(json.dumps({"error": reason, "url": session.url}) + "\n")
    return 1
