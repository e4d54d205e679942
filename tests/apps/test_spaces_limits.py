"""Spaces under abuse, against a real `hubbub serve` with a canary viewer hearing a 440 Hz
publisher: big request bodies are refused (413) before they are read, so the server's memory
does not grow; a flood of new identities or rooms from one address gets 429 with Retry-After
after its burst while other addresses still work; an identity has a bounded number of open
rooms; X-Forwarded-For counts only from a trusted proxy; the log stays small throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from hubbub.apps.spaces.cli import add_limit_arguments, add_spaces_arguments, limits_from
from hubbub.apps.spaces.config import SpacesConfig
from hubbub.apps.spaces.limits import AddressLimiter
from hubbub.apps.spaces.rooms import SpacesError
from hubbub.client.media import AudioRecorder, ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from hubbub.ratelimit import KeyedBuckets, TokenBucket, address_key
from tests.helpers.server import RunningServer

pytestmark = pytest.mark.slow

STREAM = "spaces-canary"
MB = 1024 * 1024

# Four 50 MB bodies at once, two with Content-Length and two chunked, each on its own socket;
# each sender stops when the server answers or drops the connection. Prints, per body, the
# bytes sent, the reply's status line and its body.
BODY_FLOOD = r"""
import json, socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
TOTAL, CHUNK = 50 * 1024 * 1024, b"x" * (1024 * 1024)

def one(mode, out):
    s = socket.create_connection((host, port))
    head = (f"POST /spaces/api/users HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\n")
    head += (f"Content-Length: {TOTAL}\r\n\r\n" if mode == "length"
             else "Transfer-Encoding: chunked\r\n\r\n")
    reply, done = bytearray(), threading.Event()
    def read():
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                reply.extend(data)
        except OSError:
            pass
        done.set()
    reader = threading.Thread(target=read)
    reader.start()
    sent = 0
    try:
        s.sendall(head.encode())
        while sent < TOTAL and not done.is_set():
            piece = CHUNK if mode == "length" else b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
            s.sendall(piece)
            sent += len(CHUNK)
        if mode == "chunked" and not done.is_set():
            s.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    done.wait(30)
    s.close()
    reader.join()
    status, _, rest = bytes(reply).partition(b"\r\n")
    out.append({"mode": mode, "sent": sent, "status": status.decode(errors="replace"),
                "body": rest.partition(b"\r\n\r\n")[2].decode(errors="replace")})

results = []
threads = [threading.Thread(target=one, args=(m, results))
           for m in ("length", "chunked", "length", "chunked")]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results))
"""

# POST /spaces/api/users as fast as one keep-alive connection allows; prints the status counts.
USER_FLOOD = r"""
import collections, http.client, json, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection(host, port, timeout=10, source_address=("127.0.0.1", 0))
counts, retry = collections.Counter(), None
for i in range(n):
    conn.request("POST", "/spaces/api/users", body=json.dumps({"name": f"bot {i}"}),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    counts[resp.status] += 1
    if resp.status == 429 and retry is None:
        retry = [resp.getheader("Retry-After"), json.loads(body)]
print(json.dumps({"counts": counts, "first429": retry}))
"""


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def log_size(srv: RunningServer) -> int:
    return os.path.getsize(srv.log_path)


def client(srv: RunningServer, source: str) -> httpx.AsyncClient:
    """An API client whose connections come from `source` (any 127.0.0.0/8 address is ours)."""
    return httpx.AsyncClient(
        base_url=f"{srv.http_url}/spaces/api", timeout=10,
        transport=httpx.AsyncHTTPTransport(local_address=source),
    )


async def new_user(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    resp = await http.post("/users", json={"name": name})
    assert resp.status_code == 201, resp.text
    made: dict[str, str] = resp.json()
    return {"Authorization": f"Bearer {made['secret']}"}


async def run_script(script: str, *args: str) -> Any:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    return json.loads(out)


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    # Default limits (what ships), tokens not required for the canary's stream.
    with RunningServer(name="spaces-limits") as s:
        yield s


class Canary:
    def __init__(self, viewer: Viewer) -> None:
        self.rec = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], seconds=3).start()

    async def fps_during(self, attack: asyncio.Task[Any]) -> float:
        """Frames a second the canary decodes while `attack` runs (at least 2 s)."""
        start, frames = time.monotonic(), self.rec.frames
        await asyncio.gather(attack, asyncio.sleep(2.0))
        return (self.rec.frames - frames) / (time.monotonic() - start)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def canary(srv: RunningServer) -> AsyncIterator[Canary]:
    async with Publisher(srv.ws_pub_url, STREAM, tracks=[ToneTrack(440)]):
        async with Viewer(srv.ws_sub_url, STREAM, video=False) as viewer:
            bird = Canary(viewer)
            await bird.rec.wait_for_frames(50, timeout=10)
            yield bird
            await bird.rec.stop()


@pytest.mark.asyncio(loop_scope="module")
async def test_big_bodies_are_refused_unread_and_memory_stays_flat(
    srv: RunningServer, canary: Canary
) -> None:
    assert srv.pid is not None
    async with client(srv, "127.0.0.5") as http:
        # Warm up: a normal call and a refused one, so lazy imports and buffers are counted
        # before the measurement, not in it.
        await new_user(http, "warm")
        small = await http.post("/users", content=b'{"name": "' + b"x" * 9000 + b'"}',
                                headers={"Content-Type": "application/json"})
        assert small.status_code == 413
        assert small.json() == {
            "error": "request body too large: the Spaces API takes at most 8192 bytes"}

        async def chunked() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"x" * 4096

        streamed = await http.post("/users", content=chunked(),
                                   headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413  # no Content-Length: counted as it arrives
    rss, peak, log_before = rss_kb(srv.pid), rss_kb(srv.pid, "VmHWM"), log_size(srv)

    task = asyncio.ensure_future(run_script(BODY_FLOOD, "127.0.0.1", str(srv.http_port)))
    fps = await canary.fps_during(task)
    results = task.result()
    grown, peak_grown = rss_kb(srv.pid) - rss, rss_kb(srv.pid, "VmHWM") - peak
    for one in results:
        assert one["sent"] < 50 * MB, one  # the server stopped the body early
        if one["status"]:  # the 413 arrives unless the reset overtook it
            assert one["status"].startswith("HTTP/1.1 413"), one
            assert "request body too large" in one["body"], one
    assert any(one["status"] for one in results)
    assert grown < 10 * 1024, f"RSS grew by {grown} KiB for 4 x 50 MB bodies"
    assert peak_grown < 20 * 1024, f"peak RSS grew by {peak_grown} KiB"
    assert fps >= 45, f"canary at {fps:.1f} frames/s during the body flood"
    assert log_size(srv) - log_before < 5_000
    async with client(srv, "127.0.0.5") as http:
        await new_user(http, "after the flood")  # the API still answers


@pytest.mark.asyncio(loop_scope="module")
async def test_a_user_creation_flood_gets_429_after_the_burst(
    srv: RunningServer, canary: Canary
) -> None:
    log_before = log_size(srv)
    start = time.monotonic()
    task = asyncio.ensure_future(run_script(USER_FLOOD, "127.0.0.1", str(srv.http_port), "2000"))
    ended: list[float] = []
    task.add_done_callback(lambda _: ended.append(time.monotonic()))
    fps = await canary.fps_during(task)  # at least 2 s: the bucket refills after a quick flood
    elapsed = time.monotonic() - start
    flood = task.result()
    made, refused = flood["counts"].get("201", 0), flood["counts"].get("429", 0)
    d = SpacesConfig
    assert made <= d.user_burst + d.user_rate * elapsed + 1, flood
    assert made >= d.user_burst - 2 and made + refused == 2000, flood  # the warm-up took some
    retry_after, error = flood["first429"]
    assert int(retry_after) >= 1
    assert error == {"error": f"too many new identities from your address; try again in "
                              f"{retry_after} s"}
    assert fps >= 45, f"canary at {fps:.1f} frames/s during the flood"

    async with client(srv, "127.0.0.1") as http:
        # Still refused once what refilled since the flood is spent, and a forged
        # X-Forwarded-For from an untrusted peer changes nothing.
        refilled = int(d.user_rate * (time.monotonic() - ended[0])) + 1
        for _ in range(refilled + 1):
            again = await http.post("/users", json={"name": "late"},
                                    headers={"X-Forwarded-For": "198.51.100.7"})
            if again.status_code != 201:
                break
        assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1
    async with client(srv, "127.0.0.2") as http:
        await new_user(http, "someone else")  # another address is not affected
    grown = log_size(srv) - log_before
    assert grown < 5_000, f"the log grew by {grown} bytes for 2,000 requests"
    tail = srv.log_text()[-grown:] if grown > 0 else ""
    assert tail.count("new identities from 127.0.0.1 refused") == 1, tail


@pytest.mark.asyncio(loop_scope="module")
async def test_room_creation_is_rate_limited_per_address(srv: RunningServer) -> None:
    d = SpacesConfig
    async with client(srv, "127.0.0.3") as http:
        owners = [await new_user(http, f"host {i}") for i in range(6)]
        made, refused = 0, None
        for i in range(d.room_burst + 5):
            resp = await http.post("/rooms", json={"name": f"room {i}"},
                                   headers=owners[i % len(owners)])
            if resp.status_code == 429:
                refused = resp
                break
            assert resp.status_code == 201, resp.text
            made += 1
        assert refused is not None and d.room_burst <= made <= d.room_burst + 1
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"].startswith("too many new rooms from your address")
    async with client(srv, "127.0.0.4") as http:
        owner = await new_user(http, "other host")
        resp = await http.post("/rooms", json={"name": "elsewhere"}, headers=owner)
        assert resp.status_code == 201, resp.text


@pytest.mark.asyncio(loop_scope="module")
async def test_an_owner_has_a_bounded_number_of_open_rooms(srv: RunningServer) -> None:
    cap = SpacesConfig.max_rooms_per_owner
    async with client(srv, "127.0.0.6") as http:
        owner = await new_user(http, "busy host")
        rooms = []
        for i in range(cap):
            resp = await http.post("/rooms", json={"name": f"stage {i}"}, headers=owner)
            assert resp.status_code == 201, resp.text
            rooms.append(resp.json()["room"]["id"])
        over = await http.post("/rooms", json={"name": "one more"}, headers=owner)
        assert over.status_code == 409
        assert over.json()["error"] == (f"you already have {cap} open rooms; close one before "
                                        "creating another")
        assert (await http.post(f"/rooms/{rooms[0]}/close", headers=owner)).status_code == 200
        again = await http.post("/rooms", json={"name": "one more"}, headers=owner)
        assert again.status_code == 201, again.text


async def test_a_trusted_proxy_forwards_the_client_address() -> None:
    flags = ["--trusted-proxy", "127.0.0.1", "--spaces-user-burst", "3",
             "--spaces-user-rate", "0.01"]
    async with RunningServer(name="spaces-limits-proxy", extra_args=flags) as srv:
        async with client(srv, "127.0.0.1") as http:
            def via(address: str) -> dict[str, str]:
                return {"X-Forwarded-For": address}

            codes = [(await http.post("/users", json={"name": "a"},
                                      headers=via("203.0.113.7"))).status_code
                     for _ in range(4)]
            assert codes == [201, 201, 201, 429]
            other = await http.post("/users", json={"name": "b"}, headers=via("203.0.113.8"))
            assert other.status_code == 201
            # Without the header, the proxy itself is the client: its own budget.
            assert (await http.post("/users", json={"name": "c"})).status_code == 201


# --- in-process -------------------------------------------------------------------------


def test_keyed_buckets_refill_and_stay_bounded() -> None:
    now = [0.0]
    buckets = KeyedBuckets(rate=2, burst=3, max_keys=100, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.5)]
    assert buckets.take("b") == 0.0
    now[0] += 0.5
    assert buckets.take("a") == 0.0 and buckets.take("a") > 0
    for i in range(1000):
        buckets.take(f"k{i}")
    assert len(buckets) <= 100
    bucket = TokenBucket(rate=4, burst=1, clock=lambda: now[0])
    assert bucket.take() and bucket.retry_after() == pytest.approx(0.25)


def test_address_keys_group_an_ipv6_64() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert address_key("192.0.2.1") == "192.0.2.1" and address_key(None) == "?"


def test_refusals_are_logged_a_few_times_then_counted(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limiter = AddressLimiter("new identities", 1.0, 2, clock=lambda: now[0])
    caplog.set_level(logging.INFO, "hubbub.apps.spaces.limits")
    for i in range(3000):
        try:
            limiter.check(f"10.0.{i % 50}.1")
        except SpacesError as exc:
            assert exc.status == 429 and exc.headers == {"Retry-After": "1"}
    assert len(caplog.records) == 5  # the first five addresses, then only counted
    now[0] += 61
    limiter.check("10.9.9.9")
    summary = caplog.records[-1].getMessage()
    assert summary.startswith("spaces: 2900 requests for new identities refused from 50 "
                              "addresses in the last 61 s (most: 10.0."), summary


def test_cli_flags_reach_the_config() -> None:
    serve = argparse.ArgumentParser()
    add_limit_arguments(serve, prefix="spaces-")
    args = serve.parse_args(["--spaces-user-rate", "5", "--spaces-rooms-per-owner", "2",
                             "--spaces-max-body", "100", "--spaces-presence-grace", "3"])
    limits = limits_from(args)
    assert limits["user_rate"] == 5 and limits["max_rooms_per_owner"] == 2
    assert limits["presence_grace"] == 3
    assert limits["max_body_bytes"] == 1024  # clamped: a valid body must fit
    assert limits["room_burst"] == SpacesConfig.room_burst
    standalone = argparse.ArgumentParser()
    add_spaces_arguments(standalone)
    args = standalone.parse_args(["--room-burst", "7", "--trusted-proxy", "10.0.0.1"])
    assert limits_from(args)["room_burst"] == 7 and args.trusted_proxy == ["10.0.0.1"]
    SpacesConfig("http://x", "s", "sqlite://", **limits_from(args))
