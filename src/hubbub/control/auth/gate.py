"""The WebSocket check: `?token=<jwt>` of the right kind, and the Origin and address it allows.

Refusals are sent after the handshake as a close frame, code 4401 (not authenticated) or 4403
(not allowed), with the reason: a browser sees neither the status nor a body of a refused
handshake, but it does see a close code and reason, and the SDK reconnects through the Director
on close.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubbub.control.auth import patterns
from hubbub.control.auth.jwts import PUBLISH, SUBSCRIBE, Grant, TokenRejected
from hubbub.control.auth.service import Auth

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403

ROLE_KIND = {"publish": PUBLISH, "view": SUBSCRIBE}


@dataclass(frozen=True)
class Refusal:
    code: int
    reason: str


def check(
    auth: Auth | None,
    role: str,
    token: str | None,
    origin: str | None,
    client_ip: str | None,
    allow_any_stream: bool,
) -> Grant | Refusal | None:
    """The Grant to bind the session to, None (development mode, no token) or a Refusal."""
    if not token:
        if allow_any_stream:
            return None
        return Refusal(CLOSE_UNAUTHORIZED, "Unauthorized: token required")
    if auth is None:
        return Refusal(CLOSE_UNAUTHORIZED, "Unauthorized: this node verifies no tokens")
    try:
        grant = auth.verify(token, ROLE_KIND[role])
    except TokenRejected as exc:
        code = CLOSE_FORBIDDEN if exc.status == 403 else CLOSE_UNAUTHORIZED
        return Refusal(code, exc.message)
    if not patterns.origin_allowed(grant.origins, origin):
        return Refusal(CLOSE_FORBIDDEN, "Forbidden: origin not allowed by token")
    if not patterns.ip_allowed(grant.ips, client_ip):
        return Refusal(CLOSE_FORBIDDEN, "Forbidden: client address not allowed by token")
    return grant
