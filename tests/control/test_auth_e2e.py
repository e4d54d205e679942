"""Tokens through a real `hubbub serve`: REST -> Director -> JWT -> WebSocket -> media, refusals,
restarts, and the same store on PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from tests.helpers.server import RunningServer
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.signaling import SignalingError
from hubbub.client.viewer import Viewer
from hubbub.control.auth.jwts import PUBLISH, SUBSCRIBE, Grant, issue
from hubbub.control.auth.keys import SigningKey, load_or_create

ADMIN = "admin-secret-for-e2e-0123456789"
pytestmark = pytest.mark.slow


def serve(data_dir: Path, name: str, *extra: str) -> RunningServer:
    return RunningServer(
        name=name,
        allow_any_stream=False,
        extra_args=["--data-dir", str(data_dir), "--api-secret", ADMIN, "--media-timeout", "3",
                    *extra],
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("auth-e2e")) / "data"


@pytest.fixture(scope="module")
def srv(data_dir: Path) -> Iterator[RunningServer]:
    with serve(data_dir, "auth-e2e") as s:
        yield s


@pytest.fixture(scope="module")
def key(srv: RunningServer, data_dir: Path) -> SigningKey:
    return load_or_create(data_dir)[0]


async def create_token(srv: RunningServer, kind: str, **fields: Any) -> dict[str, Any]:
    body = {"streams": [{"streamName": "e2e*"}], **fields}
    async with httpx.AsyncClient(base_url=srv.http_url) as client:
        reply = await client.post(f"/api/{kind}_token", json=body,
                                  headers={"Authorization": f"Bearer {ADMIN}"})
    assert reply.status_code == 201, reply.text
    data: dict[str, Any] = reply.json()["data"]
    return data


async def director(
    srv: RunningServer, kind: str, stream: str, token: str | None, **headers: str
) -> httpx.Response:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = {"streamName": stream}
    if kind == "subscribe":
        body["streamAccountId"] = "hubbub"
    async with httpx.AsyncClient(base_url=srv.http_url) as client:
        return await client.post(f"/api/director/{kind}", json=body, headers=headers)


async def jwt_for(srv: RunningServer, kind: str, stream: str, token: str) -> tuple[str, str]:
    reply = await director(srv, kind, stream, token)
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    return data["urls"][0], data["jwt"]


async def heard(recorder: AudioRecorder) -> float:
    await recorder.wait_for_frames(recorder.frames + 50, timeout=10)
    return dominant_frequency(recorder.samples(1.0), recorder.sample_rate)


async def test_full_flow_rest_director_jwt_media(srv: RunningServer) -> None:
    pub_token = (await create_token(srv, "publish", multisource=True))["token"]
    sub_token = (await create_token(srv, "subscribe"))["token"]
    pub_url, pub_jwt = await jwt_for(srv, "publish", "e2e-flow", pub_token)
    sub_url, sub_jwt = await jwt_for(srv, "subscribe", "e2e-flow", sub_token)
    assert pub_url == srv.ws_pub_url and sub_url == srv.ws_sub_url
    async with Publisher(pub_url, "e2e-flow", source_id="cam", token=pub_jwt,
                         tracks=[ToneTrack(440)]) as pub:
        await pub.wait_connected()
        async with Viewer(sub_url, "e2e-flow", token=sub_jwt, video=False) as viewer:
            await viewer.wait_connected()
            recorder = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], seconds=3)
            recorder.start()
            freq = await heard(recorder)
            assert abs(freq - 440) < 5, f"heard {freq:.1f} Hz"
            await recorder.stop()


async def close_of(url: str, token: str | None, origin: str | None = None) -> tuple[int, str]:
    """Close code and reason the server ends a socket with before any command."""
    target = url if token is None else f"{url}?token={token}"
    headers = {"Origin": origin} if origin else {}
    async with connect(target, additional_headers=headers, open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_websocket_refusals(srv: RunningServer, key: SigningKey) -> None:
    pub, sub = srv.ws_pub_url, srv.ws_sub_url
    grant = Grant(PUBLISH, "e2e-x", "1")
    good = issue(key, "hubbub", grant, 600)
    header, payload, sig = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["hubbub"]["stream"] = "e2e-other"
    cases: list[tuple[str, str | None, str | None, int, str]] = [
        ("missing", pub, None, 4401, "Unauthorized: token required"),
        ("expired", pub, issue(key, "hubbub", grant, 60, now=time.time() - 600), 4401,
         "Unauthorized: token expired"),
        ("tampered", pub, f"{header}.{b64(claims)}.{sig}", 4401,
         "Unauthorized: invalid token signature"),
        ("alg none", pub, f"{b64({'alg': 'none', 'typ': 'hubbub-publish+jwt'})}.{payload}.",
         4401, "Unauthorized: token algorithm 'none' not allowed"),
        ("wrong key", pub, pyjwt.encode(claims, SigningKey.generate().private_key, "ES256",
                                        headers={"typ": "hubbub-publish+jwt", "kid": key.kid}),
         4401, "Unauthorized: invalid token signature"),
        ("subscribe JWT used to publish", pub,
         issue(key, "hubbub", Grant(SUBSCRIBE, "e2e-x", "2"), 600), 4403,
         "Forbidden: token is for subscribe, not publish"),
        ("publish JWT used to view", sub, good, 4403,
         "Forbidden: token is for publish, not subscribe"),
        ("IP not allowed", pub,
         issue(key, "hubbub", Grant(PUBLISH, "e2e-x", "3", ips=["10.0.0.0/8"]), 600), 4403,
         "Forbidden: client address not allowed by token"),
        ("origin missing", pub,
         issue(key, "hubbub", Grant(PUBLISH, "e2e-x", "4", origins=["https://app.test"]), 600),
         4403, "Forbidden: origin not allowed by token"),
    ]
    for what, url, token, code, reason in cases:
        assert url is not None
        assert await close_of(url, token) == (code, reason), what
    origin_jwt = issue(key, "hubbub", Grant(PUBLISH, "e2e-x", "4", origins=["https://app.test"]),
                       600)
    assert await close_of(pub, origin_jwt, "https://evil.test") == (
        4403, "Forbidden: origin not allowed by token"
    )


async def test_origin_token_through_director_and_websocket(srv: RunningServer) -> None:
    token = (await create_token(srv, "publish", allowedOrigins=["https://app.test"]))["token"]
    refused = await director(srv, "publish", "e2e-o", token, Origin="https://evil.test")
    assert refused.status_code == 403
    reply = await director(srv, "publish", "e2e-o", token, Origin="https://app.test")
    assert reply.status_code == 200
    jwt = reply.json()["data"]["jwt"]
    assert await close_of(srv.ws_pub_url, jwt, "https://evil.test") == (
        4403, "Forbidden: origin not allowed by token"
    )
    # The right Origin gets a socket that stays open for commands.
    async with connect(f"{srv.ws_pub_url}?token={jwt}",
                       additional_headers={"Origin": "https://app.test"}) as ws:
        await ws.send(json.dumps({"type": "cmd", "transId": 0, "name": "nothing", "data": {}}))
        assert json.loads(await ws.recv())["data"] == "unknown command 'nothing'"


async def test_stream_and_source_bound_to_the_jwt(srv: RunningServer) -> None:
    single = (await create_token(srv, "publish"))["token"]
    url, jwt = await jwt_for(srv, "publish", "e2e-a", single)
    with pytest.raises(SignalingError, match="stream not allowed by token: 'e2e-b'"):
        async with Publisher(url, "e2e-b", token=jwt, tracks=[ToneTrack(440)]):
            pass
    with pytest.raises(SignalingError, match="sourceId not allowed by token: multisource"):
        async with Publisher(url, "e2e-a", source_id="s1", token=jwt, tracks=[ToneTrack(440)]):
            pass
    sub_token = (await create_token(srv, "subscribe"))["token"]
    sub_url, sub_jwt = await jwt_for(srv, "subscribe", "e2e-a", sub_token)
    with pytest.raises(SignalingError, match="stream not allowed by token: 'e2e-b'"):
        async with Viewer(sub_url, "e2e-b", token=sub_jwt, video=False):
            pass


async def test_revoked_token_gets_no_new_jwt(srv: RunningServer) -> None:
    created = await create_token(srv, "publish")
    assert (await director(srv, "publish", "e2e-r", created["token"])).status_code == 200
    async with httpx.AsyncClient(base_url=srv.http_url) as client:
        reply = await client.post(f"/api/publish_token/{created['id']}/revoke",
                                  headers={"Authorization": f"Bearer {ADMIN}"})
    assert reply.json()["data"]["isActive"] is False
    refused = await director(srv, "publish", "e2e-r", created["token"])
    assert refused.status_code == 401
    assert refused.json() == {"status": "fail", "data": {"message": "Unauthorized: token revoked"}}


async def test_tokens_and_key_survive_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with serve(data_dir, "auth-restart") as first:
        created = await create_token(first, "publish")
        _, jwt_before = await jwt_for(first, "publish", "e2e-keep", created["token"])
    async with serve(data_dir, "auth-restart-2") as second:
        _, jwt_after = await jwt_for(second, "publish", "e2e-keep", created["token"])
        # The signing key was kept: a JWT from before the restart is still accepted.
        async with connect(f"{second.ws_pub_url}?token={jwt_before}") as ws:
            await ws.send(json.dumps({"type": "cmd", "transId": 0, "name": "x", "data": {}}))
            assert json.loads(await ws.recv())["type"] == "error"
        assert jwt_after != jwt_before


async def test_first_start_creates_everything_and_prints_how_to_get_a_token(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "fresh"
    srv = RunningServer(name="auth-first-start", allow_any_stream=False,
                        extra_args=["--data-dir", str(data_dir)])
    async with srv:
        secret = (data_dir / "api-secret").read_text().strip()
        log = srv.log_text()
        assert secret in log and "hubbub token create --publish" in log
        async with httpx.AsyncClient(base_url=srv.http_url) as client:
            reply = await client.get("/api/publish_token",
                                     headers={"Authorization": f"Bearer {secret}"})
        assert reply.status_code == 200
    # The platform's own files (Spaces, mounted by default, keeps spaces.db beside them).
    created = {p.name for p in data_dir.iterdir()}
    assert {"api-secret", "jwt-signing-key.pem", "tokens.db"} <= created
    async with RunningServer(name="auth-second-start", allow_any_stream=False,
                             extra_args=["--data-dir", str(data_dir)]) as again:
        assert secret not in again.log_text()  # shown once, on the first start


async def test_postgresql_backed_server_keeps_tokens_across_restarts(
    tmp_path: Path, postgres: Any
) -> None:
    url = await postgres.new_database()
    args = ("--database-url", url)
    async with serve(tmp_path / "pgdata", "auth-pg", *args) as first:
        created = await create_token(first, "subscribe")
        assert (await director(first, "subscribe", "e2e-pg", created["token"])).status_code == 200
    async with serve(tmp_path / "pgdata", "auth-pg-2", *args) as second:
        reply = await director(second, "subscribe", "e2e-pg", created["token"])
        assert reply.status_code == 200
        assert not (tmp_path / "pgdata" / "tokens.db").exists()


def test_cli_token_commands_work_without_a_server(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hubbub", "token", *args, "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )

    made = run("create", "--publish", "--stream", "demo*", "--label", "cam", "--multisource",
               "--origin", "https://app.test", "--ip", "10.0.0.0/8", "--expires", "30d",
               "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    assert token["kind"] == "publish" and len(token["token"]) == 64 and token["multisource"]
    shown = json.loads(run("show", str(token["id"]), "--json").stdout)
    assert "token" not in shown and shown["allowedIpAddresses"] == ["10.0.0.0/8"]
    listed = run("list")
    assert "demo*" in listed.stdout and "active" in listed.stdout
    revoked = json.loads(run("revoke", str(token["id"]), "--json").stdout)
    assert revoked["isActive"] is False
    bad = run("create", "--publish", "--stream", "(a+)+", "--regex")
    assert bad.returncode == 2
    assert "nested repetition" in bad.stderr
