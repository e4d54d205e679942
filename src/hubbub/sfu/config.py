"""Limits and timers of the forwarding core, with their defaults and reasons."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SfuConfig:
    """Every knob of `hubbub.sfu`; times are in seconds.

    keyframe_min_interval: at most one PLI per publisher Track in this window (RFC 4585 §6.3.1
        leaves the rate to the sender; 300 ms is what mediasoup and LiveKit use).
    sr_interval: one SR + SDES compound per DownTrack (RFC 3550 §6.2: ~5 s minimum for large
        sessions, but browsers need frequent SRs for lip sync; 1 s like libwebrtc video).
    rr_interval: one RR per publisher Track (RFC 3550 §6.4.2).
    nack_resend_guard: a cached packet is resent at most once per this interval, so repeated
        NACKs for the same seq within ~one RTT do not cause a retransmission storm.
    video_cache_size / audio_cache_size: PacketCache slots (powers of two); 1024 covers ≥ 1 s of
        video at 500+ packets/s, 128 covers 2.5 s of 20 ms audio.
    media_timeout: a Source whose tracks received nothing for this long is reported through
        `StreamListener.source_timed_out`; control decides what to do.
    max_learned_ssrcs: SSRCs a Source learns from MID/PT before it stops learning (bounds memory
        against a publisher spraying random SSRCs).
    server_ssrc: sender SSRC of the RTCP we originate (PLI, RR) towards publishers.
    cname: SDES CNAME (RFC 3550 §6.5.1) sent with every SR to viewers.
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

    def __post_init__(self) -> None:
        for name in ("video_cache_size", "audio_cache_size"):
            size = getattr(self, name)
            if size <= 0 or size & (size - 1):
                raise ValueError(f"{name} must be a power of two, got {size}")
