"""What one client may cost Spaces: the size of a request body, and how fast one address may
make identities and rooms.

The client address is the ASGI scope's `client`: the socket's peer, or the address a trusted
reverse proxy forwarded (uvicorn rewrites it from X-Forwarded-For only for the proxies given to
`--trusted-proxy`; anyone else's header is ignored).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubbub.apps.spaces.rooms import SpacesError
from hubbub.logs import clip
from hubbub.ratelimit import KeyedBuckets, address_key, retry_after_header

log = logging.getLogger(__name__)

REPORT_INTERVAL = 60.0
FIRST_LINES = 5  # addresses named as they start being refused, per interval; the rest counted


class BodyLimit:
    """Reads HTTP request bodies up to `limit` bytes before the app sees them: 413 with a JSON
    `{"error"}` above it, decided from Content-Length when there is one and otherwise (chunked)
    as soon as the bytes received pass the limit; the rest is never read (the connection is
    closed). At most `limit` bytes are held per request."""

    def __init__(self, app: ASGIApp, limit: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app = app
        self.limit = limit
        self.refusals = RefusalLog(f"request bodies over {limit} bytes", clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        client = scope.get("client")
        self.refusals.note(address_key(client[0] if client else None))
        body = json.dumps({"error": f"request body too large: the Spaces API takes at most "
                                    f"{self.limit} bytes"}).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread rest of the body is dropped with it
            ],
        })
        await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            found: bytes = value
            return found
    return None


class RefusalLog:
    """The log of one kind of refusal, a few lines per interval however many there are: the
    first `FIRST_LINES` addresses refused, then one summary with counts (top three)."""

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.what = what
        self.total = 0
        self._clock = clock
        self._max_keys = max_keys
        self._window = clock()
        self._counts: dict[str, int] = {}
        self._named = 0

    def note(self, key: str, detail: str = "") -> None:
        self.total += 1
        self.flush()
        if key not in self._counts:
            if len(self._counts) >= self._max_keys:
                key = "(other addresses)"
            elif self._named < FIRST_LINES:
                self._named += 1
                log.warning("spaces: %s from %s refused%s; further refusals are counted",
                            self.what, clip(key), detail)
        self._counts[key] = self._counts.get(key, 0) + 1

    def flush(self) -> None:
        """Log the summary of the interval if it is over (called on each request)."""
        now = self._clock()
        if now - self._window < REPORT_INTERVAL:
            return
        if self._counts:
            top = sorted(self._counts.items(), key=lambda kv: -kv[1])[:3]
            log.warning("spaces: %d %s refused from %d addresses in the last %.0f s (most: %s)",
                        sum(self._counts.values()), self.what, len(self._counts),
                        now - self._window, ", ".join(f"{clip(k)} {n}" for k, n in top))
        self._counts.clear()
        self._named = 0
        self._window = now


class AddressLimiter:
    """A token bucket per client address for one action ("new identities", "new rooms"):
    `check(host)` spends a token or raises SpacesError 429 with Retry-After."""

    def __init__(self, what: str, rate: float, burst: int, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.rate = rate
        self.burst = burst
        self.buckets = KeyedBuckets(rate, burst, max_keys, clock)
        self.refusals = RefusalLog(f"requests for {what}", clock, max_keys)

    def check(self, host: str | None) -> None:
        key = address_key(host)
        wait = self.buckets.take(key)
        if wait <= 0:
            self.refusals.flush()
            return
        self.refusals.note(key, f" (over {self.rate:g}/s, burst {self.burst})")
        seconds = retry_after_header(wait)
        raise SpacesError(
            429, f"too many {self.what} from your address; try again in {seconds} s",
            {"Retry-After": seconds},
        )
