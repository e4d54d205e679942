"""RTMP ingest wired to streams: the token rules of a WebRTC publish, then a Source.

The floor (ingest/rtmp/) speaks RTMP and calls `RtmpIngest.authorize` at `publish` with the
app, the stream name and the publish name's query. This module decides, like the WebSocket
publish path does:
- the app must be `v2/pub` and the name a valid stream name (`accountId/` prefix stripped);
- `?token=` is either a Director publish JWT (checked as `gate.check` checks one, for its
  stream and allowed IPs) or a long-lived publish token's secret (expiry, revocation, stream
  patterns, allowed IPs: what the Director would check before issuing a JWT). Origins do not
  apply: an encoder is not a web page. Without a token, only with `--allow-any-stream`;
- `sourceId` needs a multisource token.

An authorized publication becomes an `RtmpPublication`: it publishes a Source once it knows
what the encoder sends (both sequence headers, or the first media frame) and feeds it RTP:
H.264 repacketized per RFC 6184 (ingest/h264_rtp.py) and AAC transcoded to Opus
(ingest/aac_opus.py), both on the FLV millisecond clock (video ×90, audio ×48). A Source
from RTMP is an ordinary one: events, multiplexing, projection and replacement treat it like
a WebRTC publisher's.

RTCP: the Source's sink gets the sfu's receiver reports, NACKs and PLIs for the publisher.
RTMP has no way to pass them on; over TCP nothing is lost (no NACK is ever due: the tracks
do not negotiate `nack`), and keyframes come every GOP, so a PLI waits for the next one. The
sink drops them. Audio carries the RFC 6464 level of each Opus frame (measured on the decoded
PCM), so an RTMP source with a sourceId takes part in multiplexing and `vad` like a WebRTC
speaker. Sender reports: the sfu translates a publisher's SRs for its viewers
(DownTrack.sr_packet), so this module makes them up from the one FLV clock: every second a
track's SR maps its RTP time to NTP = the wall clock at the first frame + (FLV ms − the first
frame's ms). Audio and video thus share one NTP timeline, and players lip-sync them.
"""

from __future__ import annotations

import logging
import secrets
import struct
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from hubbub import logs
from hubbub.control import messages
from hubbub.control.auth import credentials
from hubbub.control.auth.jwts import PUBLISH, Grant, TokenRejected
from hubbub.control.recordings import record_if_granted
from hubbub.ingest.aac_opus import AacToOpus
from hubbub.ingest.h264_rtp import H264Packetizer
from hubbub.ingest.rtmp import (
    BAD_NAME,
    AacConfig,
    AvcConfig,
    Publisher,
    PublishRequest,
    Refusal,
    RtmpServer,
)
from hubbub.ingest.rtmp.amf0 import AmfValue
from hubbub.media import rtp
from hubbub.sfu import rtcp_io
from hubbub.sfu.types import TrackParams

if TYPE_CHECKING:
    from hubbub.control.auth.service import Auth
    from hubbub.control.coordination import Interest
    from hubbub.control.node import Node
    from hubbub.sfu.source import Source
    from hubbub.sfu.stream import Stream

__all__ = ["APP", "RtmpIngest", "RtmpPublication", "attach_rtmp"]

log = logging.getLogger(__name__)

APP = "v2/pub"
VIDEO_PT = 102  # dynamic (RFC 3551 §6); viewers get their own PT via the codec key
AUDIO_PT = 111
OPUS_FMTP = "minptime=10;useinbandfec=1"
SR_INTERVAL = 1.0  # seconds between made-up sender reports per track
AUDIO_LEVEL_ID = 1  # the ssrc-audio-level extension's id on the audio track
_RTP_LEVEL = struct.Struct("!BBHIIHHBBH")  # RTP header + a one-byte-form block (RFC 8285)
_MASK32 = 0xFFFFFFFF
_NTP_EPOCH = 2208988800  # 1900-01-01 to 1970-01-01, in seconds


def attach_rtmp(node: Node, auth: Auth | None) -> None:
    """Gives `node` its RTMP server (started and stopped with it) unless `rtmp_port` is off."""
    control = node.config.control
    if control.rtmp_port < 0:
        return
    ingest = RtmpIngest(node, auth)
    node.rtmp = RtmpServer(ingest.authorize, host=control.host, port=control.rtmp_port)


class RtmpIngest:
    """The floor's `Authorizer` for one node."""

    def __init__(self, node: Node, auth: Auth | None) -> None:
        self.node = node
        self.auth = auth

    async def authorize(self, request: PublishRequest) -> Publisher | Refusal:
        logs.bind(peer=":".join(map(str, request.peer[:2])))  # the connection's task
        app = request.app.strip("/")
        if app != APP:
            return Refusal(f"hubbub: unknown application {app!r}: publish to "
                           f"rtmp://host:port/{APP}/<stream>?token=<publish token>", BAD_NAME)
        try:
            name = self.node.strip_account(request.stream_name)
            self.node.check_stream_name(name)
        except messages.ProtocolError as exc:
            return Refusal(f"hubbub: {exc}", BAD_NAME)
        logs.bind(stream=name, source=request.source_id or "main")
        verdict = await self._grant(name, request.token, request.peer[0])
        if isinstance(verdict, Refusal):
            return verdict
        source_id = request.source_id or None
        if source_id is not None:
            if len(source_id) > 128:
                return Refusal("hubbub: sourceId is too long", BAD_NAME)
            if verdict is not None and not verdict.multisource:
                return Refusal("hubbub: sourceId not allowed by token: multisource publishing "
                               "is not enabled", BAD_NAME)
        publication = RtmpPublication(self.node, name, source_id, request)
        publication.record = verdict is not None and verdict.record
        return publication

    async def _grant(self, name: str, token: str | None, ip: str) -> Grant | Refusal | None:
        """The token's Grant for stream `name`, None without one under --allow-any-stream."""
        if not token:
            if self.node.config.control.allow_any_stream:
                return None
            return Refusal("hubbub: Unauthorized: token required (?token=<publish token>)",
                           BAD_NAME)
        if self.auth is None:
            return Refusal("hubbub: Unauthorized: this node verifies no tokens", BAD_NAME)
        try:
            return await credentials.grant_for(self.auth, PUBLISH, token, name, ip,
                                               check_origin=False)
        except TokenRejected as exc:
            return Refusal(f"hubbub: {exc.message}", BAD_NAME)


class _NoRtcp:
    """The Source's sink: RTCP for an RTMP encoder has nowhere to go (see the module doc)."""

    def send_rtp(self, data: bytes) -> None:
        pass

    def send_rtcp(self, data: bytes) -> None:
        pass


class _SrClock:
    """Extended (64-bit) RTP time of one track and when its next sender report is due."""

    __slots__ = ("clock_rate", "base", "ext", "due")

    def __init__(self, clock_rate: int, first_ms: int) -> None:
        self.clock_rate = clock_rate
        self.base = first_ms * clock_rate // 1000  # the first frame's RTP time, unwrapped
        self.ext: int | None = None
        self.due = 0.0

    def extend(self, ts: int) -> int:
        if self.ext is None:
            delta = ((ts - self.base + 0x80000000) & _MASK32) - 0x80000000
            self.ext = self.base + delta
        else:
            delta = ((ts - self.ext + 0x80000000) & _MASK32) - 0x80000000
            self.ext += delta
        return self.ext


def _random_ssrc() -> int:
    return secrets.randbits(32) or 1


class RtmpPublication:
    """One authorized RTMP publication: the floor's `Publisher`, feeding one Source."""

    def __init__(self, node: Node, name: str, source_id: str | None,
                 request: PublishRequest) -> None:
        self.node = node
        self.name = name
        self.source_id = source_id
        self.request = request
        self.stream: Stream = node.streams.get_or_create(name)
        self.source: Source | None = None
        self._interest: Interest | None = node.coordinator.interest(name, "publish")
        self._ended = False
        self.record = False  # the token's `record` flag (control/recordings.py)
        self._expect_video = True
        self._expect_audio = True
        self.avc: AvcConfig | None = None
        self.aac: AacConfig | None = None
        self.video_ssrc = _random_ssrc()
        self.audio_ssrc = _random_ssrc()
        while self.audio_ssrc == self.video_ssrc:
            self.audio_ssrc = _random_ssrc()
        self._packetizer: H264Packetizer | None = None
        self._opus: AacToOpus | None = None
        self._audio_seq = secrets.randbits(16)
        self._audio_packets = 0
        self._audio_octets = 0
        self._has_video = False
        self._has_audio = False
        # Sender reports: the FLV ms and wall-clock NTP time of the first frame.
        self._first_ms: int | None = None
        self._ntp0 = 0
        self._video_sr: _SrClock | None = None
        self._audio_sr: _SrClock | None = None

    # --- Publisher ------------------------------------------------------------------------

    def on_metadata(self, metadata: Mapping[str, AmfValue]) -> Refusal | None:
        # What the encoder says it sends: wait for those configurations before going live.
        if self.source is None and ("videocodecid" in metadata or "audiocodecid" in metadata):
            self._expect_video = "videocodecid" in metadata
            self._expect_audio = "audiocodecid" in metadata
        return None

    def on_video_config(self, config: AvcConfig) -> Refusal | None:
        if not config.sps or not config.pps:
            return Refusal("hubbub: the AVC sequence header has no SPS or PPS")
        if self.avc is not None and self.source is not None \
                and config.profile_level_id[:4] != self.avc.profile_level_id[:4]:
            return Refusal("hubbub: the H.264 profile changed mid-stream; publish again")
        self.avc = config
        self._maybe_go_live()
        return None

    def on_audio_config(self, config: AacConfig) -> Refusal | None:
        self.aac = config
        if self._opus is None:
            try:
                self._opus = AacToOpus(config.asc, config.sample_rate, config.channels)
            except Exception as exc:  # PyAV refuses the AudioSpecificConfig
                return Refusal(f"hubbub: AAC configuration not supported: {exc}")
        else:
            self._send_audio(self._opus.configure(config.asc, config.sample_rate,
                                                  config.channels))
        self._maybe_go_live()
        return None

    def on_video(self, ts_ms: int, cts_ms: int, is_key: bool, nalus: list[bytes]) -> Refusal | None:
        if cts_ms != 0:
            return Refusal("hubbub: B-frames are not supported (WebRTC players cannot play "
                           "them): use -bf 0 (x264: bframes=0, or -tune zerolatency)")
        if self.avc is None:
            return None
        if self.source is None:
            self._go_live()
        if self.source is None or self._packetizer is None:
            return None
        self._start_clock(ts_ms)
        avc = self.avc
        packets = self._packetizer.packetize(nalus, ts_ms * 90, is_key, avc.sps[0], avc.pps[0])
        on_rtp = self.source.on_rtp
        for packet in packets:
            on_rtp(packet)
        if packets and self._video_sr is not None:
            self._sender_report(self._video_sr, self.video_ssrc, (ts_ms * 90) & _MASK32,
                                self._packetizer.packets, self._packetizer.octets)
        return None

    def on_audio(self, ts_ms: int, frame: bytes) -> Refusal | None:
        if self._opus is None:
            return None
        if self.source is None:
            self._go_live()
        self._start_clock(ts_ms)
        self._send_audio(self._opus.feed(frame, ts_ms))
        return None

    def closed(self, reason: str) -> None:
        self._end()

    # --- the Source -----------------------------------------------------------------------

    def _maybe_go_live(self) -> None:
        if self.source is None and (self.avc is not None or not self._expect_video) \
                and (self.aac is not None or not self._expect_audio):
            self._go_live()

    def _go_live(self) -> None:
        if self._ended or self.source is not None:
            return
        tracks: list[TrackParams] = []
        if self.avc is not None:
            tracks.append(TrackParams(
                kind="video", mid="0", codec="H264", payload_type=VIDEO_PT, clock_rate=90000,
                fmtp=("level-asymmetry-allowed=1;packetization-mode=1;profile-level-id="
                      + self.avc.profile_level_id),
                ssrcs=[self.video_ssrc]))
            self._packetizer = H264Packetizer(VIDEO_PT, self.video_ssrc)
        if self._opus is not None:
            tracks.append(TrackParams(
                kind="audio", mid="1", codec="opus", payload_type=AUDIO_PT, clock_rate=48000,
                fmtp=OPUS_FMTP, ssrcs=[self.audio_ssrc],
                ext_ids={rtp.AUDIO_LEVEL: AUDIO_LEVEL_ID}))
        if not tracks:
            return
        self._has_video = self.avc is not None
        self._has_audio = self._opus is not None
        source = self.stream.publish(self.source_id, tracks, _NoRtcp())
        self.source = source
        source.on_replaced = self.replaced
        self.node.hub.bind_source(source, self)  # the admin API and the cluster can end it
        self.node.coordinator.source_published(self.stream, source)
        record_if_granted(self.node, self.stream, source, self.record)
        log.info("rtmp publish stream=%s source=%s from %s: %s", self.name, self.source_id,
                 self.request.peer[0],
                 ", ".join(f"{t.codec} {t.fmtp.rpartition('=')[2]}" if t.kind == "video"
                           else "opus (from AAC)" for t in tracks))

    def replaced(self) -> None:
        """A newer publisher took our source over, here or on another node (its viewers
        stayed): end this encoder, without unpublishing or `source_unpublished`."""
        source, self.source = self.source, None
        if source is not None:
            self.node.hub.unbind_source(source)
        self.request.control.stop("hubbub: replaced by a new publisher")

    def terminate(self, reason: str) -> None:
        """Ends the publication (an admin stop, another node's request): the encoder gets
        `reason` as an error, and the floor's `closed` unpublishes the Source."""
        self.request.control.stop(f"hubbub: {reason}")
        self._end()  # in case the floor had already let go of this publisher

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        source, self.source = self.source, None
        if source is not None:
            self.node.hub.unbind_source(source)
            self.stream.unpublish(source)
            self.node.coordinator.source_unpublished(self.stream, source)
        if self._interest is not None:
            self._interest.release()
            self._interest = None
        self.node.discard_if_empty(self.stream)

    # --- media ----------------------------------------------------------------------------

    def _send_audio(self, packets: list[tuple[bytes, int]]) -> None:
        source = self.source
        if source is None or not self._has_audio or not packets:
            return
        seq, ssrc, opus = self._audio_seq, self.audio_ssrc, self._opus
        assert opus is not None
        ts = 0
        for payload, ts in packets:
            # X bit; block 0xBEDE of one word: id/len, the level (V bit unset), padding
            header = _RTP_LEVEL.pack(0x90, AUDIO_PT, seq, ts, ssrc, 0xBEDE, 1,
                                     AUDIO_LEVEL_ID << 4, opus.next_level(), 0)
            source.on_rtp(header + payload)
            seq = (seq + 1) & 0xFFFF
            self._audio_octets += len(payload)
        self._audio_seq = seq
        self._audio_packets += len(packets)
        if self._audio_sr is not None:
            self._sender_report(self._audio_sr, ssrc, ts, self._audio_packets,
                                self._audio_octets)

    def _start_clock(self, ts_ms: int) -> None:
        if self._first_ms is not None:
            return
        self._first_ms = ts_ms
        self._ntp0 = int((time.time() + _NTP_EPOCH) * 4294967296.0)
        if self._has_video:
            self._video_sr = _SrClock(90000, ts_ms)
        if self._has_audio:
            self._audio_sr = _SrClock(48000, ts_ms)

    def _sender_report(self, clock: _SrClock, ssrc: int, rtp_ts: int, packets: int,
                       octets: int) -> None:
        ext = clock.extend(rtp_ts)
        now = time.monotonic()
        if now < clock.due or self.source is None:
            return
        clock.due = now + SR_INTERVAL
        ntp = self._ntp0 + ((ext - clock.base) << 32) // clock.clock_rate
        self.source.on_rtcp(rtcp_io.sr_packet(ssrc, ntp & 0xFFFFFFFFFFFFFFFF, rtp_ts,
                                              packets & _MASK32, octets & _MASK32))
