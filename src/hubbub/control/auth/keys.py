"""The node's JWT signing key: ES256 (P-256), generated once and kept in the data dir.

Asymmetric, so other nodes (or an edge) verify JWTs with the public JWK set alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"
KEY_FILE = "jwt-signing-key.pem"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    jwk = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    # RFC 7638 §3.2: the thumbprint hashes the required members in lexicographic order.
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    jwk["kid"] = _b64url(hashlib.sha256(canonical).digest())
    jwk["use"] = "sig"
    jwk["alg"] = ALGORITHM
    return jwk


@dataclass(frozen=True)
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey
    kid: str
    jwk: dict[str, str]

    @classmethod
    def from_private(cls, private_key: ec.EllipticCurvePrivateKey) -> SigningKey:
        jwk = public_jwk(private_key.public_key())
        return cls(private_key, jwk["kid"], jwk)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private(ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self.private_key.public_key()

    def jwks(self) -> dict[str, Any]:
        """The JWK set (RFC 7517 §5) served at /.well-known/jwks.json."""
        return {"keys": [dict(self.jwk)]}


class VerifyingKey(Protocol):
    """What JWT verification needs of a key: a SigningKey, or another node's PublicKey."""

    @property
    def kid(self) -> str: ...

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey: ...


@dataclass(frozen=True)
class PublicKey:
    """Another node's JWT key, from its public JWK (cluster registry)."""

    kid: str
    public_key: ec.EllipticCurvePublicKey

    @classmethod
    def from_jwk(cls, jwk: dict[str, str]) -> PublicKey:
        """ValueError unless `jwk` is a P-256 public key; the kid is recomputed (RFC 7638),
        never taken from the JWK."""
        if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
            raise ValueError("JWK must be an EC P-256 key")
        try:
            x = int.from_bytes(_b64url_decode(jwk["x"]), "big")
            y = int.from_bytes(_b64url_decode(jwk["y"]), "big")
            public = ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
        except (KeyError, ValueError) as exc:
            raise ValueError(f"malformed JWK: {exc}") from None
        return cls(public_jwk(public)["kid"], public)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create(data_dir: Path) -> tuple[SigningKey, bool]:
    """The key kept in `data_dir` (created 0600 if missing); True when it was just made."""
    path = data_dir / KEY_FILE
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
            loaded.curve, ec.SECP256R1
        ):
            raise ValueError(f"{path}: expected a P-256 EC private key")
        return SigningKey.from_private(loaded), False
    key = SigningKey.generate()
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        _write_private(path, pem)
    except FileExistsError:  # another process made it first: use that one
        return load_or_create(data_dir)
    return key, True


def _write_private(path: Path, data: bytes) -> None:
    """Create `path` readable by the owner only; O_EXCL so two first starts cannot mix keys."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
