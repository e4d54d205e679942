"""The chunk stream reader: every header type, extended timestamps, interleaving, chunk size
changes, Abort, and the caps on what a peer can make us hold."""

from __future__ import annotations

import pytest

from hubbub.ingest.rtmp.chunks import (
    ABORT,
    AUDIO,
    SET_CHUNK_SIZE,
    VIDEO,
    ChunkError,
    ChunkReader,
    ChunkWriter,
    Message,
    chunk_header,
)


def read_all(data: bytes, reader: ChunkReader | None = None, step: int = 0) -> list[Message]:
    """Every message in `data`, fed whole or `step` bytes at a time."""
    reader = reader or ChunkReader()
    out: list[Message] = []
    pieces = [data] if not step else [data[i:i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        reader.feed(piece)
        while (message := reader.next_message()) is not None:
            out.append(message)
    return out


def summary(messages: list[Message]) -> list[tuple[int, int, int, int, int]]:
    return [(m.csid, m.type_id, m.stream_id, m.timestamp, len(m.payload)) for m in messages]


@pytest.mark.parametrize("step", [0, 1, 7, 129])
def test_writer_output_reassembles_in_any_pieces(step: int) -> None:
    writer = ChunkWriter()
    payload = bytes(range(256)) * 3
    data = writer.message(6, VIDEO, payload, stream_id=1, timestamp=40)
    data += writer.message(4, AUDIO, b"a" * 5, stream_id=1, timestamp=41)
    messages = read_all(data, step=step)
    assert summary(messages) == [(6, VIDEO, 1, 40, 768), (4, AUDIO, 1, 41, 5)]
    assert messages[0].payload == payload


def test_header_types_0_to_3_carry_timestamps_and_deltas() -> None:
    data = (
        chunk_header(0, 4, 1000, 3, AUDIO, 1) + b"abc"  # absolute
        + chunk_header(1, 4, 33, 2, VIDEO) + b"de"  # delta, new length and type
        + chunk_header(2, 4, 40) + b"fg"  # delta only
        + chunk_header(3, 4) + b"hi"  # everything repeats, the delta too (§5.3.1.2.4)
        + chunk_header(3, 4) + b"jk"
    )
    assert summary(read_all(data)) == [
        (4, AUDIO, 1, 1000, 3), (4, VIDEO, 1, 1033, 2), (4, VIDEO, 1, 1073, 2),
        (4, VIDEO, 1, 1113, 2), (4, VIDEO, 1, 1153, 2),
    ]


def test_type_3_after_type_0_adds_the_type_0_timestamp_as_ffmpeg_does() -> None:
    data = chunk_header(0, 5, 20, 1, VIDEO, 1) + b"a" + chunk_header(3, 5) + b"b"
    assert [m.timestamp for m in read_all(data)] == [20, 40]


def test_two_and_three_byte_chunk_stream_ids() -> None:
    data = (chunk_header(0, 64, 1, 1, AUDIO, 1) + b"x" + chunk_header(0, 319, 2, 1, AUDIO, 1)
            + b"y" + chunk_header(0, 320, 3, 1, AUDIO, 1) + b"z"
            + chunk_header(0, 65599, 4, 1, AUDIO, 1) + b"w")
    assert [(m.csid, m.payload) for m in read_all(data, step=1)] == [
        (64, b"x"), (319, b"y"), (320, b"z"), (65599, b"w")]


def test_interleaved_chunk_streams_reassemble_separately() -> None:
    video, audio = bytes([1]) * 300, bytes([2]) * 200
    data = (
        chunk_header(0, 6, 0, 300, VIDEO, 1) + video[:128]
        + chunk_header(0, 4, 0, 200, AUDIO, 1) + audio[:128]
        + chunk_header(3, 6) + video[128:256]
        + chunk_header(3, 4) + audio[128:]
        + chunk_header(3, 6) + video[256:]
    )
    messages = read_all(data, step=5)
    assert [(m.csid, m.payload) for m in messages] == [(4, audio), (6, video)]


def test_extended_timestamps_on_every_header_type_and_on_continuations() -> None:
    big = 0x01000000  # over 0xFFFFFF: needs the 4-byte field (§5.3.1.3)
    payload = b"v" * 200
    data = (
        chunk_header(0, 6, big, 200, VIDEO, 1) + payload[:128]
        + chunk_header(3, 6, big, extended=True) + payload[128:]  # continuation repeats it
        + chunk_header(1, 6, 0xFFFFFF + 5, 1, VIDEO) + b"x"  # extended delta
        + chunk_header(3, 6, 0xFFFFFF + 5, extended=True) + b"y"  # new message, same delta
        + chunk_header(2, 6, 10) + b"z"  # no longer extended
        + chunk_header(3, 6) + b"w"
    )
    messages = read_all(data, step=3)
    step = 0xFFFFFF + 5
    assert [m.timestamp for m in messages] == [
        big, big + step, big + 2 * step, big + 2 * step + 10, big + 2 * step + 20]
    assert messages[0].payload == payload


def test_continuations_without_the_repeated_extended_timestamp_are_accepted() -> None:
    big = 0x01000000
    payload = bytes(range(200))  # its continuation does not start with `big`
    data = (chunk_header(0, 6, big, 200, VIDEO, 1) + payload[:128]
            + chunk_header(3, 6) + payload[128:]  # the field left off, as some encoders do
            + chunk_header(3, 6, big, extended=True) + b"x" * 128  # a new message: it is there
            + chunk_header(3, 6, big, extended=True) + b"x" * 72)  # and here too
    messages = read_all(data, ChunkReader(), step=0)
    assert messages[0].payload == payload
    assert messages[1].timestamp == 2 * big and len(messages[1].payload) == 200


def test_timestamps_wrap_at_32_bits() -> None:
    data = (chunk_header(0, 4, 0xFFFFFFF0, 1, AUDIO, 1) + b"a"
            + chunk_header(2, 4, 0x20) + b"b")
    assert [m.timestamp for m in read_all(data)] == [0xFFFFFFF0, 0x10]


def test_set_chunk_size_changes_how_later_chunks_are_read() -> None:
    reader = ChunkReader()
    payload = bytes(5000)
    data = (chunk_header(0, 2, 0, 4, SET_CHUNK_SIZE, 0) + (4096).to_bytes(4, "big")
            + chunk_header(0, 6, 0, 5000, VIDEO, 1) + payload[:4096]
            + chunk_header(3, 6) + payload[4096:])
    assert [m.payload for m in read_all(data, reader, step=1000)] == [payload]
    assert reader.chunk_size == 4096


def test_writer_uses_the_chunk_size_it_announced() -> None:
    writer, reader = ChunkWriter(), ChunkReader()
    data = writer.set_chunk_size(4096) + writer.message(3, 20, bytes(5000))
    assert len(data) == 16 + 12 + 5000 + 1
    assert [len(m.payload) for m in read_all(data, reader)] == [5000]


def test_abort_drops_a_half_received_message() -> None:
    data = (chunk_header(0, 6, 0, 300, VIDEO, 1) + bytes(128)
            + chunk_header(0, 2, 0, 4, ABORT, 0) + (6).to_bytes(4, "big")
            + chunk_header(0, 6, 7, 2, VIDEO, 1) + b"ok")
    assert [(m.timestamp, m.payload) for m in read_all(data)] == [(7, b"ok")]


@pytest.mark.parametrize(("data", "reason"), [
    (chunk_header(1, 6, 0, 1, VIDEO) + b"x", "chunk stream 6 starts with a type-1 header"),
    (chunk_header(3, 6) + b"x", "chunk stream 6 starts with a type-3 header"),
    (chunk_header(0, 6, 0, 300, VIDEO, 1) + bytes(128) + chunk_header(1, 6, 0, 1, VIDEO),
     "type-1 header inside a message on chunk stream 6"),
    (chunk_header(0, 2, 0, 4, SET_CHUNK_SIZE, 0) + bytes(4), "Set Chunk Size 0 is out of range"),
    (chunk_header(0, 2, 0, 4, SET_CHUNK_SIZE, 0) + b"\x80\x00\x00\x00",
     "Set Chunk Size 2147483648 is out of range"),
    (chunk_header(0, 2, 0, 2, SET_CHUNK_SIZE, 0) + bytes(2),
     "Set Chunk Size is shorter than 4 bytes"),
    (chunk_header(0, 6, 0, 1001, VIDEO, 1),
     "message of 1001 bytes (type 9) is over the 1000-byte cap"),
])
def test_malformed_input_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ChunkError) as caught:
        read_all(data, ChunkReader(max_message_size=1000))
    assert str(caught.value) == reason


def test_chunk_streams_and_messages_in_flight_are_capped() -> None:
    many = b"".join(chunk_header(0, csid, 0, 0, AUDIO, 1) for csid in range(3, 40))
    with pytest.raises(ChunkError, match="more than 32 chunk streams"):
        read_all(many)
    halves = b"".join(chunk_header(0, csid, 0, 300, VIDEO, 1) + bytes(128) for csid in range(3, 9))
    with pytest.raises(ChunkError, match="more than 4 messages in flight"):
        read_all(halves)
    declared = b"".join(chunk_header(0, csid, 0, 3 << 20, VIDEO, 1) + bytes(128)
                        for csid in range(3, 6))
    with pytest.raises(ChunkError, match="messages in flight over 8388608 bytes"):
        read_all(declared)


def test_a_large_chunk_size_buffers_no_more_than_the_message() -> None:
    reader = ChunkReader()
    data = (chunk_header(0, 2, 0, 4, SET_CHUNK_SIZE, 0) + (0x7FFFFFFF).to_bytes(4, "big")
            + chunk_header(0, 6, 0, 10, VIDEO, 1) + bytes(10))
    assert [len(m.payload) for m in read_all(data, reader)] == [10]
    assert reader.buffered == 0
