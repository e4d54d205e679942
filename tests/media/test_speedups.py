"""The optional C batch sender (hubbub._speedups): SRTP protect + sendmmsg, checked by
decrypting what arrives with pylibsrtp; and the pure-Python fallback switch."""

from __future__ import annotations

import os
import socket

import pytest

from hubbub.media import rtp
from hubbub.media.dtls import SrtpKeys
from hubbub.media.srtp import PROTECT_FN, SrtpPair
from hubbub.media.transport import sockaddr_bytes
from hubbub.media.udp import SPEEDUPS_AVAILABLE, MediaPort, forward_path

speedups = pytest.importorskip("hubbub._speedups")
pytestmark = pytest.mark.skipif(not SPEEDUPS_AVAILABLE, reason="C speedups not built")

KEY_A = bytes(range(30))
KEY_B = bytes(range(100, 130))


@pytest.mark.parametrize("profile", ["SRTP_PROFILE_AES128_CM_SHA1_80",
                                     "SRTP_PROFILE_AEAD_AES_128_GCM"])
def test_protect_and_send_delivers_what_pylibsrtp_decrypts(profile: str) -> None:
    key_len = 30 if "CM" in profile else 28
    a, b = KEY_A[:key_len], KEY_B[:key_len]
    sender = SrtpPair(SrtpKeys(profile, rx_key=b, tx_key=a))
    receiver = SrtpPair(SrtpKeys(profile, rx_key=a, tx_key=b))
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        addr = rx.getsockname()
        packets = [rtp.build_packet(111, 1000 + i, 960 * i, 0x1234, bytes([i]) * (20 + i))
                   for i in range(130)]  # more than one 64-datagram batch
        items = [(sender.tx_pointer, p, sockaddr_bytes(addr), sender, addr) for p in packets]
        sent, errors, leftovers = speedups.protect_and_send(tx.fileno(), PROTECT_FN, items)
        assert (sent, errors, leftovers) == (130, 0, [])
        got = [receiver.unprotect(rx.recv(2048)) for _ in packets]
    assert got == packets


def test_bad_items_are_counted_or_refused() -> None:
    keys = SrtpKeys("SRTP_PROFILE_AES128_CM_SHA1_80", rx_key=KEY_B, tx_key=KEY_A)
    pair = SrtpPair(keys)
    addr = ("127.0.0.1", 9)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        short = (pair.tx_pointer, b"\x80" * 11, sockaddr_bytes(addr), pair, addr)
        null_ctx = (0, b"\x80" * 20, sockaddr_bytes(addr), pair, addr)
        assert speedups.protect_and_send(tx.fileno(), PROTECT_FN, [short, null_ctx]) == (0, 2, [])
        with pytest.raises(TypeError, match="packet and sockaddr must be bytes"):
            speedups.protect_and_send(tx.fileno(), PROTECT_FN, [(1, "x", b"", None, addr)])
        with pytest.raises(TypeError, match="tuples"):
            speedups.protect_and_send(tx.fileno(), PROTECT_FN, [b"x"])
        with pytest.raises(ValueError, match="protect_fn is NULL"):
            speedups.protect_and_send(tx.fileno(), 0, [])


def test_sockaddr_bytes_layout() -> None:
    v4 = sockaddr_bytes(("127.0.0.1", 5004))
    assert len(v4) == 16 and v4[2:4] == b"\x13\x8c" and v4[4:8] == b"\x7f\x00\x00\x01"
    v6 = sockaddr_bytes(("::1", 5004))
    assert len(v6) == 28 and v6[2:4] == b"\x13\x8c" and v6[8:24] == bytes(15) + b"\x01"


def test_environment_switches_to_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(os.environ, "HUBBUB_NO_SPEEDUPS", raising=False)
    assert MediaPort().batching
    assert rtp.speedups() is speedups
    assert forward_path().startswith("C ")
    monkeypatch.setitem(os.environ, "HUBBUB_NO_SPEEDUPS", "1")
    assert not MediaPort().batching
    assert rtp.speedups() is None
    assert forward_path() == "pure Python (HUBBUB_NO_SPEEDUPS is set)"
