"""Token buckets: moved to the neutral `hubbub.ratelimit` (the apps use them too); this name
stays for the platform's existing imports."""

from __future__ import annotations

from hubbub.ratelimit import KeyedBuckets, TokenBucket

__all__ = ["KeyedBuckets", "TokenBucket"]
