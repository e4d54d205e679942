"""RTMP ingest, the protocol floor: what OBS, ffmpeg, vMix and hardware encoders publish with.

Why it is written here rather than taken from PyPI (issue 16 research, 2026): `pyrtmp` (MIT,
asyncio, the only candidate) sets the root logger to DEBUG on import, parses every header bit by
bit through `bitstring` (slow, where CPU per stream is measured), reuses the wrong timestamp on
type-3 chunks and ignores their extended timestamps (streams break after 4.66 h), misses
connect's optional arguments, has no size limits before authentication and no hook to refuse a
publish with a reason. `rtmplite3` is GPL and not asyncio, `rtmpy` is Python 2, `librtmp`
bindings are client-only, and libavformat's listen mode takes one blocking client and cannot
show the publish name or answer with our own error. What encoders need is small: the plain
handshake, the chunk stream, AMF0 and a handful of commands.

Modules, one concept each, dependencies pointing down:
- `amf0`: AMF0 values (AMF0 specification);
- `chunks`: chunk stream reader and writer, protocol control messages (RTMP 1.0 §5.3-5.4);
- `handshake`: the plain handshake (§5.2);
- `flv`: audio/video tag bodies, AVC and AAC configurations (FLV v10.1 annex E);
- `api`: `Authorizer`, `Publisher`, `PublishRequest`, `Refusal`, what the control layer implements;
- `session`: one connection's commands and media (§7), with its limits;
- `server`: the listening socket.
"""

from hubbub.ingest.rtmp.api import (
    BAD_NAME,
    REJECTED,
    Authorizer,
    PublishControl,
    Publisher,
    PublishRequest,
    Refusal,
)
from hubbub.ingest.rtmp.flv import AacConfig, AvcConfig
from hubbub.ingest.rtmp.server import RtmpServer, RtmpStats
from hubbub.ingest.rtmp.session import RtmpLimits, RtmpSession

__all__ = [
    "BAD_NAME",
    "REJECTED",
    "AacConfig",
    "Authorizer",
    "AvcConfig",
    "PublishControl",
    "PublishRequest",
    "Publisher",
    "Refusal",
    "RtmpLimits",
    "RtmpServer",
    "RtmpSession",
    "RtmpStats",
]
