"""One page viewing two streams at once: two `View` instances of the official `@millicast/sdk`
(unmodified) in one Chromium page (tests/e2e/sdk/harness.js keeps its SDK clients by name and
gives each remote track its own <video>/<audio> element), each connected to its own stream.

The streams come from aiortc publishers with different tones and picture sizes, so each View's
video must decode at its own stream's size and its audio must play its own stream's tone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from playwright.async_api import Page
from tests.e2e.test_e2ee_chromium import TONE, heard, listen, tone_share
from tests.e2e.test_millicast_sdk import ADMIN, SDK_FILE, create_token, harness, inbound
from tests.e2e.test_millicast_sdk import pages as pages  # the SDK harness page factory
from tests.e2e.test_millicast_sdk import repo_pages as repo_pages  # the module fixture
from tests.helpers.browser import PageFactory, wait_until
from tests.helpers.server import RunningServer

from hubbub.client.analysis import dominant_frequency
from hubbub.client.director import connect_info
from hubbub.client.media import PatternTrack, ToneTrack
from hubbub.client.publisher import Publisher

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

# View name -> (stream, tone in Hz, picture size)
STREAMS = {"a": ("two-a", 440.0, (320, 240)), "b": ("two-b", 660.0, (160, 120))}


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    if not SDK_FILE.is_file():
        pytest.fail(f"{SDK_FILE} missing: run `npm ci` (scripts/test does)", pytrace=False)
    with RunningServer(name="secondary-view", allow_any_stream=False,
                       extra_args=["--api-secret", ADMIN]) as s:
        yield s


async def publish(srv: RunningServer, token: str, stream: str, tone: float,
                  size: tuple[int, int]) -> Publisher:
    info = await connect_info(srv.http_url, "publish", stream, token)
    pub = Publisher(info.url, stream, token=info.jwt,
                    tracks=[ToneTrack(tone, amplitude=0.3), PatternTrack(*size)])
    await pub.connect(timeout=20)
    return pub


async def elements(page: Page) -> dict[str, dict[str, float]]:
    """View name -> what its <video> element shows: size and play position."""
    shown: dict[str, dict[str, float]] = await page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('video')].map((v) => [v.dataset.viewer,
            {width: v.videoWidth, height: v.videoHeight, time: v.currentTime}]))""")
    return shown


async def test_one_page_two_views_two_streams_both_decoded(
    srv: RunningServer, pages: PageFactory
) -> None:
    publish_token = str(create_token(srv, "publish", pattern="two-*")["token"])
    subscribe_token = str(create_token(srv, "subscribe", pattern="two-*")["token"])
    publishers = [await publish(srv, publish_token, stream, tone, size)
                  for stream, tone, size in STREAMS.values()]
    try:
        page = await harness(pages, srv)
        for name, (stream, _, _) in STREAMS.items():
            result = await page.evaluate(
                "([n, o]) => sdk.view(n, o)",
                [name, {"streamName": stream, "subscriberToken": subscribe_token}])
            assert result["ok"], (result, pages.log_tail())

        report: list[str] = []
        for name, (stream, _, (width, height)) in STREAMS.items():
            await wait_until(page, "async (n) => (await sdk.inbound(n))['0'].framesDecoded >= 20",
                             name, timeout=25)
            video = (await inbound(page, name))["0"]
            report.append(f"view {name} ({stream}): {video['framesDecoded']} frames decoded at "
                          f"{video['frameWidth']}x{video['frameHeight']} {video['codec']}")
            assert (video["frameWidth"], video["frameHeight"]) == (width, height), report
            await heard(page, name, "1")  # start the audio tap
        await wait_until(page, "() => document.querySelectorAll('video').length === 2")

        for name, (_, tone, _) in STREAMS.items():
            samples, rate = await listen(page, name, "1", tone)
            freq = dominant_frequency(samples, rate)
            shares = {n: round(tone_share(samples, rate, t), 4) for n, (_, t, _) in STREAMS.items()}
            report.append(f"view {name}: audio {freq:.1f} Hz, tone shares {shares}")
            assert abs(freq - tone) < 10, report
            # Its own tone only: the other view's stream is not mixed in.
            assert shares[name] > TONE and min(shares.values()) < 0.05, report

        # Both <video> elements play, each at its own stream's size.
        first = await elements(page)
        await asyncio.sleep(1.0)
        later = await elements(page)
        for name, (_, _, (width, height)) in STREAMS.items():
            report.append(f"<video> of view {name}: {later[name]}")
            assert (later[name]["width"], later[name]["height"]) == (width, height), report
            assert later[name]["time"] > first[name]["time"], report
        print("\n".join(report))
    finally:
        for pub in publishers:
            await pub.close()
