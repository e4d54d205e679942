"""Parameters and protocols shared by the sfu model and the control layer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream
    from hubbub.sfu.viewer import Viewer

Clock = Callable[[], float]
NtpClock = Callable[[], tuple[int, int]]


class RtpSink(Protocol):
    """Where the sfu sends bytes; implemented by `media.transport.WebRtcTransport`."""

    def send_rtp(self, data: bytes) -> None: ...

    def send_rtcp(self, data: bytes) -> None: ...


class StreamListener(Protocol):
    """Stream changes reported to control; called synchronously from sfu methods."""

    def source_active(self, stream: Stream, source: Source) -> None: ...

    def source_inactive(self, stream: Stream, source: Source) -> None: ...

    def stopped(self, stream: Stream) -> None: ...

    def viewer_count(self, stream: Stream, count: int) -> None: ...

    def source_timed_out(self, stream: Stream, source: Source) -> None: ...

    def slot_changed(
        self, stream: Stream, viewer: Viewer, mid: str, source_id: str | None
    ) -> None:
        """A multiplexed audio slot (`mid`) of `viewer` now carries `source_id` (None = idle)."""

    def layers(self, stream: Stream, viewer: Viewer, mid: str, entry: dict[str, Any]) -> None:
        """The simulcast layers `viewer`'s video `mid` can get changed (or are due again)."""


@dataclass
class TrackParams:
    """What the publisher's SDP negotiated for one m-line."""

    kind: str  # "audio" | "video"
    mid: str
    codec: str  # "opus" | "VP8" | "VP9" | "H264" | "AV1"
    payload_type: int
    clock_rate: int
    fmtp: str = ""
    ssrcs: list[int] = field(default_factory=list)  # may be empty: learned from the MID ext
    ext_ids: dict[str, int] = field(default_factory=dict)  # header-extension URI -> id
    rtcp_fbs: list[str] = field(default_factory=list)  # negotiated a=rtcp-fb ("nack", ...)
    # Simulcast (video): the layers as RIDs (RFC 8853, in the offer's order) or as the SSRCs of
    # an `a=ssrc-group:SIM` (lowest first); empty for a single encoding. Both, of equal length:
    # layers by SSRC named by `rids` (a relay copy, whose RID extensions are not relayed).
    rids: list[str] = field(default_factory=list)
    layer_ssrcs: list[int] = field(default_factory=list)
    rtx_payload_type: int = 0  # RFC 4588 retransmissions negotiated (0: none)
    repair_ssrcs: dict[int, int] = field(default_factory=dict)  # RTX SSRC -> media SSRC


@dataclass
class DownTrackParams:
    """One viewer m-line, from the viewer's answer."""

    kind: str
    mid: str  # always written in the MID extension
    ssrc: int  # server-chosen outgoing SSRC
    payload_types: dict[str, int]  # codec key ("opus", "VP8", "H264/42e01f/1") -> viewer PT
    ext_ids: dict[str, int] = field(default_factory=dict)  # URI -> viewer's id
    # The viewer negotiated generic NACK (RFC 4585 §4.2): only then is a resend cache kept.
    nack: bool = True
