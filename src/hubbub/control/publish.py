"""PublisherSession: the `publish` command — SDP answer, transport, and a Source in the sfu."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from hubbub import logs
from hubbub.control import messages
from hubbub.control.negotiate import answer_offer, stream_for
from hubbub.control.recordings import record_if_granted
from hubbub.control.session import Session, new_id
from hubbub.media import rtp, sdp
from hubbub.media.transport import TransportState, WebRtcTransport
from hubbub.sfu.types import TrackParams

if TYPE_CHECKING:
    from hubbub.control.auth.jwts import Grant
    from hubbub.control.coordination import Interest
    from hubbub.control.node import Node
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream

log = logging.getLogger(__name__)

VIDEO_CODECS = {"vp8", "vp9", "h264", "av1", "h265"}


def track_params(negotiated: list[sdp.Negotiated]) -> list[TrackParams]:
    tracks = []
    for media in negotiated:
        if media.rejected or not media.codecs:
            continue
        codec = media.codecs[0]
        tracks.append(
            TrackParams(
                kind=media.kind,
                mid=media.mid,
                codec=codec.name,
                payload_type=codec.payload_type,
                clock_rate=codec.clock_rate,
                fmtp=codec.fmtp,
                ssrcs=list(media.ssrcs),
                ext_ids=dict(media.ext_ids),
                rtcp_fbs=list(codec.rtcp_fbs),
                rids=list(media.rids),
                layer_ssrcs=list(media.layer_ssrcs),
                rtx_payload_type=media.rtx_payload_type,
                repair_ssrcs=dict(media.repair_ssrcs),
            )
        )
    return tracks


class PublisherSession(Session):
    """One publishing client. The Source goes live when its transport is connected."""

    role = "publish"

    def __init__(self, node: Node, send_text: Any) -> None:
        super().__init__(send_text, node.config.control.send_queue_bytes)
        self.node = node
        self.publisher_id = new_id("pub")
        self.stream: Stream | None = None
        self.source_id: str | None = None
        self.source: Source | None = None
        self.transport: WebRtcTransport | None = None
        self._tracks: list[TrackParams] = []
        self._interest: Interest | None = None
        self.viewer_count = 0
        self._asked_at = 0.0  # when `publish` arrived (monotonic): join time (metrics)
        self.grant: Grant | None = None
        """The JWT the socket was opened with; None only with --allow-any-stream."""

    async def handle(self, command: messages.Command) -> dict[str, Any]:
        if command.name == "publish":
            return self._publish(command.data)
        if command.name == "unpublish":
            self.end("unpublished")
            return {}
        raise messages.ProtocolError(f"unknown command {command.name!r}")

    def _publish(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.transport is not None:
            raise messages.ProtocolError("already publishing on this connection")
        self._asked_at = time.monotonic()
        name = stream_for(self.node, self.grant, messages.optional_str(data, "name"), "name")
        source_id = messages.optional_str(data, "sourceId")
        if source_id is not None and self.grant is not None and not self.grant.multisource:
            raise messages.ProtocolError(
                "sourceId not allowed by token: multisource publishing is not enabled"
            )
        codec = (messages.optional_str(data, "codec", 16) or "vp8").lower()
        if codec not in VIDEO_CODECS:
            raise messages.ProtocolError(f"unsupported codec {codec!r}")
        self.set_events(data.get("events"))
        offer_text = messages.required_str(data, "sdp", 64 * 1024)
        offer = sdp.parse(offer_text)
        transport, answer, negotiated = answer_offer(
            self.node, offer, "publish", video_codec=codec
        )
        tracks = track_params(negotiated)
        if not tracks:
            transport.close("publish refused")
            raise messages.ProtocolError("offer has no audio or video we can receive")
        logs.bind(stream=name, source=source_id or "main")  # this socket's later lines too
        self.stream = self.node.streams.get_or_create(name)
        self._interest = self.node.coordinator.interest(name, "publish")
        self.source_id = source_id
        self._tracks = tracks
        self.transport = transport
        # BUNDLE: one transport-wide seq space, so any m-line's id is the transport's id.
        twcc_id = next(
            (t.ext_ids[rtp.TRANSPORT_CC] for t in tracks if rtp.TRANSPORT_CC in t.ext_ids), 0
        )
        if twcc_id:
            transport.enable_twcc(twcc_id, self.node.streams.config.server_ssrc)
        transport.on_state = self._on_transport_state
        self.node.hub.add_publisher(name, self)
        log.info(
            "publish %s tracks=%s", self.publisher_id, [t.codec for t in tracks],
        )
        return {
            "sdp": answer,
            "publisherId": self.publisher_id,
            "clusterId": self.node.cluster_id,
            "feedId": self.publisher_id,
            "streamId": self.node.stream_id(name),
        }

    def _on_transport_state(self, state: TransportState, reason: str) -> None:
        transport = self.transport
        if transport is None or self.stream is None:
            return
        if state is TransportState.CONNECTED:
            source = self.stream.publish(self.source_id, self._tracks, transport)
            self.source = source
            self.node.hub.bind_source(source, self)
            source.on_replaced = self.replaced
            transport.on_rtp = source.on_rtp
            transport.on_rtcp = source.on_rtcp
            self.node.coordinator.source_published(self.stream, source)
            record_if_granted(self.node, self.stream, source,
                              self.grant is not None and self.grant.record)
            self.node.metrics.joined("publish", self._asked_at)
        elif state in (TransportState.FAILED, TransportState.CLOSED):
            if state is TransportState.FAILED:
                self.media_failed(reason, transport.ice_failed)
            self.end(reason or state.value)
            self.request_close(1000, f"media transport {state.value}: {reason}")

    def replaced(self) -> None:
        """Another publisher took over our sourceId: drop this feed (PROTOCOL.md publish)."""
        if self.source is not None:
            self.node.hub.unbind_source(self.source)
        self.source = None
        self.end("replaced by a new publisher with the same sourceId")
        self.request_close(1000, "replaced")

    def end(self, reason: str) -> None:
        """Stop publishing: unpublish the Source and close the transport. Idempotent."""
        source, self.source = self.source, None
        if source is not None and self.stream is not None:
            self.node.hub.unbind_source(source)
            self.stream.unpublish(source)
            self.node.coordinator.source_unpublished(self.stream, source)
        if self._interest is not None:
            self._interest.release()
        transport = self.transport
        if transport is not None:
            transport.on_state = lambda state, reason: None
            transport.close(reason)
        if self.stream is not None:
            self.node.hub.remove_publisher(self.stream.name, self)
            self.node.discard_if_empty(self.stream)

    def close(self) -> None:
        self.end("signaling closed")
        super().close()
