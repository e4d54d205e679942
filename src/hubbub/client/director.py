"""Director client: trade a long-lived publish/subscribe token for a stream-bound JWT.

The same exchange `@millicast/sdk`'s `Director.getPublisher/getSubscriber` makes (PROTOCOL.md
"Director"): POST, `Authorization: Bearer <token>`, reply `{"status": "success", "data":
{"urls": [...], "jwt": "..."}}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class DirectorError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Director refused ({status}): {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Connection:
    """Where to open the WebSocket and with which JWT."""

    url: str
    jwt: str
    data: dict[str, Any]


async def connect_info(
    director: str,
    kind: str,
    stream: str,
    token: str | None,
    *,
    account_id: str = "hubbub",
    timeout: float = 10.0,
) -> Connection:
    """`kind` is "publish" or "subscribe"; `director` is the node's base URL."""
    if kind not in ("publish", "subscribe"):
        raise ValueError(f"kind must be publish or subscribe, not {kind!r}")
    body: dict[str, Any] = {"streamName": stream}
    if kind == "publish":
        body["streamType"] = "WebRtc"
    else:
        body["streamAccountId"] = account_id
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{director.rstrip('/')}/api/director/{kind}"
    async with httpx.AsyncClient(timeout=timeout) as http:
        reply = await http.post(url, json=body, headers=headers)
    try:
        payload = reply.json()
    except ValueError:
        payload = {}
    if reply.status_code != 200 or payload.get("status") != "success":
        data = payload.get("data") if isinstance(payload, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        raise DirectorError(reply.status_code, str(message or payload.get("message") or reply.text))
    data = payload["data"]
    return Connection(url=data["urls"][0], jwt=data["jwt"], data=data)
