"""The Director's JWTs: short-lived, bound to one stream, ES256-signed (RFC 7519, RFC 8725).

Claims: the SDK reads `millicast.streamName` (and `millicast.record` when publishing) without
verifying; hubbub's own rights sit in `hubbub` and are what the WebSocket gate enforces.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from hubbub.control.auth.keys import ALGORITHM, SigningKey, VerifyingKey

PUBLISH = "publish"
SUBSCRIBE = "subscribe"

# RFC 8725 §3.12: each kind of JWT gets its own audience; §3.11: and its own explicit `typ`.
AUDIENCE = {PUBLISH: "hubbub-publish", SUBSCRIBE: "hubbub-subscribe"}
TYPE = {PUBLISH: "hubbub-publish+jwt", SUBSCRIBE: "hubbub-subscribe+jwt"}
_KIND_OF_AUDIENCE = {aud: kind for kind, aud in AUDIENCE.items()}

MAX_JWT_LENGTH = 8192
UNKNOWN_KEY = "Unauthorized: token signed by an unknown key"
REQUIRED_CLAIMS = ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]


@dataclass(frozen=True)
class Grant:
    """What one JWT lets its holder do."""

    kind: str                                   # PUBLISH | SUBSCRIBE
    stream: str                                 # the one stream name it is bound to
    token_id: str                               # `sub`: the long-lived token ("open" if none)
    multisource: bool = False                   # publish: a sourceId may be given
    record: bool = False
    origins: list[str] = field(default_factory=list)   # allowedOrigins of the token
    ips: list[str] = field(default_factory=list)       # allowedIpAddresses of the token
    expires_at: float = 0.0


class TokenRejected(Exception):
    """A credential refused; `status` is 401 (not authenticated) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def issue(
    key: SigningKey, issuer: str, grant: Grant, lifetime: float, now: float | None = None
) -> str:
    now = time.time() if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": AUDIENCE[grant.kind],
        "sub": grant.token_id,
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now + lifetime),
        "jti": secrets.token_urlsafe(12),
        "millicast": {"streamName": grant.stream, "record": grant.record},
        "hubbub": {
            "role": grant.kind,
            "stream": grant.stream,
            "multisource": grant.multisource,
            "origins": grant.origins,
            "ips": grant.ips,
        },
    }
    headers = {"typ": TYPE[grant.kind], "kid": key.kid}
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers=headers)


def verify(
    token: str, keys: Sequence[VerifyingKey], issuer: str, kind: str, leeway: float
) -> Grant:
    """The Grant of a valid JWT of `kind`; TokenRejected with the exact reason otherwise."""
    if len(token) > MAX_JWT_LENGTH:
        raise TokenRejected(401, "Unauthorized: token too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise TokenRejected(401, "Unauthorized: malformed token") from None
    # RFC 8725 §3.1: the algorithm comes from our allow-list, never from the token.
    if header.get("alg") != ALGORITHM:
        raise TokenRejected(
            401, f"Unauthorized: token algorithm {header.get('alg')!r} not allowed"
        )
    by_kid = {k.kid: k for k in keys}
    kid = header.get("kid")
    key = by_kid.get(kid) if isinstance(kid, str) else (keys[0] if len(keys) == 1 else None)
    if key is None:
        raise TokenRejected(401, UNKNOWN_KEY)
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE[kind],
            issuer=issuer,
            leeway=leeway,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRejected(401, "Unauthorized: token expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenRejected(401, "Unauthorized: token not yet valid") from None
    except jwt.InvalidSignatureError:
        raise TokenRejected(401, "Unauthorized: invalid token signature") from None
    except jwt.InvalidAudienceError:
        # The signature was good (PyJWT checks it first): a real token of the other kind.
        other = jwt.decode(token, options={"verify_signature": False}).get("aud")
        what = _KIND_OF_AUDIENCE.get(other if isinstance(other, str) else "", "another use")
        raise TokenRejected(403, f"Forbidden: token is for {what}, not {kind}") from None
    except jwt.InvalidIssuerError:
        raise TokenRejected(401, "Unauthorized: token issuer not accepted") from None
    except jwt.MissingRequiredClaimError as exc:
        raise TokenRejected(401, f"Unauthorized: token lacks claim {exc.claim!r}") from None
    except jwt.InvalidTokenError as exc:
        raise TokenRejected(401, f"Unauthorized: invalid token ({exc})") from None
    if header.get("typ") != TYPE[kind]:
        raise TokenRejected(401, f"Unauthorized: token type must be {TYPE[kind]!r}")
    return _grant(claims, kind)


def _grant(claims: dict[str, Any], kind: str) -> Grant:
    own = claims.get("hubbub")
    if not isinstance(own, dict) or own.get("role") != kind:
        raise TokenRejected(401, "Unauthorized: token lacks hubbub claims")
    stream = own.get("stream")
    origins = own.get("origins", [])
    ips = own.get("ips", [])
    if (
        not isinstance(stream, str)
        or not isinstance(origins, list)
        or not isinstance(ips, list)
        or not all(isinstance(v, str) for v in origins + ips)
    ):
        raise TokenRejected(401, "Unauthorized: token has malformed hubbub claims")
    millicast = claims.get("millicast")
    return Grant(
        kind=kind,
        stream=stream,
        token_id=str(claims["sub"]),
        multisource=own.get("multisource") is True,
        record=isinstance(millicast, dict) and millicast.get("record") is True,
        origins=origins,
        ips=ips,
        expires_at=float(claims["exp"]),
    )
