"""FLV tag bodies: AVC and AAC headers, configurations, NAL unit splitting, and refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hubbub.ingest.rtmp.flv import (
    FlvError,
    parse_aac_config,
    parse_audio_tag,
    parse_avc_config,
    parse_video_tag,
    split_nalus,
)

SPS = bytes.fromhex("6742c01fd9")
PPS = bytes.fromhex("68ce3c80")
RECORD = (bytes([1, 0x42, 0xC0, 0x1F, 0xFF, 0xE1]) + len(SPS).to_bytes(2, "big") + SPS
          + bytes([1]) + len(PPS).to_bytes(2, "big") + PPS)


def test_avc_sequence_header_gives_sps_pps_and_length_size() -> None:
    tag = parse_video_tag(bytes([0x17, 0, 0, 0, 0]) + RECORD)
    assert (tag.is_key, tag.codec_id, tag.packet_type, tag.composition_time) == (True, 7, 0, 0)
    config = parse_avc_config(tag.data)
    assert (config.sps, config.pps, config.nal_length_size) == ((SPS,), (PPS,), 4)
    assert config.profile_level_id == "42c01f" and config.record == RECORD


def test_composition_time_is_signed_24_bits() -> None:
    assert parse_video_tag(bytes([0x27, 1, 0, 0, 67])).composition_time == 67
    assert parse_video_tag(bytes([0x27, 1, 0xFF, 0xFF, 0xDF])).composition_time == -33


def test_nalus_split_on_their_length_prefixes() -> None:
    data = b"\x00\x00\x00\x02\x65\x88" + b"\x00\x00\x00\x01\x06"
    assert split_nalus(data, 4) == [b"\x65\x88", b"\x06"]
    assert split_nalus(b"\x00\x01\x41", 2) == [b"\x41"]
    for bad in (b"\x00\x00\x00\x05\x65", b"\x00\x00\x00", b"\x00\x00\x00\x00"):
        with pytest.raises(FlvError):
            split_nalus(bad, 4)


def test_other_and_enhanced_video_codecs_are_named() -> None:
    assert parse_video_tag(bytes([0x22, 1, 2])).codec_name == "Sorenson H.263"
    enhanced = parse_video_tag(bytes([0x90]) + b"hvc1" + b"data")
    assert (enhanced.codec_id, enhanced.fourcc, enhanced.is_key) == (-1, "hvc1", True)
    assert enhanced.codec_name == "enhanced-RTMP 'hvc1'"


def test_aac_tags_and_audio_specific_config() -> None:
    header = parse_audio_tag(bytes([0xAF, 0, 0x12, 0x10]))
    assert (header.sound_format, header.packet_type, header.data) == (10, 0, b"\x12\x10")
    config = parse_aac_config(header.data)  # AAC-LC, 44.1 kHz, 2 channels
    assert (config.object_type, config.sample_rate, config.channels) == (2, 44100, 2)
    assert parse_aac_config(bytes.fromhex("1190")).sample_rate == 48000
    bits = (2 << 32 | 15 << 28 | 8000 << 4 | 2) << 3  # 37 bits: index 15, an explicit rate
    explicit = parse_aac_config(bits.to_bytes(5, "big"))
    assert (explicit.sample_rate, explicit.channels) == (8000, 2)
    raw = parse_audio_tag(bytes([0xAF, 1]) + b"frame")
    assert (raw.packet_type, raw.data) == (1, b"frame")
    assert parse_audio_tag(bytes([0x2F, 0xFF])).codec_name == "MP3"


@pytest.mark.parametrize(("call", "data", "reason"), [
    (parse_video_tag, b"", "video tag is empty"),
    (parse_video_tag, b"\x17\x01\x00", "AVC video tag is truncated"),
    (parse_video_tag, b"\x90hv", "enhanced video tag is truncated"),
    (parse_audio_tag, b"", "audio tag is empty"),
    (parse_audio_tag, b"\xaf", "AAC audio tag is truncated"),
    (parse_avc_config, RECORD[:6], "AVC decoder configuration record is truncated"),
    (parse_avc_config, b"\x02" + RECORD[1:], "AVC decoder configuration record version 2 is not 1"),
    (parse_avc_config, RECORD[:4] + b"\xfe" + RECORD[5:],
     "AVC NAL unit length size 3 is not allowed"),
    (parse_avc_config, RECORD[:-1], "AVC parameter set is truncated"),
    (parse_avc_config, RECORD[:5] + b"\xe0\x00",
     "AVC decoder configuration record has no SPS or no PPS"),
    (parse_aac_config, b"\x12", "AudioSpecificConfig is truncated"),
    (parse_aac_config, b"\x16\x80", "AAC sampling frequency index 13 is reserved"),
])
def test_malformed_tags_are_refused_with_a_reason(
        call: Callable[[bytes], object], data: bytes, reason: str) -> None:
    with pytest.raises(FlvError) as caught:
        call(data)
    assert str(caught.value) == reason
