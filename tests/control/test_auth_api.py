"""Admin token API and Director over in-process ASGI, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
import pytest_asyncio
from fastapi import FastAPI

from hubbub.config import Config
from hubbub.control.app import create_app
from hubbub.control.auth import datadir
from hubbub.control.auth.director import ws_base
from hubbub.control.auth.service import Auth
from hubbub.control.node import Node

ADMIN = "admin-secret-for-tests-0123456789"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class Hub:
    app: FastAPI
    auth: Auth
    client: httpx.AsyncClient

    def client_from(self, ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://media.test:8080")

    async def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.client.request(method, path, headers=ADMIN_HEADERS, **kw)

    async def token(self, kind: str = "publish", **fields: Any) -> dict[str, Any]:
        body = {"streams": [{"streamName": "demo*"}], **fields}
        reply = await self.admin("POST", f"/api/{kind}_token", json=body)
        assert reply.status_code == 201, reply.text
        data: dict[str, Any] = reply.json()["data"]
        return data

    async def director(
        self, kind: str, body: dict[str, Any], token: str | None = None, **headers: str
    ) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.client.post(f"/api/director/{kind}", json=body, headers=headers)


@pytest_asyncio.fixture
async def hub(tmp_path: Path, database_url: str) -> AsyncIterator[Hub]:
    config = Config()
    config.auth.data_dir = str(tmp_path / "data")
    config.auth.database_url = database_url
    config.auth.api_secret = ADMIN
    config.auth.open_viewing = ["open*"]
    node = Node(config)
    auth = Auth(config.auth, datadir.prepare(config.auth))
    app = create_app(node, auth)
    await auth.start()
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://media.test:8080") as c:
        yield Hub(app, auth, c)
    await auth.stop()


def fail_message(reply: httpx.Response) -> str:
    body = reply.json()
    assert body["status"] == "fail", body
    message: str = body["data"]["message"]
    return message


# --- admin API -----------------------------------------------------------------------------


async def test_token_lifecycle_over_rest(hub: Hub) -> None:
    created = await hub.token(
        "publish", label="cam", multisource=True, allowedOrigins=["https://a.example"],
        allowedIpAddresses=["10.0.0.0/8"], expiresOn="2999-01-01T00:00:00Z",
    )
    assert len(created["token"]) == 64
    assert created | {"id": 0, "token": "", "addedOn": "", "updatedOn": ""} == {
        "id": 0, "token": "", "label": "cam",
        "streams": [{"streamName": "demo*", "isRegex": False}],
        "allowedOrigins": ["https://a.example"], "allowedIpAddresses": ["10.0.0.0/8"],
        "expiresOn": "2999-01-01T00:00:00Z", "addedOn": "", "updatedOn": "", "revokedOn": None,
        "lastUsedOn": None, "isActive": True, "multisource": True, "record": False,
    }
    tid = created["id"]
    got = (await hub.admin("GET", f"/api/publish_token/{tid}")).json()
    assert got["status"] == "success" and "token" not in got["data"]
    assert (await hub.admin("GET", f"/api/subscribe_token/{tid}")).status_code == 404
    updated = await hub.admin("PUT", f"/api/publish_token/{tid}",
                              json={"label": "cam2", "expiresOn": None})
    assert updated.status_code == 200
    assert updated.json()["data"]["label"] == "cam2"
    assert updated.json()["data"]["expiresOn"] is None
    assert updated.json()["data"]["allowedOrigins"] == ["https://a.example"]  # untouched
    listing = (await hub.admin("GET", "/api/publish_token?limit=10")).json()["data"]
    assert listing["total"] == 1 and listing["items"][0]["id"] == tid
    revoked = (await hub.admin("POST", f"/api/publish_token/{tid}/revoke")).json()["data"]
    assert revoked["isActive"] is False and revoked["revokedOn"] is not None
    active = (await hub.admin("GET", "/api/publish_token?includeRevoked=false")).json()["data"]
    assert active["total"] == 0
    assert (await hub.admin("DELETE", f"/api/publish_token/{tid}")).json() == {
        "status": "success", "data": {"id": tid, "deleted": True}
    }
    missing = await hub.admin("DELETE", f"/api/publish_token/{tid}")
    assert missing.status_code == 404
    assert fail_message(missing) == f"Not Found: no publish token {tid}"


async def test_subscribe_tokens_have_no_publish_fields(hub: Hub) -> None:
    created = await hub.token("subscribe")
    assert "multisource" not in created and "record" not in created
    reply = await hub.admin("POST", "/api/subscribe_token",
                            json={"streams": [{"streamName": "a"}], "multisource": True})
    assert reply.status_code == 400
    assert fail_message(reply) == "Bad Request: multisource: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"streams": []},
         "Bad Request: streams: List should have at least 1 item after validation, not 0"),
        ({"streams": [{"streamName": "(a+)+", "isRegex": True}]},
         "Bad Request: nested repetition (like (a+)+) is not allowed in stream patterns"),
        ({"streams": [{"streamName": "a"}], "allowedIpAddresses": ["300.1.1.1"]},
         "Bad Request: allowedIpAddresses entry '300.1.1.1' is not an IP address or CIDR network"),
        ({"streams": [{"streamName": "a"}], "expiresOn": "2001-01-01T00:00:00Z"},
         "Bad Request: expiresOn is in the past"),
        ({"streams": [{"streamName": "a"}], "label": "a\u0000b"},
         "Bad Request: label: Value error, must not contain control characters"),
        ({"streams": [{"streamName": "a", "isRegex": "yes"}]},
         "Bad Request: streams.0.isRegex: Input should be a valid boolean"),
    ],
)
async def test_bad_token_bodies_get_a_clear_400(
    hub: Hub, body: dict[str, Any], message: str
) -> None:
    reply = await hub.admin("POST", "/api/publish_token", json=body)
    assert reply.status_code == 400
    assert fail_message(reply) == message


@pytest.mark.parametrize(
    ("header", "status", "message"),
    [
        (None, 401, "Unauthorized: missing Authorization header (expected 'Bearer <token>')"),
        ("Bearer wrong-secret", 401, "Unauthorized: invalid API secret"),
        ("Basic YWRtaW46eA==", 400,
         "Bad Request: malformed Authorization header (expected 'Bearer <token>')"),
        ("Bearer", 400, "Bad Request: malformed Authorization header (expected 'Bearer <token>')"),
        ("Bearer a b", 400,
         "Bad Request: malformed Authorization header (expected 'Bearer <token>')"),
    ],
)
async def test_admin_auth(hub: Hub, header: str | None, status: int, message: str) -> None:
    headers = {"Authorization": header} if header is not None else {}
    reply = await hub.client.get("/api/publish_token", headers=headers)
    assert reply.status_code == status
    assert fail_message(reply) == message
    assert reply.headers["www-authenticate"].startswith('Bearer realm="hubbub"')


async def test_invalid_json_and_oversize_body(hub: Hub) -> None:
    reply = await hub.client.post(
        "/api/publish_token", content=b'{"streams": [', headers={
            **ADMIN_HEADERS, "Content-Type": "application/json"}
    )
    assert reply.status_code == 400
    assert fail_message(reply).startswith("Bad Request: invalid JSON body (")
    big = b'{"label": "' + b"x" * (64 * 1024) + b'"}'
    for headers in ({}, {"Transfer-Encoding": "chunked"}):
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(big), 8192):
                yield big[i:i + 8192]

        content: Any = big if not headers else chunks()
        reply = await hub.client.post(
            "/api/director/publish", content=content,
            headers={**ADMIN_HEADERS, "Content-Type": "application/json", **headers},
        )
        assert reply.status_code == 413
        assert fail_message(reply) == "Payload Too Large: request body over 65536 bytes"


# --- Director ------------------------------------------------------------------------------


async def test_director_publish_success_and_jwks(hub: Hub) -> None:
    token = (await hub.token("publish", multisource=True, record=True))["token"]
    reply = await hub.director("publish", {"streamName": "demo1", "streamType": "WebRtc"}, token)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["status"] == "success"
    data = body["data"]
    assert data["urls"] == ["ws://media.test:8080/ws/v2/pub"] and data["wsUrl"] == data["urls"][0]
    assert data["streamAccountId"] == "hubbub" and data["iceServers"] == []
    assert data["subscribeRequiresAuth"] is True
    jwks = (await hub.client.get("/.well-known/jwks.json")).json()
    key = pyjwt.PyJWK(jwks["keys"][0]).key
    claims = pyjwt.decode(data["jwt"], key, algorithms=["ES256"], audience="hubbub-publish")
    assert claims["millicast"] == {"streamName": "demo1", "record": True}
    assert claims["hubbub"]["multisource"] is True
    assert 300 <= claims["exp"] - claims["iat"] <= 900
    listed = (await hub.admin("GET", "/api/publish_token")).json()["data"]["items"][0]
    assert listed["lastUsedOn"] is not None


async def test_director_subscribe(hub: Hub) -> None:
    closed = await hub.director("subscribe", {"streamAccountId": "hubbub", "streamName": "demo"})
    assert closed.status_code == 401
    assert fail_message(closed) == "Unauthorized: this stream requires a subscribe token"
    opened = await hub.director("subscribe", {"streamAccountId": "hubbub", "streamName": "open1"})
    assert opened.status_code == 200
    assert opened.json()["data"]["subscribeRequiresAuth"] is False
    assert opened.json()["data"]["urls"] == ["ws://media.test:8080/ws/v2/sub"]
    token = (await hub.token("subscribe"))["token"]
    ok = await hub.director("subscribe", {"streamAccountId": "hubbub", "streamName": "demo"},
                            token)
    assert ok.status_code == 200 and ok.json()["data"]["subscribeRequiresAuth"] is True
    # A bad token is refused even for an open stream.
    bad = await hub.director("subscribe", {"streamName": "open1"}, "0" * 64)
    assert bad.status_code == 401 and fail_message(bad) == "Unauthorized: Invalid token"
    wrong_account = await hub.director(
        "subscribe", {"streamAccountId": "someone", "streamName": "demo"}, token
    )
    assert wrong_account.status_code == 400
    assert fail_message(wrong_account) == (
        "Bad Request: unknown streamAccountId 'someone' (this node's account is 'hubbub')"
    )


async def test_director_refusals(hub: Hub) -> None:
    pub = await hub.token("publish", allowedOrigins=["https://app.example"],
                          allowedIpAddresses=["127.0.0.0/8"])
    sub = await hub.token("subscribe")
    ok_origin = {"Origin": "https://app.example"}
    body = {"streamName": "demo"}

    async def check(reply: httpx.Response, status: int, message: str) -> None:
        assert (reply.status_code, fail_message(reply)) == (status, message)

    assert (await hub.director("publish", body, pub["token"], **ok_origin)).status_code == 200
    await check(await hub.director("publish", body), 401,
                "Unauthorized: missing Authorization header (expected 'Bearer <token>')")
    await check(await hub.director("publish", body, "f" * 64), 401, "Unauthorized: Invalid token")
    await check(await hub.director("publish", body, sub["token"]), 401,
                "Unauthorized: Invalid token")
    await check(await hub.director("publish", {"streamName": "other"}, pub["token"], **ok_origin),
                403, "Forbidden: token does not cover stream 'other'")
    await check(await hub.director("publish", body, pub["token"], Origin="https://evil.example"),
                403, "Forbidden: origin not allowed by token")
    await check(await hub.director("publish", body, pub["token"]), 403,
                "Forbidden: origin not allowed by token")
    async with hub.client_from("192.0.2.7") as far:
        reply = await far.post("/api/director/publish", json=body, headers={
            "Authorization": f"Bearer {pub['token']}", **ok_origin})
    await check(reply, 403, "Forbidden: client address not allowed by token")
    await check(await hub.director("publish", {"streamName": "a b"}, pub["token"]), 400,
                "Bad Request: invalid stream name: 1-128 characters of letters, digits and "
                "_.-~:@+")
    await check(await hub.director("publish", {"streamType": "WebRtc"}, pub["token"]), 400,
                "Bad Request: streamName: Field required")
    await check(await hub.director("publish", {"streamName": "demo", "streamType": "Rtmp"},
                                   pub["token"]), 400, "Bad Request: unsupported streamType 'Rtmp'")
    malformed = await hub.client.post("/api/director/publish", json=body,
                                      headers={"Authorization": f"Token {pub['token']}"})
    await check(malformed, 400,
                "Bad Request: malformed Authorization header (expected 'Bearer <token>')")
    # Expired, then revoked: no new JWTs.
    await hub.auth.store.update("publish", pub["id"], {"expires_on": time.time() - 1})
    await check(await hub.director("publish", body, pub["token"], **ok_origin), 401,
                "Unauthorized: token expired")
    await hub.admin("POST", f"/api/publish_token/{pub['id']}/revoke")
    await check(await hub.director("publish", body, pub["token"], **ok_origin), 401,
                "Unauthorized: token revoked")


async def test_regex_and_wildcard_tokens_at_the_director(hub: Hub) -> None:
    token = (await hub.token("publish", streams=[
        {"streamName": r"room-\d{1,3}", "isRegex": True},
        {"streamName": "*-live"},
        {"streamName": "exact"},
    ]))["token"]
    for name, expected in [
        ("room-1", 200), ("room-123", 200), ("room-1234", 403), ("myroom-1", 403),
        ("room-1x", 403), ("cam-live", 200), ("-live", 200), ("cam-live2", 403),
        ("exact", 200), ("exact2", 403), ("xexact", 403),
    ]:
        reply = await hub.director("publish", {"streamName": name}, token)
        assert reply.status_code == expected, (name, reply.text)


async def test_cors_only_on_browser_facing_paths(hub: Hub) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    reply = await hub.client.options("/api/director/publish", headers=preflight)
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    admin = await hub.client.options("/api/publish_token", headers=preflight)
    assert "access-control-allow-origin" not in admin.headers


async def test_openapi_and_docs_are_served(hub: Hub) -> None:
    spec = (await hub.client.get("/openapi.json")).json()
    assert {"/api/publish_token", "/api/subscribe_token/{token_id}/revoke",
            "/api/director/publish", "/api/director/subscribe"} <= set(spec["paths"])
    assert (await hub.client.get("/docs")).status_code == 200


def test_ws_base_prefers_the_public_url() -> None:
    class FakeRequest:
        headers = {"host": "10.0.0.5:8080"}

        class url:  # noqa: N801
            scheme = "http"

    request: Any = FakeRequest()
    assert ws_base("", request) == "ws://10.0.0.5:8080"
    assert ws_base("https://media.example.com/", request) == "wss://media.example.com"
    assert ws_base("http://h:81/base/", request) == "ws://h:81/base"
