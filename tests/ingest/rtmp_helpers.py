"""A recording `Publisher` and an authorizer for the RTMP tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hubbub.ingest.rtmp import AacConfig, AvcConfig, PublishRequest, Refusal
from hubbub.ingest.rtmp.amf0 import AmfValue


@dataclass
class VideoFrame:
    ts: int
    cts: int
    is_key: bool
    nal_types: list[int]


@dataclass
class Recorder:
    """Everything a publication delivered, in order."""

    refuse_video: Callable[[VideoFrame], Refusal | None] = lambda frame: None
    metadata: list[Mapping[str, AmfValue]] = field(default_factory=list)
    video_configs: list[AvcConfig] = field(default_factory=list)
    audio_configs: list[AacConfig] = field(default_factory=list)
    video: list[VideoFrame] = field(default_factory=list)
    audio: list[tuple[int, int]] = field(default_factory=list)  # (ts, frame length)
    reasons: list[str] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def on_metadata(self, metadata: Mapping[str, AmfValue]) -> Refusal | None:
        self.metadata.append(metadata)
        return None

    def on_video_config(self, config: AvcConfig) -> Refusal | None:
        self.video_configs.append(config)
        return None

    def on_audio_config(self, config: AacConfig) -> Refusal | None:
        self.audio_configs.append(config)
        return None

    def on_video(self, ts_ms: int, cts_ms: int, is_key: bool, nalus: list[bytes]) -> Refusal | None:
        frame = VideoFrame(ts_ms, cts_ms, is_key, [n[0] & 0x1F for n in nalus])
        self.video.append(frame)
        return self.refuse_video(frame)

    def on_audio(self, ts_ms: int, frame: bytes) -> Refusal | None:
        self.audio.append((ts_ms, len(frame)))
        return None

    def closed(self, reason: str) -> None:
        self.reasons.append(reason)
        self.ended.set()


@dataclass
class Gate:
    """An authorizer: records each request, answers with `verdict` (a Recorder is made per
    request when `verdict` is None)."""

    verdict: Refusal | None = None
    refuse_video: Callable[[VideoFrame], Refusal | None] = lambda frame: None
    requests: list[PublishRequest] = field(default_factory=list)
    recorders: list[Recorder] = field(default_factory=list)

    async def __call__(self, request: PublishRequest) -> Recorder | Refusal:
        self.requests.append(request)
        if self.verdict is not None:
            return self.verdict
        recorder = Recorder(self.refuse_video)
        self.recorders.append(recorder)
        return recorder
