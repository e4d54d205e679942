"""The signature of a delivery (docs/WEBHOOKS.md "Verifying").

    X-Hubbub-Timestamp: <t>                    Unix seconds of this attempt (a decimal integer)
    X-Hubbub-Signature: sha256=<hex>           HMAC-SHA256(secret, f"{t}." + body), lower hex

The key is the webhook's secret as the text given at creation (its UTF-8 bytes). The time is
signed with the body so a captured request cannot be replayed later: receivers reject a
timestamp more than a few minutes from their clock. Each retry is signed afresh.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Hubbub-Signature"
TIMESTAMP_HEADER = "X-Hubbub-Timestamp"
EVENT_ID_HEADER = "X-Hubbub-Event-Id"
PREFIX = "sha256="


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return PREFIX + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """The receiver's check (also used by the tests): constant-time compare."""
    try:
        expected = signature(secret, int(timestamp), body)
    except ValueError:
        return False
    return hmac.compare_digest(expected, header)
