"""Ring buffer of sent RTP packets by outgoing sequence number, for answering NACKs."""

from __future__ import annotations


class PacketCache:
    """Power-of-two ring indexed by `seq & mask`; a slot answers only for the seq it holds.

    Packets are stored as the exact bytes sent, so a retransmission is byte-identical (no RTX:
    RFC 4588 is not negotiated with viewers, the original SSRC/seq are reused).
    """

    __slots__ = ("_mask", "_seqs", "_packets", "_times", "_resent")

    def __init__(self, size: int) -> None:
        if size <= 0 or size & (size - 1):
            raise ValueError(f"cache size must be a power of two, got {size}")
        self._mask = size - 1
        self._seqs = [-1] * size
        self._packets: list[bytes | None] = [None] * size
        self._times = [0.0] * size
        self._resent = [float("-inf")] * size

    @property
    def size(self) -> int:
        return self._mask + 1

    def put(self, seq: int, packet: bytes, now: float) -> None:
        i = seq & self._mask
        self._seqs[i] = seq
        self._packets[i] = packet
        self._times[i] = now
        self._resent[i] = float("-inf")

    def get(self, seq: int) -> bytes | None:
        i = seq & self._mask
        return self._packets[i] if self._seqs[i] == seq else None

    def sent_at(self, seq: int) -> float | None:
        i = seq & self._mask
        return self._times[i] if self._seqs[i] == seq else None

    def take_for_resend(self, seq: int, now: float, guard: float) -> bytes | None:
        """The packet for `seq` unless it was resent less than `guard` seconds ago."""
        i = seq & self._mask
        if self._seqs[i] != seq or now - self._resent[i] < guard:
            return None
        self._resent[i] = now
        return self._packets[i]
