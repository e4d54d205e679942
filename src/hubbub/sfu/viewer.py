"""Viewer: one subscriber's DownTracks and the RTCP feedback it sends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubbub.sfu import rtcp_io
from hubbub.sfu.config import SfuConfig
from hubbub.sfu.downtrack import DownTrack
from hubbub.sfu.types import Clock, DownTrackParams, RtpSink

if TYPE_CHECKING:
    from hubbub.sfu.source import Source


class Viewer:
    """One DownTrack per viewer m-line. The first video and first audio DownTracks carry the
    main source (chosen by the Stream); the other audio DownTracks are left to the multiplexer
    and stay idle until it binds them (`DownTrack.bind`)."""

    def __init__(
        self,
        params: list[DownTrackParams],
        sink: RtpSink,
        pinned_source_id: str | None,
        excluded: list[str],
        config: SfuConfig,
        clock: Clock,
    ) -> None:
        self.sink = sink
        self.pinned_source_id = pinned_source_id
        self.excluded = frozenset(excluded)
        self.down_tracks = [DownTrack(p, sink, config) for p in params]
        self.main_source: Source | None = None
        self.main_video = next((d for d in self.down_tracks if d.kind == "video"), None)
        self.main_audio = next((d for d in self.down_tracks if d.kind == "audio"), None)
        self.closed = False
        self.rtcp_malformed = 0
        self._by_ssrc = {d.ssrc: d for d in self.down_tracks}
        self._clock = clock

    @property
    def extra_audio(self) -> list[DownTrack]:
        """Audio DownTracks after the main one: the multiplexer's slots."""
        return [d for d in self.down_tracks if d.kind == "audio" and d is not self.main_audio]

    def down_track(self, ssrc: int) -> DownTrack | None:
        return self._by_ssrc.get(ssrc)

    def set_main(self, source: Source | None) -> None:
        """Bind the main DownTracks to `source`'s first video/audio Tracks (None = idle)."""
        self.main_source = source
        for down in (self.main_video, self.main_audio):
            if down is not None:
                down.bind(source.track(down.kind) if source is not None else None)

    def on_rtcp(self, data: bytes) -> None:
        """NACK / PLI / FIR / receiver reports from the viewer."""
        if self.closed:
            return
        now = self._clock()
        try:
            events, bad = rtcp_io.read_feedback(data)
        except ValueError:
            self.rtcp_malformed += 1
            return
        self.rtcp_malformed += bad
        for event in events:
            if isinstance(event, rtcp_io.NackEvent):
                down = self._by_ssrc.get(event.media_ssrc)
                if down is not None:
                    down.on_nack(event.lost, now)
            elif isinstance(event, rtcp_io.KeyframeEvent):
                down = self._by_ssrc.get(event.media_ssrc)
                if down is not None:
                    down.request_keyframe()
            else:
                down = self._by_ssrc.get(event.ssrc)
                if down is not None:
                    down.on_report_block(event.fraction_lost, event.cumulative_lost,
                                         event.jitter, event.lsr, event.dlsr, now)

    def tick(self, now: float, ntp_now: int, sr_interval: float) -> None:
        for down in self.down_tracks:
            down.tick(now, ntp_now, sr_interval)

    def close(self) -> None:
        self.closed = True
        self.main_source = None
        for down in self.down_tracks:
            down.bind(None)
