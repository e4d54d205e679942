"""RTMP ingest watched in Chromium through the official `@millicast/sdk`: Debian's ffmpeg
pushes H.264 (constrained baseline) + AAC, the SDK's View decodes the video at its size and
plays the 440 Hz tone (Opus)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser
from tests.e2e.test_millicast_sdk import SDK_DIR, SDK_FILE, inbound, sdk_view, tone_in, wait_grows
from tests.e2e.test_rtmp_ingest import pushing
from tests.helpers.browser import REPO_ROOT, PageFactory, StaticServer
from tests.helpers.server import RunningServer

pytestmark = [
    pytest.mark.chromium,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]

ADMIN = "admin-secret-rtmp-chromium-0123456789"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    if not SDK_FILE.is_file():
        pytest.fail(f"{SDK_FILE} missing: run `npm ci` (scripts/test does)", pytrace=False)
    args = ["--api-secret", ADMIN, "--open-viewing", "open-*"]
    with RunningServer(name="rtmp-chromium", allow_any_stream=False, rtmp_port=0,
                       extra_args=args) as s:
        yield s


@pytest.fixture(scope="module")
def repo_pages() -> Iterator[StaticServer]:
    pages = StaticServer(REPO_ROOT).start()
    yield pages
    pages.stop()


@pytest_asyncio.fixture
async def sdk_pages(browser: Browser, repo_pages: StaticServer,
                    request: pytest.FixtureRequest) -> AsyncIterator[PageFactory]:
    factory = PageFactory(browser, repo_pages.url + SDK_DIR, name=f"sdk-{request.node.name}")
    yield factory
    await factory.close()


async def test_sdk_viewer_sees_and_hears_an_rtmp_stream(srv: RunningServer,
                                                        sdk_pages: PageFactory) -> None:
    stream = "open-rtmp"
    reply = httpx.post(srv.http_url + "/api/publish_token",
                       json={"streams": [{"streamName": stream}]},
                       headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)
    assert reply.status_code == 201, reply.text
    token = reply.json()["data"]["token"]
    async with pushing(srv.rtmp_url(stream, f"token={token}")):
        viewer = await sdk_view(sdk_pages, srv, None, stream)
        await wait_grows(viewer, "0", "framesDecoded", 10)
        stats = await inbound(viewer)
        assert stats["0"]["codec"].startswith("video/H264"), stats["0"]
        assert (stats["0"]["frameWidth"], stats["0"]["frameHeight"]) == (320, 240)
        await wait_grows(viewer, "1", "totalSamplesReceived", 20000)
        await tone_in(viewer, "1")  # the first call starts the page's WebAudio tap
        await asyncio.sleep(1.0)
        freq = await tone_in(viewer, "1")
        assert abs(freq - 440) < 10, f"Chromium plays {freq:.1f} Hz"
        print(f"chromium: {stats['0']['framesDecoded']} frames decoded at 320x240, "
              f"{freq:.1f} Hz")
