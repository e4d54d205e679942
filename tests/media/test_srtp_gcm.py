"""Our AEAD_AES_128_GCM SRTP sender (hubbub._speedups.GcmSender, RFC 7714) and its KDF
(hubbub.media.srtp_kdf, RFC 3711 §4.3.1) against libsrtp through pylibsrtp: byte-identical
output for the same master key, over wrapping, gapped and retransmitted sequences, and
pylibsrtp's receiver accepts what we send."""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

from hubbub.media import srtp as srtp_module
from hubbub.media.dtls import SrtpKeys
from hubbub.media.srtp import PROTECT_FN, SrtpPair
from hubbub.media.srtp_kdf import LABEL_RTP_ENCRYPTION, LABEL_RTP_SALT, derive, gcm_session_keys

speedups = pytest.importorskip("hubbub._speedups")
if not getattr(speedups, "GCM", False):
    pytest.skip("hubbub._speedups built without OpenSSL (HUBBUB_GCM)", allow_module_level=True)

GCM = "SRTP_PROFILE_AEAD_AES_128_GCM"
WINDOW = 1024


def libsrtp_pair(master: bytes) -> tuple[Session, Session]:
    """libsrtp's sender (configured like SrtpPair's) and a receiver for the same keys."""
    profile = Policy.SRTP_PROFILE_AEAD_AES_128_GCM
    tx = Policy(key=master, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
    tx.window_size = WINDOW
    tx.allow_repeat_tx = True
    rx = Policy(key=master, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
    rx.window_size = WINDOW
    return Session(policy=tx), Session(policy=rx)


def sender(master: bytes) -> Any:
    return speedups.GcmSender(*gcm_session_keys(master))


def rtp_packet(seq: int, ssrc: int, payload: bytes, csrcs: int = 0, ext: bytes = b"",
               pt: int = 111) -> bytes:
    b0 = 0x80 | (0x10 if ext else 0) | csrcs
    header = struct.pack("!BBHII", b0, pt, seq, seq * 960 & 0xFFFFFFFF, ssrc)
    header += b"".join(struct.pack("!I", 0xC0000000 + i) for i in range(csrcs))
    return header + ext + payload


# --- KDF ---------------------------------------------------------------------------------


def aead_iv(salt: bytes, ssrc: int, index: int) -> bytes:
    block = struct.pack("!HIIH", 0, ssrc, index >> 16, index & 0xFFFF)
    return bytes(a ^ b for a, b in zip(block, salt, strict=True))


@given(master=st.binary(min_size=28, max_size=28), seq=st.integers(0, 0xFFFF),
       ssrc=st.integers(0, 0xFFFFFFFF), payload=st.binary(max_size=64))
def test_kdf_session_keys_decrypt_what_libsrtp_protects(master: bytes, seq: int, ssrc: int,
                                                        payload: bytes) -> None:
    """Independent of GcmSender: the derived session key and salt open libsrtp's packet with
    plain AES-GCM (RFC 7714 §8.1 IV, header as AAD)."""
    tx, _ = libsrtp_pair(master)
    packet = rtp_packet(seq, ssrc, payload)
    protected = tx.protect(packet)
    key, salt = gcm_session_keys(master)
    assert len(key) == 16 and len(salt) == 12
    assert AESGCM(key).decrypt(aead_iv(salt, ssrc, seq), protected[12:], packet[:12]) == payload


def test_kdf_salt_is_left_aligned_in_the_112_bit_field() -> None:
    """How libsrtp places the 96-bit master salt (found empirically): high bits, two zero
    bytes after it. Right-aligning it (two zero bytes first) gives keys that do not open."""
    master = bytes(range(1, 29))
    tx, _ = libsrtp_pair(master)
    packet = rtp_packet(7, 0x11223344, b"payload")
    protected = tx.protect(packet)
    key, salt = master[:16], master[16:]
    wrong = (derive(key, b"\x00\x00" + salt, LABEL_RTP_ENCRYPTION, 16),
             derive(key, b"\x00\x00" + salt, LABEL_RTP_SALT, 12))
    assert wrong != gcm_session_keys(master)
    with pytest.raises(InvalidTag):
        AESGCM(wrong[0]).decrypt(aead_iv(wrong[1], 0x11223344, 7), protected[12:], packet[:12])
    right_key, right_salt = gcm_session_keys(master)
    iv = aead_iv(right_salt, 0x11223344, 7)
    assert AESGCM(right_key).decrypt(iv, protected[12:], packet[:12]) == b"payload"


def test_kdf_rfc3711_appendix_b3_vector() -> None:
    """RFC 3711 Appendix B.3 (AES-CM PRF, 14-byte master salt)."""
    key = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
    salt = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
    assert derive(key, salt, 0, 16).hex().upper() == "C61E7A93744F39EE10734AFE3FF7A087"
    assert derive(key, salt, 2, 14).hex().upper() == "30CBBC08863D8C85D49DB34A9AE1"


@pytest.mark.parametrize(("master", "message"), [
    (bytes(27), "AEAD_AES_128_GCM master key + salt must be 28 bytes, got 27"),
    (bytes(30), "AEAD_AES_128_GCM master key + salt must be 28 bytes, got 30"),
])
def test_kdf_rejects_wrong_lengths(master: bytes, message: str) -> None:
    with pytest.raises(ValueError) as info:
        gcm_session_keys(master)
    assert str(info.value) == message


def test_derive_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="master key must be 16, 24 or 32 bytes, got 15"):
        derive(bytes(15), bytes(12), 0, 16)
    with pytest.raises(ValueError, match="master salt must be 12 or 14 bytes, got 13"):
        derive(bytes(16), bytes(13), 0, 16)
    with pytest.raises(ValueError, match="label must be 0..255, got 256"):
        derive(bytes(16), bytes(12), 256, 16)


# --- GcmSender against libsrtp -----------------------------------------------------------



@st.composite
def extension_blocks(draw: st.DrawFn) -> bytes:
    """RFC 8285 §4.2 one-byte form / §4.3 two-byte form / another profile: the contents are
    opaque to SRTP, only the length counts (RFC 3550 §5.3.1)."""
    profile = draw(st.sampled_from([0xBEDE, 0x1000, 0x100F, 0x1234]))
    words = draw(st.integers(0, 12))
    return struct.pack("!HH", profile, words) + draw(st.binary(min_size=4 * words,
                                                               max_size=4 * words))


extensions = st.one_of(st.just(b""), extension_blocks())
shapes = st.tuples(st.integers(0, 15), extensions, st.integers(0, 1200), st.integers(0, 127))
# Steps: ("next", ssrc slot, gap, drop) sends a new packet `gap` indexes ahead (large gaps
# wrap the 16-bit seq); ("resend", ssrc slot, back) repeats one of the recent packets.
next_steps = st.tuples(st.just("next"), st.integers(0, 2),
                       st.one_of(st.integers(1, 3), st.integers(8000, 16000)), st.booleans())
resend_steps = st.tuples(st.just("resend"), st.integers(0, 2), st.integers(0, 40), st.booleans())
steps = st.lists(st.one_of(next_steps, next_steps, next_steps, resend_steps), min_size=40,
                 max_size=150)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(master=st.binary(min_size=28, max_size=28), shape=shapes, script=steps,
       starts=st.lists(st.one_of(st.integers(65525, 0xFFFF), st.integers(0, 0xFFFF)),
                       min_size=3, max_size=3),
       payload_seed=st.binary(min_size=32, max_size=32))
def test_gcm_sender_matches_libsrtp(master: bytes, shape: tuple[int, bytes, int, int],
                                    script: list[tuple[str, int, int, bool]], starts: list[int],
                                    payload_seed: bytes) -> None:
    csrcs, ext, size, pt = shape
    ours = sender(master)
    tx, rx = libsrtp_pair(master)
    ssrcs = [0x1000 + 7 * i for i in range(3)]
    highest = [-1, -1, -1]  # highest packet index sent per SSRC slot
    sent: list[list[int]] = [[], [], []]  # packet indexes, in send order
    delivered: list[set[int]] = [set(), set(), set()]
    dropped_last = [False, False, False]
    for kind, slot, amount, flag in script:
        if kind == "next":
            first = highest[slot] < 0
            index = starts[slot] if first else highest[slot] + amount
            # The receiver sees each SSRC's first packet (it starts at ROC 0) and never two
            # originals lost in a row: its ROC estimate (RFC 3711 §3.3.1) needs less than
            # 2^15 between the packets it sees.
            drop = flag and not dropped_last[slot] and not first
            dropped_last[slot] = drop
            highest[slot] = index
            sent[slot].append(index)
        else:
            recent = [i for i in sent[slot][-40:] if highest[slot] - i < WINDOW - 24]
            if not recent:
                continue
            index = recent[-1 - amount % len(recent)]
            drop = flag
            if index >> 16 != highest[slot] >> 16:
                event("retransmission from before the last wrap")
        seq = index & 0xFFFF
        payload = (payload_seed * (size // 32 + 1))[:size]
        packet = rtp_packet(seq, ssrcs[slot], payload, csrcs, ext, pt)
        expected = tx.protect(packet)
        assert ours.protect(packet) == expected, (kind, index)
        if drop:
            continue
        if index in delivered[slot]:
            with pytest.raises(SrtpError):  # a duplicate: libsrtp's replay check refuses it
                rx.unprotect(expected)
        else:
            assert rx.unprotect(expected) == packet
            delivered[slot].add(index)
    assert ours.ssrcs == sum(h >= 0 for h in highest)
    event(f"most wraps of one SSRC: {min(max(h >> 16 for h in highest), 3)}+")


def test_retransmission_just_after_a_wrap_keeps_the_old_roc() -> None:
    master = bytes(range(28))
    ours = sender(master)
    tx, rx = libsrtp_pair(master)
    # 65532 is lost, arrives as a NACK answer after the wrap; 65535 is sent twice.
    seen: set[int] = set()
    for seq in [65530, 65531, 65533, 65534, 65535, 0, 1, 65532, 2, 65535, 3]:
        packet = rtp_packet(seq, 0xABCDEF01, b"x" * 20)
        out = ours.protect(packet)
        assert out == tx.protect(packet)
        if seq in seen:
            with pytest.raises(SrtpError):
                rx.unprotect(out)
        else:
            assert rx.unprotect(out) == packet
        seen.add(seq)
    # The late 65532 was protected with ROC 0, the packets after the wrap with ROC 1.
    key, salt = gcm_session_keys(master)
    late = ours.protect(rtp_packet(65532, 0xABCDEF01, b"y"))
    iv = aead_iv(salt, 0xABCDEF01, 65532)
    assert AESGCM(key).decrypt(iv, late[12:], late[:12]) == b"y"
    after = ours.protect(rtp_packet(4, 0xABCDEF01, b"z"))
    iv = aead_iv(salt, 0xABCDEF01, (1 << 16) | 4)
    assert AESGCM(key).decrypt(iv, after[12:], after[:12]) == b"z"


def test_many_ssrcs_keep_their_own_roc() -> None:
    """More SSRCs than the initial table holds: the table grows, no state is lost."""
    master = os.urandom(28)
    ours = sender(master)
    tx, _ = libsrtp_pair(master)
    for seq in (65000, 65535, 0, 200, 30000, 60000, 10, 65535, 5):
        for ssrc in range(100):
            packet = rtp_packet(seq, ssrc, bytes([ssrc]) * 10)
            assert ours.protect(packet) == tx.protect(packet)
    assert ours.ssrcs == 100


def test_protect_rejects_malformed_packets() -> None:
    ours = sender(bytes(28))
    packet = rtp_packet(1, 2, b"payload", csrcs=2, ext=b"\xbe\xde\x00\x01abcd")
    header = 12 + 8 + 8
    for cut in range(header):
        with pytest.raises(ValueError, match="RTP packet malformed"):
            ours.protect(packet[:cut])
    assert len(ours.protect(packet[:header])) == header + 16
    with pytest.raises(ValueError, match="RTP packet malformed"):
        ours.protect(b"\x40" + packet[1:])  # version 1
    assert ours.packets == 1


def test_srtp_pair_protect_raises_srtp_error_like_pylibsrtp(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBBUB_NO_SPEEDUPS", raising=False)
    pair = SrtpPair(SrtpKeys(GCM, rx_key=bytes(28), tx_key=bytes(28)))
    assert pair.gcm is not None
    with pytest.raises(SrtpError, match="RTP packet malformed"):
        pair.protect(b"\x80" * 11)
    with pytest.raises(TypeError, match="error must be an exception class"):
        speedups.GcmSender(bytes(16), bytes(12), error=42)


def test_gcm_sender_rejects_wrong_key_sizes() -> None:
    with pytest.raises(ValueError, match="16-byte session key and a 12-byte session salt, "
                                         "got 15 and 12 bytes"):
        speedups.GcmSender(bytes(15), bytes(12))
    with pytest.raises(ValueError, match="got 16 and 14 bytes"):
        speedups.GcmSender(bytes(16), bytes(14))


# --- SrtpPair wiring ---------------------------------------------------------------------


def test_srtp_pair_uses_gcm_sender_for_gcm_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBBUB_NO_SPEEDUPS", raising=False)
    gcm = SrtpPair(SrtpKeys(GCM, rx_key=bytes(28), tx_key=bytes(range(28))))
    assert gcm.gcm is not None
    assert gcm.tx_protect_fn == speedups.GCM_PROTECT_FN and gcm.tx_ctx == gcm.gcm.address
    cm = SrtpPair(SrtpKeys("SRTP_PROFILE_AES128_CM_SHA1_80", rx_key=bytes(30),
                           tx_key=bytes(30)))
    assert cm.gcm is None and cm.tx_protect_fn == srtp_module.SRTP_PROTECT_FN
    monkeypatch.setenv("HUBBUB_NO_SPEEDUPS", "1")
    pure = SrtpPair(SrtpKeys(GCM, rx_key=bytes(28), tx_key=bytes(range(28))))
    assert pure.gcm is None and pure.tx_protect_fn == srtp_module.SRTP_PROTECT_FN
    # Either way the bytes are libsrtp's.
    packet = rtp_packet(9, 5, b"same bytes")
    assert pure.protect(packet) == gcm.protect(packet)


@pytest.mark.parametrize("profile", [GCM, "SRTP_PROFILE_AES128_CM_SHA1_80"])
def test_all_c_and_python_senders_share_one_state(profile: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """SrtpPair.protect, PROTECT_FN + tx_pointer (the batch sender) and tx_protect_fn +
    tx_ctx (the fan-out Target) interleaved across a wrap: the peer decrypts all of them."""
    monkeypatch.delenv("HUBBUB_NO_SPEEDUPS", raising=False)
    n = 28 if profile == GCM else 30
    a, b = os.urandom(n), os.urandom(n)
    ours = SrtpPair(SrtpKeys(profile, rx_key=b, tx_key=a))
    peer = SrtpPair(SrtpKeys(profile, rx_key=a, tx_key=b))
    assert PROTECT_FN and ours.tx_pointer
    rx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx_sock.bind(("127.0.0.1", 0))
    rx_sock.settimeout(2)
    addr = rx_sock.getsockname()
    sockaddr = socket.inet_aton(addr[0])
    sa = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(addr[1]), sockaddr)
    try:
        for i, seq in enumerate([65533, 65534, 65535, 0, 1, 2, 3]):
            packet = rtp_packet(seq, 0x5EED, bytes([i]) * 30)
            if i % 2:
                out = ours.protect(packet)
            else:
                fn, ctx = ((PROTECT_FN, ours.tx_pointer) if i % 4 == 0
                           else (ours.tx_protect_fn, ours.tx_ctx))
                sent, errors, left = speedups.protect_and_send(
                    tx_sock.fileno(), fn, [(ctx, packet, sa, ours, addr)])
                assert (sent, errors, left) == (1, 0, [])
                out = rx_sock.recv(2048)
            assert peer.unprotect(out) == packet
    finally:
        rx_sock.close()
        tx_sock.close()


def test_longer_keying_material_uses_its_first_28_bytes_like_libsrtp(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUBBUB_NO_SPEEDUPS", raising=False)
    master = bytes(range(50, 80))  # 30 bytes
    pair = SrtpPair(SrtpKeys(GCM, rx_key=bytes(28), tx_key=master))
    assert pair.gcm is not None
    tx, _ = libsrtp_pair(master)
    packet = rtp_packet(3, 4, b"abc")
    assert pair.protect(packet) == tx.protect(packet)


def test_ssrc_table_forgets_the_least_recently_used_beyond_4096() -> None:
    master = os.urandom(28)
    ours = sender(master)
    for ssrc in range(4096):
        ours.protect(rtp_packet(40000, ssrc, b""))
    assert ours.ssrcs == 4096
    # SSRC 0 is used again: a new SSRC evicts 1, the least recently used, which then starts
    # again at index 0 (seq 5 is ROC 0; with its old state, 40000 -> 5 would be ROC 1).
    ours.protect(rtp_packet(40001, 0, b""))
    ours.protect(rtp_packet(0, 4096, b"new"))
    assert ours.ssrcs == 4096
    fresh, _ = libsrtp_pair(master)
    packet = rtp_packet(5, 1, b"after eviction")
    assert ours.protect(packet) == fresh.protect(packet)
    kept, _ = libsrtp_pair(master)
    kept.protect(rtp_packet(40001, 0, b""))
    packet = rtp_packet(2, 0, b"wrapped")
    assert ours.protect(packet) == kept.protect(packet)  # SSRC 0 kept its state: ROC 1


def test_dispatch_fn_takes_a_gcm_sender_or_a_protector() -> None:
    """DISPATCH_FN(ctx) with ctx a GcmSender's address protects like GcmSender.protect; with
    a Protector around libsrtp's srtp_protect it protects like pylibsrtp."""
    master = os.urandom(28)
    rx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx_sock, tx_sock:
        rx_sock.bind(("127.0.0.1", 0))
        rx_sock.settimeout(2)
        addr = rx_sock.getsockname()
        sa = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(addr[1]),
                         socket.inet_aton(addr[0]))
        ours, reference = sender(master), sender(master)
        tx, _ = libsrtp_pair(master)
        reference_tx, _ = libsrtp_pair(master)
        wrapped = speedups.Protector(srtp_module.SRTP_PROTECT_FN,
                                     srtp_module._context_pointer(tx), tx)
        packet = rtp_packet(77, 0xFEED, b"dispatched")
        for ctx, keep, expected in ((ours.address, ours, reference.protect(packet)),
                                    (wrapped.address, wrapped, reference_tx.protect(packet))):
            assert speedups.protect_and_send(tx_sock.fileno(), speedups.DISPATCH_FN,
                                             [(ctx, packet, sa, keep, addr)])[:2] == (1, 0)
            assert rx_sock.recv(2048) == expected
    with pytest.raises(ValueError, match="protect_fn and ctx must not be NULL"):
        speedups.Protector(0, 1, None)
