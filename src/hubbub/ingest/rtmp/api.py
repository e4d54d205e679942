"""What the RTMP floor asks of the layer above: an `Authorizer` called at `publish`, and the
`Publisher` it returns, which receives the media. The control layer implements both (token
rules, sources, AAC to Opus, RFC 6184 packetization); nothing here knows of streams or tokens.

Media callbacks run on the connection's read loop, once per message, and must not block. Any
of them may return a `Refusal`: the encoder then gets an error onStatus with its description
(ffmpeg prints "Server error: <description>") and the connection is closed. The control layer
can also end a publication later (a revoked token, a replacing publisher, an admin stop)
through `PublishRequest.control.stop(...)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hubbub.ingest.rtmp.amf0 import AmfValue
from hubbub.ingest.rtmp.flv import AacConfig, AvcConfig

__all__ = [
    "BAD_NAME",
    "REJECTED",
    "Authorizer",
    "PublishControl",
    "PublishRequest",
    "Publisher",
    "Refusal",
]

BAD_NAME = "NetStream.Publish.BadName"
REJECTED = "NetStream.Publish.Rejected"


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a publication is refused; `description` reaches the encoder and the log."""

    description: str
    code: str = REJECTED  # an onStatus code (NetStream.Publish.*)


class PublishControl(Protocol):
    def stop(self, description: str, code: str = REJECTED) -> None:
        """Refuses the publication from now on: the encoder gets an error onStatus with
        `description`, the connection closes, and `Publisher.closed` is called."""


@dataclass(frozen=True, slots=True)
class PublishRequest:
    app: str  # from connect, e.g. "v2/pub" (its query, if any, is in `query`)
    stream_name: str  # the publish name up to "?"
    query: Mapping[str, str]  # the publish name's query, over any on app or tcUrl
    peer: tuple[str, int]
    tc_url: str
    encoder: str  # connect's flashVer, e.g. "FMLE/3.0 (compatible; Lavf59.27.100)"
    control: PublishControl = field(repr=False, compare=False)

    @property
    def token(self) -> str | None:
        return self.query.get("token")

    @property
    def source_id(self) -> str | None:
        return self.query.get("sourceId")


class Publisher(Protocol):
    """One authorized publication's media, in the order it arrived. Timestamps are the RTMP
    message timestamps (ms, dts for video, modulo 2**32); `cts_ms` is pts - dts."""

    def on_metadata(self, metadata: Mapping[str, AmfValue]) -> Refusal | None:
        """@setDataFrame/onMetaData: what the encoder says it sends (codec ids, size, rates)."""

    def on_video_config(self, config: AvcConfig) -> Refusal | None:
        """An AVC sequence header; may come again mid-stream (new SPS/PPS)."""

    def on_audio_config(self, config: AacConfig) -> Refusal | None:
        """An AAC sequence header; may come again mid-stream (rebuild the decoder)."""

    def on_video(self, ts_ms: int, cts_ms: int, is_key: bool, nalus: list[bytes]) -> Refusal | None:
        """One access unit's NAL units (no length prefixes, no start codes)."""

    def on_audio(self, ts_ms: int, frame: bytes) -> Refusal | None:
        """One raw AAC frame."""

    def closed(self, reason: str) -> None:
        """The publication ended (unpublish, disconnect, refusal, timeout); called once."""


Authorizer = Callable[[PublishRequest], Awaitable["Publisher | Refusal"]]
