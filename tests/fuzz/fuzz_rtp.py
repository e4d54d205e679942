"""RTP: header reading and the per-viewer rewrite of hubbub.media.rtp.

Input: 4 bytes of parameters, then the packet.
- byte 0: the extension id looked up (find_extension, audio_level), 0..15
- byte 1: the viewer's MID extension id, 0..31 (above 14 needs the two-byte form)
- byte 2: the id map (0: identity, else a shuffle with holes); byte 3: the MID's length 0..20

Documented errors: ValueError only. rewrite_packet and rewrite_packet_c (the C path, when
built) must return the same bytes or both raise ValueError.
"""

from __future__ import annotations

from hubbub.media import rtp

MAX_LEN = 1500
EXPECTED = (ValueError,)


def ext_map(seed: int) -> bytes:
    if seed == 0:
        return bytes(range(256))
    return bytes(0 if (i * seed) % 7 == 3 else (i * (seed | 1) + seed) & 0xFF
                 for i in range(256))


EXT_MAPS = [ext_map(seed) for seed in range(256)]


def _rewrite(fn: object, *args: object) -> bytes | str:
    try:
        out: bytes = fn(*args)  # type: ignore[operator]
    except EXPECTED as exc:
        return f"ValueError: {exc}"
    return out


def one_input(data: bytes) -> None:
    if len(data) < 4:
        return
    ext_id, mid_id, map_seed, mid_len = data[0] & 15, data[1] & 31, data[2], data[3] % 21
    packet = data[4:]
    rtp.is_rtcp(packet)
    try:
        rtp.read_header(packet)
        rtp.payload_offset(packet)
    except EXPECTED:
        pass
    try:
        rtp.find_extension(packet, ext_id)
    except EXPECTED:
        pass
    try:
        level = rtp.audio_level(packet, ext_id)
        assert -1 <= level <= 127
    except EXPECTED:
        pass
    try:
        rtp.read_extensions(packet)
    except EXPECTED:
        pass
    mapping = EXT_MAPS[map_seed]
    mid = b"abcdefghijklmnopqrst"[:mid_len]
    args = (packet, 96, 0x1234, 0x89ABCDEF, 0x0BADCAFE, mapping, mid_id, mid)
    python = _rewrite(rtp._rewrite, *args)
    via_c = _rewrite(rtp.rewrite_packet_c, *args)
    assert python == via_c, f"C rewrite differs: {via_c!r} != {python!r}"
    memo = _rewrite(rtp.rewrite_packet, *args)
    assert memo == python, f"rewrite_packet differs from _rewrite: {memo!r} != {python!r}"
    if isinstance(python, bytes):
        rtp.read_header(python)  # what we send must read back
        rtp.payload_offset(python)


if __name__ == "__main__":
    from tests.fuzz.harness import fuzz_main

    fuzz_main(one_input, "rtp", MAX_LEN)
