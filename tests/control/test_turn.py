"""TURN in Director replies, in process: URIs (RFC 7065), TURN REST API credentials
(draft-uberti-behave-turn-rest-00), the reply's `iceServers`, the Python SDK's reading of it and
`hubbub serve`'s refusals. tests/e2e/test_turn_coturn.py shows a real coturn accepting them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
import pytest_asyncio
from tests.helpers.server import REPO_ROOT

from hubbub.client.director import Connection, aiortc_ice_servers
from hubbub.config import Config
from hubbub.control.app import create_app
from hubbub.control.auth import datadir, turn
from hubbub.control.auth.service import Auth
from hubbub.control.auth.store import default_url
from hubbub.control.node import Node

ADMIN = "turn-admin-secret-0123456789abcdef"
SECRET = "turn-shared-secret"


# --- URIs ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "canonical", "port", "transport"), [
    ("turn:turn.example.com", "turn:turn.example.com", 3478, "udp"),
    ("turn:turn.example.com:3479?transport=tcp", "turn:turn.example.com:3479?transport=tcp",
     3479, "tcp"),
    ("TURN:10.0.0.1?transport=UDP", "turn:10.0.0.1?transport=udp", 3478, "udp"),
    ("turns:turn.example.com", "turns:turn.example.com", 5349, "tcp"),
    ("turns:turn.example.com:443?transport=tcp", "turns:turn.example.com:443?transport=tcp",
     443, "tcp"),
    ("turn:[2001:DB8::1]:3478", "turn:[2001:db8::1]:3478", 3478, "udp"),
    ("turn:[::1]?transport=tcp", "turn:[::1]?transport=tcp", 3478, "tcp"),
])
def test_turn_uris_rfc_7065(text: str, canonical: str, port: int, transport: str) -> None:
    uri = turn.parse_uri(text)
    assert str(uri) == canonical
    assert uri.effective_port == port
    assert uri.effective_transport == transport


@pytest.mark.parametrize(("text", "reason"), [
    ("stun:stun.example.com", "scheme must be turn or turns"),
    ("http://turn.example.com", "malformed TURN URL"),
    ("turn://turn.example.com", "malformed TURN URL"),
    ("turn:", "malformed TURN URL"),
    ("turn:user@turn.example.com", "malformed TURN URL"),
    ("turn:turn.example.com:99999", "port 99999 out of range"),
    ("turn:turn.example.com:0", "port 0 out of range"),
    ("turn:turn.example.com?transport=sctp", "transport must be udp or tcp"),
    ("turn:turn.example.com?foo=bar", "malformed TURN URL"),
    ("turns:turn.example.com?transport=udp", "transport=tcp only"),
    ("turn:::1", "malformed TURN URL"),                   # IPv6 without brackets
    ("turn:[not-v6]", "is not an IPv6 address"),
    ("turn:300.1.1.1", "not a host name or IPv4 address"),
    ("turn:bad_host.example", "not a host name or IPv4 address"),
    ("turn:a b", "not a host name or IPv4 address"),
])
def test_malformed_turn_uris_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("?", r"\?")):
        turn.parse_uri(text)


def test_servers_and_secret_come_together() -> None:
    assert turn.check_settings([], "") == []
    with pytest.raises(ValueError, match="needs --turn-secret"):
        turn.check_settings(["turn:127.0.0.1"], "")
    with pytest.raises(ValueError, match="no --turn-server"):
        turn.check_settings([], "s")


# --- credentials ---------------------------------------------------------------------------

def test_credentials_are_expiry_colon_id_and_base64_hmac_sha1() -> None:
    username, password = turn.credentials("s3cret", 1700000000, "abc")
    assert username == "1700000000:abc"
    # Known answer: `printf 1700000000:abc | openssl dgst -sha1 -hmac s3cret -binary | base64`
    assert password == "7fjbb9kXxh7Rto8MZNnWJnSP8uE="
    with pytest.raises(ValueError, match="cannot contain ':'"):
        turn.credentials("s3cret", 1700000000, "a:b")


def test_ice_servers_are_one_rtc_ice_server_for_all_uris() -> None:
    uris = [turn.parse_uri("turn:h?transport=udp"), turn.parse_uri("turns:h:443")]
    assert turn.ice_servers([], SECRET, 1, "x") == []
    [server] = turn.ice_servers(uris, SECRET, 1700000000, "jti")
    assert server == {
        "urls": ["turn:h?transport=udp", "turns:h:443"],
        "username": "1700000000:jti",
        "credential": turn.credentials(SECRET, 1700000000, "jti")[1],
    }


# --- the Director ----------------------------------------------------------------------------

async def _hub(tmp_path: Path, turn_servers: list[str], secret: str
               ) -> AsyncIterator[httpx.AsyncClient]:
    config = Config()
    config.auth.data_dir = str(tmp_path / "data")
    config.auth.database_url = default_url(str(tmp_path))
    config.auth.api_secret = ADMIN
    config.auth.open_viewing = ["open*"]
    config.auth.jwt_minutes = 7
    config.auth.turn_servers = turn_servers
    config.auth.turn_secret = secret
    auth = Auth(config.auth, datadir.prepare(config.auth))
    app = create_app(Node(config), auth)
    await auth.start()
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://media.test:8080") as c:
        yield c
    await auth.stop()


@pytest_asyncio.fixture
async def with_turn(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    servers = ["turn:turn.test:3478?transport=udp", "turn:turn.test:3478?transport=tcp",
               "turns:turn.test:443?transport=tcp"]
    async for client in _hub(tmp_path, servers, SECRET):
        yield client


@pytest_asyncio.fixture
async def without_turn(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _hub(tmp_path, [], ""):
        yield client


async def _publish_token(client: httpx.AsyncClient) -> str:
    reply = await client.post("/api/publish_token", json={"streams": [{"streamName": "t*"}]},
                              headers={"Authorization": f"Bearer {ADMIN}"})
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["data"]["token"]
    return token


async def test_director_hands_out_turn_credentials_that_expire_with_the_jwt(
    with_turn: httpx.AsyncClient,
) -> None:
    token = await _publish_token(with_turn)
    replies = [
        await with_turn.post("/api/director/publish", json={"streamName": "t1"},
                             headers={"Authorization": f"Bearer {token}"}),
        await with_turn.post("/api/director/subscribe", json={"streamName": "open1"}),
    ]
    for reply in replies:
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        claims = pyjwt.decode(data["jwt"], options={"verify_signature": False})
        assert claims["exp"] - time.time() == pytest.approx(7 * 60, abs=5)
        # Exactly an RTCIceServer dictionary: the SDK hands it to RTCPeerConnection as is.
        [server] = data["iceServers"]
        assert set(server) == {"urls", "username", "credential"}
        assert server["urls"] == ["turn:turn.test:3478?transport=udp",
                                  "turn:turn.test:3478?transport=tcp",
                                  "turns:turn.test:443?transport=tcp"]
        assert server["username"] == f"{claims['exp']}:{claims['jti']}"
        expected = hmac.new(SECRET.encode(), server["username"].encode(), hashlib.sha1).digest()
        assert base64.b64decode(server["credential"]) == expected
    # Each JWT has its own id, so each reply its own TURN username.
    names = {r.json()["data"]["iceServers"][0]["username"] for r in replies}
    assert len(names) == 2


async def test_director_without_turn_sends_empty_ice_servers(
    without_turn: httpx.AsyncClient,
) -> None:
    reply = await without_turn.post("/api/director/subscribe", json={"streamName": "open1"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["data"]["iceServers"] == []


async def test_director_refuses_to_start_with_bad_turn_settings(tmp_path: Path) -> None:
    # Settings made in code (not through the CLI) are checked when the app is built.
    with pytest.raises(ValueError, match="malformed TURN URL"):
        async for _ in _hub(tmp_path, ["turn//x"], SECRET):
            pass
    with pytest.raises(ValueError, match="needs --turn-secret"):
        async for _ in _hub(tmp_path, ["turn:x"], ""):
            pass


# --- the Python SDK's reading of iceServers ------------------------------------------------

def test_sdk_takes_ice_servers_as_aiortc_rtc_ice_servers() -> None:
    entries: list[Any] = [
        {"urls": ["turn:[::1]:3478", "turn:h:3478?transport=udp", "turn:h:3478?transport=tcp"],
         "username": "1:a", "credential": "pw"},
        {"urls": "turns:h:5349", "username": "1:a", "credential": "pw"},
        {"urls": ["turn:nocred"]},                       # TURN without credentials: useless
        {"urls": ["stun:h:3478"]},
        "junk", {"urls": 5},
    ]
    conn = Connection(url="ws://h/ws/v2/sub", jwt="j", data={"iceServers": entries})
    # aiortc's parser refuses IPv6 literals (one would make RTCPeerConnection raise): left out.
    assert [s.urls for s in conn.ice_servers] == [
        "turn:h:3478?transport=udp", "turn:h:3478?transport=tcp", "turns:h:5349", "stun:h:3478"]
    assert all((s.username, s.credential) == ("1:a", "pw") for s in conn.ice_servers[:3])
    # aiortc uses only the first TURN URL it supports: preferring TCP puts those first.
    assert [s.urls for s in conn.ice_servers_preferring("tcp")] == [
        "turn:h:3478?transport=tcp", "turns:h:5349", "turn:h:3478?transport=udp", "stun:h:3478"]
    assert Connection(url="", jwt="", data={"iceServers": []}).ice_servers == []
    assert aiortc_ice_servers(None) == []


# --- hubbub serve refuses bad settings -------------------------------------------------------

async def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None
                 ) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if k != "HUBBUB_TURN_SECRET"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hubbub", "serve", "--host", "127.0.0.1", "--http-port", "1",
        "--data-dir", str(tmp_path / "never"), *args,
        env={**environ, **(env or {})}, cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_serve_refuses_bad_turn_settings_at_startup(tmp_path: Path) -> None:
    cases = [
        (["--turn-server", "turn:turn.test:3478?transport=sctp", "--turn-secret", "s"], None,
         "hubbub serve: TURN URL 'turn:turn.test:3478?transport=sctp': transport must be"),
        (["--turn-server", "turns:[fe80::zz]", "--turn-secret", "s"], None,
         "is not an IPv6 address"),
        (["--turn-server", "turn:turn.test"], None,
         "hubbub serve: --turn-server needs --turn-secret"),
        ([], {"HUBBUB_TURN_SECRET": "s"},
         "hubbub serve: --turn-secret is set (maybe through HUBBUB_TURN_SECRET) but no "
         "--turn-server"),
    ]
    results = await asyncio.gather(*(_serve(tmp_path, *a, env=e) for a, e, _ in cases))
    for (args, _, message), (code, err) in zip(cases, results, strict=True):
        assert code == 2, (args, err)
        assert message in err, (args, err)
    assert not (tmp_path / "never").exists()  # refused before the data dir is made
