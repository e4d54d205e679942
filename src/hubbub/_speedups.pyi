from collections.abc import Callable
from typing import Any

def protect_and_send(
    fd: int, protect_fn: int, items: list[tuple[int, bytes, bytes, Any, tuple[str, int]]]
) -> tuple[int, int, list[tuple[bytes, int]]]: ...
def rewrite(
    data: bytes, pt: int, seq: int, ts: int, ssrc: int, ext_map: bytes, mid_id: int, mid: bytes,
    twcc_id: int = 0,
) -> bytes | None: ...
def fanout(
    states: list[Any], data: bytes, seq: int, ts: int, length: int, now: float
) -> tuple[list[Any] | None, list[tuple[bytes, Target]] | None] | None: ...

class PacketCache:
    def __init__(self, size: int) -> None: ...
    @property
    def size(self) -> int: ...
    def put(self, seq: int, packet: bytes, now: float) -> None: ...
    def get(self, seq: int) -> bytes | None: ...
    def sent_at(self, seq: int) -> float | None: ...
    def take_for_resend(self, seq: int, now: float, guard: float) -> bytes | None: ...

class Target:
    packets: int
    octets: int
    twcc_overwritten: int
    send_raw: Callable[[bytes], None] | None
    def enable_twcc(self) -> None: ...
    def take_twcc_seq(self) -> int: ...
    def drain_sent(self) -> bytes: ...
    @property
    def ready(self) -> bool: ...
    def set(
        self, fd: int, protect_fn: int, ctx: int, sockaddr: bytes, keep: object,
        send_raw: Callable[[bytes], None],
    ) -> None: ...
    def clear(self) -> None: ...

class DownState:
    pt: int
    ssrc: int
    seq_offset: int
    ts_offset: int
    last_seq: int
    last_ts: int
    sync_seq: int
    packets_sent: int
    octets_sent: int
    dropped_old: int
    dropped_malformed: int
    mid_id: int
    twcc_id: int
    last_time: float
    guard: bool
    slow: bool
    mid: bytes
    ext_map: bytes
    cache: Any
    target: Target | None
    sink_send: Callable[[bytes], None] | None
    owner: Any

DISPATCH_FN: int  # protect_fn whose ctx is a Protector's or a GcmSender's address
GCM: bool  # built with OpenSSL (HUBBUB_GCM): GcmSender and GCM_PROTECT_FN exist
GCM_PROTECT_FN: int  # protect_fn whose ctx is a GcmSender's address

class Protector:
    def __init__(self, protect_fn: int, ctx: int, keep: object) -> None: ...
    @property
    def address(self) -> int: ...

class GcmSender:
    packets: int
    def __init__(
        self, key: bytes, salt: bytes, error: type[Exception] = ValueError
    ) -> None: ...
    @property
    def address(self) -> int: ...
    @property
    def ssrcs(self) -> int: ...
    def protect(self, packet: bytes) -> bytes: ...
