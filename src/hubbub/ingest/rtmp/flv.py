"""FLV audio and video tag bodies, as RTMP audio (8) and video (9) messages carry them
(Adobe Flash Video File Format Specification v10.1, annex E.4.2 and E.4.3).

Video: a byte of FrameType (4 bits) and CodecID (4 bits); for AVC (7) an AVCPacketType
(0 = AVCDecoderConfigurationRecord, 1 = NAL units, 2 = end of sequence) and a signed 24-bit
CompositionTime, pts - dts in ms (E.4.3.1). A non-zero composition time means frames are
reordered, i.e. B-frames. The record (ISO/IEC 14496-15 §5.2.4.1) gives SPS, PPS and the size of
the NAL unit length prefixes. Enhanced RTMP (veovera) sets the top bit of the first byte and
names the codec by a FourCC; it is recognised so it can be refused by name.

Audio: SoundFormat (4 bits, 10 = AAC), rate, size, type; for AAC an AACPacketType
(0 = AudioSpecificConfig, ISO/IEC 14496-3 §1.6.2.1; 1 = a raw AAC frame) (E.4.2.1-2).
Every parser raises `FlvError` with an exact reason.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AAC",
    "AUDIO_FORMATS",
    "AVC",
    "VIDEO_CODECS",
    "AacConfig",
    "AudioTag",
    "AvcConfig",
    "FlvError",
    "VideoTag",
    "parse_aac_config",
    "parse_audio_tag",
    "parse_avc_config",
    "parse_video_tag",
    "split_nalus",
]

AVC = 7
AAC = 10
KEY_FRAME, INTER_FRAME, COMMAND_FRAME = 1, 2, 5  # E.4.3.1 FrameType (5: video info/command)
AVC_SEQUENCE_HEADER, AVC_NALU, AVC_END_OF_SEQUENCE = 0, 1, 2
AAC_SEQUENCE_HEADER, AAC_RAW = 0, 1

VIDEO_CODECS = {2: "Sorenson H.263", 3: "Screen video", 4: "On2 VP6", 5: "On2 VP6 with alpha",
                6: "Screen video v2", 7: "H.264", 12: "HEVC"}
AUDIO_FORMATS = {0: "PCM", 1: "ADPCM", 2: "MP3", 3: "PCM little-endian", 4: "Nellymoser 16 kHz",
                 5: "Nellymoser 8 kHz", 6: "Nellymoser", 7: "G.711 A-law", 8: "G.711 mu-law",
                 9: "enhanced-RTMP audio", 10: "AAC", 11: "Speex", 14: "MP3 8 kHz",
                 15: "device-specific sound"}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025,
              8000, 7350)


class FlvError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class VideoTag:
    frame_type: int
    codec_id: int  # -1 for enhanced RTMP, which names its codec in `fourcc`
    packet_type: int  # AVCPacketType for AVC, the enhanced PacketType, else -1
    composition_time: int  # ms, pts - dts (AVC only, else 0)
    data: bytes  # what follows the header: a record, or length-prefixed NAL units
    fourcc: str = ""

    @property
    def is_key(self) -> bool:
        return self.frame_type == KEY_FRAME

    @property
    def codec_name(self) -> str:
        if self.codec_id < 0:
            return f"enhanced-RTMP {self.fourcc!r}"
        return VIDEO_CODECS.get(self.codec_id, f"video codec {self.codec_id}")


@dataclass(frozen=True, slots=True)
class AudioTag:
    sound_format: int
    packet_type: int  # AACPacketType for AAC, else -1
    data: bytes

    @property
    def codec_name(self) -> str:
        return AUDIO_FORMATS.get(self.sound_format, f"sound format {self.sound_format}")


@dataclass(frozen=True, slots=True)
class AvcConfig:
    """An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1)."""

    profile: int  # profile_idc: 66 baseline, 77 main, 100 high
    compatibility: int  # constraint flags; 0xc0 with 66 is constrained baseline
    level: int
    nal_length_size: int  # 1, 2 or 4
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    record: bytes

    @property
    def profile_level_id(self) -> str:
        """As in SDP (RFC 6184 §8.1), e.g. "42c01f"."""
        return f"{self.profile:02x}{self.compatibility:02x}{self.level:02x}"


@dataclass(frozen=True, slots=True)
class AacConfig:
    """The fields of an AudioSpecificConfig we need, and its bytes (a decoder's extradata)."""

    object_type: int  # 2 = AAC-LC, 5 = SBR (HE-AAC), 29 = PS
    sample_rate: int
    channels: int  # channelConfiguration; 0 means defined in the stream
    asc: bytes


def parse_video_tag(payload: bytes) -> VideoTag:
    if not payload:
        raise FlvError("video tag is empty")
    first = payload[0]
    if first & 0x80:  # enhanced RTMP: IsExHeader, FrameType (3 bits), PacketType, FourCC
        if len(payload) < 5:
            raise FlvError("enhanced video tag is truncated")
        fourcc = payload[1:5].decode("latin-1")
        return VideoTag((first >> 4) & 7, -1, first & 0x0F, 0, payload[5:], fourcc)
    frame_type, codec_id = first >> 4, first & 0x0F
    if codec_id != AVC:
        return VideoTag(frame_type, codec_id, -1, 0, payload[1:])
    if frame_type == COMMAND_FRAME:
        return VideoTag(frame_type, codec_id, -1, 0, payload[1:])
    if len(payload) < 5:
        raise FlvError("AVC video tag is truncated")
    cts = int.from_bytes(payload[2:5], "big", signed=True)  # SI24 (E.4.3.1)
    return VideoTag(frame_type, codec_id, payload[1], cts, payload[5:])


def parse_audio_tag(payload: bytes) -> AudioTag:
    if not payload:
        raise FlvError("audio tag is empty")
    sound_format = payload[0] >> 4
    if sound_format != AAC:
        return AudioTag(sound_format, -1, payload[1:])
    if len(payload) < 2:
        raise FlvError("AAC audio tag is truncated")
    return AudioTag(sound_format, payload[1], payload[2:])


def parse_avc_config(record: bytes) -> AvcConfig:
    if len(record) < 7:
        raise FlvError("AVC decoder configuration record is truncated")
    if record[0] != 1:
        raise FlvError(f"AVC decoder configuration record version {record[0]} is not 1")
    length_size = (record[4] & 3) + 1
    if length_size == 3:
        raise FlvError("AVC NAL unit length size 3 is not allowed")
    pos = 5
    sets: list[tuple[bytes, ...]] = []
    for count_mask in (0x1F, 0xFF):
        if pos >= len(record):
            raise FlvError("AVC decoder configuration record is truncated")
        count = record[pos] & count_mask
        pos += 1
        units = []
        for _ in range(count):
            size = int.from_bytes(record[pos:pos + 2], "big")
            if pos + 2 + size > len(record) or size == 0:
                raise FlvError("AVC parameter set is truncated")
            units.append(bytes(record[pos + 2:pos + 2 + size]))
            pos += 2 + size
        sets.append(tuple(units))
    sps, pps = sets
    if not sps or not pps:
        raise FlvError("AVC decoder configuration record has no SPS or no PPS")
    return AvcConfig(record[1], record[2], record[3], length_size, sps, pps, bytes(record))


def split_nalus(data: bytes, length_size: int) -> list[bytes]:
    """The NAL units of an AVC NALU tag (AVCC: each prefixed with its big-endian length)."""
    nalus = []
    pos, end = 0, len(data)
    while pos < end:
        if pos + length_size > end:
            raise FlvError("NAL unit length is truncated")
        size = int.from_bytes(data[pos:pos + length_size], "big")
        pos += length_size
        if size == 0 or pos + size > end:
            raise FlvError(f"NAL unit of {size} bytes does not fit the tag")
        nalus.append(data[pos:pos + size])
        pos += size
    return nalus


def parse_aac_config(asc: bytes) -> AacConfig:
    """ISO/IEC 14496-3 §1.6.2.1: audioObjectType (5 bits, 31 escapes to 6 more),
    samplingFrequencyIndex (4 bits, 15 escapes to a 24-bit rate), channelConfiguration (4)."""
    bits = int.from_bytes(asc[:8], "big")
    avail = min(len(asc), 8) * 8
    pos = 0

    def take(n: int) -> int:
        nonlocal pos
        if pos + n > avail:
            raise FlvError("AudioSpecificConfig is truncated")
        pos += n
        return (bits >> (avail - pos)) & ((1 << n) - 1)

    object_type = take(5)
    if object_type == 31:
        object_type = 32 + take(6)
    index = take(4)
    if index == 15:
        rate = take(24)
    elif index < len(_AAC_RATES):
        rate = _AAC_RATES[index]
    else:
        raise FlvError(f"AAC sampling frequency index {index} is reserved")
    channels = take(4)
    return AacConfig(object_type, rate, channels, bytes(asc))
