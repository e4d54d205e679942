"""deploy/proxy/'s nginx and Caddy examples, run for real with a self-signed certificate in
front of a real `hubbub serve --trusted-proxy 127.0.0.1`: signaling over wss:// through the
proxy (the WebSocket upgrade), media straight to the media port, /metrics kept private."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import pytest_asyncio

from tests.helpers.server import RunningServer
from tests.helpers.tls import Tls, self_signed
from tests.helpers.tokens import admin_token
from tests.packaging.forwarding import assert_forwards_media_at
from tests.packaging.proxies import (
    caddyfile,
    free_ports,
    nginx_main,
    nginx_site,
    running,
)
from tests.packaging.tools import require_tool

pytestmark = [pytest.mark.slow]

Proxy = Callable[[Tls, int, int, Path], AbstractContextManager[None]]


def nginx(tls: Tls, https_port: int, upstream_port: int,
          where: Path) -> AbstractContextManager[None]:
    binary = require_tool("nginx")
    main = nginx_main(where, nginx_site(tls, https_port, free_ports(1)[0], upstream_port))
    return running([binary, "-p", str(where), "-c", str(main)], https_port, where)


def caddy(tls: Tls, https_port: int, upstream_port: int,
          where: Path) -> AbstractContextManager[None]:
    binary = require_tool("caddy")
    config = where / "Caddyfile"
    config.write_text(caddyfile(tls, https_port, upstream_port))
    return running([binary, "run", "--config", str(config), "--adapter", "caddyfile"],
                   https_port, where, env={"XDG_DATA_HOME": str(where / "data"),
                                           "XDG_CONFIG_HOME": str(where / "config")})


ADMIN_SECRET = "packaging-admin-secret-for-tests"


@pytest_asyncio.fixture
async def srv() -> AsyncIterator[RunningServer]:
    server = RunningServer(name="packaging-behind-proxy",
                           options={"trusted_proxy": "127.0.0.1", "open_viewing": "proxied",
                                    "api_secret": ADMIN_SECRET})
    async with server:
        yield server


def get(url: str, tls: Tls) -> int:
    context = ssl.create_default_context(cafile=str(tls.cert))
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def director_status_from(source: str, https_port: int, tls: Tls, token: str) -> int:
    """The Director's answer to a subscribe with `token`, through the proxy, from the
    loopback address `source` (the proxy sees it and forwards it as X-Forwarded-For)."""
    context = ssl.create_default_context(cafile=str(tls.cert))
    conn = http.client.HTTPSConnection("127.0.0.1", https_port, context=context, timeout=5,
                                       source_address=(source, 0))
    try:
        conn.request("POST", "/api/director/subscribe", json.dumps({"streamName": "fenced"}),
                     {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        return conn.getresponse().status
    finally:
        conn.close()


def director_ws_url(base: str, tls: Tls | None = None) -> str:
    """The signaling URL the Director hands a viewer (an open stream: no token)."""
    request = urllib.request.Request(
        base + "/api/director/subscribe", data=json.dumps({"streamName": "proxied"}).encode(),
        headers={"Content-Type": "application/json"})
    context = ssl.create_default_context(cafile=str(tls.cert)) if tls else None
    with urllib.request.urlopen(request, timeout=5, context=context) as resp:
        url: str = json.load(resp)["data"]["wsUrl"]
        return url


@pytest.mark.parametrize("proxy", [nginx, caddy], ids=["nginx", "caddy"])
async def test_signaling_through_the_tls_proxy_and_media_beside_it(
        proxy: Proxy, srv: RunningServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tls = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))  # the SDK's wss:// trusts it
    https_port = free_ports(1)[0]
    with proxy(tls, https_port, srv.http_port, tmp_path):
        base = f"https://127.0.0.1:{https_port}"
        assert get(base + "/healthz", tls) == 200
        assert get(base + "/metrics", tls) == 404  # not served to the Internet
        # X-Forwarded-Proto from a --trusted-proxy: the Director says wss:// at the proxy.
        assert director_ws_url(base, tls) == f"wss://127.0.0.1:{https_port}/ws/v2/sub"
        assert director_ws_url(srv.http_url) == f"ws://127.0.0.1:{srv.http_port}/ws/v2/sub"
        # X-Forwarded-For from a --trusted-proxy: hubbub's peer is always the proxy
        # (127.0.0.1), yet a token for 127.0.0.2 only works for a client at 127.0.0.2.
        fenced = admin_token(srv.http_url, ADMIN_SECRET, "subscribe", "fenced",
                             allowedIpAddresses=["127.0.0.2"])["token"]
        assert director_status_from("127.0.0.2", https_port, tls, fenced) == 200
        assert director_status_from("127.0.0.1", https_port, tls, fenced) in (401, 403)
        wss = f"wss://127.0.0.1:{https_port}"
        await assert_forwards_media_at(wss + "/ws/v2/pub", wss + "/ws/v2/sub", "proxied")
