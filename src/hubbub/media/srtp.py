"""SRTP/SRTCP sessions (RFC 3711, RFC 7714) on pylibsrtp, keyed from DTLS-SRTP."""

from __future__ import annotations

from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

from hubbub.media.dtls import SrtpKeys

__all__ = ["PROTECT_FN", "SrtpError", "SrtpPair", "TAG_LENGTH"]


def _protect_fn() -> int:
    """Address of libsrtp's srtp_protect inside pylibsrtp's cffi module (0 if unavailable), for
    the C batch sender; no second copy of libsrtp is linked."""
    try:
        from pylibsrtp._binding import ffi, lib

        return int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))
    except (ImportError, AttributeError, TypeError):
        return 0


PROTECT_FN = _protect_fn()
# RFC 3711 §4.2 / RFC 7714 §7.1: authentication tag appended by protect, per profile.
TAG_LENGTH = {"SRTP_PROFILE_AES128_CM_SHA1_80": 10, "SRTP_PROFILE_AES128_CM_SHA1_32": 4,
              "SRTP_PROFILE_AEAD_AES_128_GCM": 16, "SRTP_PROFILE_AEAD_AES_256_GCM": 16}


class SrtpPair:
    """The inbound and outbound SRTP contexts of one transport."""

    def __init__(self, keys: SrtpKeys, replay_window: int = 1024) -> None:
        profile = getattr(Policy, keys.profile)
        rx = Policy(key=keys.rx_key, ssrc_type=Policy.SSRC_ANY_INBOUND, srtp_profile=profile)
        rx.window_size = replay_window
        tx = Policy(key=keys.tx_key, ssrc_type=Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile)
        tx.window_size = replay_window
        # We resend cached packets unchanged to answer NACKs (no RTX), so the outbound
        # context must accept a repeated index (libsrtp's allow_repeat_tx).
        tx.allow_repeat_tx = True
        self._rx = Session(policy=rx)
        self._tx = Session(policy=tx)
        self.unprotect = self._rx.unprotect
        self.unprotect_rtcp = self._rx.unprotect_rtcp
        self.protect = self._tx.protect
        self.protect_rtcp = self._tx.protect_rtcp
        self.tag_length = TAG_LENGTH.get(keys.profile, 16)
        # The outbound srtp_t for the C batch sender; valid while this object is alive.
        self.tx_pointer = _context_pointer(self._tx)


def _context_pointer(session: Session) -> int:
    try:
        from pylibsrtp._binding import ffi

        return int(ffi.cast("uintptr_t", session._srtp[0]))
    except (ImportError, AttributeError, TypeError):
        return 0
