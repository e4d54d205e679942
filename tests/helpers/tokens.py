"""Tokens for e2e tests through a running node's HTTP API: long-lived tokens from the admin
API, short-lived JWTs from the Director, as an application backend and a client get them."""

from __future__ import annotations

from typing import Any

import httpx


def admin_token(http_url: str, admin_secret: str, kind: str = "publish",
                pattern: str = "*", **fields: Any) -> dict[str, Any]:
    """A new long-lived `kind` token ("publish" | "subscribe") for streams matching
    `pattern`, with any other token fields (e.g. multisource=True); its whole record."""
    reply = httpx.post(f"{http_url}/api/{kind}_token",
                       json={"streams": [{"streamName": pattern}], **fields},
                       headers={"Authorization": f"Bearer {admin_secret}"}, timeout=10)
    assert reply.status_code == 201, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


def view_jwt(http_url: str, stream: str) -> str:
    """A subscribe JWT from the Director for a stream open for viewing (no token needed)."""
    reply = httpx.post(f"{http_url}/api/director/subscribe", json={"streamName": stream},
                       timeout=10)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["data"]["jwt"])


def publish_jwt(http_url: str, token: str, stream: str) -> str:
    """A publish JWT from the Director for a long-lived publish token."""
    reply = httpx.post(f"{http_url}/api/director/publish", json={"streamName": stream},
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["data"]["jwt"])
