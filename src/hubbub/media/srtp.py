"""SRTP/SRTCP sessions (RFC 3711, RFC 7714) on pylibsrtp, keyed from DTLS-SRTP.

Outgoing RTP of AEAD_AES_128_GCM transports goes through hubbub._speedups.GcmSender (our
own RFC 7714 protect on OpenSSL) when the extension was built with it and
HUBBUB_NO_SPEEDUPS is not set: both the C fan-out and `SrtpPair.protect`, so every packet
of an SSRC shares one rollover counter. SRTCP, all unprotect and the other profiles stay on
pylibsrtp.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

from hubbub.media.dtls import SrtpKeys
from hubbub.media.srtp_kdf import gcm_session_keys

__all__ = ["GCM_AVAILABLE", "PROTECT_FN", "SrtpError", "SrtpPair", "TAG_LENGTH"]

_speedups: ModuleType | None
try:  # optional C module (src/hubbub/_speedups.c)
    from hubbub import _speedups
except ImportError:
    _speedups = None

GCM_PROFILE = "SRTP_PROFILE_AEAD_AES_128_GCM"
GCM_MASTER_LENGTH = 28  # RFC 7714 §12: 16-byte master key + 12-byte master salt


def _srtp_protect_fn() -> int:
    """Address of libsrtp's srtp_protect inside pylibsrtp's cffi module (0 if unavailable), for
    the C senders; no second copy of libsrtp is linked."""
    try:
        from pylibsrtp._binding import ffi, lib

        return int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect")))
    except (ImportError, AttributeError, TypeError):
        return 0


SRTP_PROTECT_FN = _srtp_protect_fn()
GCM_AVAILABLE = _speedups is not None and bool(getattr(_speedups, "GCM", False))
"""True when the C module has its own AEAD_AES_128_GCM sender (built with OpenSSL headers)."""
# PROTECT_FN(tx_pointer, rtp, &len) protects one packet of that SrtpPair. With GcmSender
# available some transports are not on libsrtp, so PROTECT_FN is then a dispatcher and
# tx_pointer a Protector holding the real (function, context) pair.
PROTECT_FN = (int(_speedups.DISPATCH_FN) if GCM_AVAILABLE and SRTP_PROTECT_FN and
              _speedups is not None else SRTP_PROTECT_FN)
# RFC 3711 §4.2 / RFC 7714 §7.1: authentication tag appended by protect, per profile.
TAG_LENGTH = {"SRTP_PROFILE_AES128_CM_SHA1_80": 10, "SRTP_PROFILE_AES128_CM_SHA1_32": 4,
              "SRTP_PROFILE_AEAD_AES_128_GCM": 16, "SRTP_PROFILE_AEAD_AES_256_GCM": 16}


class SrtpPair:
    """The inbound and outbound SRTP contexts of one transport.

    For the C senders: `tx_protect_fn(tx_ctx, rtp, &len)` protects outgoing RTP directly
    (libsrtp's srtp_protect + srtp_t, or gcm_protect + GcmSender), and `PROTECT_FN(tx_pointer,
    ...)` does the same through the module-wide pointer; all valid while this object lives."""

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
        self.tx_protect_fn = SRTP_PROTECT_FN
        self.tx_ctx = _context_pointer(self._tx)
        # Read per pair, like rtp.speedups(): HUBBUB_NO_SPEEDUPS=1 keeps libsrtp for all.
        self.gcm: Any = None
        if (keys.profile == GCM_PROFILE and GCM_AVAILABLE and _speedups is not None
                and len(keys.tx_key) >= GCM_MASTER_LENGTH
                and not os.environ.get("HUBBUB_NO_SPEEDUPS")):
            # libsrtp reads the first 16 + 12 bytes of a longer key too.
            master = keys.tx_key[:GCM_MASTER_LENGTH]
            # protect() fails like pylibsrtp's: transport.send_rtp counts SrtpError.
            self.gcm = _speedups.GcmSender(*gcm_session_keys(master), error=SrtpError)
            self.protect = self.gcm.protect
            self.tx_protect_fn = int(_speedups.GCM_PROTECT_FN)
            self.tx_ctx = self.gcm.address
        self._protector: Any = None
        self.tx_pointer = self.tx_ctx
        if PROTECT_FN != SRTP_PROTECT_FN and _speedups is not None and self.gcm is None:
            # A GcmSender is its own Protector; libsrtp's srtp_t needs one around it.
            if self.tx_ctx and self.tx_protect_fn:
                self._protector = _speedups.Protector(self.tx_protect_fn, self.tx_ctx,
                                                     self._tx)
                self.tx_pointer = self._protector.address
            else:
                self.tx_pointer = 0


def _context_pointer(session: Session) -> int:
    try:
        from pylibsrtp._binding import ffi

        return int(ffi.cast("uintptr_t", session._srtp[0]))
    except (ImportError, AttributeError, TypeError):
        return 0
