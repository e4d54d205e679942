"""AMF0 (Adobe Action Message Format 0 specification, 2007), the encoding of RTMP commands.

Only what RTMP command and data messages carry: number (§2.2), boolean (§2.3), string (§2.4),
object (§2.5), null (§2.7), undefined (§2.8), ECMA array (§2.10), object end (§2.11), strict
array (§2.12), date (§2.13, decoded to its milliseconds) and long string (§2.14). References,
typed objects, XML and the AVM+ switch to AMF3 are refused. Decoding is bounded: nesting depth
and the number of values in one call are capped, so a small message cannot cost much; every
failure is an `AmfError` with an exact reason.
"""

from __future__ import annotations

import struct
from typing import TypeAlias, Union

__all__ = [
    "MAX_DEPTH",
    "MAX_VALUES",
    "UNDEFINED",
    "AmfError",
    "AmfValue",
    "EcmaArray",
    "Undefined",
    "decode",
    "decode_all",
    "encode",
    "encode_all",
]

MAX_DEPTH = 16
MAX_VALUES = 4096
"""Values (including nested ones and object keys' values) one `decode_all` call may produce."""

NUMBER, BOOLEAN, STRING, OBJECT, NULL, UNDEFINED_MARKER = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, DATE, LONG_STRING = 0x08, 0x09, 0x0A, 0x0B, 0x0C

_DOUBLE = struct.Struct(">d")
_DATE = struct.Struct(">dh")


class AmfError(ValueError):
    pass


class Undefined:
    """AMF0 `undefined` (§2.8), distinct from `null` (None)."""

    _instance: Undefined | None = None

    def __new__(cls) -> Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"


UNDEFINED = Undefined()


class EcmaArray(dict[str, "AmfValue"]):
    """An associative array (§2.10); a plain dict is encoded as an anonymous object (§2.5)."""


AmfValue: TypeAlias = Union[  # noqa: UP007 (a recursive alias needs the string form)
    float, bool, str, None, Undefined, "EcmaArray", dict[str, "AmfValue"], list["AmfValue"]
]


class _Decoder:
    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.values = 0

    def take(self, n: int) -> memoryview:
        end = self.pos + n
        if end > len(self.data):
            raise AmfError("AMF0 value is truncated")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def utf8(self, n: int) -> str:
        try:
            return str(self.take(n), "utf-8")
        except UnicodeDecodeError:
            raise AmfError("AMF0 string is not UTF-8") from None

    def value(self, depth: int) -> AmfValue:
        self.values += 1
        if self.values > MAX_VALUES:
            raise AmfError(f"AMF0 data has more than {MAX_VALUES} values")
        marker = self.take(1)[0]
        if marker == NUMBER:
            return float(_DOUBLE.unpack(self.take(8))[0])
        if marker == BOOLEAN:
            return self.take(1)[0] != 0
        if marker == STRING:
            return self.utf8(self.u16())
        if marker == LONG_STRING:
            return self.utf8(self.u32())
        if marker == NULL:
            return None
        if marker == UNDEFINED_MARKER:
            return UNDEFINED
        if marker == DATE:
            millis, _timezone = _DATE.unpack(self.take(10))
            return float(millis)
        if marker in (OBJECT, ECMA_ARRAY, STRICT_ARRAY):
            if depth >= MAX_DEPTH:
                raise AmfError(f"AMF0 data nests deeper than {MAX_DEPTH}")
            if marker == STRICT_ARRAY:
                count = self.u32()
                if count > MAX_VALUES - self.values:
                    raise AmfError(f"AMF0 strict array of {count} values is too long")
                return [self.value(depth + 1) for _ in range(count)]
            if marker == ECMA_ARRAY:
                self.take(4)  # associative-count: a hint only, the end marker ends it (§2.10)
                return self.properties(EcmaArray(), depth)
            return self.properties({}, depth)
        if marker == OBJECT_END:
            raise AmfError("AMF0 object end outside an object")
        raise AmfError(f"AMF0 type 0x{marker:02x} is not supported")

    def properties(self, into: dict[str, AmfValue], depth: int) -> dict[str, AmfValue]:
        # §2.5: (UTF-8 key, value)* then an empty key followed by the object-end marker.
        while True:
            key = self.utf8(self.u16())
            if not key and self.pos < len(self.data) and self.data[self.pos] == OBJECT_END:
                self.pos += 1
                return into
            into[key] = self.value(depth + 1)


def decode(data: bytes | bytearray | memoryview) -> tuple[AmfValue, int]:
    """One value from the start of `data`, and the number of bytes it took."""
    decoder = _Decoder(data)
    value = decoder.value(0)
    return value, decoder.pos


def decode_all(data: bytes | bytearray | memoryview) -> list[AmfValue]:
    """Every value in `data` (a command message: name, transaction id, arguments...)."""
    decoder = _Decoder(data)
    values: list[AmfValue] = []
    while decoder.pos < len(decoder.data):
        values.append(decoder.value(0))
    return values


def _key(key: str) -> bytes:
    raw = key.encode()
    if len(raw) > 0xFFFF:
        raise AmfError("AMF0 object key is longer than 65535 bytes")
    return len(raw).to_bytes(2, "big") + raw


def _encode(value: AmfValue, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise AmfError(f"AMF0 data nests deeper than {MAX_DEPTH}")
    if value is None:
        out.append(NULL)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif isinstance(value, bool):
        out += bytes((BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        out.append(NUMBER)
        out += _DOUBLE.pack(value)
    elif isinstance(value, str):
        raw = value.encode()
        if len(raw) <= 0xFFFF:
            out.append(STRING)
            out += len(raw).to_bytes(2, "big")
        else:
            out.append(LONG_STRING)
            out += len(raw).to_bytes(4, "big")
        out += raw
    elif isinstance(value, list):
        out.append(STRICT_ARRAY)
        out += len(value).to_bytes(4, "big")
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        if isinstance(value, EcmaArray):
            out.append(ECMA_ARRAY)
            out += len(value).to_bytes(4, "big")
        else:
            out.append(OBJECT)
        for key, item in value.items():
            out += _key(key)
            _encode(item, out, depth + 1)
        out += b"\x00\x00\x09"
    else:
        raise AmfError(f"cannot encode {type(value).__name__} as AMF0")


def encode(value: AmfValue) -> bytes:
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


def encode_all(*values: AmfValue) -> bytes:
    out = bytearray()
    for value in values:
        _encode(value, out, 0)
    return bytes(out)
