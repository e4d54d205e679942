"""Refusals: credentials refused, counted by reason for `/metrics` (control/metrics.py).

A refusal is rare next to media (one per socket or HTTP request at most), so a plain dict of
ints is enough; the metrics collector reads it at scrape time. Reasons are a small fixed set
(a Prometheus label must not carry stream names or token text), taken from the refusal's
message: every message jwts.py, credentials.py and gate.py produce maps to one of them.
"""

from __future__ import annotations

# (substring of the message, reason), first match wins.
_CAUSES: tuple[tuple[str, str], ...] = (
    # Messages that quote client text (a stream name, a header value) come first.
    ("stream not allowed", "stream_not_allowed"),
    ("does not cover stream", "stream_not_allowed"),
    ("algorithm", "bad_signature"),
    ("token required", "missing"),
    ("verifies no tokens", "missing"),
    ("malformed", "malformed"),
    ("too long", "malformed"),
    ("expired", "expired"),
    ("not yet valid", "not_yet_valid"),
    ("revoked", "revoked"),
    ("Invalid token", "unknown_token"),
    ("signature", "bad_signature"),
    ("unknown key", "unknown_key"),
    ("token is for", "wrong_kind"),
    ("token type", "wrong_kind"),
    ("origin", "origin_not_allowed"),
    ("address", "address_not_allowed"),
)

REASONS = tuple(dict.fromkeys(reason for _, reason in _CAUSES)) + ("invalid",)
"""Every reason label, so each series exists (at 0) from the first scrape."""


def reason_of(message: str) -> str:
    """The reason label of a refusal message ("invalid" for anything else)."""
    for fragment, reason in _CAUSES:
        if fragment in message:
            return reason
    return "invalid"


class Refusals:
    """Credential refusals of one node by reason; only grows."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(REASONS, 0)

    def count(self, message: str) -> None:
        reason = reason_of(message)
        self.counts[reason] += 1
