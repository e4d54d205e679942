"""Director client: trade a long-lived publish/subscribe token for a stream-bound JWT.

The same exchange `@millicast/sdk`'s `Director.getPublisher/getSubscriber` makes (PROTOCOL.md
"Director"): POST, `Authorization: Bearer <token>`, reply `{"status": "success", "data":
{"urls": [...], "jwt": "...", "iceServers": [...]}}`.

`iceServers` (TURN servers with credentials that expire with the JWT) become aiortc
`RTCIceServer`s through `Connection.ice_servers`. aiortc uses one TURN URL per peer connection:
the first it can use (turn: over UDP or TCP, turns: over TLS with a certificate the system
trusts), and it cannot parse IPv6 literals (`turn:[::1]`), so those URLs are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from aiortc import RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri


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

    @property
    def ice_servers(self) -> list[RTCIceServer]:
        """The Director's `iceServers` as aiortc takes them, in the Director's order."""
        return aiortc_ice_servers(self.data.get("iceServers"))

    def ice_servers_preferring(self, transport: str) -> list[RTCIceServer]:
        """`ice_servers` with the URLs of `transport` ("udp" or "tcp"; turns: is tcp) first:
        aiortc tries only the first TURN URL, so this is how to pick TURN/TCP where UDP is
        blocked."""
        return aiortc_ice_servers(self.data.get("iceServers"), prefer_transport=transport)


def aiortc_ice_servers(
    entries: object, prefer_transport: str | None = None
) -> list[RTCIceServer]:
    """RTCIceServer dictionaries (W3C webrtc-pc) → aiortc `RTCIceServer`s, one per URL.

    URLs aiortc's parser refuses (an IPv6 literal, an unknown scheme) are left out, since one
    such URL makes RTCPeerConnection raise; entries without a string username/credential too.
    """
    servers: list[tuple[bool, RTCIceServer]] = []
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict):
            continue
        urls = entry.get("urls")
        username, credential = entry.get("username"), entry.get("credential")
        for url in [urls] if isinstance(urls, str) else urls if isinstance(urls, list) else []:
            if not isinstance(url, str):
                continue
            try:
                parsed = parse_stun_turn_uri(url)
            except ValueError:
                continue
            if parsed["scheme"] in ("turn", "turns") and not (
                isinstance(username, str) and isinstance(credential, str)
            ):
                continue
            preferred = prefer_transport is not None and parsed.get("transport") == prefer_transport
            servers.append((preferred, RTCIceServer(url, username, credential)))
    # A stable sort: the preferred transport's URLs first, each group in the Director's order.
    servers.sort(key=lambda item: not item[0])
    return [server for _, server in servers]


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
