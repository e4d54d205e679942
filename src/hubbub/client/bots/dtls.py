"""DTLS-SRTP in the client role (RFC 5763 §5): bots offer `a=setup:active` and speak first.

The implementation is shared with the server in `hubbub.media.dtls`.
"""

from __future__ import annotations

from hubbub.media.dtls import DtlsClient, DtlsError

__all__ = ["DtlsClient", "DtlsError"]
