"""Viewer: receives a hubbub stream with the ``view`` command.

The offer's m-lines follow docs/PROTOCOL.md ("view"): one recvonly video (unless ``video=False``),
one recvonly audio (unless ``audio=False``), then ``multiplexed_audio_tracks`` more recvonly audio
m-lines, which carry the most voice-active other sources; ``vad`` events say which source is in
which of them.
"""

from __future__ import annotations

from typing import Any

from aiortc import MediaStreamTrack, RTCIceServer, RTCPeerConnection

from hubbub.client.session import PeerSession
from hubbub.client.signaling import EventCallback

# The list the reference SDK sends (docs/PROTOCOL.md, "view").
DEFAULT_EVENTS = ["active", "inactive", "layers", "viewercount", "vad", "updated", "migrate",
                  "stopped"]


class Viewer(PeerSession):
    """One viewing peer. ``async with Viewer(...) as viewer:`` connects and waits for media.

    After connect: ``tracks_by_mid`` holds the remote track of every m-line the server answered
    as sending; ``video_mid`` / ``audio_mid`` name the main-source m-lines and
    ``multiplexed_mids`` the extra audio ones; ``slots`` maps each multiplexed mid to the sourceId
    the last ``vad`` event put there (None = idle). Remote tracks queue decoded frames until read:
    attach an ``AudioRecorder`` / ``VideoCounter`` (hubbub.client.media) to the ones you check.
    """

    command_name = "view"

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        token: str | None = None,
        pinned_source_id: str | None = None,
        excluded_source_ids: list[str] | None = None,
        multiplexed_audio_tracks: int = 0,
        events: list[str] | None = None,
        layer: dict[str, Any] | None = None,
        video: bool = True,
        audio: bool = True,
        ice_servers: list[RTCIceServer] | None = None,
        ice_transport_policy: str = "all",
        on_event: EventCallback | None = None,
    ) -> None:
        super().__init__(url, token, ice_servers=ice_servers, on_event=on_event,
                         ice_transport_policy=ice_transport_policy)
        if multiplexed_audio_tracks < 0:
            raise ValueError(
                f"multiplexed_audio_tracks must be >= 0, got {multiplexed_audio_tracks}"
            )
        if not video and not audio and multiplexed_audio_tracks == 0:
            raise ValueError("a viewer needs at least one m-line (video, audio or multiplexed)")
        self.stream = stream
        self.pinned_source_id = pinned_source_id
        self.excluded_source_ids = excluded_source_ids
        self.layer = layer  # PROTOCOL.md `view` "layer": a simulcast layer from the start
        self.multiplexed_audio_tracks = multiplexed_audio_tracks
        self.requested_events = list(DEFAULT_EVENTS if events is None else events)
        self.want_video = video
        self.want_audio = audio
        self.video_mid: str | None = None
        self.audio_mid: str | None = None
        self.multiplexed_mids: list[str] = []
        self.tracks_by_mid: dict[str, MediaStreamTrack] = {}
        self.slots: dict[str, str | None] = {}

    @property
    def subscriber_id(self) -> str | None:
        value = self.response.get("subscriberId")
        return value if isinstance(value, str) else None

    def _add_transceivers(self, pc: RTCPeerConnection) -> None:
        kinds = (["video"] if self.want_video else []) + (["audio"] if self.want_audio else [])
        kinds += ["audio"] * self.multiplexed_audio_tracks
        for kind in kinds:
            pc.addTransceiver(kind, direction="recvonly")

    def _command_data(self, sdp: str) -> dict[str, Any]:
        # mids are assigned by createOffer, in transceiver order
        mids = [t.mid for t in self.pc.getTransceivers()]
        if any(mid is None for mid in mids):
            raise RuntimeError("offer left a transceiver without a mid")
        main = 0
        if self.want_video:
            self.video_mid = mids[main]
            main += 1
        if self.want_audio:
            self.audio_mid = mids[main]
            main += 1
        self.multiplexed_mids = [str(mid) for mid in mids[main:]]
        self.slots = dict.fromkeys(self.multiplexed_mids)
        data: dict[str, Any] = {"streamId": self.stream, "sdp": sdp}
        if self.pinned_source_id is not None:
            data["pinnedSourceId"] = self.pinned_source_id
        if self.excluded_source_ids is not None:
            data["excludedSourceIds"] = list(self.excluded_source_ids)
        data["events"] = self.requested_events
        if self.layer is not None:
            data["layer"] = dict(self.layer)
        data["vad"] = self.multiplexed_audio_tracks > 0
        return data

    def _on_answer(self, pc: RTCPeerConnection, reply: dict[str, Any]) -> None:
        for transceiver in pc.getTransceivers():
            track = transceiver.receiver.track
            if transceiver.mid is not None and track is not None:
                self.tracks_by_mid[transceiver.mid] = track

    def _on_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "vad":
            mid = data.get("mediaId")
            if isinstance(mid, str):
                source = data.get("sourceId")
                self.slots[mid] = source if isinstance(source, str) else None
