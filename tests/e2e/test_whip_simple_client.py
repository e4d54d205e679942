"""WHIP from a client we did not write: Debian's simple-whip-client (GStreamer webrtcbin +
libnice) publishes Opus and VP8 to a real `hubbub serve`, and an aiortc viewer on the
WebSocket hears the tone and decodes the video.

    root namespace   the test: token API calls, the aiortc viewer (on the bridge's address)
    "w" 10.231.N.11  `hubbub serve` (NetnsNode, tokens required, `whip-*` open for viewing)
                     and whip-client, which reaches it on that address

libnice gathers no loopback candidates (it offered only the machine's other addresses), so
with a server on 127.0.0.1 whip-client would send from the machine's real address; in its own
namespace it has one address, next to the server's. tests/helpers/whip_client.py says why it
runs with a stand-in libgupnp-igd.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import whip_client
from tests.helpers.netns import NetnsNode, VirtualNetwork, ice_host_addresses, running_network
from tests.helpers.netns import unavailable_reason as netns_unavailable
from tests.helpers.tokens import admin_token, view_jwt
from tests.helpers.whip_client import WhipClient, tone_pipeline, video_pipeline

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, VideoCounter
from hubbub.client.viewer import Viewer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.netns,
    pytest.mark.skipif(whip_client.unavailable_reason() is not None,
                       reason=str(whip_client.unavailable_reason())),
]

ADMIN = "admin-secret-whip-simple-client-0123456789"
TONE = 440.0
DELETE_BOUND = 3.0
"""Seconds from SIGINT to the viewer's `inactive`: DELETE ends the source at once (the media
timeout would take longer)."""


@pytest.fixture(scope="module")
def network() -> Iterator[VirtualNetwork]:
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with running_network(["w"]) as net:
        yield net


@pytest.fixture(scope="module")
def srv(network: VirtualNetwork) -> Iterator[NetnsNode]:
    host = network.hosts["w"]
    node = NetnsNode(host, name=f"whip-simple-client-{network.tag}",
                     options={"announce_ip": host.ip, "api_secret": ADMIN,
                              "open_viewing": "whip-*"})
    node.args.remove("--allow-any-stream")  # tokens, as a WHIP encoder is given one
    with node:
        yield node


@pytest.fixture(scope="module")
def stub_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return whip_client.gupnp_stub(tmp_path_factory.mktemp("gupnp-stub"))


def publish_token(srv: NetnsNode, multisource: bool = False) -> str:
    """A long-lived publish token for `whip-*` from the admin API."""
    fields: dict[str, Any] = {"multisource": True} if multisource else {}
    return str(admin_token(srv.http_url, ADMIN, "publish", "whip-*", **fields)["token"])


def whip_url(srv: NetnsNode, stream: str, query: str = "") -> str:
    return f"{srv.http_url}/api/whip/{stream}" + (f"?{query}" if query else "")


def client(srv: NetnsNode, network: VirtualNetwork, stub_dir: Path, name: str, url: str,
           token: str, trickle: bool = True) -> WhipClient:
    return WhipClient(url, stub_dir=stub_dir, name=name, token=token, audio=tone_pipeline(TONE),
                      video=video_pipeline(), trickle=trickle, netns=network.hosts["w"].netns,
                      log_level=7)  # 7: also each trickled candidate and both SDPs


def source(source_id: str | None) -> Any:
    return lambda data: data.get("sourceId") == source_id


def log_lines(srv: NetnsNode, since: int, *words: str) -> list[str]:
    return [line for line in srv.log_text().splitlines()[since:]
            if all(word in line for word in words)]


def published_session(srv: NetnsNode, since: int, stream: str, source_id: str | None) -> str:
    """The (logged, 8-character) id of the one WHIP session that published this source."""
    found = [m.group(1) for line in srv.log_text().splitlines()[since:]
             if (m := re.search(rf"whip (\S+) publishes stream={re.escape(stream)} "
                                rf"source={source_id} ", line))]
    assert len(found) == 1, srv.log_tail()
    return found[0]


async def test_publishes_with_trickle_and_deletes_on_ctrl_c(
        srv: NetnsNode, network: VirtualNetwork, stub_dir: Path) -> None:
    stream = "whip-tone"
    logged = len(srv.log_text().splitlines())
    token = publish_token(srv)
    with ice_host_addresses(network.gateway):
        async with Viewer(srv.ws_sub_url, stream, token=view_jwt(srv.http_url, stream)) as viewer:
            await viewer.wait_connected()
            audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], 3).start()
            video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid or ""]).start()
            async with client(srv, network, stub_dir, "trickle", whip_url(srv, stream),
                              token) as whip:
                await viewer.wait_for_event("active", source(None), timeout=15)
                await video.wait_for_frames(20, timeout=10)
                await audio.wait_for_frames(100, timeout=10)
                freq = dominant_frequency(audio.samples(1.5), audio.sample_rate)
                frames = video.frames
                assert abs(freq - TONE) < 5, f"viewer hears {freq:.1f} Hz"
                session = published_session(srv, logged, stream, None)
                since = len(viewer.events)
                start = time.monotonic()
                whip.interrupt()
                await viewer.wait_for_event("inactive", source(None), since=since,
                                            timeout=DELETE_BOUND)
                took = time.monotonic() - start
                code = await whip.wait(5)
            await audio.stop()
            await video.stop()
    print(f"whip-client (trickle) → viewer: {freq:.1f} Hz, {frames} video frames at "
          f"{video.last_size}; inactive {took:.2f} s after SIGINT, exit {code}")
    deleted = log_lines(srv, logged, f"whip {session} deleted")
    assert len(deleted) == 1, srv.log_tail()
    output = whip.output()
    # Trickle happened (PATCH with If-Match: the ETag), and every PATCH got 204 and the DELETE
    # 200: whip-client warns "[trickle] <status>" or "[<status>]" otherwise.
    trickled = [line for line in output.splitlines() if "Sending candidates: candidate:" in line]
    assert trickled, output[-3000:]
    assert "end-of-candidates" in output, output[-3000:]
    assert "[WARN]" not in output and "[ERR]" not in output, output[-3000:]
    assert "Disconnecting from server (Shutting down)" in output, output[-3000:]


async def test_source_id_in_the_query_and_no_trickle(
        srv: NetnsNode, network: VirtualNetwork, stub_dir: Path) -> None:
    stream = "whip-multi"
    logged = len(srv.log_text().splitlines())
    token = publish_token(srv, multisource=True)
    with ice_host_addresses(network.gateway):
        async with Viewer(srv.ws_sub_url, stream, token=view_jwt(srv.http_url, stream),
                          video=False) as viewer:
            await viewer.wait_connected()
            audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], 3).start()
            async with client(srv, network, stub_dir, "cam2",
                              whip_url(srv, stream, "sourceId=cam2"), token,
                              trickle=False) as whip:
                active = await viewer.wait_for_event("active", source("cam2"), timeout=15)
                # cam2 is the stream's only source: the viewer's main audio plays it
                await audio.wait_for_frames(50, timeout=10)
                freq = dominant_frequency(audio.samples(0.8), audio.sample_rate)
                assert abs(freq - TONE) < 5, f"viewer hears {freq:.1f} Hz from cam2"
                since = len(viewer.events)
                whip.interrupt()
                await viewer.wait_for_event("inactive", source("cam2"), since=since,
                                            timeout=DELETE_BOUND)
                await whip.wait(5)
            await audio.stop()
    print(f"whip-client (-n, sourceId=cam2) → viewer: {freq:.1f} Hz; active: {active}")
    # whip-client's m-lines: video first, mids "video0" and "audio1".
    assert active == {"streamId": f"hubbub/{stream}", "sourceId": "cam2",
                      "tracks": [{"trackId": "video0", "media": "video"},
                                 {"trackId": "audio1", "media": "audio"}]}, active
    session = published_session(srv, logged, stream, "cam2")
    # The quirk: the path-only Location replaced the path and kept the endpoint's query, so
    # the DELETE went to /api/whip/session/<id>?sourceId=cam2, and it still found the session.
    output = whip.output()
    assert re.search(rf"Resource URL: \S+/api/whip/session/{re.escape(session)}\S*"
                     r"\?sourceId=cam2$", output, re.M), output[-3000:]
    assert "Sending candidates" not in output, output[-3000:]  # -n: all in the offer
    assert "[WARN]" not in output and "[ERR]" not in output, output[-3000:]
    assert len(log_lines(srv, logged, f"whip {session} deleted")) == 1, srv.log_tail()


async def test_a_bad_token_publishes_nothing(
        srv: NetnsNode, network: VirtualNetwork, stub_dir: Path) -> None:
    stream = "whip-bad"
    logged = len(srv.log_text().splitlines())
    async with client(srv, network, stub_dir, "bad-token", whip_url(srv, stream),
                      "not-a-token") as whip:
        code = await whip.wait(15)
    output = whip.output()
    assert code != 0 or "[ERR]" in output, output[-3000:]
    assert "401" in output, output[-3000:]
    refused = log_lines(srv, logged, "whip refused (401)")
    assert len(refused) == 1, srv.log_tail()
    assert not log_lines(srv, logged, "publishes stream=whip-bad"), srv.log_tail()
    assert "Resource URL" not in output, output[-3000:]
