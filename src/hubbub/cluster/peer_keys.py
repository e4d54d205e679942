"""The JWT keys of the cluster's nodes, from their registry records.

A key stays usable for `retention` seconds after its node was last seen (a JWT lifetime plus
leeway), so the JWTs a node issued keep working after it left, until they expire.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from hubbub.cluster.records import NodeRecord
from hubbub.control.auth.keys import PublicKey, VerifyingKey

log = logging.getLogger(__name__)


class PeerKeys:
    def __init__(self, retention: float) -> None:
        self._retention = retention
        self._keys: dict[str, tuple[PublicKey, float]] = {}  # kid -> (key, last seen)

    def observe(self, records: Iterable[NodeRecord], now: float) -> None:
        for record in records:
            try:
                key = PublicKey.from_jwk(record.jwk)
            except ValueError as exc:
                log.warning("node %s has a bad JWT key: %s", record.id, exc)
                continue
            self._keys[key.kid] = (key, now)
        for kid, (_, seen) in list(self._keys.items()):
            if now - seen > self._retention:
                del self._keys[kid]

    def keys(self) -> list[VerifyingKey]:
        return [key for key, _ in self._keys.values()]
