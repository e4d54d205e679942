"""The official `@millicast/sdk` 0.6.1 (node_modules, unmodified) against a real `hubbub serve`.

Each test drives the SDK in headless Chromium through tests/e2e/sdk/harness.js; pages are served
from 127.0.0.1 (the repository root, so the SDK is imported from /node_modules/...) and the only
thing pointed at hubbub is `Director.setEndpoint(<node URL>)`. Tokens come from the REST API,
JWTs from the Director, exactly as a Millicast app gets them. Talkers with known tones are aiortc
publishers holding a Director JWT.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page
from tests.helpers.browser import REPO_ROOT, PageFactory, StaticServer, wait_until
from tests.helpers.server import RunningServer

from hubbub.client.analysis import dominant_frequency, rms
from hubbub.client.director import connect_info
from hubbub.client.media import ToneTrack
from hubbub.client.publisher import Publisher

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

ADMIN = "admin-secret-millicast-sdk-0123456789"
SDK_FILE = REPO_ROOT / "node_modules" / "@millicast" / "sdk" / "dist" / "millicast.mjs"
SDK_DIR = "/tests/e2e/sdk"
ACCOUNT = "hubbub"
TONES = {"t1": 500.0, "t2": 700.0}
SLOT_MIDS = ("2", "3", "4")  # video 0, main audio 1, then multiplexedAudioTracks: 3

Json = dict[str, Any]


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    if not SDK_FILE.is_file():
        pytest.fail(f"{SDK_FILE} missing: run `npm ci` (scripts/test does)", pytrace=False)
    args = ["--api-secret", ADMIN, "--open-viewing", "open-*"]
    with RunningServer(name="millicast-sdk", allow_any_stream=False, extra_args=args) as s:
        yield s


@pytest.fixture(scope="module")
def repo_pages() -> Iterator[StaticServer]:
    """The repository root over http://127.0.0.1: the harness page and node_modules."""
    pages = StaticServer(REPO_ROOT).start()
    yield pages
    pages.stop()


@pytest_asyncio.fixture
async def pages(
    browser: Browser, repo_pages: StaticServer, request: pytest.FixtureRequest
) -> AsyncIterator[PageFactory]:
    factory = PageFactory(browser, repo_pages.url + SDK_DIR, name=f"sdk-{request.node.name}")
    yield factory
    await factory.close()


def admin(srv: RunningServer, method: str, path: str, body: Json | None = None) -> httpx.Response:
    return httpx.request(method, srv.http_url + path, json=body,
                         headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)


def create_token(srv: RunningServer, kind: str, pattern: str = "sdk-*", **fields: Any) -> Json:
    reply = admin(srv, "POST", f"/api/{kind}_token",
                  {"streams": [{"streamName": pattern}], **fields})
    assert reply.status_code == 201, reply.text
    data: Json = reply.json()["data"]
    return data


@pytest.fixture(scope="module")
def publish_token(srv: RunningServer) -> str:
    return str(create_token(srv, "publish", multisource=True)["token"])


@pytest.fixture(scope="module")
def subscribe_token(srv: RunningServer) -> str:
    return str(create_token(srv, "subscribe")["token"])


# --- helpers ------------------------------------------------------------------------------


async def harness(pages: PageFactory, srv: RunningServer) -> Page:
    page = await pages("harness.html")
    await page.wait_for_function("window.sdk && window.sdk.ready", timeout=15000)
    endpoint = await page.evaluate("(url) => sdk.setEndpoint(url)", srv.http_url)
    assert endpoint == srv.http_url
    return page


async def sdk_publish(
    pages: PageFactory, srv: RunningServer, token: str, stream: str, **options: Any
) -> Page:
    """A page whose SDK Publish `p` is connected (peer connection state "connected")."""
    page = await harness(pages, srv)
    result = await page.evaluate("(o) => sdk.publish('p', o)",
                                 {"token": token, "streamName": stream, **options})
    assert result["ok"], (result, pages.log_tail())
    await wait_until(page, "() => sdk.state('p') === 'connected'", timeout=20)
    return page


async def sdk_view(
    pages: PageFactory, srv: RunningServer, token: str | None, stream: str, **options: Any
) -> Page:
    """A page whose SDK View `v` has connected (View.connect resolved)."""
    page = await harness(pages, srv)
    result = await page.evaluate("(o) => sdk.view('v', o)",
                                 {"streamName": stream, "subscriberToken": token, **options})
    assert result["ok"], (result, pages.log_tail())
    return page


async def tone_publisher(srv: RunningServer, token: str, stream: str, source: str) -> Publisher:
    """An aiortc talker holding a JWT the Director issued for `token`."""
    info = await connect_info(srv.http_url, "publish", stream, token)
    pub = Publisher(info.url, stream, source_id=source, token=info.jwt,
                    tracks=[ToneTrack(TONES[source], amplitude=0.3)])
    await pub.connect()
    await pub.wait_connected()
    return pub


async def events(page: Page, name: str | None = None, client: str = "v") -> list[Json]:
    got: list[Json] = await page.evaluate("([c, n]) => sdk.events(c, n)", [client, name])
    return got


async def inbound(page: Page, client: str = "v") -> dict[str, Json]:
    stats: dict[str, Json] = await page.evaluate("(c) => sdk.inbound(c)", client)
    return stats


async def grows(page: Page, mid: str, field: str, seconds: float = 1.5) -> float:
    """How much inbound `field` of `mid` grew over `seconds`."""
    before = (await inbound(page)).get(mid, {}).get(field, 0)
    await asyncio.sleep(seconds)
    after = (await inbound(page)).get(mid, {}).get(field, 0)
    return float(after - before)


async def wait_grows(page: Page, mid: str, field: str, minimum: float, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        grown = await grows(page, mid, field, 1.0)
        if grown >= minimum:
            return
        if loop.time() > deadline:
            raise AssertionError(f"mid {mid} {field} grew {grown} < {minimum} in 1 s; "
                                 f"{await inbound(page)}")


async def tone_in(page: Page, mid: str) -> float:
    heard: Json = await page.evaluate("(m) => sdk.audioSamples('v', m)", mid)
    samples = np.array(heard["samples"], dtype=np.float64)
    if rms(samples) < 0.02:
        return 0.0
    return dominant_frequency(samples, int(heard["sampleRate"]))


async def slots(page: Page) -> dict[str, str | None]:
    """mid -> sourceId after every `vad` broadcastEvent so far."""
    current: dict[str, str | None] = dict.fromkeys(SLOT_MIDS)
    for data in await events(page, "vad"):
        current[data["data"]["mediaId"]] = data["data"].get("sourceId")
    return current


async def settle_slots(page: Page, wanted: set[str | None], timeout: float = 10) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        current = await slots(page)
        if set(current.values()) == wanted:
            return current
        if loop.time() > deadline:
            raise AssertionError(f"slots {current}, expected {wanted}")
        await asyncio.sleep(0.2)


def jwt_claims(token: str) -> Json:
    body = token.split(".")[1]
    claims: Json = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return claims


# --- Director -----------------------------------------------------------------------------


async def test_director_replies_and_refusals_reach_the_sdk_as_it_reads_them(
    srv: RunningServer, pages: PageFactory, publish_token: str, subscribe_token: str
) -> None:
    page = await harness(pages, srv)

    got = await page.evaluate("(o) => sdk.getPublisher(o)",
                              {"token": publish_token, "streamName": "sdk-director"})
    assert got["ok"], got
    data = got["value"]
    # The SDK opens urls[0] + "?token=" + jwt and reads millicast.streamName from the JWT.
    assert data["urls"] == [f"ws://127.0.0.1:{srv.http_port}/ws/v2/pub"]
    assert data["streamAccountId"] == ACCOUNT
    assert jwt_claims(data["jwt"])["millicast"] == {"streamName": "sdk-director", "record": False}

    got = await page.evaluate(
        "(o) => sdk.getSubscriber(o)",
        {"streamName": "sdk-director", "streamAccountId": ACCOUNT,
         "subscriberToken": subscribe_token},
    )
    assert got["ok"], got
    assert got["value"]["urls"] == [f"ws://127.0.0.1:{srv.http_port}/ws/v2/sub"]
    assert got["value"]["subscribeRequiresAuth"] is True
    # The SDK hands the token back in the reply (it reuses it for DRM license requests).
    assert got["value"]["subscriberToken"] == subscribe_token
    assert jwt_claims(got["value"]["jwt"])["millicast"]["streamName"] == "sdk-director"

    # An open stream needs no subscriber token.
    got = await page.evaluate("(o) => sdk.getSubscriber(o)",
                              {"streamName": "open-1", "streamAccountId": ACCOUNT})
    assert got["ok"], got
    assert got["value"]["subscribeRequiresAuth"] is False

    # Refusals: the SDK throws FetchError(data.message, HTTP status) on {"status": "fail"}.
    refusals = [
        ("getPublisher", {"token": "not-a-token", "streamName": "sdk-director"},
         401, "Unauthorized: Invalid token"),
        ("getPublisher", {"token": publish_token, "streamName": "elsewhere"},
         403, "Forbidden: token does not cover stream 'elsewhere'"),
        ("getSubscriber", {"streamName": "sdk-director", "streamAccountId": ACCOUNT},
         401, "Unauthorized: this stream requires a subscribe token"),
        ("getSubscriber", {"streamName": "sdk-director", "streamAccountId": "someone-else",
                           "subscriberToken": subscribe_token},
         400, "Bad Request: unknown streamAccountId 'someone-else' (this node's account is "
              "'hubbub')"),
    ]
    for call, options, status, message in refusals:
        got = await page.evaluate(f"(o) => sdk.{call}(o)", options)
        assert got == {"ok": False, "error": {"name": "FetchError", "status": status,
                                              "message": message}}, (call, options)


async def test_a_401_from_the_director_stops_connect_without_retrying(
    srv: RunningServer, pages: PageFactory
) -> None:
    page = await harness(pages, srv)
    result = await page.evaluate("(o) => sdk.view('v', o)",
                                 {"streamName": "sdk-refused", "subscriberToken": "wrong"})
    assert result == {"ok": False, "error": {"name": "FetchError", "status": 401,
                                             "message": "Unauthorized: Invalid token"}}
    result = await page.evaluate("(o) => sdk.publish('p', o)",
                                 {"token": "wrong", "streamName": "sdk-refused", "video": False})
    assert result == {"ok": False, "error": {"name": "FetchError", "status": 401,
                                             "message": "Unauthorized: Invalid token"}}
    await asyncio.sleep(3)  # a retry would come after 1-2 s
    for client in ("v", "p"):
        assert await page.evaluate("(c) => sdk.directorCalls(c)", client) == 1
        log = await page.evaluate("(c) => sdk.log(c)", client)
        assert [e for e in log if e["what"] == "reconnect"] == []


# --- publish and view ---------------------------------------------------------------------


async def test_sdk_publishers_and_a_multiplexed_pinned_view(
    srv: RunningServer, pages: PageFactory, publish_token: str, subscribe_token: str
) -> None:
    stream = "sdk-room"
    talkers: dict[str, Publisher] = {}
    try:
        # Publish.connect: two sources (h264 and vp8, DTX) and the main source (no sourceId).
        pub_a = await sdk_publish(pages, srv, publish_token, stream,
                                  sourceId="a", codec="h264", dtx=True)
        pub_b = await sdk_publish(pages, srv, publish_token, stream,
                                  sourceId="b", codec="vp8", dtx=True)
        pub_main = await sdk_publish(pages, srv, publish_token, stream, codec="vp8", dtx=True)
        for source in TONES:
            talkers[source] = await tone_publisher(srv, publish_token, stream, source)

        viewer = await sdk_view(pages, srv, subscribe_token, stream, pinnedSourceId="a",
                                excludedSourceIds=["b"], multiplexedAudioTracks=3)

        # `track` fires for every transceiver of the offer, once `active` released them.
        await wait_until(viewer, "() => sdk.tracks('v').length >= 5", timeout=15)
        tracks = await viewer.evaluate("sdk.tracks('v')")
        assert [(t["mid"], t["kind"]) for t in tracks] == [
            ("0", "video"), ("1", "audio"), ("2", "audio"), ("3", "audio"), ("4", "audio")]

        # `active` for every live source, with the payload apps read.
        active = {e["data"]["sourceId"]: e["data"] for e in await events(viewer, "active")}
        assert set(active) == {"a", "b", None, "t1", "t2"}
        for source_id in ("a", "b", None):
            assert active[source_id]["streamId"] == f"{ACCOUNT}/{stream}"
            assert sorted(t["media"] for t in active[source_id]["tracks"]) == ["audio", "video"]
            assert all(isinstance(t["trackId"], str) for t in active[source_id]["tracks"])
        assert [t["media"] for t in active["t1"]["tracks"]] == ["audio"]

        # The pinned source (h264) is the main video, decoded.
        await wait_grows(viewer, "0", "framesDecoded", 5)
        assert (await inbound(viewer))["0"]["codec"].startswith("video/H264")
        await wait_grows(viewer, "1", "packetsReceived", 1)

        # The talkers fill two slots; "b" is excluded and "a" is the main source.
        placed = await settle_slots(viewer, {"t1", "t2", None})
        history = [e["data"] for e in await events(viewer, "vad")]
        assert {h.get("sourceId") for h in history} <= {"t1", "t2", None}
        for mid, source in placed.items():
            if source is None:
                continue
            await viewer.evaluate("(m) => sdk.audioSamples('v', m)", mid)  # start the tap
        await asyncio.sleep(1.0)
        for mid, source in placed.items():
            if source is None:
                assert await grows(viewer, mid, "packetsReceived", 0.5) == 0
                continue
            assert await grows(viewer, mid, "totalAudioEnergy") > 0, mid
            assert abs(await tone_in(viewer, mid) - TONES[source]) < 10, (mid, source)

        # viewercount reaches viewers (and publishers that asked for it) coalesced.
        await wait_until(viewer, "() => sdk.events('v', 'viewercount').length > 0")
        assert (await events(viewer, "viewercount"))[-1]["data"] == {"viewercount": 1}
        assert (await events(pub_a, "active", client="p"))[-1]["data"] == {
            "streamId": f"{ACCOUNT}/{stream}"}

        # A talker leaves: `inactive` with its sourceId, its slot reported idle.
        t1_mid = next(m for m, s in placed.items() if s == "t1")
        await talkers.pop("t1").close()
        await wait_until(viewer, "() => sdk.events('v', 'inactive').length > 0")
        assert (await events(viewer, "inactive"))[0]["data"] == {
            "streamId": f"{ACCOUNT}/{stream}", "sourceId": "t1"}
        await settle_slots(viewer, {"t2", None})
        assert (await events(viewer, "vad"))[-1]["data"] == {"mediaId": t1_mid, "sourceId": None}

        # Everyone stops: `stopped`, after an `inactive` per source.
        await talkers.pop("t2").close()
        for page in (pub_a, pub_b, pub_main):
            await page.evaluate("sdk.stop('p')")
        await wait_until(viewer, "() => sdk.events('v', 'stopped').length > 0", timeout=15)
        gone = [e["data"]["sourceId"] for e in await events(viewer, "inactive")]
        assert sorted(gone, key=str) == sorted(["t1", "t2", "a", "b", None], key=str)
        assert (await events(viewer, "stopped"))[-1]["data"] == {
            "streamId": f"{ACCOUNT}/{stream}"}
    finally:
        for talker in talkers.values():
            await talker.close()


# --- addRemoteTrack + project / unproject -------------------------------------------------


async def test_projection_into_transceivers_added_by_local_renegotiation(
    srv: RunningServer, pages: PageFactory, publish_token: str, subscribe_token: str
) -> None:
    stream = "sdk-project"
    pub_a = await sdk_publish(pages, srv, publish_token, stream, sourceId="a", codec="h264")
    await sdk_publish(pages, srv, publish_token, stream, sourceId="b", codec="vp8")
    viewer = await sdk_view(pages, srv, subscribe_token, stream, pinnedSourceId="a",
                            multiplexedAudioTracks=1)
    await wait_grows(viewer, "0", "framesDecoded", 5)

    # View.addRemoteTrack: the SDK fabricates the answer itself; the server is never told.
    video_mid = await viewer.evaluate("sdk.addRemoteTrack('v', 'video')")
    audio_mid = await viewer.evaluate("sdk.addRemoteTrack('v', 'audio')")
    assert (video_mid, audio_mid) == ("3", "4")  # the next mids after 0, 1, 2
    assert (await inbound(viewer))[video_mid]["packetsReceived"] == 0

    b_active = next(e["data"] for e in await events(viewer, "active")
                    if e["data"]["sourceId"] == "b")
    b_video = next(t["trackId"] for t in b_active["tracks"] if t["media"] == "video")
    result = await viewer.evaluate(
        "([v, a, t]) => sdk.project('v', 'b', [{trackId: t, mediaId: v}, "
        "{media: 'audio', mediaId: a}])",
        [video_mid, audio_mid, b_video],
    )
    assert result == {"ok": True, "value": None}, result

    # b's VP8 video decodes in the new transceiver, its audio plays in the other.
    await wait_grows(viewer, video_mid, "framesDecoded", 5)
    stats = await inbound(viewer)
    assert stats[video_mid]["codec"].startswith("video/VP8")
    assert stats["0"]["codec"].startswith("video/H264")  # the main video is still a's
    await wait_grows(viewer, audio_mid, "packetsReceived", 10)
    assert await grows(viewer, audio_mid, "totalAudioEnergy", 2.0) > 0

    # The packets that reach the new mid carry b's media; the pinned main keeps a's.
    assert stats[video_mid]["ssrc"] != stats["0"]["ssrc"]

    # select is accepted (single-layer video for now).
    assert await viewer.evaluate("sdk.select('v', {encodingId: '1'})") == {"ok": True,
                                                                            "value": None}

    # Refusals come back as command errors.
    bad = await viewer.evaluate(
        "(v) => sdk.project('v', 'nobody', [{media: 'video', mediaId: v}])", video_mid)
    assert bad == {"ok": False, "error": {"message": "source 'nobody' is not live"}}
    bad = await viewer.evaluate("sdk.project('v', 'b', [{media: 'audio', mediaId: '2'}])")
    assert bad["error"]["message"].startswith("mid '2' is a multiplexed audio track")

    # unproject: nothing more arrives in the projected video mid.
    result = await viewer.evaluate("(v) => sdk.unproject('v', [v])", video_mid)
    assert result == {"ok": True, "value": None}
    await asyncio.sleep(0.5)
    assert await grows(viewer, video_mid, "packetsReceived", 1.5) == 0
    assert await grows(viewer, audio_mid, "packetsReceived", 1.0) > 10
    assert await grows(viewer, "0", "framesDecoded", 1.0) > 5

    # Projecting into the same mid again resumes it, now with the main source a (h264).
    result = await viewer.evaluate(
        "(v) => sdk.project('v', 'a', [{media: 'video', mediaId: v}])", video_mid)
    assert result["ok"], result
    await wait_grows(viewer, video_mid, "framesDecoded", 5)
    assert (await inbound(viewer))[video_mid]["codec"].startswith("video/H264")

    # The projection outlives its source: "a" leaves, publishes again, and the mid resumes.
    await pub_a.evaluate("sdk.stop('p')")
    await wait_until(viewer, "() => sdk.events('v', 'inactive').length > 0")
    await asyncio.sleep(0.5)  # packets already on the way when the source left
    assert await grows(viewer, video_mid, "packetsReceived", 1.0) == 0
    await sdk_publish(pages, srv, publish_token, stream, sourceId="a", codec="vp8")
    await wait_grows(viewer, video_mid, "framesDecoded", 5)
    assert (await inbound(viewer))[video_mid]["codec"].startswith("video/VP8")


# --- reconnection -------------------------------------------------------------------------


async def disconnect_viewers(srv: RunningServer, stream: str) -> int:
    reply = admin(srv, "POST", f"/api/streams/{stream}/viewers/disconnect")
    assert reply.status_code == 200, reply.text
    count: int = reply.json()["data"]["disconnected"]
    return count


async def test_the_sdk_reconnects_through_the_director_when_the_server_drops_it(
    srv: RunningServer, pages: PageFactory, publish_token: str, subscribe_token: str
) -> None:
    stream = "sdk-reconnect"
    await sdk_publish(pages, srv, publish_token, stream, codec="vp8")
    viewer = await sdk_view(pages, srv, subscribe_token, stream)
    await wait_grows(viewer, "0", "framesDecoded", 5)
    first_pc_ssrc = (await inbound(viewer))["0"]["ssrc"]

    assert await disconnect_viewers(srv, stream) == 1
    # The SDK notices its peer connection drop, emits `reconnect`, asks the Director again.
    await wait_until(viewer, "() => sdk.directorCalls('v') >= 2", timeout=20)
    reconnects = [e for e in await viewer.evaluate("sdk.log('v')") if e["what"] == "reconnect"]
    assert len(reconnects) == 1, reconnects
    await wait_until(viewer, "() => sdk.state('v') === 'connected'", timeout=15)
    await wait_grows(viewer, "0", "framesDecoded", 5)
    await wait_grows(viewer, "1", "packetsReceived", 10)
    assert (await inbound(viewer))["0"]["ssrc"] != first_pc_ssrc  # a new session
    assert await viewer.evaluate("sdk.directorCalls('v')") == 2


async def test_a_revoked_token_ends_the_reconnect_loop_with_the_directors_401(
    srv: RunningServer, pages: PageFactory, publish_token: str
) -> None:
    stream = "sdk-revoked"
    token = create_token(srv, "subscribe", pattern=stream)
    await sdk_publish(pages, srv, publish_token, stream, codec="vp8")
    viewer = await sdk_view(pages, srv, str(token["token"]), stream)
    await wait_grows(viewer, "0", "framesDecoded", 3)

    assert admin(srv, "POST", f"/api/subscribe_token/{token['id']}/revoke").status_code == 200
    assert await disconnect_viewers(srv, stream) == 1
    await wait_until(viewer, "() => sdk.directorCalls('v') >= 2", timeout=20)
    await asyncio.sleep(5)  # the SDK's next try would come 2 s after a non-401 failure
    assert await viewer.evaluate("sdk.directorCalls('v')") == 2
    reconnects = [e for e in await viewer.evaluate("sdk.log('v')") if e["what"] == "reconnect"]
    assert len(reconnects) == 1
    assert await viewer.evaluate("sdk.state('v')") != "connected"


# --- examples/ ----------------------------------------------------------------------------


async def test_example_pages_served_by_hubbub_publish_and_view(
    srv: RunningServer, browser: Browser, publish_token: str, subscribe_token: str
) -> None:
    sdk = httpx.get(f"{srv.http_url}/examples/sdk/millicast.mjs", timeout=10)
    assert sdk.status_code == 200
    assert sdk.headers["content-type"].startswith("text/javascript")
    assert sdk.content == SDK_FILE.read_bytes()
    assert httpx.get(f"{srv.http_url}/examples/../pyproject.toml", timeout=10).status_code == 404

    examples = PageFactory(browser, srv.http_url + "/examples", name="sdk-examples")
    try:
        stream = "sdk-examples"
        publisher = await examples("publisher.html", streamName=stream, token=publish_token,
                                   sourceId="host", codec="h264", autostart=True)
        await wait_until(publisher, "() => window.example.state === 'publishing'", timeout=20)
        viewer = await examples("viewer.html", streamName=stream,
                                subscriberToken=subscribe_token, multiplexedAudioTracks=2,
                                autostart=True)
        await wait_until(viewer, "() => window.example.state === 'viewing'", timeout=20)
        frames = """async () => {
            const stats = await window.example.view.getRTCPeerConnection().getStats();
            let frames = 0;
            stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video')
                frames = s.framesDecoded; });
            return frames > 10 && document.getElementById('main').videoWidth > 0;
        }"""
        await wait_until(viewer, frames, timeout=20)
        assert "host" in await viewer.inner_text("#sources")
        assert await viewer.evaluate("window.example.tracks.map((t) => t.kind)") == [
            "video", "audio", "audio", "audio"]
        await wait_until(publisher, "() => document.getElementById('viewers').textContent === '1'")
    finally:
        await examples.close()
