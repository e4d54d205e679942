"""The plain RTMP handshake (Adobe RTMP specification 1.0, §5.2), server side.

C0 (version 3) + C1 (1536 bytes: time, zero, random) in; S0 + S1 + S2 out, S2 echoing C1's
time and random bytes with the time we read it (§5.2.4); then C2 in, which we do not check.
The digest ("FP9") handshake of Flash players is not needed: OBS's librtmp and ffmpeg use it
only for encrypted or SWF-verified connections, never for plain rtmp://.
"""

from __future__ import annotations

import asyncio
import os
import time

__all__ = ["C0C1_SIZE", "C2_SIZE", "VERSION", "HandshakeError", "parse_c0c1", "respond", "accept"]

VERSION = 3  # §5.2.2: 3 is plain RTMP; 6 would be RTMPE, which we do not speak
C1_SIZE = 1536
C0C1_SIZE = 1 + C1_SIZE
C2_SIZE = C1_SIZE


class HandshakeError(ValueError):
    pass


def parse_c0c1(data: bytes) -> bytes:
    """C1 from C0 + C1, if C0 asks for plain RTMP."""
    if len(data) != C0C1_SIZE:
        raise HandshakeError("C0+C1 is truncated")
    if data[0] != VERSION:
        raise HandshakeError(f"RTMP version {data[0]} is not supported (only plain RTMP, 3)")
    return data[1:]


def respond(c1: bytes, now_ms: int, random: bytes | None = None) -> bytes:
    """S0 + S1 + S2 (§5.2.2-5.2.4)."""
    stamp = (now_ms & 0xFFFFFFFF).to_bytes(4, "big")
    s1 = stamp + bytes(4) + (random if random is not None else os.urandom(C1_SIZE - 8))
    s2 = c1[:4] + stamp + c1[8:]
    return bytes((VERSION,)) + s1 + s2


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Runs the handshake on a connection; the caller bounds it in time. Raises
    `HandshakeError`, or `asyncio.IncompleteReadError` if the peer closes."""
    epoch = time.monotonic()
    c1 = parse_c0c1(await reader.readexactly(C0C1_SIZE))
    writer.write(respond(c1, int((time.monotonic() - epoch) * 1000)))
    await reader.readexactly(C2_SIZE)
