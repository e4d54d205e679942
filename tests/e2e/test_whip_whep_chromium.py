"""WHIP and WHEP from a web client: medooze's `whip-whep` 1.2.0 (node_modules, unmodified) in
headless Chromium against a real `hubbub serve`.

Pages (tests/e2e/whip/) are served from the repository root on another 127.0.0.1 port than
hubbub's, so every request the clients make is cross-origin and goes through hubbub's CORS.
The other end of each test is aiortc over hubbub's WebSocket: a Viewer that must hear and see
what the browser publishes with WHIPClient, a Publisher whose tone and pattern the browser
must play with WHEPClient, whose own EventSource must get the stream's `active`/`inactive`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page
from tests.e2e.test_millicast_sdk import ACCOUNT, ADMIN, create_token
from tests.e2e.test_millicast_sdk import repo_pages as repo_pages  # the module fixture
from tests.helpers.browser import REPO_ROOT, PageFactory, StaticServer, wait_for_state, wait_until
from tests.helpers.server import RunningServer

from hubbub.client.analysis import dominant_frequency, rms
from hubbub.client.director import connect_info
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

CLIENT_DIR = REPO_ROOT / "node_modules" / "whip-whep"
PAGES_DIR = "/tests/e2e/whip"
TONE = 440.0

Json = dict[str, Any]


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    if not (CLIENT_DIR / "whep.js").is_file():
        pytest.fail(f"{CLIENT_DIR} missing: run `npm ci` (scripts/test does)", pytrace=False)
    args = ["--api-secret", ADMIN, "--open-viewing", "open-*"]
    with RunningServer(name="whip-whep-chromium", allow_any_stream=False,
                       extra_args=args) as s:
        yield s


@pytest.fixture(scope="module")
def publish_token(srv: RunningServer) -> str:
    """A long-lived publish token (REST API) for the module's streams."""
    return str(create_token(srv, "publish", pattern="open-*")["token"])


@pytest_asyncio.fixture
async def pages(browser: Browser, repo_pages: StaticServer,
                request: pytest.FixtureRequest) -> AsyncIterator[PageFactory]:
    factory = PageFactory(browser, repo_pages.url + PAGES_DIR, name=f"whip-{request.node.name}")
    yield factory
    await factory.close()


def active_payload(stream: str) -> Json:
    """`active` for the main source of a stream published with audio at mid 0, video at 1."""
    return {"streamId": f"{ACCOUNT}/{stream}", "sourceId": None,
            "tracks": [{"trackId": "0", "media": "audio"}, {"trackId": "1", "media": "video"}]}


async def http_log(page: Page) -> list[Json]:
    log: list[Json] = await page.evaluate("hubbub.http")
    return log


async def inbound(page: Page, kind: str) -> Json:
    stats: dict[str, Json] = await page.evaluate("hubbub.inbound()")
    (entry,) = [s for s in stats.values() if s["kind"] == kind]
    return entry


async def tone_heard(page: Page) -> float:
    heard: Json = await page.evaluate("hubbub.audioSamples()")
    samples = np.array(heard["samples"], dtype=np.float64)
    if rms(samples) < 0.02:
        return 0.0
    return dominant_frequency(samples, int(heard["sampleRate"]))


async def page_events(page: Page, name: str) -> list[Json]:
    got: list[Json] = await page.evaluate(
        "(n) => hubbub.events.filter((e) => e.event === n).map((e) => e.data)", name)
    return got


# --- WHIP -----------------------------------------------------------------------------------


async def test_whip_client_in_chromium_publishes_to_a_websocket_viewer(
    srv: RunningServer, pages: PageFactory, publish_token: str
) -> None:
    stream = "open-whip"
    endpoint = f"{srv.http_url}/api/whip/{stream}"
    page = await pages("whip.html", endpoint=endpoint, token=publish_token)
    await wait_for_state(page, "connected", timeout=20)

    post = (await http_log(page))[0]
    assert (post["method"], post["url"], post["status"]) == ("POST", endpoint, 201), post
    assert post["headers"]["location"].startswith("/api/whip/session/"), post
    assert post["headers"]["etag"], post
    session_url = srv.http_url + post["headers"]["location"]

    view = await connect_info(srv.http_url, "subscribe", stream, None)  # an open stream
    async with Viewer(view.url, stream, token=view.jwt) as viewer:
        active = await viewer.wait_for_event("active", lambda d: d.get("sourceId") is None)
        assert active == active_payload(stream)
        assert viewer.video_mid is not None and viewer.audio_mid is not None
        recorder = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid], 3).start()
        counter = VideoCounter(viewer.tracks_by_mid[viewer.video_mid]).start()
        await recorder.wait_for_frames(150, timeout=15)  # 3 s of 20 ms frames
        freq = dominant_frequency(recorder.samples(1.0), recorder.sample_rate)
        assert abs(freq - TONE) <= 5, f"the viewer hears {freq:.1f} Hz"
        deadline = time.monotonic() + 15
        while counter.frames < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert counter.frames >= 20, f"{counter.frames} video frames decoded"
        frames = counter.frames

        # Trickle PATCHes (If-Match: the POST's ETag) were taken: 204, ICE-lite ignores them.
        patches = [e for e in await http_log(page) if e["method"] == "PATCH"]
        assert patches and {(e["url"], e["status"]) for e in patches} == {(session_url, 204)}

        # stop(): the browser closes its peer connection and DELETEs the session.
        since = len(viewer.events)
        started = time.monotonic()
        await page.evaluate("hubbub.stop()")
        inactive = await viewer.wait_for_event(
            "inactive", lambda d: d.get("sourceId") is None, since=since, timeout=3)
        took = time.monotonic() - started
        assert inactive == {"streamId": f"{ACCOUNT}/{stream}", "sourceId": None}
        delete = (await http_log(page))[-1]
        assert (delete["method"], delete["url"], delete["status"]) == (
            "DELETE", session_url, 200), delete
    print(f"\nWHIP from Chromium: {freq:.1f} Hz, {frames} frames decoded by aiortc; "
          f"inactive {took * 1000:.0f} ms after stop()")


# --- WHEP -----------------------------------------------------------------------------------


async def test_whep_client_in_chromium_plays_a_websocket_publisher_and_gets_its_events(
    srv: RunningServer, pages: PageFactory, publish_token: str
) -> None:
    stream = "open-whep"
    info = await connect_info(srv.http_url, "publish", stream, publish_token)
    publisher = Publisher(info.url, stream, token=info.jwt,
                          tracks=[ToneTrack(TONE), PatternTrack()])
    try:
        await publisher.connect()
        endpoint = f"{srv.http_url}/api/whep/{ACCOUNT}/{stream}"
        page = await pages("whep.html", endpoint=endpoint)
        await wait_for_state(page, "connected", timeout=20)

        post = (await http_log(page))[0]
        assert (post["method"], post["url"], post["status"]) == ("POST", endpoint, 201), post
        session_url = srv.http_url + post["headers"]["location"]
        assert 'rel="urn:ietf:params:whep:ext:core:server-sent-events"' in post["headers"]["link"]

        # The client's own EventSource gets `active` for the main source, exactly as sent.
        await wait_until(page, "() => hubbub.events.some((e) => e.event === 'active')")
        assert await page_events(page, "active") == [active_payload(stream)]
        source: Json = await page.evaluate("hubbub.source")
        assert source["url"] == session_url + "/sse/stream", source
        events_post = [e for e in await http_log(page) if e["url"] == session_url + "/sse"]
        assert [(e["method"], e["status"]) for e in events_post] == [("POST", 201)]
        patches = [e for e in await http_log(page) if e["method"] == "PATCH"]
        assert {(e["url"], e["status"]) for e in patches} <= {(session_url, 204)}, patches

        # Video: decoded at the published size, shown by the <video>.
        await wait_until(page, """async () => {
            const v = Object.values(await hubbub.inbound()).find((s) => s.kind === 'video');
            return v.framesDecoded >= 20 && hubbub.video().width > 0;
        }""", timeout=20)
        video = await inbound(page, "video")
        assert (video["frameWidth"], video["frameHeight"]) == (320, 240), video
        shown = await page.evaluate("hubbub.video()")
        assert (shown["width"], shown["height"], shown["paused"]) == (320, 240, False), shown

        # Audio: packets keep coming, with energy, and the tone is 440 Hz.
        before = await inbound(page, "audio")
        await tone_heard(page)  # the first call starts the WebAudio tap
        await asyncio.sleep(1.0)
        after = await inbound(page, "audio")
        packets = after["packetsReceived"] - before["packetsReceived"]
        assert packets >= 25, (before, after)  # 20 ms Opus packets: 50 a second
        assert after["totalAudioEnergy"] > before["totalAudioEnergy"], (before, after)
        freq = await tone_heard(page)
        assert abs(freq - TONE) <= 5, f"Chromium plays {freq:.1f} Hz"

        # The publisher leaves: `inactive` for the main source on the same EventSource.
        started = time.monotonic()
        await publisher.close()
        await wait_until(page, "() => hubbub.events.some((e) => e.event === 'inactive')",
                         timeout=5)
        took = time.monotonic() - started
        assert await page_events(page, "inactive") == [
            {"streamId": f"{ACCOUNT}/{stream}", "sourceId": None}]
        seen: list[Json] = await page.evaluate(
            "hubbub.events.map((e) => ({event: e.event, data: e.data}))")
        assert seen[0]["event"] == "active", seen
        assert (await page.evaluate("hubbub.source"))["errors"] == 0

        await page.evaluate("hubbub.stop()")
        delete = (await http_log(page))[-1]
        assert (delete["method"], delete["url"], delete["status"]) == (
            "DELETE", session_url, 200), delete
    finally:
        await publisher.close()
    print(f"\nWHEP in Chromium: {video['framesDecoded']} frames at "
          f"{video['frameWidth']}x{video['frameHeight']}, {freq:.1f} Hz, "
          f"{packets} audio packets over ~1.3 s; inactive {took * 1000:.0f} ms after the "
          f"publisher closed; events: {seen}")
