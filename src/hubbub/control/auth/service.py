"""Auth: one node's token store, signing key and policy, shared by the HTTP and WebSocket sides."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from hubbub.config import AuthConfig
from hubbub.control.auth import jwts, patterns
from hubbub.control.auth.datadir import DataDir
from hubbub.control.auth.keys import VerifyingKey
from hubbub.control.auth.refusals import Refusals
from hubbub.control.auth.store import TokenStore


class Auth:
    def __init__(self, config: AuthConfig, data: DataDir) -> None:
        self.config = config
        self.data = data
        self.key = data.signing_key
        self._store: TokenStore | None = None
        # In a cluster: the other nodes' JWT keys, and a way to look for a key not seen yet
        # (a node that started a moment ago may already have handed out JWTs).
        self.peer_keys: Callable[[], list[VerifyingKey]] = list
        self.refresh_peer_keys: Callable[[], Awaitable[None]] | None = None
        self.refusals = Refusals()  # credentials refused, by reason (read by /metrics)

    @property
    def store(self) -> TokenStore:
        if self._store is None:
            raise RuntimeError("Auth.start() has not run")
        return self._store

    async def start(self) -> None:
        """Open the token store, migrating its schema to the current version."""
        if self._store is None:
            self._store = await TokenStore.open(self.data.database_url)

    async def stop(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            await store.close()

    def admin_secret_ok(self, presented: str) -> bool:
        return hmac.compare_digest(presented.encode(), self.data.api_secret.encode())

    def issue(self, grant: jwts.Grant) -> str:
        return jwts.issue(self.key, self.config.issuer, grant, self.config.jwt_minutes * 60)

    def verify(self, token: str, kind: str) -> jwts.Grant:
        keys: list[VerifyingKey] = [self.key, *self.peer_keys()]
        return jwts.verify(token, keys, self.config.issuer, kind, self.config.jwt_leeway)

    def subscribe_requires_auth(self, stream: str) -> bool:
        """Streams matching an `--open-viewing` pattern may be viewed without a token."""
        return not patterns.covers(((p, False) for p in self.config.open_viewing), stream)
