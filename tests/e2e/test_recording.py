"""Server-side recording end to end: aiortc publishes through a real `hubbub serve`, the
recording is read back through the REST API and decoded with PyAV (FFmpeg)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from tests.e2e.test_rtmp_ingest import pushing
from tests.helpers import tokens
from tests.helpers.server import ARTIFACTS_DIR, RunningServer
from tests.helpers.tokens import admin_token
from tests.helpers.whip import WhipPublisher

from hubbub.client.media import PatternTrack, ToneTrack
from hubbub.client.publisher import Publisher

pytestmark = pytest.mark.slow

ADMIN = "admin-secret-recording-0123456789abcdef"
FPS = 15  # PatternTrack's default
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="recording", allow_any_stream=False, rtmp_port=0,
                       extra_args=["--api-secret", ADMIN]) as s:
        yield s


def api(srv: RunningServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{srv.http_url}{path}", headers=AUTH, timeout=30, **kwargs)


async def publish_for(srv: RunningServer, stream: str, seconds: float, codec: str = "vp8",
                      record: bool = False) -> None:
    token = str(admin_token(srv.http_url, ADMIN, "publish", record=record)["token"])
    jwt = await asyncio.to_thread(tokens.publish_jwt, srv.http_url, token, stream)
    async with Publisher(srv.ws_pub_url, stream, token=jwt, codec=codec,
                         tracks=[ToneTrack(440), PatternTrack()]) as pub:
        await pub.wait_connected()
        await asyncio.sleep(seconds)


async def wait_done(srv: RunningServer, stream: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        reply = await asyncio.to_thread(api, srv, "GET", f"/api/recordings?streamName={stream}")
        items = reply.json()["data"]
        if items and items[-1]["state"] == "done":
            return dict(items[-1])
        assert time.monotonic() < deadline, f"recording not done: {items}"
        await asyncio.sleep(0.3)


def dominant_frequency(path: Path) -> float:
    with av.open(str(path)) as container:
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * 48000 / len(samples))


def decoded_frames(path: Path) -> int:
    """Video frames decoded; any decode error raises."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def probed_duration(path: Path) -> float:
    """The duration `ffprobe` reports (PyAV's libavformat, the same code, without it)."""
    if shutil.which("ffprobe") is not None:
        out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                              "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                             check=True, timeout=30)
        return float(out.stdout.strip())
    with av.open(str(path)) as container:
        assert container.duration is not None
        return float(container.duration) / 1_000_000


def download(srv: RunningServer, info: dict[str, Any], tmp_path: Path) -> Path:
    reply = api(srv, "GET", f"/api/recordings/{info['id']}/file")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == info["mediaType"]
    assert int(reply.headers["content-length"]) == info["size"]
    path = tmp_path / str(info["file"])
    path.write_bytes(reply.content)
    return path


async def test_record_token_keeps_tone_and_vp8_playable(srv: RunningServer,
                                                         tmp_path: Path) -> None:
    await publish_for(srv, "rec-vp8", 5.0, record=True)
    info = await wait_done(srv, "rec-vp8")
    assert info["format"] == "webm" and info["mediaType"] == "video/webm"
    assert info["sourceId"] is None and not info["interrupted"] and info["error"] is None
    path = await asyncio.to_thread(download, srv, info, tmp_path)
    duration = probed_duration(path)
    assert 4.0 <= duration <= 6.5, duration
    assert abs(dominant_frequency(path) - 440) < 5
    assert decoded_frames(path) >= 5 * FPS * 0.8
    # Delete: gone from the list and from the disk; again: 404.
    assert api(srv, "DELETE", f"/api/recordings/{info['id']}").status_code == 200
    assert api(srv, "GET", f"/api/recordings/{info['id']}").status_code == 404
    assert api(srv, "DELETE", f"/api/recordings/{info['id']}").status_code == 404


async def test_admin_endpoint_records_h264(srv: RunningServer, tmp_path: Path) -> None:
    stream = "rec-h264"
    assert api(srv, "POST", f"/api/streams/{stream}/record").status_code == 404  # not live
    publishing = asyncio.create_task(publish_for(srv, stream, 4.0, codec="h264"))
    deadline = time.monotonic() + 15
    while True:
        reply = await asyncio.to_thread(api, srv, "POST", f"/api/streams/{stream}/record")
        if reply.status_code == 201:
            break
        assert time.monotonic() < deadline, reply.text
        await asyncio.sleep(0.2)
    (started,) = reply.json()["data"]
    assert started["state"] == "recording" and started["format"] == "mkv"
    busy = await asyncio.to_thread(api, srv, "DELETE", f"/api/recordings/{started['id']}")
    assert busy.status_code == 409
    await asyncio.sleep(3.0)
    stopped = await asyncio.to_thread(api, srv, "POST", f"/api/streams/{stream}/record/stop")
    assert stopped.status_code == 200, stopped.text
    (info,) = stopped.json()["data"]
    assert info["state"] == "done" and info["size"] > 0
    await publishing
    path = await asyncio.to_thread(download, srv, info, tmp_path)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
    assert decoded_frames(path) >= 2 * FPS
    assert abs(dominant_frequency(path) - 440) < 5


async def test_a_whip_publish_with_a_record_token_is_recorded(srv: RunningServer,
                                                              tmp_path: Path) -> None:
    token = str(admin_token(srv.http_url, ADMIN, "publish", record=True)["token"])
    publisher = await WhipPublisher(f"{srv.http_url}/api/whip/rec-whip", token,
                                    [ToneTrack(440), PatternTrack()]).start()
    try:
        await asyncio.sleep(3.0)
        assert (await publisher.delete()).status_code == 200
    finally:
        publisher.location = None
        await publisher.close()
    info = await wait_done(srv, "rec-whip")
    path = await asyncio.to_thread(download, srv, info, tmp_path)
    assert decoded_frames(path) >= 2 * FPS
    assert abs(dominant_frequency(path) - 440) < 5


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")
async def test_an_rtmp_publish_with_a_record_token_is_recorded(srv: RunningServer,
                                                               tmp_path: Path) -> None:
    """ffmpeg pushes H.264 + AAC (a 440 Hz sine): the recording holds the H.264 as sent and
    the Opus hubbub made of the AAC."""
    token = admin_token(srv.http_url, ADMIN, "publish", record=True)["token"]
    async with pushing(srv.rtmp_url("rec-rtmp", f"token={token}"), 4) as proc:
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    info = await wait_done(srv, "rec-rtmp")
    assert info["format"] == "mkv"
    path = await asyncio.to_thread(download, srv, info, tmp_path)
    with av.open(str(path)) as container:
        assert {s.codec_context.name for s in container.streams} == {"h264", "opus"}
    assert decoded_frames(path) >= 3 * 30 * 0.8  # testsrc2 at 30 fps
    assert abs(dominant_frequency(path) - 440) < 5


async def test_a_killed_server_leaves_a_playable_file(tmp_path: Path) -> None:
    data = ARTIFACTS_DIR / "data" / f"recording-killed-{os.getpid()}"
    args = ["--api-secret", ADMIN, "--data-dir", str(data)]
    server = RunningServer(name="recording-killed", allow_any_stream=False, extra_args=args)
    await server.start_async()
    try:
        publishing = asyncio.create_task(publish_for(server, "rec-kill", 30.0, record=True))
        await asyncio.sleep(6.0)
        assert server.pid is not None
        os.killpg(server.pid, signal.SIGKILL)
        publishing.cancel()
        await asyncio.gather(publishing, return_exceptions=True)
    finally:
        server.stop()
    (path,) = list((data / "recordings").glob("rec_*.webm"))
    # Published for 6 s (connecting included); about the last second is lost with the kill.
    assert decoded_frames(path) >= 3 * FPS
    assert abs(dominant_frequency(path) - 440) < 5
    # A node started on the same data dir lists it as done, interrupted.
    again = RunningServer(name="recording-killed-again", allow_any_stream=False,
                          extra_args=args)
    async with again:
        (info,) = (await asyncio.to_thread(api, again, "GET", "/api/recordings")).json()["data"]
        assert info["state"] == "done" and info["interrupted"]
        assert info["file"] == path.name and info["size"] == path.stat().st_size
