"""SRTP/SRTCP sessions (RFC 3711, RFC 7714) on pylibsrtp, keyed from DTLS-SRTP."""

from __future__ import annotations

from pylibsrtp import Error as SrtpError
from pylibsrtp import Policy, Session

from hubbub.media.dtls import SrtpKeys

__all__ = ["SrtpError", "SrtpPair"]


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
