"""Spaces as a newcomer and as a lobby sees it, in Chromium (issue 14), against a node whose
presence grace is 2 s: a room link opened by a fresh browser asks for a name in place and
goes in; a host who closes the page ends the room within the grace, and another browser's
lobby drops it without a reload; the lobby shows live rooms before a name is chosen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apps.conftest import UrlPages
from tests.apps.test_spaces_chromium import (
    INBOUND,
    create_room,
    listening,
    person,
    rising,
    self_id,
    spaces_url,
)
from tests.helpers.browser import wait_until
from tests.helpers.server import RunningServer

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

GRACE = 2.0


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="spaces-chromium-rooms", allow_any_stream=False,
                       extra_args=["--spaces-presence-grace", str(GRACE)]) as s:
        yield s


async def test_a_room_link_takes_a_newcomer_into_the_room(
    srv: RunningServer, url_pages: UrlPages
) -> None:
    host = await person(url_pages, srv, "Host")
    room_id = await create_room(host, "Open to all", audio_only=True)
    # A fresh browser with no saved name: the lobby already shows the room.
    lobby = await url_pages(spaces_url(srv), "Lobby guest")
    await lobby.wait_for_selector(f".room-card[data-room-id='{room_id}']", timeout=10000)

    newcomer = await url_pages(f"{spaces_url(srv)}#/r/{room_id}", "Newcomer")
    await newcomer.fill("#join-name", "Nia")
    await newcomer.click("#join-room")
    await wait_until(newcomer, "(id) => window.spaces.page === 'room' && window.spaces.roomId "
                     "=== id && window.spaces.state === 'live'", room_id)
    await listening(newcomer)
    # She hears the host: the main audio track carries the host's microphone.
    mids = await newcomer.evaluate("() => window.spaces.listener.mids")
    await rising(newcomer, mids["main"], "packetsReceived", 20)
    await rising(newcomer, mids["main"], "totalAudioEnergy", 0.001)
    assert (await newcomer.evaluate(INBOUND))[mids["main"]]["packetsReceived"] > 0
    await wait_until(host, "() => window.spaces.room.participants.some("
                     "(p) => p.username === 'Nia' && p.online)")


async def test_a_host_who_closes_the_page_ends_the_room_for_everyone(
    srv: RunningServer, url_pages: UrlPages
) -> None:
    host = await person(url_pages, srv, "Leaving Host")
    room_id = await create_room(host, "Ends with its host", audio_only=True)
    guest = await person(url_pages, srv, "Guest")
    await guest.click(f".room-card[data-room-id='{room_id}'] button.join", timeout=10000)
    await listening(guest)
    watcher = await url_pages(spaces_url(srv), "Watcher")  # a lobby, no name
    card = f".room-card[data-room-id='{room_id}']"
    await watcher.wait_for_selector(card, timeout=10000)
    assert await guest.is_visible("#live")

    await host.close()  # the host's tab is gone, without "End room"
    await wait_until(guest, "() => window.spaces.state === 'ended' && "
                     "window.spaces.ended === 'host_left'", timeout=GRACE + 10)
    assert "host left" in (await guest.inner_text("#ended")).lower()
    assert not await guest.is_visible("#live")  # LIVE is gone with the room
    # The other browser's lobby drops the room without a reload.
    await watcher.wait_for_selector(card, state="detached", timeout=10000)


TITLE = "Antidisestablishmentarianism" + "x" * 32  # 60 characters, nowhere to break
NAME = "Maximiliano-Bartholomew-Fitzgerald-III"  # 38 of the 40 allowed, no space either
NO_OVERFLOW = "() => document.documentElement.scrollWidth <= window.innerWidth"


async def test_long_titles_and_names_fit_phones_and_desktops(
    srv: RunningServer, url_pages: UrlPages, screenshots_dir: Path
) -> None:
    assert len(TITLE) == 60
    host = await person(url_pages, srv, NAME)
    room_id = await create_room(host, TITLE, audio_only=True)
    # The phone and desktop, and the ends of the range it names (320-1440 px).
    for width, height in ((390, 844), (1280, 800), (320, 640), (1440, 900)):
        page = await person(url_pages, srv, f"{NAME[:34]}{width}", viewport=(width, height))
        card = f".room-card[data-room-id='{room_id}']"
        await page.wait_for_selector(card, timeout=10000)
        await page.screenshot(path=str(screenshots_dir / f"lobby-long-title-{width}.png"))
        assert await page.evaluate(NO_OVERFLOW), f"the lobby overflows at {width} px"
        assert await page.is_visible(f"{card} button.join")
        await page.click(f"{card} button.join")
        await listening(page)
        await page.screenshot(path=str(screenshots_dir / f"room-long-title-{width}.png"))
        assert await page.evaluate(NO_OVERFLOW), f"the room overflows at {width} px"
        # "(you)" is shown whole, apart from the (clamped) name.
        assert await page.is_visible(".tile.small .you")
        # The host's page at this size too: the invite control on the newcomer's tile is
        # reachable above the fixed controls bar.
        await host.set_viewport_size({"width": width, "height": height})
        newcomer_id = await self_id(page)
        button = host.locator(f".tile[data-user-id='{newcomer_id}'] button.invite")
        await button.scroll_into_view_if_needed()
        box, bar = await button.bounding_box(), await host.locator("#controls").bounding_box()
        assert box is not None and bar is not None and box["y"] + box["height"] <= bar["y"]
        assert await host.evaluate(NO_OVERFLOW), f"the host's room overflows at {width} px"
        await host.screenshot(path=str(screenshots_dir / f"host-long-title-{width}.png"))
