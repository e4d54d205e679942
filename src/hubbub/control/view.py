"""ViewerSession: the `view` command — SDP answer with our SSRCs and a Viewer in the sfu —
and the commands after it: `project` / `unproject` (a source's track into a viewer mid) and
`select` (the main video's simulcast layer, sfu/layers.py).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hubbub import logs
from hubbub.control import messages
from hubbub.control.negotiate import answer_offer, stream_for
from hubbub.control.session import Session, new_id
from hubbub.media import rtp, sdp
from hubbub.media.transport import TransportState, WebRtcTransport
from hubbub.sfu import layers
from hubbub.sfu.types import DownTrackParams

if TYPE_CHECKING:
    from hubbub.control.auth.jwts import Grant
    from hubbub.control.coordination import Interest
    from hubbub.control.node import Node
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream
    from hubbub.sfu.track import Track
    from hubbub.sfu.viewer import Viewer

log = logging.getLogger(__name__)

MAX_MAPPING = 16  # entries in one `project` (a source has a handful of tracks)
MAX_PROJECTED = 32  # DownTracks a viewer may add beyond its answer
KINDS = ("audio", "video")


@dataclass(frozen=True)
class Projection:
    """One `project` mapping entry, resolved: `source_id`'s track (by trackId, else the first of
    `kind`) goes into the viewer's `mid`. Kept while the session lives, so the track is bound
    again when that sourceId is republished."""

    source_id: str | None
    track_id: str | None
    kind: str

    def track_of(self, source: Source) -> Track | None:
        if self.track_id is not None:
            return next((t for t in source.tracks if t.mid == self.track_id), None)
        return source.track(self.kind)


def _media_id(entry: dict[str, Any]) -> str | None:
    """`mediaId` as the SDK sends it: whatever the app passed (it compares it with toString())."""
    value = entry.get("mediaId")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise messages.ProtocolError("mapping mediaId must be a string")
    text = str(value)
    if not text or len(text) > 32:
        raise messages.ProtocolError("mapping mediaId must be 1-32 characters")
    return text


def layer_request(layer: Any) -> layers.LayerRequest:
    """PROTOCOL.md `layer` object: `encodingId` picks a simulcast layer, `temporalLayerId` /
    `maxTemporalLayerId` cap its temporal layers (VP8); the spatial SVC fields are checked and
    have no effect (no SVC forwarding yet); absent, null or {} is automatic."""
    if layer is None:
        return layers.AUTOMATIC
    if not isinstance(layer, dict):
        raise messages.ProtocolError("layer must be an object")
    encoding = layer.get("encodingId")
    if encoding is not None and (isinstance(encoding, bool) or not isinstance(encoding, str | int)
                                 or not 0 < len(str(encoding)) <= 32):
        raise messages.ProtocolError("layer encodingId must be a string of 1-32 characters")
    for key in ("spatialLayerId", "temporalLayerId", "maxSpatialLayerId", "maxTemporalLayerId"):
        value = layer.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 0 <= value <= 255):
            raise messages.ProtocolError(f"layer {key} must be an integer 0-255")
    # TID is two bits (RFC 7741 §4.2): 3 and up, like 255 (`layers`' "no layer"), cap nothing.
    caps = [layer[k] for k in ("temporalLayerId", "maxTemporalLayerId")
            if layer.get(k) is not None and layer[k] < 3]
    return layers.LayerRequest(str(encoding) if encoding is not None else None,
                               min(caps) if caps else None)


def new_ssrc(taken: set[int]) -> int:
    while True:
        ssrc = secrets.randbits(32)
        if ssrc and ssrc not in taken:
            taken.add(ssrc)
            return ssrc


class ViewerSession(Session):
    role = "view"

    def __init__(self, node: Node, send_text: Any) -> None:
        super().__init__(send_text, node.config.control.send_queue_bytes)
        self.node = node
        self.subscriber_id = new_id("sub")
        self.stream: Stream | None = None
        self.viewer: Viewer | None = None
        self.transport: WebRtcTransport | None = None
        self.pinned_source_id: str | None = None
        self.excluded: list[str] = []
        self._params: list[DownTrackParams] = []
        self._ssrcs: set[int] = set()
        self._projections: dict[str, Projection] = {}  # viewer mid -> what it carries
        self.layer: dict[str, Any] = {}  # the last `select` (automatic when empty)
        self._main_layer = layers.AUTOMATIC
        self._projected_layers: dict[str, layers.LayerRequest] = {}  # `project` entries
        self._interest: Interest | None = None
        self._asked_at = 0.0  # when `view` arrived (monotonic): join time (metrics)
        self.grant: Grant | None = None
        """The JWT the socket was opened with; None only with --allow-any-stream."""

    async def handle(self, command: messages.Command) -> dict[str, Any]:
        if command.name == "view":
            return await self._view(command.data)
        if command.name in ("project", "unproject", "select"):
            if self.stream is None:
                raise messages.ProtocolError(f"{command.name}: send view first")
            if command.name == "project":
                return self._project(command.data)
            if command.name == "unproject":
                return self._unproject(command.data)
            return self._select(command.data)
        raise messages.ProtocolError(f"unknown command {command.name!r}")

    async def _view(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.transport is not None or self._interest is not None:
            raise messages.ProtocolError("already viewing on this connection")
        self._asked_at = time.monotonic()
        name = stream_for(
            self.node, self.grant, messages.optional_str(data, "streamId"), "streamId"
        )
        logs.bind(stream=name, viewer=self.subscriber_id)  # this socket's later lines too
        # In a cluster, the stream's sources on other nodes are relayed here before we answer,
        # so the `active` events after the reply cover them as on a single node.
        interest = self._interest = self.node.coordinator.interest(name, "view")
        try:
            await interest.ready()
            return self._answer_view(name, data)
        except BaseException:
            self._interest = None
            interest.release()
            raise

    def _answer_view(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        self.pinned_source_id = messages.optional_str(data, "pinnedSourceId")
        self._main_layer = layer_request(data.get("layer"))  # PROTOCOL.md `view` "layer"
        self.excluded = messages.str_list(data, "excludedSourceIds")
        self.set_events(data.get("events"))
        offer = sdp.parse(messages.required_str(data, "sdp", 64 * 1024))
        stream_label = new_id("s")
        taken = self._ssrcs
        send_tracks: dict[str, sdp.SendTrack] = {}
        audio_seen = False
        for m in offer.media:
            if m.kind not in ("audio", "video") or m.mid is None:
                continue
            label = stream_label
            if m.kind == "audio":
                # Multiplexed slots (audio after the first) get a stream of their own: they
                # carry changing sources, so the browser must not lip-sync them to the main video.
                label = f"{stream_label}-{m.mid}" if audio_seen else stream_label
                audio_seen = True
            send_tracks[m.mid] = sdp.SendTrack(
                ssrc=new_ssrc(taken), cname="hubbub", stream_id=label, track_id=f"t{m.mid}"
            )
        transport, answer, negotiated = answer_offer(
            self.node, offer, "view", send_tracks=send_tracks
        )
        self._params = [
            DownTrackParams(
                kind=m.kind,
                mid=m.mid,
                ssrc=send_tracks[m.mid].ssrc,
                payload_types={c.key: c.payload_type for c in m.codecs},
                ext_ids=dict(m.ext_ids),
                nack=any("nack" in c.rtcp_fbs for c in m.codecs),
            )
            for m in negotiated
            if not m.rejected and m.mid in send_tracks
        ]
        if not self._params:
            transport.close("view refused")
            raise messages.ProtocolError("offer has no audio or video we can send")
        self.transport = transport
        self.stream = self.node.streams.get_or_create(name)
        transport.on_state = self._on_transport_state
        log.info("view pinned=%s", self.pinned_source_id)
        return {
            "sdp": answer,
            "subscriberId": self.subscriber_id,
            "clusterId": self.node.cluster_id,
            "streamViewId": self.subscriber_id,
            "streamId": self.node.stream_id(name),
        }

    def after_reply(self) -> None:
        """The SDK holds back `track` events until `active`: announce live sources now."""
        if self.stream is None:
            return
        self.node.hub.add_viewer(self.stream.name, self)
        for source in sorted(self.stream.sources.values(), key=lambda s: s.order):
            self.send_event("active", self.node.hub.active_payload(self.stream, source))

    def _on_transport_state(self, state: TransportState, reason: str) -> None:
        transport = self.transport
        if transport is None or self.stream is None:
            return
        if state is TransportState.CONNECTED:
            self.viewer = self.stream.add_viewer(
                self._params, transport, self.pinned_source_id, self.excluded
            )
            main = self._main_video_mid()
            if main is not None and not self._main_layer.automatic:
                self.viewer.request_layer(main, self._main_layer)
            for mid, request in self._projected_layers.items():
                self.viewer.layer_requests[mid] = request
            transport.on_rtcp = self.viewer.on_rtcp
            for mid in list(self._projections):
                self._bind_projection(mid)
            self.node.metrics.joined("view", self._asked_at)
        elif state in (TransportState.FAILED, TransportState.CLOSED):
            if state is TransportState.FAILED:
                self.media_failed(reason, transport.ice_failed)
            self.end(reason or state.value)
            self.request_close(1000, f"media transport {state.value}: {reason}")

    def send_event(self, name: str, data: dict[str, Any] | None) -> None:
        super().send_event(name, data)
        if name == "active" and data is not None and self.viewer is not None:
            # A projected sourceId that went live again gets its mids back.
            # Called from inside the sfu (Stream.publish): never let a refusal escape there.
            source_id = data.get("sourceId")
            for mid, projection in list(self._projections.items()):
                if projection.source_id == source_id:
                    try:
                        self._bind_projection(mid)
                    except ValueError as exc:
                        log.warning("view %s: cannot rebind mid %s: %s",
                                    self.subscriber_id, mid, exc)

    # --- project / unproject / select ----------------------------------------------------

    def _project(self, data: dict[str, Any]) -> dict[str, Any]:
        """PROTOCOL.md `project`: the client renegotiated locally (the SDK's addRemoteTrack),
        so a mid we never answered gets a DownTrack cloned from the first answered m-line of
        its kind (same PTs and extension ids, fresh SSRC, MID extension on every packet)."""
        assert self.stream is not None
        source_id = data.get("sourceId")
        if source_id is not None and not isinstance(source_id, str):
            raise messages.ProtocolError("sourceId must be a string or null")
        mapping = data.get("mapping")
        if not isinstance(mapping, list) or not mapping or len(mapping) > MAX_MAPPING:
            raise messages.ProtocolError(f"mapping must be a list of 1-{MAX_MAPPING} objects")
        source = self.stream.sources.get(source_id)
        if source is None:
            raise messages.ProtocolError(f"source {source_id!r} is not live")
        planned: dict[str, Projection] = {}
        requested: dict[str, layers.LayerRequest] = {}
        for entry in mapping:
            if not isinstance(entry, dict):
                raise messages.ProtocolError("mapping entries must be objects")
            track_id = messages.optional_str(entry, "trackId", 64)
            media = messages.optional_str(entry, "media", 8)
            if track_id is None and media is None:
                raise messages.ProtocolError("mapping entry needs trackId or media")
            if media is not None and media not in KINDS:
                raise messages.ProtocolError(f"mapping media must be audio or video: {media!r}")
            if track_id is not None:
                track = next((t for t in source.tracks if t.mid == track_id), None)
            else:
                assert media is not None
                track = source.track(media)
            if track is None:
                what = f"trackId {track_id!r}" if track_id is not None else f"{media} track"
                raise messages.ProtocolError(f"source {source_id!r} has no {what}")
            if media is not None and track.kind != media:
                raise messages.ProtocolError(f"trackId {track_id!r} is {track.kind}, not {media}")
            mid = _media_id(entry) or self._main_mid(track.kind)
            self._check_target(mid, track.kind)
            planned[mid] = Projection(source_id, track_id, track.kind)
            if track.kind == "video" and "layer" in entry:
                requested[mid] = layer_request(entry["layer"])
        new = [mid for mid in planned if mid not in self._projections and self._is_new_mid(mid)]
        if len(self._new_mids()) + len(new) > MAX_PROJECTED:
            raise messages.ProtocolError(f"at most {MAX_PROJECTED} projected mids per viewer")
        self._projections.update(planned)
        self._projected_layers.update(requested)
        for mid in planned:
            self._bind_projection(mid)
            if mid in requested and self.viewer is not None:
                self.viewer.request_layer(mid, requested[mid])
        log.info("view %s project %r -> %s", self.subscriber_id, source_id, sorted(planned))
        return {
            "sourceId": source_id,
            "mapping": [{"mediaId": mid, "trackId": p.track_id, "media": p.kind}
                        for mid, p in planned.items()],
        }

    def _unproject(self, data: dict[str, Any]) -> dict[str, Any]:
        """Stop sending into `mediaIds`. A projected mid keeps its idle DownTrack (same SSRC if
        projected into again); a main m-line goes back to the main source. Unknown mids are
        ignored: unprojecting is idempotent."""
        raw = data.get("mediaIds")
        if not isinstance(raw, list) or len(raw) > MAX_PROJECTED + len(self._params):
            raise messages.ProtocolError("mediaIds must be a list of mids")
        mids = [_media_id({"mediaId": v}) for v in raw]
        for mid in mids:
            if mid is None or self._projections.pop(mid, None) is None:
                continue
            viewer = self.viewer
            down = viewer.down_track_for_mid(mid) if viewer is not None else None
            if viewer is None or down is None:
                continue
            if mid in viewer.projected:
                down.bind(None)
            else:
                main = viewer.main_source
                down.bind(main.track(down.kind) if main is not None else None)
        log.info("view %s unproject %s", self.subscriber_id, mids)
        return {"mediaIds": [m for m in mids if m is not None]}

    def _select(self, data: dict[str, Any]) -> dict[str, Any]:
        """PROTOCOL.md `select`: the main video's simulcast layer; `{}` is automatic. A layer
        not live (yet) leaves the choice automatic until it is."""
        request = layer_request(data.get("layer"))
        self.layer = data.get("layer") or {}
        self._main_layer = request
        main = self._main_video_mid()
        if self.viewer is not None and main is not None:
            self.viewer.request_layer(main, request)
        return {}

    def _main_video_mid(self) -> str | None:
        return next((p.mid for p in self._params if p.kind == "video"), None)

    def _main_mid(self, kind: str) -> str:
        """The SDK's rule for a mapping without mediaId: the main m-line of that kind."""
        first = next((p for p in self._params if p.kind == kind), None)
        if first is None:
            raise messages.ProtocolError(f"this view has no {kind} track to project into")
        return first.mid

    def _slot_mids(self) -> set[str]:
        audio = [p.mid for p in self._params if p.kind == "audio"]
        return set(audio[1:])

    def _is_new_mid(self, mid: str) -> bool:
        return all(p.mid != mid for p in self._params)

    def _new_mids(self) -> list[str]:
        return [mid for mid in self._projections if self._is_new_mid(mid)]

    def _check_target(self, mid: str, kind: str) -> None:
        if mid in self._slot_mids():
            raise messages.ProtocolError(
                f"mid {mid!r} is a multiplexed audio track: the server fills it by voice activity"
            )
        answered = next((p for p in self._params if p.mid == mid), None)
        if answered is not None and answered.kind != kind:
            raise messages.ProtocolError(f"mid {mid!r} is {answered.kind}, cannot carry {kind}")
        projected = self._projections.get(mid)
        if projected is not None and projected.kind != kind:
            raise messages.ProtocolError(f"mid {mid!r} carries {projected.kind}, not {kind}")
        if self._is_new_mid(mid) and not self._clone_of(kind).ext_ids.get(rtp.SDES_MID):
            raise messages.ProtocolError(
                "the view offer negotiated no MID header extension: new mids cannot be routed"
            )

    def _clone_of(self, kind: str) -> DownTrackParams:
        """The first answered m-line of `kind`: the SDK clones its codecs and extensions."""
        first = next((p for p in self._params if p.kind == kind), None)
        if first is None:
            raise messages.ProtocolError(f"this view has no {kind} m-line to clone for a new mid")
        return first

    def _bind_projection(self, mid: str) -> None:
        """(Re)bind `mid` to its projected track if the viewer and the source are live."""
        viewer, stream = self.viewer, self.stream
        projection = self._projections.get(mid)
        if viewer is None or stream is None or projection is None:
            return
        down = viewer.down_track_for_mid(mid)
        if down is None:
            first = self._clone_of(projection.kind)
            down = viewer.add_down_track(DownTrackParams(
                kind=projection.kind,
                mid=mid,
                ssrc=new_ssrc(self._ssrcs),
                payload_types=dict(first.payload_types),
                ext_ids=dict(first.ext_ids),
                nack=first.nack,
            ))
        source = stream.sources.get(projection.source_id)
        down.bind(projection.track_of(source) if source is not None else None)

    def end(self, reason: str) -> None:
        viewer, self.viewer = self.viewer, None
        if viewer is not None and self.stream is not None:
            self.stream.remove_viewer(viewer)
        transport = self.transport
        if transport is not None:
            transport.on_state = lambda state, reason: None
            transport.close(reason)
        if self.stream is not None:
            self.node.hub.remove_viewer(self.stream.name, self)
            self.node.discard_if_empty(self.stream)
        if self._interest is not None:
            self._interest.release()

    def close(self) -> None:
        self.end("signaling closed")
        super().close()
