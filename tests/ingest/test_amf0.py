"""AMF0: round trips of every type RTMP commands use, and exact refusals of bad input."""

from __future__ import annotations

import pytest

from hubbub.ingest.rtmp.amf0 import (
    MAX_DEPTH,
    MAX_VALUES,
    UNDEFINED,
    AmfError,
    AmfValue,
    EcmaArray,
    decode,
    decode_all,
    encode,
    encode_all,
)

VALUES: list[AmfValue] = [
    0.0, 1.0, -2.5, 1e300, True, False, "", "publish", "é☃", None, UNDEFINED,
    {}, {"app": "v2/pub", "tcUrl": "rtmp://h/v2/pub", "objectEncoding": 0.0},
    EcmaArray(duration=0.0, width=320.0, encoder="Lavf"), [], [1.0, "x", None, [True]],
    {"nested": {"a": [{"b": EcmaArray(c=UNDEFINED)}]}},
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_value_survives_a_round_trip(value: AmfValue) -> None:
    data = encode(value)
    decoded, used = decode(data + b"tail")
    assert decoded == value and type(decoded) is type(value) and used == len(data)


def test_known_encodings_match_the_spec() -> None:
    assert encode(1) == b"\x00\x3f\xf0" + bytes(6)  # §2.2: IEEE double, big endian
    assert encode("ab") == b"\x02\x00\x02ab"  # §2.4
    assert encode({"a": None}) == b"\x03\x00\x01a\x05\x00\x00\x09"  # §2.5, §2.7, §2.11
    assert encode(EcmaArray()) == b"\x08\x00\x00\x00\x00\x00\x00\x09"  # §2.10
    assert encode([True]) == b"\x0a\x00\x00\x00\x01\x01\x01"  # §2.12
    assert encode("x" * 70000)[:5] == b"\x0c\x00\x01\x11\x70"  # §2.14 long string


def test_a_command_decodes_as_a_list() -> None:
    data = encode_all("connect", 1, {"app": "v2/pub"})
    assert decode_all(data) == ["connect", 1.0, {"app": "v2/pub"}]


def test_date_and_long_string_decode() -> None:
    assert decode(b"\x0b" + encode(1.5)[1:] + b"\x00\x00")[0] == 1.5
    assert decode(b"\x0c\x00\x00\x00\x02hi")[0] == "hi"


def test_ecma_array_count_is_only_a_hint() -> None:
    # The count says 5 but one property follows: the end marker ends it (§2.10).
    data = b"\x08\x00\x00\x00\x05\x00\x01k\x01\x01\x00\x00\x09"
    assert decode(data)[0] == EcmaArray(k=True)


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "AMF0 value is truncated"),
    (b"\x00\x01", "AMF0 value is truncated"),
    (b"\x02\x00\x05ab", "AMF0 value is truncated"),
    (b"\x03\x00\x01a", "AMF0 value is truncated"),
    (b"\x02\x00\x01\xff", "AMF0 string is not UTF-8"),
    (b"\x07\x00\x01", "AMF0 type 0x07 is not supported"),  # reference
    (b"\x11", "AMF0 type 0x11 is not supported"),  # AVM+ (AMF3)
    (b"\x10\x00\x01a", "AMF0 type 0x10 is not supported"),  # typed object
    (b"\x09", "AMF0 object end outside an object"),
    (b"\x0a\xff\xff\xff\xff", "AMF0 strict array of 4294967295 values is too long"),
])
def test_bad_input_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(AmfError) as caught:
        decode(data)
    assert str(caught.value) == reason


def test_every_truncation_of_a_command_is_refused() -> None:
    head = encode_all("publish", 5, None, "name?token=x")
    data = head + encode({"k": [1, EcmaArray(a="b")], "s": "x"})
    assert decode_all(head) == ["publish", 5.0, None, "name?token=x"]
    for length in range(len(head) + 1, len(data)):
        with pytest.raises(AmfError):
            decode_all(data[:length])


def test_nesting_is_bounded() -> None:
    deep = b"\x0a\x00\x00\x00\x01" * (MAX_DEPTH + 1) + b"\x05"
    with pytest.raises(AmfError, match="nests deeper"):
        decode(deep)
    ok = b"\x0a\x00\x00\x00\x01" * MAX_DEPTH + b"\x05"
    assert decode(ok)[1] == len(ok)


def test_value_count_is_bounded() -> None:
    many = encode([None] * (MAX_VALUES + 1))
    with pytest.raises(AmfError):
        decode(many)
    nulls = b"\x05" * (MAX_VALUES + 1)  # flat values count too
    with pytest.raises(AmfError, match=f"more than {MAX_VALUES} values"):
        decode_all(nulls)


def test_unencodable_values_are_refused() -> None:
    with pytest.raises(AmfError, match="cannot encode bytes"):
        encode(b"x")  # type: ignore[arg-type]
