"""ViewerSession: the `view` command — SDP answer with our SSRCs and a Viewer in the sfu."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from hubbub.control import messages
from hubbub.control.session import Session, new_id
from hubbub.media import sdp
from hubbub.media.transport import RemoteParameters, TransportState, WebRtcTransport
from hubbub.sfu.types import DownTrackParams

if TYPE_CHECKING:
    from hubbub.control.auth.jwts import Grant
    from hubbub.control.node import Node
    from hubbub.sfu.stream import Stream
    from hubbub.sfu.viewer import Viewer

log = logging.getLogger(__name__)


def new_ssrc(taken: set[int]) -> int:
    while True:
        ssrc = secrets.randbits(32)
        if ssrc and ssrc not in taken:
            taken.add(ssrc)
            return ssrc


class ViewerSession(Session):
    role = "view"

    def __init__(self, node: Node, send_text: Any) -> None:
        super().__init__(send_text)
        self.node = node
        self.subscriber_id = new_id("sub")
        self.stream: Stream | None = None
        self.viewer: Viewer | None = None
        self.transport: WebRtcTransport | None = None
        self.pinned_source_id: str | None = None
        self.excluded: list[str] = []
        self._params: list[DownTrackParams] = []
        self.grant: Grant | None = None
        """The JWT the socket was opened with; None only with --allow-any-stream."""

    @property
    def token_stream(self) -> str | None:
        """Read by Node.default_stream: a view without a streamId uses the JWT's stream."""
        return self.grant.stream if self.grant is not None else None

    async def handle(self, command: messages.Command) -> dict[str, Any]:
        if command.name == "view":
            return self._view(command.data)
        raise messages.ProtocolError(f"unknown command {command.name!r}")

    def _view(self, data: dict[str, Any]) -> dict[str, Any]:
        if self.transport is not None:
            raise messages.ProtocolError("already viewing on this connection")
        name = messages.optional_str(data, "streamId") or self.node.default_stream(self)
        if not name:
            raise messages.ProtocolError("missing streamId (stream name)")
        # Millicast clients send either "streamName" or "accountId/streamName".
        name = self.node.strip_account(name)
        self.node.check_stream_name(name)
        if self.grant is not None and name != self.grant.stream:
            raise messages.ProtocolError(
                f"stream not allowed by token: {name!r} (the token is for {self.grant.stream!r})"
            )
        self.pinned_source_id = messages.optional_str(data, "pinnedSourceId")
        self.excluded = messages.str_list(data, "excludedSourceIds")
        self.set_events(data.get("events"))
        offer = sdp.parse(messages.required_str(data, "sdp", 64 * 1024))
        ufrag, pwd, fingerprints = sdp.remote_credentials(offer)
        stream_label = new_id("s")
        taken: set[int] = set()
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
        transport = self.node.port.create_transport(RemoteParameters(ufrag, pwd, fingerprints))
        try:
            answer, negotiated = sdp.build_answer(
                offer,
                sdp.AnswerOptions(
                    ice_ufrag=transport.local_ufrag,
                    ice_pwd=transport.local_pwd,
                    fingerprint=("sha-256", transport.local_fingerprint),
                    candidates=self.node.port.candidates(),
                    role="view",
                    send_tracks=send_tracks,
                ),
            )
        except Exception:
            transport.close("view refused")
            raise
        self._params = [
            DownTrackParams(
                kind=m.kind,
                mid=m.mid,
                ssrc=send_tracks[m.mid].ssrc,
                payload_types={c.key: c.payload_type for c in m.codecs},
                ext_ids=dict(m.ext_ids),
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
        log.info("view %s stream=%s pinned=%s", self.subscriber_id, name, self.pinned_source_id)
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
            transport.on_rtcp = self.viewer.on_rtcp
        elif state in (TransportState.FAILED, TransportState.CLOSED):
            self.end(reason or state.value)
            self.request_close(1000, f"media transport {state.value}: {reason}")

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

    def close(self) -> None:
        self.end("signaling closed")
        super().close()
