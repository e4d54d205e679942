"""Publisher: sends local tracks to a hubbub stream with the ``publish`` command."""

from __future__ import annotations

from typing import Any

from aiortc import MediaStreamTrack, RTCIceServer, RTCPeerConnection, RTCRtpSender

from hubbub.client.patches import use_loopback_only
from hubbub.client.session import PeerSession
from hubbub.client.signaling import EventCallback

__all__ = ["PROTOCOL_CODECS", "SENDABLE_CODECS", "Publisher", "use_loopback_only"]

# docs/PROTOCOL.md, "publish": the codec names the server accepts.
PROTOCOL_CODECS = ("h264", "vp8", "vp9", "av1", "h265")
# The video codecs aiortc can encode, by protocol name.
SENDABLE_CODECS = {"vp8": "video/VP8", "h264": "video/H264"}


class Publisher(PeerSession):
    """One publishing peer: sendonly transceivers for ``tracks``, in order.

    Use ``async with Publisher(...) as pub:`` or ``await pub.connect()`` / ``await pub.close()``.
    On a publisher socket the server sends ``active`` / ``inactive`` (first viewer joined / last
    left) and, when asked for in ``events``, ``viewercount``.
    """

    command_name = "publish"

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        source_id: str | None = None,
        token: str | None = None,
        codec: str = "vp8",
        tracks: list[MediaStreamTrack],
        events: list[str] | None = None,
        priority: int | None = None,
        ice_servers: list[RTCIceServer] | None = None,
        ice_transport_policy: str = "all",
        on_event: EventCallback | None = None,
    ) -> None:
        super().__init__(url, token, ice_servers=ice_servers, on_event=on_event,
                         ice_transport_policy=ice_transport_policy)
        if codec not in PROTOCOL_CODECS:
            raise ValueError(f"unknown codec {codec!r}, expected one of {PROTOCOL_CODECS}")
        if codec not in SENDABLE_CODECS and any(t.kind == "video" for t in tracks):
            raise ValueError(f"aiortc cannot encode {codec!r} video; use one of {SENDABLE_CODECS}")
        if not tracks:
            raise ValueError("a publisher needs at least one track")
        self.stream = stream
        self.source_id = source_id
        self.codec = codec
        self.tracks = list(tracks)
        self.requested_events = events
        self.priority = priority

    @property
    def publisher_id(self) -> str | None:
        value = self.response.get("publisherId")
        return value if isinstance(value, str) else None

    def _add_transceivers(self, pc: RTCPeerConnection) -> None:
        for track in self.tracks:
            transceiver = pc.addTransceiver(track, direction="sendonly")
            if track.kind == "video":
                mime = SENDABLE_CODECS[self.codec].lower()
                codecs = RTCRtpSender.getCapabilities("video").codecs
                # keep RTX (apt) entries: a browser offers them too, the server may refuse them
                transceiver.setCodecPreferences(
                    [c for c in codecs if c.mimeType.lower() in (mime, "video/rtx")]
                )

    def _command_data(self, sdp: str) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.stream, "sdp": sdp, "codec": self.codec}
        if self.source_id is not None:
            data["sourceId"] = self.source_id
        if self.priority is not None:
            data["priority"] = self.priority
        if self.requested_events is not None:
            data["events"] = self.requested_events
        return data
