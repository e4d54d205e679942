"""TURN through a real coturn (Debian `turnserver`, tests/helpers/coturn.py): the credentials
`hubbub serve --turn-server ... --turn-secret ...` hands out in Director replies get relay
allocations, expired or wrongly keyed ones are refused, and aiortc publishers and viewers of the
Python SDK (and the CLI) exchange media through the relay only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aioice import stun
from aioice import turn as aioice_turn
from aiortc import RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri
from tests.helpers.coturn import Coturn
from tests.helpers.server import RunningServer
from tests.helpers.tls import self_signed

from hubbub.client import commands
from hubbub.client.analysis import dominant_frequency
from hubbub.client.director import Connection, connect_info
from hubbub.client.media import AudioRecorder, ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from hubbub.control.auth import turn

SECRET = "coturn-shared-secret-for-tests"
ADMIN = "turn-e2e-admin-secret-0123456789abcdef"
_names = itertools.count()


@pytest.fixture(scope="module")
def coturn() -> Iterator[Coturn]:
    with Coturn(secret=SECRET, name="coturn-e2e") as server:
        yield server


@pytest.fixture(scope="module")
def srv(coturn: Coturn) -> Iterator[RunningServer]:
    # UDP first, as operators list them: clients that can use UDP should.
    args = ["--turn-server", coturn.uri("udp"), "--turn-server", coturn.uri("tcp"),
            "--turn-secret", SECRET, "--api-secret", ADMIN, "--open-viewing", "turn*"]
    with RunningServer(name="turn-e2e", allow_any_stream=False, extra_args=args) as server:
        yield server


def stream_name() -> str:
    return f"turn{next(_names)}"


async def publish_token(srv: RunningServer) -> str:
    async with httpx.AsyncClient(base_url=srv.http_url) as http:
        reply = await http.post("/api/publish_token", json={"streams": [{"streamName": "turn*"}]},
                                headers={"Authorization": f"Bearer {ADMIN}"})
    assert reply.status_code == 201, reply.text
    token: str = reply.json()["data"]["token"]
    return token


def turn_server(conn: Connection, transport: str) -> RTCIceServer:
    """The Director's TURN entry for `transport`, as the SDK hands it to aiortc."""
    return next(s for s in conn.ice_servers
                if parse_stun_turn_uri(str(s.urls)).get("transport") == transport)


async def allocate(server: RTCIceServer, username: str | None = None,
                   password: str | None = None) -> tuple[aioice_turn.TurnTransport, str]:
    """One TURN allocation (aioice's client, as aiortc uses it); (transport, relayed host)."""
    parsed = parse_stun_turn_uri(str(server.urls))
    transport, _ = await asyncio.wait_for(aioice_turn.create_turn_endpoint(
        asyncio.DatagramProtocol, (parsed["host"], parsed["port"]),
        username if username is not None else server.username,
        password if password is not None else server.credential,
        ssl=parsed["scheme"] == "turns", transport=parsed["transport"],
    ), 10)
    relayed: tuple[str, int] = transport.get_extra_info("sockname")
    return transport, relayed[0]


async def refused_status(server: RTCIceServer, username: str, password: str) -> int:
    with pytest.raises(stun.TransactionFailed) as failed:
        await allocate(server, username, password)
    code: int = failed.value.response.attributes["ERROR-CODE"][0]
    return code


# --- credentials against coturn ----------------------------------------------------------

@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_director_credentials_get_a_relay_allocation(
    srv: RunningServer, coturn: Coturn, transport: str
) -> None:
    conn = await connect_info(srv.http_url, "subscribe", stream_name(), None)
    server = turn_server(conn, transport)
    relay, relayed_host = await allocate(server)
    try:
        assert relayed_host == coturn.host
        # coturn's own record of it, under the username the Director made from the JWT.
        assert coturn.allocations(server.username)
    finally:
        relay.close()


async def test_expired_and_wrongly_keyed_credentials_are_refused_with_401(
    srv: RunningServer, coturn: Coturn
) -> None:
    conn = await connect_info(srv.http_url, "subscribe", stream_name(), None)
    server = turn_server(conn, "tcp")
    expired = turn.credentials(SECRET, int(time.time()) - 5, "expired")
    assert await refused_status(server, *expired) == 401
    wrong_key = turn.credentials("not-the-secret", int(time.time()) + 600, "wrongkey")
    assert await refused_status(server, *wrong_key) == 401
    # The Director's own username with a password keyed by another secret.
    assert server.username is not None
    forged = turn.credentials("not-the-secret", int(server.username.split(":")[0]),
                              server.username.split(":")[1])
    assert await refused_status(server, *forged) == 401
    for username in (expired[0], wrong_key[0]):
        assert coturn.allocations(username) == []
    assert f"user <{expired[0]}>: incoming packet message processed, error 401" in (
        coturn.log_text())


@pytest.mark.slow
async def test_an_allocation_made_in_time_outlives_the_expiry(coturn: Coturn) -> None:
    """coturn checks the expiry when an allocation is made (coturn 4.6.1, no --stale-nonce):
    a session that began while the JWT was valid keeps its relay after `exp`, as it keeps its
    WebSocket; only new allocations need new credentials (a new Director call)."""
    username, password = turn.credentials(SECRET, int(time.time()) + 2, "short")
    server = RTCIceServer(coturn.uri("tcp"), username, password)
    relay, _ = await allocate(server)
    try:
        await asyncio.sleep(3.5)
        inner = relay._TurnTransport__inner_protocol  # type: ignore[attr-defined]
        request = stun.Message(message_method=stun.Method.REFRESH,
                               message_class=stun.Class.REQUEST)
        request.attributes["LIFETIME"] = 600
        response, _ = await inner.request_with_retry(request)
        assert response.attributes["LIFETIME"] == 600
    finally:
        relay.close()
    assert await refused_status(server, username, password) == 401  # but no new one


# --- media through the relay --------------------------------------------------------------

def relay_candidates_only(session: Publisher | Viewer) -> list[str]:
    """Types of the local ICE candidates the session's peer connection gathered."""
    kinds = set()
    for transceiver in session.pc.getTransceivers():
        gatherer = transceiver.sender.transport.transport.iceGatherer
        kinds |= {c.type for c in gatherer.getLocalCandidates()}
    return sorted(kinds)


@pytest.mark.slow
async def test_sdk_publisher_and_viewer_through_turn_tcp(
    srv: RunningServer, coturn: Coturn
) -> None:
    name = stream_name()
    token = await publish_token(srv)
    pub_conn = await connect_info(srv.http_url, "publish", name, token)
    view_conn = await connect_info(srv.http_url, "subscribe", name, None)
    # aiortc has no TCP fallback of its own: it uses the first TURN URL it supports, so pick
    # TCP. "relay" (RTCConfiguration.iceTransportPolicy, as in browsers) gathers no host
    # candidates: media reaches hubbub through coturn or not at all.
    pub = Publisher(pub_conn.url, name, token=pub_conn.jwt, tracks=[ToneTrack(440)],
                    ice_servers=pub_conn.ice_servers_preferring("tcp"),
                    ice_transport_policy="relay")
    viewer = Viewer(view_conn.url, name, token=view_conn.jwt, video=False,
                    ice_servers=view_conn.ice_servers_preferring("tcp"),
                    ice_transport_policy="relay")
    try:
        await pub.connect(timeout=20)
        await viewer.connect(timeout=20)
        assert relay_candidates_only(pub) == ["relay"]
        assert relay_candidates_only(viewer) == ["relay"]
        track = viewer.tracks_by_mid[viewer.audio_mid or ""]
        recorder = AudioRecorder(track, seconds=3).start()
        await recorder.wait_for_frames(100, timeout=15)
        heard = dominant_frequency(recorder.samples(1.0), recorder.sample_rate)
        assert abs(heard - 440) < 5, f"heard {heard:.1f} Hz through TURN, expected 440"
        await recorder.stop()
    finally:
        await viewer.close()
        await pub.close()
    for conn in (pub_conn, view_conn):
        username = turn_server(conn, "tcp").username
        assert username is not None
        assert coturn.allocations(username), f"no allocation for {username}"
        # Closing deletes the allocation; coturn then logs what the relay carried. The
        # viewer's relay received hubbub's media (~50 packets/s), the publisher's hubbub's
        # STUN answers and RTCP.
        coturn.wait_for_log(rf"peer usage: realm=<[^>]*>, username=<{username}>")
    viewer_user = turn_server(view_conn, "tcp").username
    assert viewer_user is not None
    assert max(p for p, _ in coturn.peer_usage(viewer_user)) > 100
    assert "incoming packet CHANNEL_BIND processed, success" in coturn.log_text()


@pytest.mark.slow
async def test_cli_publish_and_view_relay_only_through_turn_tcp(
    srv: RunningServer, coturn: Coturn
) -> None:
    name = stream_name()
    token = await publish_token(srv)
    pub_parser, view_parser = argparse.ArgumentParser(), argparse.ArgumentParser()
    commands.add_publish_arguments(pub_parser)
    commands.add_view_arguments(view_parser)
    pub_args = pub_parser.parse_args(
        ["--stream", name, "--director", srv.http_url, "--token", token, "--tone", "660",
         "--duration", "12", "--relay-only", "--turn-transport", "tcp"])
    view_args = view_parser.parse_args(
        ["--stream", name, "--director", srv.http_url, "--no-video", "--duration", "4",
         "--relay-only", "--turn-transport", "tcp"])
    before = len(coturn.allocations())
    pub_out, view_out = io.StringIO(), io.StringIO()
    publishing = asyncio.create_task(commands.publish(pub_args, pub_out))
    try:
        for _ in range(100):  # until the publisher is connected
            if "publisherId" in pub_out.getvalue():
                break
            await asyncio.sleep(0.1)
        assert await commands.view(view_args, view_out) == 0
    finally:
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(publishing, 15)  # its peer connection closed, relay freed
    lines = [json.loads(x) for x in view_out.getvalue().splitlines()]
    assert lines[0]["director"]["iceServers"] == [coturn.uri("tcp"), coturn.uri("udp")]
    heard = [m["received"] for m in lines if "received" in m]
    freqs = [r[mid]["frequency"] for r in heard for mid in r if "frequency" in r[mid]]
    assert freqs and abs(freqs[-1] - 660) < 5, lines
    assert len(coturn.allocations()) >= before + 2  # the publisher's and the viewer's


# --- turns: (TLS) -------------------------------------------------------------------------

@pytest.mark.slow
async def test_turns_allocation_needs_a_certificate_the_client_trusts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path.chmod(0o755)
    tls = self_signed(tmp_path, "127.0.0.1", "hubbub turns test", prefix="turn-")
    cert, key = tls.cert, tls.key
    key.chmod(0o644)  # coturn may drop privileges before reading it
    with Coturn(secret=SECRET, tls_cert=cert, tls_key=key, name="coturn-tls") as tls_turn:
        args = ["--turn-server", tls_turn.tls_uri(), "--turn-secret", SECRET,
                "--open-viewing", "turn*"]
        async with RunningServer(name="turns-e2e", allow_any_stream=False,
                                 extra_args=args) as server:
            conn = await connect_info(server.http_url, "subscribe", stream_name(), None)
        [entry] = conn.ice_servers
        assert entry.urls == tls_turn.tls_uri()
        # aioice (so aiortc) verifies the TURN server's certificate against the system's
        # trust store and offers no way to pass another CA: a self-signed one is refused.
        with pytest.raises(ssl.SSLCertVerificationError):
            await allocate(entry)
        # OpenSSL reads SSL_CERT_FILE whenever a default context is made: trust ours.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        relay, relayed_host = await allocate(entry)
        try:
            assert relayed_host == "127.0.0.1"
            assert tls_turn.allocations(entry.username)
        finally:
            relay.close()
