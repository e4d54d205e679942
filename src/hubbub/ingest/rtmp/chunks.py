"""The RTMP chunk stream (Adobe RTMP specification 1.0, §5.3), without I/O.

`ChunkReader` is fed bytes as they arrive and hands back whole messages. It keeps the state the
spec keeps per chunk stream (§5.3.1.2: timestamp, delta, length, type, message stream id) and
handles the two protocol control messages that change how chunks are read: Set Chunk Size
(§5.4.1) and Abort (§5.4.2). Everything else is returned to the session.

Timestamp rules, where implementations have gone wrong before (go-rtmp #72, obs-studio #10097):
- a type-0 header carries the absolute timestamp, types 1 and 2 a delta (§5.3.1.2.1-3);
- a type-3 chunk that starts a new message adds the last delta again (§5.3.1.2.4); after a
  type-0 header that delta is the type-0 timestamp, as ffmpeg's rtmppkt.c writes and reads it;
- a 0xFFFFFF timestamp field means a 32-bit extended timestamp follows (§5.3.1.3), and it is
  repeated on every type-3 chunk of that chunk stream until a header of type 0-2 without one
  (continuation chunks that lack it are accepted too, see `_read_chunk`).
Timestamps are kept modulo 2**32, as on the wire.

What a peer can make us hold is bounded: one message's length (`max_message_size`), the number
of chunk streams with state and with a message half received, and the declared bytes of the
half-received messages together. Violations raise `ChunkError` with an exact reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "ABORT",
    "ACKNOWLEDGEMENT",
    "AMF0_COMMAND",
    "AMF0_DATA",
    "AMF3_COMMAND",
    "AMF3_DATA",
    "AUDIO",
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "SET_CHUNK_SIZE",
    "SET_PEER_BANDWIDTH",
    "USER_CONTROL",
    "VIDEO",
    "WINDOW_ACK_SIZE",
    "ChunkError",
    "ChunkReader",
    "ChunkWriter",
    "Message",
    "chunk_header",
]

# Message type ids (§5.4 protocol control, §6.2 user control, §7.1 the rest).
SET_CHUNK_SIZE, ABORT, ACKNOWLEDGEMENT, USER_CONTROL = 1, 2, 3, 4
WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH = 5, 6
AUDIO, VIDEO = 8, 9
AMF3_DATA, AMF3_COMMAND, AMF0_DATA, AMF0_COMMAND = 15, 17, 18, 20

DEFAULT_CHUNK_SIZE = 128  # §5.4.1
MAX_CHUNK_SIZE = 0x7FFFFFFF  # §5.4.1: 31 bits, the top bit must be 0
_EXTENDED = 0xFFFFFF
_MASK32 = 0xFFFFFFFF
_HEADER_SIZE = (11, 7, 3, 0)  # message header length by chunk type (fmt), §5.3.1.2


class ChunkError(ValueError):
    pass


@dataclass(slots=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int  # milliseconds, modulo 2**32
    payload: bytes
    csid: int


class _ChunkStream:
    __slots__ = ("delta", "extended", "field", "length", "partial", "stream_id", "timestamp",
                 "type_id")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.extended = False
        self.field = 0  # the last extended timestamp field, repeated on type-3 chunks
        self.partial: bytearray | None = None


class ChunkReader:
    def __init__(self, max_message_size: int = 4 << 20, max_chunk_streams: int = 32,
                 max_partial_streams: int = 4, max_partial_bytes: int = 8 << 20) -> None:
        self.max_message_size = max_message_size
        self.max_chunk_streams = max_chunk_streams
        self.max_partial_streams = max_partial_streams
        self.max_partial_bytes = max_partial_bytes
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.bytes_received = 0  # for Acknowledgement sequence numbers (§5.4.3)
        self._buf = bytearray()
        self._pos = 0
        self._streams: dict[int, _ChunkStream] = {}

    def feed(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def next_message(self) -> Message | None:
        """The next whole message, or None when more bytes are needed."""
        while True:
            result = self._read_chunk()
            if result is None or isinstance(result, Message):
                return result

    def _read_chunk(self) -> Message | None | bool:
        """One chunk: None if incomplete, True if it completed no message to return."""
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 1:
            return None
        # §5.3.1.1 basic header: fmt (2 bits) and a chunk stream id in 1, 2 or 3 bytes.
        first = buf[pos]
        fmt, csid = first >> 6, first & 0x3F
        i = pos + 1
        if csid == 0:
            if avail < 2:
                return None
            csid = 64 + buf[i]
            i += 1
        elif csid == 1:
            if avail < 3:
                return None
            csid = 64 + buf[i] + (buf[i + 1] << 8)
            i += 2
        need = _HEADER_SIZE[fmt]
        if len(buf) < i + need:
            return None
        stream = self._streams.get(csid)
        if stream is None:
            if fmt != 0:
                raise ChunkError(f"chunk stream {csid} starts with a type-{fmt} header")
            if len(self._streams) >= self.max_chunk_streams:
                raise ChunkError(f"more than {self.max_chunk_streams} chunk streams")
            stream = _ChunkStream()
            self._streams[csid] = stream
        if fmt != 3 and stream.partial is not None:
            raise ChunkError(f"type-{fmt} header inside a message on chunk stream {csid}")
        length, type_id, stream_id = stream.length, stream.type_id, stream.stream_id
        extended = stream.extended
        field = 0
        if fmt < 3:
            field = (buf[i] << 16) | (buf[i + 1] << 8) | buf[i + 2]
            extended = field == _EXTENDED
            if fmt < 2:
                length = (buf[i + 3] << 16) | (buf[i + 4] << 8) | buf[i + 5]
                type_id = buf[i + 6]
                if fmt == 0:
                    stream_id = int.from_bytes(buf[i + 7:i + 11], "little")  # §5.3.1.2.1
            i += need
        partial = stream.partial
        if extended:
            if len(buf) < i + 4:
                return None
            value = int.from_bytes(buf[i:i + 4], "big")  # §5.3.1.3
            # Some encoders leave it off a message's continuation chunks (obs-studio #10097
            # fixed one). There a value other than the one repeated is payload: as SRS does.
            if fmt < 3 or partial is None or value == stream.field:
                field = value
                i += 4
        starts = partial is None
        received = 0 if partial is None else len(partial)
        if starts:  # refused as soon as the header is here, not when the data is
            if length > self.max_message_size:
                raise ChunkError(f"message of {length} bytes (type {type_id}) is over the "
                                 f"{self.max_message_size}-byte cap")
            self._check_partial(length)
        take = min(self.chunk_size, length - received)
        if len(buf) < i + take:
            return None
        # The whole chunk is here: commit.
        self._pos = i + take
        if fmt < 3:
            stream.extended = extended
        if extended:
            stream.field = field
        stream.length, stream.type_id, stream.stream_id = length, type_id, stream_id
        if starts:
            if fmt == 0:
                stream.timestamp = stream.delta = field
            elif fmt < 3:
                stream.delta = field
                stream.timestamp = (stream.timestamp + field) & _MASK32
            else:
                stream.timestamp = (stream.timestamp + stream.delta) & _MASK32
        if partial is None and take == length:
            payload = bytes(buf[i:i + take])
        else:
            if partial is None:
                partial = stream.partial = bytearray()
            partial += buf[i:i + take]
            if len(partial) < length:
                return True
            payload = bytes(partial)
            stream.partial = None
        return self._complete(Message(type_id, stream_id, stream.timestamp, payload, csid))

    def _check_partial(self, length: int) -> None:
        partial = [s for s in self._streams.values() if s.partial is not None]
        if len(partial) >= self.max_partial_streams:
            raise ChunkError(f"more than {self.max_partial_streams} messages in flight")
        if sum(s.length for s in partial) + length > self.max_partial_bytes:
            raise ChunkError(f"messages in flight over {self.max_partial_bytes} bytes")

    def _complete(self, message: Message) -> Message | bool:
        if message.type_id == SET_CHUNK_SIZE:  # §5.4.1
            if len(message.payload) < 4:
                raise ChunkError("Set Chunk Size is shorter than 4 bytes")
            size = int.from_bytes(message.payload[:4], "big")
            if not 1 <= size <= MAX_CHUNK_SIZE:
                raise ChunkError(f"Set Chunk Size {size} is out of range")
            self.chunk_size = size
            return True
        if message.type_id == ABORT:  # §5.4.2
            if len(message.payload) < 4:
                raise ChunkError("Abort is shorter than 4 bytes")
            stream = self._streams.get(int.from_bytes(message.payload[:4], "big"))
            if stream is not None:
                stream.partial = None
            return True
        return message


def _basic_header(fmt: int, csid: int) -> bytes:
    if 2 <= csid <= 63:
        return bytes(((fmt << 6) | csid,))
    if 64 <= csid <= 319:
        return bytes((fmt << 6, csid - 64))
    if 64 <= csid <= 65599:
        return bytes(((fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))
    raise ValueError(f"chunk stream id {csid} is out of range")


def chunk_header(fmt: int, csid: int, timestamp: int = 0, length: int = 0, type_id: int = 0,
                 stream_id: int = 0, extended: bool = False) -> bytes:
    """A chunk's basic and message headers (§5.3.1); `timestamp` is the absolute timestamp
    (fmt 0) or the delta (fmt 1, 2). For fmt 3, `extended` repeats `timestamp` as the extended
    timestamp, as a stream whose last header had one must."""
    out = bytearray(_basic_header(fmt, csid))
    big = timestamp >= _EXTENDED
    if fmt < 3:
        out += (_EXTENDED if big else timestamp).to_bytes(3, "big")
        if fmt < 2:
            out += length.to_bytes(3, "big") + bytes((type_id,))
            if fmt == 0:
                out += stream_id.to_bytes(4, "little")
        if big:
            out += timestamp.to_bytes(4, "big")
    elif extended:
        out += timestamp.to_bytes(4, "big")
    return bytes(out)


class ChunkWriter:
    """Our messages, each as a type-0 chunk and type-3 continuations at `chunk_size`."""

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE

    def message(self, csid: int, type_id: int, payload: bytes, stream_id: int = 0,
                timestamp: int = 0) -> bytes:
        timestamp &= _MASK32
        out = bytearray(chunk_header(0, csid, timestamp, len(payload), type_id, stream_id))
        size = self.chunk_size
        out += payload[:size]
        if len(payload) > size:
            more = chunk_header(3, csid, timestamp, extended=timestamp >= _EXTENDED)
            for start in range(size, len(payload), size):
                out += more
                out += payload[start:start + size]
        return bytes(out)

    def control(self, type_id: int, payload: bytes) -> bytes:
        """A protocol control message: chunk stream 2, message stream 0 (§5.4)."""
        return self.message(2, type_id, payload)

    def set_chunk_size(self, size: int) -> bytes:
        """Set Chunk Size (§5.4.1); our later messages use it."""
        data = self.control(SET_CHUNK_SIZE, size.to_bytes(4, "big"))
        self.chunk_size = size
        return data

    def window_ack_size(self, size: int) -> bytes:  # §5.4.4
        return self.control(WINDOW_ACK_SIZE, size.to_bytes(4, "big"))

    def set_peer_bandwidth(self, size: int, limit_type: int = 2) -> bytes:  # §5.4.5, 2 = dynamic
        return self.control(SET_PEER_BANDWIDTH, size.to_bytes(4, "big") + bytes((limit_type,)))

    def acknowledgement(self, sequence: int) -> bytes:  # §5.4.3
        return self.control(ACKNOWLEDGEMENT, (sequence & _MASK32).to_bytes(4, "big"))

    def user_control(self, event: int, data: bytes) -> bytes:  # §6.2 (§7.1.7)
        return self.control(USER_CONTROL, struct.pack(">H", event) + data)
