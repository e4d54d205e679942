"""The test harness itself works on this machine, without any hubbub server.

Chromium with fake devices sends media page-to-page; the publisher and viewer pages speak the
Millicast signaling protocol to a stand-in Python WebSocket server that hands their offers to a
third page; the server fixture starts, health-checks, stops and reports dead processes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page
from tests.helpers.browser import PageFactory, page_url, wait_for_state, wait_until
from tests.helpers.server import (
    ARTIFACTS_DIR,
    RunningServer,
    ServerStartError,
    options_to_args,
    start_server,
)
from websockets.asyncio.server import ServerConnection, serve

pytestmark = pytest.mark.chromium

PACKETS_FLOWING = """async ([mids, min]) => {
  const s = await window.hubbub.inbound();
  return mids.every((m) => s[m] && s[m].packetsReceived >= min) && s;
}"""


async def inbound(page: Page) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = await page.evaluate("window.hubbub.inbound()")
    return result


async def test_loopback_media_flows_with_fake_devices(page_factory: PageFactory) -> None:
    page = await page_factory("loopback.html")
    await wait_for_state(page, "connected", timeout=20)
    first = await wait_until(page, PACKETS_FLOWING, [["0", "1"], 1], timeout=20)
    kinds = {mid: entry["kind"] for mid, entry in first.items()}
    assert kinds == {"0": "audio", "1": "video"}  # getUserMedia gives the audio track first

    # Counters keep rising: media flows, frames decode, audio is played out.
    later = await wait_until(
        page, PACKETS_FLOWING, [["0", "1"], first["1"]["packetsReceived"] + 50], timeout=20
    )
    video, audio = later["1"], later["0"]
    assert video["codec"].startswith("video/VP8")
    assert video["framesDecoded"] > 0 and video["frameWidth"] > 0
    assert audio["codec"].startswith("audio/opus")
    assert audio["packetsReceived"] > first["0"]["packetsReceived"]
    assert audio["totalSamplesReceived"] > 0

    outbound = await page.evaluate("window.hubbub.outbound()")
    assert outbound["1"]["packetsSent"] >= video["packetsReceived"]


async def test_loopback_h264_when_chromium_has_it(page_factory: PageFactory) -> None:
    page = await page_factory("loopback.html", codec="h264", autostart=False)
    send_codecs: list[str] = await page.evaluate("window.hubbub.codecs.send")
    assert "video/VP8" in send_codecs
    if "video/H264" not in send_codecs:
        pytest.skip(f"this Chromium build cannot send H264: {send_codecs}")
    page = await page_factory("loopback.html", codec="h264")
    stats = await wait_until(page, PACKETS_FLOWING, [["1"], 30], timeout=20)
    assert stats["1"]["codec"].startswith("video/H264")


class FakeSfu:
    """Answers `publish` and `view` by handing the offer to answerer.html (one peer per call)."""

    def __init__(self, answerer: Page) -> None:
        self.answerer = answerer
        self.commands: list[dict[str, Any]] = []
        self.url = ""

    async def handle(self, ws: ServerConnection) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            self.commands.append(msg)
            data = msg["data"]
            reply: dict[str, Any]
            if msg["name"] == "view" and data["streamId"] == "missing":
                reply = {"type": "error", "transId": msg["transId"], "data": "stream not found"}
                await ws.send(json.dumps(reply))
                continue
            send = msg["name"] == "view"
            answer = await self.answerer.evaluate(
                "([sdp, send]) => window.answerer.answer(sdp, {send})", [data["sdp"], send]
            )
            ids = {"publisherId": "pub-1"} if not send else {"subscriberId": "sub-1"}
            reply = {"type": "response", "transId": msg["transId"],
                     "data": {"sdp": answer, "clusterId": "local", **ids}}
            await ws.send(json.dumps(reply))
            if send:
                event = {"type": "event", "name": "active", "data": {
                    "streamId": "acc/" + data["streamId"], "sourceId": None,
                    "tracks": [{"trackId": "0", "media": "video"},
                               {"trackId": "1", "media": "audio"}]}}
                await ws.send(json.dumps(event))


@pytest_asyncio.fixture
async def fake_sfu(page_factory: PageFactory) -> AsyncIterator[FakeSfu]:
    sfu = FakeSfu(await page_factory("answerer.html"))
    async with serve(sfu.handle, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        sfu.url = f"ws://127.0.0.1:{port}/ws/v2"
        yield sfu


async def test_publisher_page_publishes_over_millicast_signaling(
    page_factory: PageFactory, fake_sfu: FakeSfu
) -> None:
    page = await page_factory(
        "publisher.html", ws=fake_sfu.url + "/pub", stream="room1", sourceId="alice",
        codec="vp8", dtx=True, token="t0k",
    )
    await wait_for_state(page, "connected", timeout=20)
    assert await page.evaluate("window.hubbub.publisherId") == "pub-1"

    (cmd,) = fake_sfu.commands
    assert (cmd["type"], cmd["transId"], cmd["name"]) == ("cmd", 0, "publish")
    data = cmd["data"]
    assert (data["name"], data["codec"], data["sourceId"]) == ("room1", "vp8", "alice")
    assert "usedtx=1" in data["sdp"]  # munged like the SDK's dtx option
    assert data["sdp"].index("m=audio") < data["sdp"].index("m=video")
    assert "a=sendonly" in data["sdp"] and "VP8/90000" in data["sdp"]
    assert "H264/90000" not in data["sdp"]

    # The far end really receives both tracks.
    answerer = fake_sfu.answerer
    received = await wait_until(
        answerer,
        """async () => { const s = await window.answerer.inbound(0);
            return s["0"].packetsReceived > 20 && s["1"].framesDecoded > 5 && s; }""",
        timeout=20,
    )
    assert received["1"]["codec"].startswith("video/VP8")
    stats = await page.evaluate("window.hubbub.stats()")
    assert stats["outbound"]["1"]["packetsSent"] > 0
    assert stats["pair"]["state"] == "succeeded"


async def test_viewer_page_views_over_millicast_signaling(
    page_factory: PageFactory, fake_sfu: FakeSfu
) -> None:
    page = await page_factory(
        "viewer.html", ws=fake_sfu.url + "/sub", stream="room1", pinned="owner",
        excluded=["me", "x"], multiplex=2,
    )
    await wait_for_state(page, "connected", timeout=20)

    (cmd,) = fake_sfu.commands
    data = cmd["data"]
    assert cmd["name"] == "view" and data["streamId"] == "room1"
    assert data["pinnedSourceId"] == "owner"
    assert data["excludedSourceIds"] == ["me", "x"]
    assert data["vad"] is True
    assert "vad" in data["events"] and "active" in data["events"]
    m_lines = [line.split()[0] for line in data["sdp"].splitlines() if line.startswith("m=")]
    assert m_lines == ["m=video", "m=audio", "m=audio", "m=audio"]

    mids = await page.evaluate("window.hubbub.mids()")
    assert [(m["mid"], m["kind"]) for m in mids] == [
        ("0", "video"), ("1", "audio"), ("2", "audio"), ("3", "audio")]
    events = await page.evaluate("window.hubbub.events")
    assert [e["name"] for e in events] == ["active"]
    assert events[0]["data"]["streamId"] == "acc/room1"

    stats = await wait_until(page, PACKETS_FLOWING, [["0", "1"], 30], timeout=20)
    assert stats["0"]["kind"] == "video" and stats["0"]["framesDecoded"] > 0
    assert stats["1"]["kind"] == "audio" and stats["1"]["totalSamplesReceived"] > 0
    assert stats["2"]["packetsReceived"] == 0 and stats["2"]["hasInbound"] is False

    # Client-side renegotiation like View.addRemoteTrack: answer fabricated from m-line 1.
    assert await page.evaluate("window.hubbub.addRemoteTrack('audio')") == "4"
    assert await page.evaluate("window.hubbub.pc.signalingState") == "stable"
    mids = await page.evaluate("window.hubbub.mids()")
    assert mids[-1] == {"mid": "4", "kind": "audio", "direction": "recvonly"}
    remote = await page.evaluate("window.hubbub.pc.remoteDescription.sdp")
    audio_sections = [s for s in remote.split("m=")[1:] if s.startswith("audio")]
    assert audio_sections[-1].splitlines()[0] == audio_sections[0].splitlines()[0]
    assert "a=group:BUNDLE 0 1 2 3 4" in remote
    await wait_until(page, PACKETS_FLOWING, [["0"], stats["0"]["packetsReceived"] + 30])


async def test_viewer_page_reports_signaling_error(
    page_factory: PageFactory, fake_sfu: FakeSfu
) -> None:
    page = await page_factory("viewer.html", ws=fake_sfu.url + "/sub", stream="missing")
    await wait_for_state(page, "failed", timeout=20)
    assert await page.evaluate("window.hubbub.error") == "view failed: stream not found"


async def test_publisher_page_reports_unreachable_server(page_factory: PageFactory) -> None:
    page = await page_factory("publisher.html", ws="ws://127.0.0.1:9/ws/v2/pub", stream="s")
    await wait_for_state(page, "failed", timeout=20)
    assert await page.evaluate("window.hubbub.error") == (
        "websocket ws://127.0.0.1:9/ws/v2/pub failed")


# -- server fixture plumbing (no browser) -------------------------------------------------------

FAKE_HEALTHZ = """
import http.server, signal, sys
port = int(sys.argv[1])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
    def log_message(self, *a):
        print("GET", self.path, flush=True)
signal.signal(signal.SIGTERM, lambda *a: (print("got SIGTERM", flush=True), sys.exit(0)))
print("listening", port, flush=True)
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"""


def fake_server(srv: RunningServer) -> RunningServer:
    srv.args = [sys.executable, "-c", FAKE_HEALTHZ, str(srv.http_port)]
    return srv


@pytest.mark.parametrize("enter", ["sync", "async"])
async def test_server_waits_for_healthz_and_stops_with_sigterm(enter: str) -> None:
    srv = fake_server(start_server(name="fake-healthz"))
    assert srv.ws_pub_url == f"ws://127.0.0.1:{srv.http_port}/ws/v2/pub"
    assert srv.ws_sub_url == f"ws://127.0.0.1:{srv.http_port}/ws/v2/sub"
    if enter == "sync":
        with srv:
            assert srv.returncode is None
    else:
        async with srv:
            assert srv.returncode is None
    assert srv.returncode == 0
    log = srv.log_text()
    assert "GET /healthz" in log and log.rstrip().endswith("got SIGTERM")


async def test_server_that_dies_raises_with_log_tail() -> None:
    srv = start_server(name="dies", extra_args=["--no-such-flag"])
    srv.args = [sys.executable, "-c", "import sys; print('boom: bad config'); sys.exit(3)"]
    with pytest.raises(ServerStartError, match=r"(?s)exited with 3 .*boom: bad config"):
        srv.start()


async def test_server_that_never_gets_healthy_times_out() -> None:
    srv = start_server(name="hangs", startup_timeout=1.0)
    srv.args = [sys.executable, "-c", "import time; print('stuck', flush=True); time.sleep(60)"]
    with pytest.raises(ServerStartError, match=r"(?s)within 1 s.*stuck"):
        srv.start()
    assert srv.returncode is not None  # stopped on the way out


def test_options_become_cli_flags() -> None:
    args = options_to_args({"jwt_secret": "s", "verbose": True, "quiet": False, "x": None,
                            "max_viewers": 3})
    assert args == ["--jwt-secret", "s", "--verbose", "--max-viewers", "3"]
    srv = start_server(name="args", max_viewers=3, extra_args=["--log-level", "debug"])
    assert srv.args[1:] == [
        "-m", "hubbub", "serve", "--host", "127.0.0.1", "--http-port", str(srv.http_port),
        "--media-port", str(srv.media_port), "--media-tcp-port", str(srv.media_tcp_port),
        "--rtmp-port", "off", "--allow-any-stream", "--max-viewers", "3", "--log-level", "debug",
        "--data-dir", str(ARTIFACTS_DIR / "data" / srv.log_path.stem)]
    # A data dir named by the caller is kept as given.
    own = start_server(name="own", extra_args=["--data-dir", "/tmp/x"])
    assert own.args.count("--data-dir") == 1


def test_page_url_encodes_query() -> None:
    url = page_url("http://127.0.0.1:1", "viewer.html",
                   {"ws": "ws://h:2/ws/v2/sub", "excluded": ["a", "b"], "dtx": True,
                    "video": False, "pinned": None, "multiplex": 3})
    assert url == ("http://127.0.0.1:1/viewer.html?ws=ws%3A%2F%2Fh%3A2%2Fws%2Fv2%2Fsub"
                   "&excluded=a%2Cb&dtx=1&video=0&multiplex=3")


