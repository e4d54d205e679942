"""Recordings: which sources are being recorded, and the files in the recordings directory.

Each recording is `<id>.<webm|mkv|mp4>` plus `<id>.json` (stream, sourceId, format, times,
state), named by a random id, never by anything a client sent. A recording is attached to a
live Source through `Stream.add_relay` (a feed of the Source's Tracks; see the package doc)
and ends when that Source ends (its feed is unbound; checked every `WATCH_INTERVAL`), when
stopped, or when the node stops. A republish of the same sourceId
moves the feed to the new publisher, so the recording goes on.

A sidecar still saying "recording" whose process is gone is what a crash left: it is listed
as done and `interrupted` (the file is playable up to its last whole cluster; see
`writer.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from hubbub.recording.depacketize import payload_format
from hubbub.recording.recorder import SourceRecorder, TrackRecorder
from hubbub.recording.writer import MEDIA_TYPES
from hubbub.sfu.downtrack import DownTrack
from hubbub.sfu.relay import RelayFeed
from hubbub.sfu.source import Source
from hubbub.sfu.stream import Stream, Streams

log = logging.getLogger(__name__)

WATCH_INTERVAL = 0.5  # s between checks that recorded sources are still live
RECORDING_ID = re.compile(r"^rec_[0-9a-f]{16}$")
RECORDING = "recording"
DONE = "done"


class RecordingError(Exception):
    """A request the registry refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class RecordingInfo:
    id: str
    stream: str
    source_id: str | None
    file: str  # name in the recordings directory
    format: str  # webm | mkv | mp4
    media_type: str
    started: float  # unix time
    ended: float | None = None
    duration: float = 0.0  # seconds of media
    size: int = 0
    state: str = RECORDING
    interrupted: bool = False  # the node died while recording (see module doc)
    error: str | None = None
    owner: int = 0  # pid of the process recording it (`--workers` share the directory)


@dataclass
class _Active:
    info: RecordingInfo
    stream: Stream
    feed: RelayFeed
    recorder: SourceRecorder


class Recordings:
    """The registry of one node. `on_done` is called on the event loop when a recording's
    file is complete (webhooks)."""

    def __init__(self, directory: str | os.PathLike[str], streams: Streams,
                 h264_format: str = "mkv", enabled: bool = True,
                 on_done: Callable[[RecordingInfo], None] | None = None) -> None:
        if h264_format not in ("mkv", "mp4"):
            raise ValueError(f"h264 recording format must be mkv or mp4, not {h264_format!r}")
        self.directory = Path(directory)
        self.enabled = enabled
        self.h264_format = h264_format
        self.on_done = on_done
        self._streams = streams
        self._active: dict[tuple[str, str | None], _Active] = {}
        self._stopping: set[asyncio.Task[RecordingInfo]] = set()
        self._watcher: asyncio.Task[None] | None = None

    # --- start / stop ---------------------------------------------------------------------

    def start(self, stream_name: str, source_id: str | None) -> RecordingInfo:
        """Record a live source (already recording: that recording)."""
        if not self.enabled:
            raise RecordingError(409, "recording is disabled on this node")
        key = (stream_name, source_id)
        active = self._active.get(key)
        if active is not None and not _ended(active):
            return active.info
        if active is not None:  # its source ended and a new one came before the watcher ran
            del self._active[key]
            self._finish_later(active)
        stream = self._streams.get(stream_name)
        source = stream.sources.get(source_id) if stream is not None else None
        if stream is None or source is None:
            raise RecordingError(404, f"no live source {source_id!r} in {stream_name!r} here")
        return self._attach(stream, source)

    def _attach(self, stream: Stream, source: Source) -> RecordingInfo:
        recording_id = "rec_" + secrets.token_hex(8)
        codecs = [t.codec.lower() for t in source.tracks if payload_format(t.codec) is not None]
        extension = self.h264_format if "h264" in codecs else "webm"
        if not codecs:
            raise RecordingError(409, "none of the source's codecs can be recorded")
        ssrcs = [secrets.randbits(32) | 1 for _ in source.all_tracks]
        recorder = SourceRecorder(str(self.directory / f"{recording_id}.{extension}"),
                                  extension, {})
        feed = stream.add_relay(source, ssrcs, recorder)
        # One layer per m-line: of a simulcast one, the largest (then busiest) at the start.
        chosen = {max(t.layers, key=lambda layer: (layer.width * layer.height, layer.bitrate))
                  for t in source.tracks}
        for down in feed.down_tracks:
            track = down.track
            fmt = payload_format(track.codec) if track is not None else None
            if track is None or track not in chosen or fmt is None:
                if track is not None and fmt is None:
                    log.warning("recording %s: %s track not recorded (codec %s)",
                                recording_id, track.kind, track.codec)
                down.bind(None)  # nothing to forward to us: no cost per packet
                continue
            recorder.tracks[down.ssrc] = TrackRecorder(
                track.kind, track.codec.lower(), track.clock_rate, fmt, _keyframe_asker(down),
                _publisher_reported(down))
        info = RecordingInfo(recording_id, stream.name, source.source_id,
                             f"{recording_id}.{extension}", extension, MEDIA_TYPES[extension],
                             time.time(), owner=os.getpid())
        self.directory.mkdir(parents=True, exist_ok=True)
        self._save(info)
        self._active[(stream.name, source.source_id)] = _Active(info, stream, feed, recorder)
        self._watch()
        log.info("recording %s: %s/%s -> %s", recording_id, stream.name, source.source_id,
                 info.file)
        return info

    def active_keys(self) -> list[tuple[str, str | None]]:
        """(stream, sourceId) of every recording under way."""
        return list(self._active)

    def recording(self, stream_name: str, source_id: str | None) -> RecordingInfo | None:
        active = self._active.get((stream_name, source_id))
        return active.info if active is not None else None

    async def stop(self, stream_name: str, source_id: str | None) -> RecordingInfo:
        """Finish a recording: the file is complete when this returns."""
        active = self._active.pop((stream_name, source_id), None)
        if active is None:
            raise RecordingError(404, f"{stream_name!r} source {source_id!r} is not recorded")
        return await self._finish(active)

    async def _finish(self, active: _Active) -> RecordingInfo:
        active.stream.remove_relay(active.feed)
        writer = active.recorder.finish()
        info = active.info
        if writer is not None:
            await asyncio.to_thread(writer.close)
            info.duration = round(writer.duration, 3)
            info.error = writer.error
        path = self.directory / info.file
        info.size = path.stat().st_size if path.exists() else 0
        info.ended = time.time()
        info.state = DONE
        self._save(info)
        log.info("recording %s done: %.1f s, %d bytes", info.id, info.duration, info.size)
        if self.on_done is not None:
            try:
                self.on_done(info)
            except Exception:
                log.exception("recording %s: done callback failed", info.id)
        return info

    def _watch(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch_sources())

    async def _watch_sources(self) -> None:
        while self._active:
            await asyncio.sleep(WATCH_INTERVAL)
            for key, active in list(self._active.items()):
                if _ended(active):
                    del self._active[key]
                    self._finish_later(active)

    def _finish_later(self, active: _Active) -> None:
        task = asyncio.get_running_loop().create_task(self._finish(active))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def close(self) -> None:
        """Finish every recording (the node is stopping)."""
        if self._watcher is not None:
            self._watcher.cancel()
        active, self._active = list(self._active.values()), {}
        for item in active:
            await self._finish(item)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    # --- the files ------------------------------------------------------------------------

    def list(self, stream_name: str | None = None) -> list[RecordingInfo]:
        """Every recording in the directory, oldest first (optionally of one stream)."""
        out: list[RecordingInfo] = []
        if not self.directory.is_dir():
            return out
        for sidecar in self.directory.glob("rec_*.json"):
            info = self._load(sidecar.stem)
            if info is not None and (stream_name is None or info.stream == stream_name):
                out.append(info)
        out.sort(key=lambda i: i.started)
        return out

    def get(self, recording_id: str) -> RecordingInfo | None:
        if not RECORDING_ID.match(recording_id):
            return None
        return self._load(recording_id)

    def path_of(self, info: RecordingInfo) -> Path:
        return self.directory / info.file

    def delete(self, recording_id: str) -> RecordingInfo:
        info = self.get(recording_id)
        if info is None:
            raise RecordingError(404, f"no recording {recording_id!r}")
        if info.state == RECORDING:
            raise RecordingError(409, f"recording {recording_id!r} is still being recorded")
        for path in (self.directory / info.file, self.directory / f"{info.id}.json"):
            path.unlink(missing_ok=True)
        log.info("recording %s deleted", recording_id)
        return info

    def _live_ids(self) -> dict[str, RecordingInfo]:
        return {a.info.id: a.info for a in self._active.values()}

    def _load(self, recording_id: str) -> RecordingInfo | None:
        live = self._live_ids().get(recording_id)
        path = self.directory / f"{recording_id}.json"
        if live is not None:
            media = self.directory / live.file
            live.size = media.stat().st_size if media.exists() else 0
            live.duration = round(time.time() - live.started, 3)
            return live
        try:
            info = RecordingInfo(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if not RECORDING_ID.match(info.id) or info.file not in (
                f"{info.id}.{ext}" for ext in MEDIA_TYPES):
            return None  # not ours: never serve a path a sidecar made up
        if info.state == RECORDING and not _alive(info.owner):  # the node died recording
            media = self.directory / info.file
            info.state, info.interrupted = DONE, True
            if media.exists():
                stat = media.stat()
                info.size, info.ended = stat.st_size, stat.st_mtime
                info.duration = round(max(0.0, stat.st_mtime - info.started), 3)
        return info

    def _save(self, info: RecordingInfo) -> None:
        path = self.directory / f"{info.id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(info)))
        os.replace(tmp, path)


def _ended(active: _Active) -> bool:
    """The recorded source ended: its feed's DownTracks were unbound (a republish of the
    sourceId moves them to the new source instead)."""
    return all(down.track is None for down in active.feed.down_tracks)


def _keyframe_asker(down: DownTrack) -> Callable[[], object]:
    """Ask the Track the feed's DownTrack is bound to now (it changes on republish)."""
    def ask() -> object:
        track = down.track
        return track.request_keyframe() if track is not None else False
    return ask


def _publisher_reported(down: DownTrack) -> Callable[[], bool]:
    """Whether the Track the feed's DownTrack is bound to has had its publisher's SR."""
    def reported() -> bool:
        track = down.track
        return track is not None and track.sr_ntp >= 0
    return reported


def _alive(pid: int) -> bool:
    """Whether another process (a `--workers` sibling) may still be recording: ours only counts
    through `_active`."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
