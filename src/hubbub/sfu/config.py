"""Limits and timers of the forwarding core, with their defaults and reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

from hubbub.sfu.bwe import BweConfig
from hubbub.sfu.nack import NackConfig


@dataclass(frozen=True)
class MultiplexerConfig:
    """Voice-activity ranking and slot assignment for multiplexed audio (docs/ARCHITECTURE.md,
    "Multiplexer"). Levels are dBov (RFC 6464: 0 loudest, -127 silence); times in seconds.

    attack / release: time constants of the smoothed linear amplitude when the packet level is
        above / below it. 10 ms attack: one loud 20 ms packet after silence already crosses the
        speech threshold (switch target <= 60 ms). 250 ms release falls ~35 dB/s, so a talker at
        -20 dBov stays "speaking" about 1 s after the last word and pauses between words never
        flip the state.
    speech_on_dbov / speech_off_dbov: a source starts speaking when its smoothed level reaches
        -50 dBov and stops below -60 dBov; the 10 dB hysteresis keeps a level near the threshold
        from toggling (room noise is typically -60..-70 dBov, speech -15..-40 dBov).
    stale_after: a source whose last packet is older than this decays as if it sent silence
        (DTX, mute, a publisher that vanished): longer than any gap of a sending source (20-60 ms
        frames plus jitter), shorter than the 400 ms between Opus DTX keep-alive frames.
    hold: a speaking source keeps its slot at least this long after it got it, so turn-taking
        among more talkers than slots cannot make a slot flap faster than a listener can follow.
    switch_margin_db: to take the slot of a source that still speaks, a newcomer must be this much
        louder (smoothed); a silent slot or an idle one is taken without margin.
    """

    attack: float = 0.01
    release: float = 0.25
    speech_on_dbov: float = -50.0
    speech_off_dbov: float = -60.0
    stale_after: float = 0.25
    hold: float = 1.0
    switch_margin_db: float = 6.0

    def __post_init__(self) -> None:
        for name in ("attack", "release", "stale_after"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.hold < 0 or self.switch_margin_db < 0:
            raise ValueError("hold and switch_margin_db must not be negative")
        if not -127 <= self.speech_off_dbov <= self.speech_on_dbov <= 0:
            raise ValueError(
                "need -127 <= speech_off_dbov <= speech_on_dbov <= 0, got "
                f"{self.speech_off_dbov} and {self.speech_on_dbov}"
            )


@dataclass(frozen=True)
class SfuConfig:
    """Every knob of `hubbub.sfu`; times are in seconds.

    keyframe_min_interval: at most one PLI per publisher Track in this window (RFC 4585 §6.3.1
        leaves the rate to the sender; 300 ms is what mediasoup and LiveKit use).
    sr_interval: each viewer's SRs (one per sending DownTrack, aggregated into compound packets
        with one SDES) every this long (RFC 3550 §6.2: ~5 s minimum for large
        sessions, but browsers need frequent SRs for lip sync; 1 s like libwebrtc video).
    rr_interval: one RR per publisher Track (RFC 3550 §6.4.2).
    nack_resend_guard: a cached packet is resent at most once per this interval, so repeated
        NACKs for the same seq within ~one RTT do not cause a retransmission storm.
    video_cache_size / audio_cache_size: PacketCache slots (powers of two); 1024 covers ≥ 1 s of
        video at 500+ packets/s, 128 covers 2.5 s of 20 ms audio. A DownTrack whose viewer did
        not negotiate NACK keeps no cache (audio answers never offer NACK today).
    media_timeout: a Source whose tracks received nothing for this long is reported through
        `StreamListener.source_timed_out`; control decides what to do.
    max_learned_ssrcs: SSRCs a Source learns from MID/PT before it stops learning (bounds memory
        against a publisher spraying random SSRCs).
    server_ssrc: sender SSRC of the RTCP we originate (PLI, RR) towards publishers.
    cname: SDES CNAME (RFC 3550 §6.5.1) sent with every SR to viewers.
    multiplexer: voice-activity ranking and slot parameters (see MultiplexerConfig).
    nack: upstream NACK timing towards publishers (see hubbub.sfu.nack.NackConfig).
    bwe: each video viewer's downlink bandwidth estimate (see hubbub.sfu.bwe.BweConfig).
    """

    keyframe_min_interval: float = 0.3
    sr_interval: float = 1.0
    rr_interval: float = 1.0
    nack_resend_guard: float = 0.1
    video_cache_size: int = 1024
    audio_cache_size: int = 128
    media_timeout: float = 10.0
    max_learned_ssrcs: int = 16
    server_ssrc: int = 0x48554242
    cname: str = "hubbub"
    multiplexer: MultiplexerConfig = field(default_factory=MultiplexerConfig)
    nack: NackConfig = field(default_factory=NackConfig)
    bwe: BweConfig = field(default_factory=BweConfig)

    def __post_init__(self) -> None:
        for name in ("video_cache_size", "audio_cache_size"):
            size = getattr(self, name)
            if size <= 0 or size & (size - 1):
                raise ValueError(f"{name} must be a power of two, got {size}")
