"""A recording `Publisher` and an authorizer for the RTMP tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from hubbub.ingest.rtmp import AacConfig, AvcConfig, PublishRequest, Refusal
from hubbub.ingest.rtmp.amf0 import AmfValue, decode_all, encode_all
from hubbub.ingest.rtmp.chunks import AMF0_COMMAND, ChunkReader, ChunkWriter, Message


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


class RtmpClient:
    """A scripted encoder: handshake, commands and media, and what the server answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.out = ChunkWriter()
        self.inp = ChunkReader(max_message_size=1 << 20)
        self.received: list[Message] = []

    @classmethod
    async def open(cls, port: int, handshake: bool = True) -> RtmpClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        if handshake:
            writer.write(b"\x03" + bytes(1536))
            await asyncio.wait_for(reader.readexactly(1 + 1536 + 1536), 3)
            writer.write(bytes(1536))
        return client

    def send(self, type_id: int, payload: bytes, stream_id: int = 0, timestamp: int = 0,
             csid: int = 3) -> None:
        self.writer.write(self.out.message(csid, type_id, payload, stream_id, timestamp))

    def command(self, *values: AmfValue, stream_id: int = 0) -> None:
        self.send(AMF0_COMMAND, encode_all(*values), stream_id)

    async def recv(self, timeout: float = 3.0) -> Message | None:
        """The next message from the server; None at EOF."""
        while (message := self.inp.next_message()) is None:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.inp.feed(data)
        self.received.append(message)
        return message

    async def until(self, name: str, timeout: float = 3.0) -> list[AmfValue]:
        """The arguments of the next command called `name` (skipping anything else)."""
        while True:
            message = await self.recv(timeout)
            if message is None:
                raise EOFError(f"closed before {name}")
            if message.type_id == AMF0_COMMAND:
                values = decode_all(message.payload)
                if values[0] == name:
                    return values

    async def closed(self, timeout: float = 3.0) -> bool:
        """Whether the server closes the connection (reading and dropping what comes)."""
        try:
            while await self.recv(timeout) is not None:
                pass
        except (ConnectionError, TimeoutError):
            return False
        return True

    async def connect(self, app: str = "v2/pub") -> list[AmfValue]:
        self.command("connect", 1, {"app": app, "tcUrl": f"rtmp://127.0.0.1/{app}",
                                    "flashVer": "FMLE/3.0 (test)"})
        return await self.until("_result")

    async def publish(self, name: str, app: str = "v2/pub") -> dict[str, AmfValue]:
        """connect, createStream, publish; the onStatus info object."""
        await self.connect(app)
        self.command("releaseStream", 2, None, name)
        self.command("FCPublish", 3, None, name)
        self.command("createStream", 4, None)
        result = await self.until("_result")
        while result[1] != 4.0:
            result = await self.until("_result")
        assert result[3] == 1.0
        self.command("publish", 5, None, name, "live", stream_id=1)
        status = (await self.until("onStatus"))[3]
        assert isinstance(status, dict)
        return status

    def close(self) -> None:
        self.writer.close()
