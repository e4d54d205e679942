"""One credential, two shapes: what a client outside the Director flow presents.

WHIP, WHEP and RTMP take either a Director JWT or a long-lived token's secret where the SDK
would first trade the one for the other (PROTOCOL.md "Other ingest and playback URLs"). Both
end as the Grant a WebSocket session is bound to, under the rules the Director applies before
it issues a JWT: expiry, revocation, the stream patterns, allowedOrigins and
allowedIpAddresses.
"""

from __future__ import annotations

import time

from hubbub.control.auth import patterns
from hubbub.control.auth.jwts import PUBLISH, SUBSCRIBE, Grant, TokenRejected
from hubbub.control.auth.service import Auth

OPEN_TOKEN_ID = "open"
"""`token_id` of a subscribe Grant that needed no token (`--open-viewing`)."""


def is_jwt(token: str) -> bool:
    return token.count(".") == 2  # a JWS compact serialization (RFC 7515 §7.1)


async def grant_for(
    auth: Auth,
    kind: str,
    token: str,
    stream: str,
    client_ip: str | None,
    origin: str | None = None,
    check_origin: bool = True,
) -> Grant:
    """The Grant `token` gives for `stream`; TokenRejected (401/403) with the reason if none.

    `check_origin=False` for encoders (RTMP), which are not web pages and send no Origin.
    """
    if not is_jwt(token):
        return await long_lived_grant(auth, kind, token, stream, client_ip, origin,
                                      check_origin)
    try:
        grant = auth.verify(token, kind)
        if grant.stream != stream:
            raise TokenRejected(403, f"Forbidden: stream not allowed by token: {stream!r} "
                                f"(the token is for {grant.stream!r})")
        _check_where_from(grant.origins, grant.ips, client_ip, origin, check_origin)
    except TokenRejected as exc:
        auth.refusals.count(exc.message)
        raise
    return grant


async def long_lived_grant(
    auth: Auth,
    kind: str,
    secret: str,
    stream: str,
    client_ip: str | None,
    origin: str | None = None,
    check_origin: bool = True,
) -> Grant:
    """The Grant a long-lived token's `secret` gives for `stream`, as the Director checks it
    before it issues a JWT (and WHIP, WHEP and RTMP when handed the secret itself): known,
    not expired or revoked (TokenRejected 401), covering the stream, origin and address
    (403). Its last use is noted."""
    record = await auth.store.find_by_secret(kind, secret)
    try:
        if record is None:
            raise TokenRejected(401, "Unauthorized: Invalid token")
        refusal = record.refusal(time.time())
        if refusal is not None:
            # A revoked or expired token gets no new JWTs; those already out run to `exp`.
            raise TokenRejected(401, f"Unauthorized: {refusal}")
        if not record.covers(stream):
            raise TokenRejected(403, f"Forbidden: token does not cover stream {stream!r}")
        spec = record.spec
        _check_where_from(spec.allowed_origins, spec.allowed_ips, client_ip, origin,
                          check_origin)
    except TokenRejected as exc:
        auth.refusals.count(exc.message)
        raise
    await auth.store.touch(record.id)
    publish = kind == PUBLISH
    return Grant(kind=kind, stream=stream, token_id=str(record.id),
                 multisource=publish and spec.multisource, record=publish and spec.record,
                 origins=spec.allowed_origins, ips=spec.allowed_ips)


def _check_where_from(origins: list[str], ips: list[str], client_ip: str | None,
                      origin: str | None, check_origin: bool) -> None:
    if check_origin and not patterns.origin_allowed(origins, origin):
        raise TokenRejected(403, "Forbidden: origin not allowed by token")
    if not patterns.ip_allowed(ips, client_ip):
        raise TokenRejected(403, "Forbidden: client address not allowed by token")


def open_view_grant(stream: str) -> Grant:
    """A subscribe Grant for a stream under `--open-viewing`: no token was needed."""
    return Grant(kind=SUBSCRIBE, stream=stream, token_id=OPEN_TOKEN_ID)
