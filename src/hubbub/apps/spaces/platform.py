"""PlatformClient: Spaces as a client of a hubbub node, over HTTP only.

- Its own long-lived tokens: one publish token (streams `*`, multisource: every speaker
  publishes with sourceId = their user id) and one subscribe token, made once through the admin
  API and kept in the Spaces database; made again if the node no longer knows them (401).
- Short-lived JWTs from the Director (PROTOCOL.md "Director"), handed to browsers as is.
- Stopping a demoted speaker's source: POST /api/streams/{name}/sources/{id}/stop (admin).

Calls run in a worker thread with urllib: a few per join or promote, never per packet, and no
HTTP client dependency beyond the standard library.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from hubbub.apps.spaces.store import RoomStore

log = logging.getLogger(__name__)

PUBLISH = "publish"
SUBSCRIBE = "subscribe"
TOKEN_LABEL = "spaces app"


class PlatformError(Exception):
    """The node refused or could not be reached; `status` is its HTTP status (502: no reply)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PlatformClient:
    def __init__(
        self, base_url: str, api_secret: str, store: RoomStore, timeout: float = 10.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_secret = api_secret
        self.store = store
        self.timeout = timeout
        self._lock = asyncio.Lock()

    # --- HTTP ----------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"null")
            except ValueError:
                return exc.code, None
        except (OSError, ValueError) as exc:
            raise PlatformError(502, f"hubbub at {self.base_url} unreachable: {exc}") from None

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None,
        bearer: str | None = None, host: str | None = None,
    ) -> tuple[int, Any]:
        headers: dict[str, str] = {}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        if host:
            headers["Host"] = host
        return await asyncio.to_thread(self._call, method, path, body, headers)

    @staticmethod
    def _message(reply: Any) -> str:
        if isinstance(reply, dict):
            data = reply.get("data")
            if isinstance(data, dict) and isinstance(data.get("message"), str):
                return str(data["message"])
            if isinstance(reply.get("message"), str):
                return str(reply["message"])
        return "no details"

    # --- the app's own tokens ------------------------------------------------------------

    async def _provision(self, kind: str) -> str:
        body: dict[str, Any] = {"label": TOKEN_LABEL, "streams": [{"streamName": "*"}]}
        if kind == PUBLISH:
            body["multisource"] = True
        status, reply = await self._request("POST", f"/api/{kind}_token", body, self.api_secret)
        if status != 201:
            raise PlatformError(
                502, f"cannot create the app's {kind} token ({status}): {self._message(reply)}"
            )
        data = reply["data"]
        await self.store.save_platform_token(kind, str(data["id"]), str(data["token"]))
        log.info("spaces: created %s token %s on %s", kind, data["id"], self.base_url)
        return str(data["token"])

    async def _token(self, kind: str, renew: bool = False) -> str:
        async with self._lock:
            if not renew:
                found = await self.store.platform_token(kind)
                if found is not None:
                    return found[1]
            return await self._provision(kind)

    # --- Director --------------------------------------------------------------------------

    async def director(self, kind: str, stream: str, host: str | None = None) -> dict[str, Any]:
        """The Director's `data` ({urls, jwt, ...}) for `stream`; a token the node no longer
        accepts (401: deleted, revoked, another data dir) is replaced once."""
        body: dict[str, Any] = {"streamName": stream}
        if kind == PUBLISH:
            body["streamType"] = "WebRtc"
        for attempt in (0, 1):
            secret = await self._token(kind, renew=attempt == 1)
            status, reply = await self._request(
                "POST", f"/api/director/{kind}", body, secret, host
            )
            if status == 200 and isinstance(reply, dict) and isinstance(reply.get("data"), dict):
                data: dict[str, Any] = reply["data"]
                return data
            if status != 401:
                break
            log.warning("spaces: the node refused our %s token, making a new one", kind)
        raise PlatformError(
            502 if status < 500 else status,
            f"Director {kind} refused ({status}): {self._message(reply)}",
        )

    async def stop_source(self, stream: str, source_id: str) -> bool:
        """End that source's publisher session; False when it was not live."""
        path = (
            f"/api/streams/{urllib.parse.quote(stream, safe='')}/sources/"
            f"{urllib.parse.quote(source_id, safe='')}/stop"
        )
        status, reply = await self._request("POST", path, None, self.api_secret)
        if status == 200:
            return True
        if status == 404:
            return False
        raise PlatformError(502, f"stopping source failed ({status}): {self._message(reply)}")
