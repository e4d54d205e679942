import pytest

from hubbub.sfu import PacketCache


def test_size_must_be_power_of_two() -> None:
    for bad in (0, 3, 100, -8):
        with pytest.raises(ValueError, match=f"cache size must be a power of two, got {bad}"):
            PacketCache(bad)


def test_lookup_returns_packet_only_for_the_stored_seq() -> None:
    cache = PacketCache(8)
    cache.put(5, b"five", 1.0)
    assert cache.get(5) == b"five"
    assert cache.sent_at(5) == 1.0
    assert cache.get(13) is None  # same slot, other seq
    cache.put(13, b"thirteen", 2.0)
    assert cache.get(5) is None
    assert cache.get(13) == b"thirteen"


def test_wraps_across_16_bit_seq() -> None:
    cache = PacketCache(16)
    for seq in (65534, 65535, 0, 1):
        cache.put(seq, seq.to_bytes(2, "big"), 0.0)
    assert [cache.get(s) for s in (65534, 65535, 0, 1)] == [
        b"\xff\xfe", b"\xff\xff", b"\x00\x00", b"\x00\x01"]


def test_resend_guard_limits_repeats() -> None:
    cache = PacketCache(8)
    cache.put(1, b"p", 0.0)
    assert cache.take_for_resend(1, 1.0, 0.1) == b"p"
    assert cache.take_for_resend(1, 1.05, 0.1) is None
    assert cache.take_for_resend(1, 1.1, 0.1) == b"p"
    assert cache.take_for_resend(2, 5.0, 0.1) is None
    cache.put(1, b"q", 1.12)  # fresh packet in the slot: the guard starts over
    assert cache.take_for_resend(1, 1.13, 0.1) == b"q"
