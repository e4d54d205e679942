"""Mutated and random input raises only each parser's own error (a ValueError), so the session
closes that connection and nothing else: a seeded, bounded run of a few thousand cases."""

from __future__ import annotations

import random

from hubbub.ingest.rtmp import amf0, flv
from hubbub.ingest.rtmp.amf0 import EcmaArray
from hubbub.ingest.rtmp.chunks import AUDIO, VIDEO, ChunkError, ChunkReader, ChunkWriter

from .test_flv import RECORD


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        pos = rng.randrange(len(out)) if out else 0
        if choice < 0.5 and out:
            out[pos] = rng.randrange(256)
        elif choice < 0.75:
            out[pos:pos] = rng.randbytes(rng.randint(1, 8))
        else:
            del out[pos:pos + rng.randint(1, 8)]
    return bytes(out)


def test_mutated_chunk_streams_raise_only_chunk_errors() -> None:
    rng = random.Random(16)
    writer = ChunkWriter()
    valid = (writer.set_chunk_size(100) + writer.message(6, VIDEO, bytes(300), 1, 0xFFFFFF + 9)
             + writer.message(4, AUDIO, bytes(50), 1, 7) + writer.message(3, 20, bytes(250)))
    for _ in range(3000):
        reader = ChunkReader(max_message_size=4096)
        data = mutate(rng, valid)
        try:
            for start in range(0, len(data), 64):
                reader.feed(data[start:start + 64])
                while reader.next_message() is not None:
                    pass
        except ChunkError:
            pass
        assert reader.buffered <= 4096 + 64 + 18


def test_mutated_amf0_raises_only_amf_errors() -> None:
    rng = random.Random(13)
    valid = amf0.encode_all("connect", 1, {"app": "v2/pub", "n": [1, None, amf0.UNDEFINED]},
                            EcmaArray(a=True, b="x" * 20))
    for _ in range(3000):
        try:
            amf0.decode_all(mutate(rng, valid))
        except amf0.AmfError:
            pass


def test_random_flv_bodies_raise_only_flv_errors() -> None:
    rng = random.Random(9)
    for _ in range(3000):
        data = mutate(rng, bytes([0x17, 0, 0, 0, 0]) + RECORD)
        try:
            tag = flv.parse_video_tag(data)
            flv.parse_avc_config(tag.data)
        except flv.FlvError:
            pass
        try:
            flv.split_nalus(rng.randbytes(rng.randint(0, 12)), rng.choice((1, 2, 4)))
        except flv.FlvError:
            pass
        try:
            flv.parse_aac_config(flv.parse_audio_tag(rng.randbytes(rng.randint(0, 6))).data)
        except flv.FlvError:
            pass
