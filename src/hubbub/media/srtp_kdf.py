"""SRTP session key derivation (RFC 3711 §4.3.1) with the AES-CM PRF (§4.3.3), for the
AEAD_AES_128_GCM sender (RFC 7714 §11), key_derivation_rate 0.

RFC 7714 §11 keeps the 112-bit KDF of RFC 3711 but with a 96-bit master salt. The salt sits
in the high 96 bits of the 112-bit field and the low 16 bits are zero: libsrtp pads the
12-byte salt with two zero bytes, and tests/media/test_srtp_gcm.py checks this against
pylibsrtp (the other alignment does not decrypt).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["LABEL_RTP_ENCRYPTION", "LABEL_RTP_SALT", "derive", "gcm_session_keys"]

LABEL_RTP_ENCRYPTION = 0x00  # RFC 3711 §4.3.1: k_e
LABEL_RTP_SALT = 0x02  # RFC 3711 §4.3.1: k_s


def derive(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """`length` bytes of the session key for `label` (RFC 3711 §4.3.1, r = 0).

    x = key_id XOR master_salt, key_id = label || 48 zero bits (the index DIV kdr with
    kdr = 0); the PRF is AES-CM keyed with the master key, counter block x * 2^16 + i
    (§4.3.3)."""
    if len(master_key) not in (16, 24, 32):
        raise ValueError(f"SRTP master key must be 16, 24 or 32 bytes, got {len(master_key)}")
    if len(master_salt) not in (12, 14):
        raise ValueError(f"SRTP master salt must be 12 or 14 bytes, got {len(master_salt)}")
    if not 0 <= label <= 0xFF:
        raise ValueError(f"SRTP KDF label must be 0..255, got {label}")
    x = bytearray(master_salt.ljust(14, b"\x00"))
    x[7] ^= label  # key_id is right-aligned in the 112-bit field: label is byte 7
    counter = bytes(x) + b"\x00\x00"
    encryptor = Cipher(algorithms.AES(master_key), modes.CTR(counter)).encryptor()
    return encryptor.update(bytes(length)) + encryptor.finalize()


def gcm_session_keys(master: bytes) -> tuple[bytes, bytes]:
    """(session key, session salt) of AEAD_AES_128_GCM for the DTLS-SRTP keying material of
    one direction: 16-byte master key || 12-byte master salt (RFC 7714 §12)."""
    if len(master) != 28:
        raise ValueError(f"AEAD_AES_128_GCM master key + salt must be 28 bytes, got {len(master)}")
    key, salt = master[:16], master[16:]
    return derive(key, salt, LABEL_RTP_ENCRYPTION, 16), derive(key, salt, LABEL_RTP_SALT, 12)
