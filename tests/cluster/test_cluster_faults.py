"""Faults in a cluster: a node killed with SIGKILL, Redis restarted under running streams, a
node drained with SIGTERM; and `--workers 2` on one host (issue 12, "Faults", "Workers")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from collections.abc import Iterator

import jwt as pyjwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from hubbub.control.auth.keys import SigningKey
from tests.helpers.cluster import HEARTBEAT, TTL, cluster_node, cluster_stats, get_json
from tests.helpers.redis import RedisServer
from tests.helpers.server import HOST, RunningServer, ServerStartError, free_tcp_port

pytestmark = pytest.mark.slow


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer(name="cluster-faults-redis") as server:
        yield server


@pytest.fixture
def pair(redis: RedisServer) -> Iterator[tuple[RunningServer, RunningServer]]:
    a, b = cluster_node(redis, "faults-a"), cluster_node(redis, "faults-b")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


def recorder(viewer: Viewer) -> AudioRecorder:
    return AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], seconds=3).start()


async def heard(rec: AudioRecorder, seconds: float = 1.0) -> float:
    await rec.wait_for_frames(rec.frames + int(seconds * 50), timeout=10)
    return dominant_frequency(rec.samples(seconds), rec.sample_rate)


async def test_killed_node_leaves_and_a_republish_elsewhere_restores_audio(
    pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    async with Publisher(a.ws_pub_url, "kill", source_id="x", tracks=[ToneTrack(440)]) as pub:
        async with Viewer(b.ws_sub_url, "kill", video=False) as viewer:
            rec = recorder(viewer)
            assert abs(await heard(rec) - 440) < 5
            since = len(viewer.events)
            assert a.pid is not None
            os.killpg(a.pid, signal.SIGKILL)
            killed = time.monotonic()
            inactive = await viewer.wait_for_event("inactive", since=since, timeout=TTL + 5)
            took = time.monotonic() - killed
            assert inactive == {"streamId": "hubbub/kill", "sourceId": "x"}
            # Within the registry TTL (plus a heartbeat to notice); the bound is 10 s.
            assert took <= TTL + 2 * HEARTBEAT + 0.5, took
            await viewer.wait_for_event("stopped", since=since, timeout=2)
            await pub.close()
            since = len(viewer.events)
            async with Publisher(b.ws_pub_url, "kill", source_id="x", tracks=[ToneTrack(660)]):
                await viewer.wait_for_event("active", since=since, timeout=5)
                await asyncio.sleep(0.5)
                assert abs(await heard(rec) - 660) < 5
            await rec.stop()


async def test_redis_restart_does_not_interrupt_media_and_the_registry_is_rebuilt(
    redis: RedisServer, pair: tuple[RunningServer, RunningServer],
) -> None:
    a, b = pair
    async with Publisher(a.ws_pub_url, "rr", tracks=[ToneTrack(440)]):
        async with Viewer(b.ws_sub_url, "rr", video=False) as viewer:
            rec = recorder(viewer)
            assert abs(await heard(rec) - 440) < 5
            redis.restart()  # killed: nothing saved, the registry is empty when it is back
            # Audio keeps flowing: 50 frames a second, no gap longer than 300 ms.
            start, last, longest = rec.frames, rec.frames, 0.0
            last_time = time.monotonic()
            deadline = last_time + 4.0
            while time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                now = time.monotonic()
                if rec.frames != last:
                    last, last_time = rec.frames, now
                longest = max(longest, now - last_time)
            assert longest < 0.3, f"audio stalled {longest:.2f} s"
            assert rec.frames - start >= 0.8 * 50 * 4.0
            assert abs(await heard(rec) - 440) < 5
            # Every node has written its part again: both nodes and the source's claim.
            deadline = time.monotonic() + 5
            while True:
                members = redis.command("SMEMBERS", "hubbub:nodes").split()
                claims = redis.command("HKEYS", "hubbub:stream:rr:sources").split()
                if len(members) == 2 and claims == [b"null"]:
                    break
                assert time.monotonic() < deadline, (members, claims)
                await asyncio.sleep(0.2)
            # ... and it works for newcomers: a new viewer on B hears the stream.
            async with Viewer(b.ws_sub_url, "rr", video=False) as late:
                assert abs(await heard(recorder(late)) - 440) < 5
            await rec.stop()


async def test_sigterm_drains_the_node(redis: RedisServer) -> None:
    a, b = cluster_node(redis, "drain-a", drain_grace=2), cluster_node(redis, "drain-b")
    with a, b:
        node_a = cluster_stats(a)["node"]
        async with Viewer(a.ws_sub_url, "drain", video=False) as viewer, \
                Publisher(a.ws_pub_url, "drain", tracks=[ToneTrack(440)]):
            rec = recorder(viewer)
            assert abs(await heard(rec) - 440) < 5
            assert a.pid is not None
            os.killpg(a.pid, signal.SIGTERM)
            signalled = time.monotonic()
            deadline = signalled + 2
            while True:  # marked draining in Redis at once
                record = redis.command("GET", f"hubbub:node:{node_a}")
                if record.strip() and json.loads(record)["state"] == "draining":
                    break
                assert time.monotonic() < deadline, record
                await asyncio.sleep(0.05)
            # The other nodes see it at their next heartbeat (their Director skips it).
            while cluster_stats(b)["nodes"][node_a]["state"] != "draining":
                assert time.monotonic() < signalled + 2 + 2 * HEARTBEAT
                await asyncio.sleep(0.1)
            with pytest.raises(OSError):  # no new clients
                socket.create_connection((HOST, a.http_port), timeout=1).close()
            # Connected clients are served through the grace period...
            assert abs(await heard(rec) - 440) < 5
            # ... and the node stops after it.
            await viewer.wait_closed(timeout=5)
            assert time.monotonic() - signalled >= 1.5
            await rec.stop()
        deadline = time.monotonic() + 5
        while a.returncode is None:
            assert time.monotonic() < deadline, "the drained node did not exit"
            await asyncio.sleep(0.1)
        assert a.returncode == 0, a.log_tail()


def consecutive_free_ports(kind: int, count: int) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.bind((HOST, 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        try:
            socks = []
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind((HOST, port))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no consecutive free ports")


async def test_two_workers_share_viewers_with_one_relay_copy_per_worker() -> None:
    http = consecutive_free_ports(socket.SOCK_STREAM, 2)
    media = consecutive_free_ports(socket.SOCK_DGRAM, 2)
    # No --redis: the supervisor starts a private redis-server on a Unix socket. A capacity
    # of 10 makes one session 10 % of a worker, beyond the Director's 5 % slack, so it
    # spreads six viewers instead of keeping them with the stream's origin worker.
    srv = RunningServer(name="workers-2", http_port=http, media_port=media, options={
        "workers": 2, "open_viewing": "*", "api_secret": "cluster-test-secret",
        "heartbeat": HEARTBEAT, "no_spaces": True, "drain_grace": 1, "node_capacity": 10})
    async with srv:
        worker1 = f"http://{HOST}:{http + 1}"
        deadline = time.monotonic() + 20
        while True:  # both workers see each other (worker 0's Director places the viewers)
            try:
                if all(len(get_json(f"{url}/api/cluster")["nodes"]) == 2
                       for url in (srv.http_url, worker1)):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, srv.log_tail()
            await asyncio.sleep(0.2)
        async with Publisher(srv.ws_pub_url, "wk", tracks=[ToneTrack(440)]):
            viewers = []
            try:
                for _ in range(6):
                    reply = get_json(f"{srv.http_url}/api/director/subscribe", secret=None,
                                     body={"streamName": "wk"})["data"]
                    viewer = Viewer(reply["urls"][0], "wk", token=reply["jwt"], video=False)
                    await viewer.connect()
                    viewers.append(viewer)
                ports = [int(v.url.rsplit(":", 1)[1].split("/")[0]) for v in viewers]
                assert sorted(set(ports)) == [http, http + 1], ports
                assert min(ports.count(http), ports.count(http + 1)) >= 2, ports
                for viewer in viewers:
                    assert abs(await heard(recorder(viewer)) - 440) < 5
                origin = get_json(f"{srv.http_url}/api/cluster")
                edge = get_json(f"{worker1}/api/cluster")
                [hosted] = origin["hosted"]
                # Exactly one copy to the other worker, whatever its number of viewers.
                assert list(hosted["feeds"]) == [edge["node"]]
                assert hosted["feeds"][edge["node"]] <= hosted["packets"]
                [pulled] = edge["pulled"]
                assert pulled["origin"] == origin["node"] and pulled["sourceId"] is None
            finally:
                for viewer in viewers:
                    await viewer.close()


async def test_a_jwt_of_an_unknown_key_is_refused_cleanly_while_redis_is_down(
    redis: RedisServer, pair: tuple[RunningServer, RunningServer],
) -> None:
    a, _ = pair
    outsider = SigningKey.generate()
    now = int(time.time())
    token = pyjwt.encode(
        {"iss": "hubbub", "aud": "hubbub-publish", "sub": "1", "iat": now, "nbf": now,
         "exp": now + 600, "jti": "x"},
        outsider.private_key, "ES256", headers={"typ": "hubbub-publish+jwt", "kid": outsider.kid})

    async def close_code() -> tuple[int | None, str | None]:
        async with connect(f"{a.ws_pub_url}?token={token}", open_timeout=5) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        rcvd = closed.value.rcvd
        return (rcvd.code, rcvd.reason) if rcvd else (None, None)

    refused = (4401, "Unauthorized: token signed by an unknown key")
    assert await close_code() == refused
    redis.stop()
    assert await close_code() == refused  # the registry cannot be read: still a clean refusal


def test_a_node_that_cannot_reach_redis_fails_at_start_with_a_clear_message() -> None:
    port = free_tcp_port()  # nothing listens there
    srv = cluster_node(f"redis://{HOST}:{port}/0", "no-redis")
    with pytest.raises(ServerStartError) as failed:
        srv.start()
    assert srv.returncode == 2
    assert f"cannot reach Redis at redis://{HOST}:{port}/0" in str(failed.value)
