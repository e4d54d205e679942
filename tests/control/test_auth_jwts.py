"""Director JWTs: claims the SDK needs, and every way a forged or stale one is refused."""

from __future__ import annotations

import base64
import json
import time

import jwt as pyjwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubbub.control.auth.jwts import (
    PUBLISH,
    SUBSCRIBE,
    Grant,
    TokenRejected,
    issue,
    verify,
)
from hubbub.control.auth.keys import SigningKey, load_or_create

KEY = SigningKey.generate()
OTHER = SigningKey.generate()
GRANT = Grant(PUBLISH, "demo", "7", multisource=True, record=True,
              origins=["https://a.example"], ips=["10.0.0.0/8"])


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict[str, object], dict[str, object], str]:
    header, payload, sig = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        sig,
    )


def refused(token: str, kind: str = PUBLISH, keys: list[SigningKey] | None = None) -> TokenRejected:
    with pytest.raises(TokenRejected) as info:
        verify(token, keys or [KEY], "hubbub", kind, 30)
    return info.value


def test_round_trip_and_the_claims_the_sdk_reads() -> None:
    token = issue(KEY, "hubbub", GRANT, 600)
    header, claims, _ = parts(token)
    assert header == {"alg": "ES256", "typ": "hubbub-publish+jwt", "kid": KEY.kid}
    assert claims["millicast"] == {"streamName": "demo", "record": True}
    assert claims["aud"] == "hubbub-publish" and claims["sub"] == "7" and claims["iss"] == "hubbub"
    assert claims["exp"] == claims["iat"] + 600 == claims["nbf"] + 600  # type: ignore[operator]
    grant = verify(token, [KEY], "hubbub", PUBLISH, 30)
    assert grant == Grant(PUBLISH, "demo", "7", True, True, ["https://a.example"],
                          ["10.0.0.0/8"], float(claims["exp"]))  # type: ignore[arg-type,unused-ignore]
    assert issue(KEY, "hubbub", GRANT, 600) != token  # fresh jti each time


def test_expired_and_not_yet_valid_with_leeway() -> None:
    stale = issue(KEY, "hubbub", GRANT, 60, now=time.time() - 120)
    assert refused(stale).message == "Unauthorized: token expired"
    assert refused(stale).status == 401
    # 20 s past exp is inside the 30 s leeway.
    assert verify(issue(KEY, "hubbub", GRANT, 60, now=time.time() - 80), [KEY], "hubbub",
                  PUBLISH, 30).stream == "demo"
    future = issue(KEY, "hubbub", GRANT, 600, now=time.time() + 300)
    assert refused(future).message == "Unauthorized: token not yet valid"


def test_tampered_payload_fails_the_signature() -> None:
    token = issue(KEY, "hubbub", GRANT, 600)
    header, claims, sig = token.split(".")
    forged = parts(token)[1]
    forged["hubbub"]["stream"] = "other"  # type: ignore[index]
    assert refused(f"{header}.{b64(forged)}.{sig}").message == (
        "Unauthorized: invalid token signature"
    )
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    assert refused(f"{header}.{claims}.{flipped}").message == (
        "Unauthorized: invalid token signature"
    )


def test_alg_none_and_hmac_confusion_are_refused() -> None:
    _, claims, _ = parts(issue(KEY, "hubbub", GRANT, 600))
    unsigned = f"{b64({'alg': 'none', 'typ': 'hubbub-publish+jwt'})}.{b64(claims)}."
    assert refused(unsigned).message == "Unauthorized: token algorithm 'none' not allowed"
    # HS256 keyed with the public key bytes: the classic algorithm-confusion attack.
    hs = pyjwt.encode(claims, "k" * 32, algorithm="HS256",
                      headers={"typ": "hubbub-publish+jwt", "kid": KEY.kid})
    assert refused(hs).message == "Unauthorized: token algorithm 'HS256' not allowed"


def test_wrong_key() -> None:
    ours_kid = pyjwt.encode(parts(issue(KEY, "hubbub", GRANT, 600))[1], OTHER.private_key,
                            algorithm="ES256", headers={"typ": "hubbub-publish+jwt",
                                                        "kid": KEY.kid})
    assert refused(ours_kid).message == "Unauthorized: invalid token signature"
    theirs = issue(OTHER, "hubbub", GRANT, 600)
    assert refused(theirs).message == "Unauthorized: token signed by an unknown key"


def test_audience_is_per_kind() -> None:
    sub = issue(KEY, "hubbub", Grant(SUBSCRIBE, "demo", "3"), 600)
    rejected = refused(sub, PUBLISH)
    assert (rejected.status, rejected.message) == (
        403, "Forbidden: token is for subscribe, not publish"
    )
    assert verify(sub, [KEY], "hubbub", SUBSCRIBE, 30).kind == SUBSCRIBE


def test_issuer_type_and_required_claims() -> None:
    other_iss = issue(KEY, "elsewhere", GRANT, 600)
    assert refused(other_iss).message == "Unauthorized: token issuer not accepted"
    _, claims, _ = parts(issue(KEY, "hubbub", GRANT, 600))
    wrong_typ = pyjwt.encode(claims, KEY.private_key, algorithm="ES256",
                             headers={"typ": "JWT", "kid": KEY.kid})
    assert refused(wrong_typ).message == "Unauthorized: token type must be 'hubbub-publish+jwt'"
    for claim in ("exp", "nbf", "iat", "jti", "sub"):
        partial = {k: v for k, v in claims.items() if k != claim}
        token = pyjwt.encode(partial, KEY.private_key, algorithm="ES256",
                             headers={"typ": "hubbub-publish+jwt", "kid": KEY.kid})
        assert refused(token).message == f"Unauthorized: token lacks claim {claim!r}"
    no_hubbub = {k: v for k, v in claims.items() if k != "hubbub"}
    token = pyjwt.encode(no_hubbub, KEY.private_key, algorithm="ES256",
                         headers={"typ": "hubbub-publish+jwt", "kid": KEY.kid})
    assert refused(token).message == "Unauthorized: token lacks hubbub claims"


@given(st.text(max_size=300))
def test_garbage_is_refused_not_crashed(text: str) -> None:
    with pytest.raises(TokenRejected) as info:
        verify(text, [KEY], "hubbub", PUBLISH, 30)
    assert info.value.status == 401
    assert info.value.message.startswith("Unauthorized: ")


def test_oversize_token() -> None:
    assert refused("a" * 9000).message == "Unauthorized: token too long"


def test_signing_key_persists_and_jwks_verifies(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path))
    first, created = load_or_create(path)
    again, created_again = load_or_create(path)
    assert created and not created_again and first.kid == again.kid
    assert (path / "jwt-signing-key.pem").stat().st_mode & 0o777 == 0o600
    jwk = first.jwks()["keys"][0]
    assert jwk["kty"] == "EC" and jwk["alg"] == "ES256" and "d" not in jwk
    public = pyjwt.PyJWK(jwk).key
    token = issue(again, "hubbub", GRANT, 600)
    claims = pyjwt.decode(token, public, algorithms=["ES256"], audience="hubbub-publish")
    assert claims["millicast"]["streamName"] == "demo"
