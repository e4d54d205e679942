"""Tokens across a cluster: three `hubbub serve --redis` nodes WITHOUT --allow-any-stream on
one PostgreSQL token database, a real redis-server. Whatever node a token was made, revoked
or its JWT issued on, every node treats it the same; forged JWTs get nowhere.

Each node has its own data dir and so its own JWT signing key: a node accepts another's JWT
only through the public JWK that node keeps in its registry record.

Nodes run with --node-capacity 4: the Director counts nodes whose load differs by less than
5 % of capacity (`placement_slack`) as equally loaded and then prefers one that already
carries the stream, so at the default capacity (500) a viewer joins the publisher's node;
at 4, one peer connection (25 %) makes a node more loaded than an idle one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import jwt as pyjwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hubbub.client.analysis import dominant_frequency
from hubbub.client.director import connect_info
from hubbub.client.media import AudioRecorder, ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from hubbub.control.auth.keys import SigningKey
from tests.helpers.cluster import cluster_stats
from tests.helpers.redis import RedisServer
from tests.helpers.secured_cluster import (
    ACCOUNT,
    admin,
    b64url,
    b64url_json,
    create_token,
    director,
    jwks_kid,
    node_id,
    secured_node,
    start_all,
    wait_idle,
)
from tests.helpers.server import RunningServer

pytestmark = pytest.mark.slow

CAPACITY = 4
PATTERN = "tok-*"
_names = itertools.count()


def stream_name() -> str:
    return f"tok-{next(_names)}"


@pytest.fixture(scope="module")
def nodes(redis: RedisServer, database_url: str) -> Iterator[list[RunningServer]]:
    started = [secured_node(redis, f"cluster-tokens-{n}", database_url, node_capacity=CAPACITY)
               for n in "abc"]
    start_all(started)
    try:
        yield started
    finally:
        for node in started:
            node.stop()


async def heard(viewer: Viewer) -> float:
    recorder = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], seconds=3).start()
    try:
        await recorder.wait_for_frames(50, timeout=10)
        return dominant_frequency(recorder.samples(1.0), recorder.sample_rate)
    finally:
        await recorder.stop()


async def close_of(url: str, token: str) -> tuple[int, str]:
    """Close code and reason a node ends a socket with before any command."""
    async with connect(f"{url}?token={token}", open_timeout=5) as ws:
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None
    return info.value.rcvd.code, info.value.rcvd.reason


# --- (a) a token from A, a JWT from C, a socket on B --------------------------------------


async def test_token_made_on_a_gets_a_jwt_from_c_that_b_accepts(
    nodes: list[RunningServer],
) -> None:
    a, b, c = nodes
    stream = stream_name()
    pub_token = await create_token(a, "publish", PATTERN, label="made on a")
    sub_token = await create_token(a, "subscribe", PATTERN)

    reply = await director(c, "publish", stream, pub_token["token"])
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    url, jwt = data["urls"][0], data["jwt"]
    assert reply.json() == {"status": "success", "data": {
        "urls": [url], "wsUrl": url, "jwt": jwt, "streamAccountId": ACCOUNT,
        "iceServers": [], "subscribeRequiresAuth": True,
    }}
    assert url in {n.ws_pub_url for n in nodes}

    # Signed with C's key, which B has never held: B verifies it with C's public JWK.
    kids = {n.http_port: await jwks_kid(n) for n in nodes}
    assert len(set(kids.values())) == 3
    header = pyjwt.get_unverified_header(jwt)
    assert header == {"alg": "ES256", "typ": "hubbub-publish+jwt", "kid": kids[c.http_port]}
    claims = b64url_json(jwt.split(".")[1])
    assert claims["sub"] == str(pub_token["id"])  # the token row A wrote, read by C
    assert claims["millicast"] == {"streamName": stream, "record": False}
    assert claims["hubbub"] == {"role": "publish", "stream": stream, "multisource": False,
                                "origins": [], "ips": []}

    async with Publisher(b.ws_pub_url, stream, token=jwt, tracks=[ToneTrack(440)]) as pub:
        await pub.wait_connected()
        # And the other way round: a subscribe JWT from B's Director opens a socket on A,
        # where the stream is relayed from B.
        view = await connect_info(b.http_url, "subscribe", stream, sub_token["token"])
        assert pyjwt.get_unverified_header(view.jwt)["kid"] == kids[b.http_port]
        async with Viewer(a.ws_sub_url, stream, token=view.jwt, video=False) as viewer:
            await viewer.wait_connected()
            freq = await heard(viewer)
            assert abs(freq - 440) < 5, f"heard {freq:.1f} Hz on A"
            hosted = cluster_stats(b)["hosted"]
            assert [(h["stream"], list(h["feeds"])) for h in hosted] == [
                (stream, [node_id(a)])]

    # The Director of C saw the token used: lastUsedOn is in the shared row.
    shown = await admin(a, "GET", f"/api/publish_token/{pub_token['id']}")
    assert shown.json()["data"]["lastUsedOn"] is not None


# --- (b) revoked on B, refused by A and C at once -----------------------------------------


async def test_token_revoked_through_b_is_refused_by_a_and_c_at_once(
    nodes: list[RunningServer],
) -> None:
    a, b, c = nodes
    stream = stream_name()
    tokens = {kind: await create_token(a, kind, PATTERN) for kind in ("publish", "subscribe")}
    for node in (a, c):
        for kind, token in tokens.items():
            reply = await director(node, kind, stream, token["token"])
            assert reply.status_code == 200, (node, kind, reply.text)

    revoked = {}
    for kind, token in tokens.items():
        reply = await admin(b, "POST", f"/api/{kind}_token/{token['id']}/revoke")
        assert reply.status_code == 200, reply.text
        revoked[kind] = reply.json()["data"]
        assert revoked[kind]["isActive"] is False and revoked[kind]["revokedOn"] is not None

    # No wait: the Directors read the shared row on every call.
    for node in (a, c):
        for kind, token in tokens.items():
            reply = await director(node, kind, stream, token["token"])
            assert reply.status_code == 401, (node, kind, reply.text)
            assert reply.json() == {"status": "fail",
                                    "data": {"message": "Unauthorized: token revoked"}}
            shown = await admin(node, "GET", f"/api/{kind}_token/{token['id']}")
            assert shown.json()["data"] == revoked[kind]


# --- (c) forged JWTs, every node ----------------------------------------------------------


async def test_forged_and_garbage_jwts_are_refused_on_every_node(
    nodes: list[RunningServer],
) -> None:
    a, b, c = nodes
    stream = stream_name()
    token = await create_token(a, "publish", PATTERN)
    reply = await director(a, "publish", stream, token["token"])
    genuine = reply.json()["data"]["jwt"]
    header, payload, signature = genuine.split(".")
    claims = b64url_json(payload)
    other_stream = {**claims, "millicast": {"streamName": "tok-other", "record": False},
                    "hubbub": {**claims["hubbub"], "stream": "tok-other"}}
    outsider = SigningKey.generate()
    a_kid = b64url_json(header)["kid"]
    sub_jwt = (await director(b, "subscribe", stream,
                              (await create_token(a, "subscribe", PATTERN))["token"])
               ).json()["data"]["jwt"]

    bad = "Unauthorized: invalid token signature"
    cases: list[tuple[str, str, str]] = [
        ("garbage", "garbage", "Unauthorized: malformed token"),
        ("three garbage parts", "not.a.jwt", "Unauthorized: malformed token"),
        ("payload edited, A's signature kept", f"{header}.{b64url(other_stream)}.{signature}",
         bad),
        ("signature cut off", f"{header}.{payload}.", bad),
        ("outsider's key under A's kid",
         pyjwt.encode(claims, outsider.private_key, "ES256",
                      headers={"typ": "hubbub-publish+jwt", "kid": a_kid}), bad),
        ("outsider's key under its own kid",
         pyjwt.encode(claims, outsider.private_key, "ES256",
                      headers={"typ": "hubbub-publish+jwt", "kid": outsider.kid}),
         "Unauthorized: token signed by an unknown key"),
        ("alg none", f"{b64url({'alg': 'none', 'typ': 'hubbub-publish+jwt'})}.{payload}.",
         "Unauthorized: token algorithm 'none' not allowed"),
        ("HS256 (algorithm confusion)",
         pyjwt.encode(claims, "x" * 32, "HS256",
                      headers={"typ": "hubbub-publish+jwt", "kid": a_kid}),
         "Unauthorized: token algorithm 'HS256' not allowed"),
    ]
    for node in nodes:
        for what, forged, reason in cases:
            for url in (node.ws_pub_url, node.ws_sub_url):
                assert await close_of(url, forged) == (4401, reason), (what, url)
        # A genuine JWT of the other kind from another node is recognised, and refused 4403.
        assert await close_of(node.ws_pub_url, sub_jwt) == (
            4403, "Forbidden: token is for subscribe, not publish")
    # The genuine one still opens a publish socket on every node (it was A's key all along).
    for node in (a, b, c):
        async with connect(f"{node.ws_pub_url}?token={genuine}", open_timeout=5) as ws:
            await ws.send('{"type": "cmd", "transId": 0, "name": "nothing", "data": {}}')
            assert '"unknown command' in str(await ws.recv())


# --- (d) the Director keeps the viewer off the loaded publisher's node --------------------


async def test_director_of_a_places_the_viewer_off_the_publishers_node(
    nodes: list[RunningServer],
) -> None:
    a, b, c = nodes
    stream = stream_name()
    pub_token = await create_token(a, "publish", PATTERN)
    sub_token = await create_token(a, "subscribe", PATTERN)
    await wait_idle(nodes)

    # All idle: A's Director keeps the publisher on A (it wins ties).
    publish = await connect_info(a.http_url, "publish", stream, pub_token["token"])
    assert publish.url == a.ws_pub_url
    async with Publisher(publish.url, stream, token=publish.jwt,
                         tracks=[ToneTrack(330)]) as pub:
        await pub.wait_connected()
        # A now has one peer connection of 4, B and C none: the viewer goes elsewhere.
        view = await connect_info(a.http_url, "subscribe", stream, sub_token["token"])
        assert view.url in (b.ws_sub_url, c.ws_sub_url), view.url
        edge = b if view.url == b.ws_sub_url else c
        async with Viewer(view.url, stream, token=view.jwt, video=False) as viewer:
            await viewer.wait_connected()
            freq = await heard(viewer)
            assert abs(freq - 330) < 5, f"heard {freq:.1f} Hz on {view.url}"
            hosted = cluster_stats(a)["hosted"]
            assert [(h["stream"], list(h["feeds"])) for h in hosted] == [
                (stream, [node_id(edge)])]
            pulled = cluster_stats(edge)["pulled"]
            assert [(p["stream"], p["origin"]) for p in pulled] == [(stream, node_id(a))]
