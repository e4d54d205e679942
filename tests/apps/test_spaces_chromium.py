"""Spaces in real browsers: headless Chromium contexts (fake mic and camera, each its own
person) against a `hubbub serve` that enforces tokens; the UI is the server's own /spaces.

Chromium's fake microphone beeps (a short 400 Hz burst every 500 ms), so every speaker is
"speaking" unless muted; the owner mutes where only one voice should light up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from tests.apps.conftest import UrlPages
from tests.helpers.browser import wait_until
from tests.helpers.server import RunningServer

pytestmark = [pytest.mark.chromium, pytest.mark.slow]

Stats = dict[str, dict[str, Any]]

# {mid: {kind, packetsReceived, framesDecoded, totalAudioEnergy}} of the room's viewer.
INBOUND = """async () => {
  const l = window.spaces.listener;
  if (!l || !l.pc) return {};
  const out = {};
  for (const t of l.pc.getTransceivers()) {
    if (!t.mid) continue;
    const e = {kind: t.receiver.track.kind, packetsReceived: 0, framesDecoded: 0,
               totalAudioEnergy: 0};
    (await t.receiver.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp') Object.assign(e, {
        packetsReceived: s.packetsReceived || 0, framesDecoded: s.framesDecoded || 0,
        totalAudioEnergy: s.totalAudioEnergy || 0});
    });
    out[t.mid] = e;
  }
  return out;
}"""
MIDS = "() => window.spaces.listener && window.spaces.listener.mids"
VADS = "() => window.spaces.listener ? window.spaces.listener.vadHistory : []"
SLOTS = "() => window.spaces.listener ? Object.fromEntries(window.spaces.listener.vad) : {}"
SPEAKING = "() => window.spaces.speaking || []"


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="spaces-chromium", allow_any_stream=False) as s:
        yield s


def spaces_url(srv: RunningServer) -> str:
    return f"{srv.http_url}/spaces/"


async def person(url_pages: UrlPages, srv: RunningServer, name: str,
                 viewport: tuple[int, int] = (1280, 860), init_script: str | None = None) -> Page:
    """A new browser context at the lobby with a display name saved."""
    page = await url_pages(spaces_url(srv), name, viewport, init_script)
    await page.fill("#name", name)
    await page.click("#profile button[type=submit]")
    await wait_until(page, "(n) => { const i = JSON.parse(localStorage.getItem("
                     "'hubbub.spaces.identity') || 'null'); return i && i.name === n && i.id; }",
                     name)
    return page


async def self_id(page: Page) -> str:
    value: str = await page.evaluate(
        "JSON.parse(localStorage.getItem('hubbub.spaces.identity')).id"
    )
    return value


async def create_room(page: Page, title: str, audio_only: bool = False) -> str:
    await page.fill("#room-name", title)
    if audio_only:
        await page.check("#audio-only")
    await page.click("#create-room")
    room_id: str = await wait_until(
        page, "() => window.spaces.page === 'room' && window.spaces.state === 'live' "
        "&& window.spaces.roomId"
    )
    return room_id


async def join_room(page: Page, room_id: str) -> None:
    await page.click(f".room-card[data-room-id='{room_id}'] button.join", timeout=10000)
    await wait_until(page, "(id) => window.spaces.page === 'room' && window.spaces.roomId === id "
                     "&& window.spaces.state === 'live'", room_id)


async def listening(page: Page) -> None:
    await wait_until(page, "() => window.spaces.listener && "
                     "window.spaces.listener.state === 'connected'", timeout=20)


async def speaking_connected(page: Page) -> None:
    await wait_until(page, "() => window.spaces.speaker && "
                     "window.spaces.speaker.state === 'connected'", timeout=20)


async def inbound(page: Page) -> Stats:
    stats: Stats = await page.evaluate(INBOUND)
    return stats


async def rising(page: Page, mid: str, field: str, by: float, timeout: float = 10.0) -> None:
    """`field` of `mid`'s inbound-rtp grows by at least `by` within `timeout`."""
    start = (await inbound(page)).get(mid, {}).get(field, 0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        now = (await inbound(page)).get(mid, {}).get(field, 0)
        if now - start >= by:
            return
        if loop.time() > deadline:
            raise AssertionError(f"{page.url}: mid {mid} {field} {start} -> {now}, wanted +{by}")
        await asyncio.sleep(0.25)


async def slot_of(page: Page, source_id: str, timeout: float = 10.0) -> str:
    mid: str = await wait_until(
        page, "(id) => { const l = window.spaces.listener; if (!l) return null;"
        " for (const [m, s] of l.vad) if (s === id) return m; return null; }",
        source_id, timeout=timeout,
    )
    return mid


async def tile_speaking(page: Page, user_id: str) -> bool:
    speaking: bool = await page.evaluate(
        "(id) => !!document.querySelector(`.tile.speaking[data-user-id='${id}']`)", user_id
    )
    return speaking


async def test_owner_publishes_and_three_participants_see_and_hear_them(
    srv: RunningServer, url_pages: UrlPages, screenshots_dir: Path
) -> None:
    owner = await person(url_pages, srv, "Olivia Host")
    room_id = await create_room(owner, "Morning coffee chat")
    await speaking_connected(owner)
    assert await owner.evaluate("window.spaces.role") == "owner"
    # The owner publishes audio and video with DTX in the Opus fmtp.
    offer_dtx = await owner.evaluate(
        "window.spaces.speaker.pc.localDescription.sdp.includes('usedtx=1')"
    )
    assert offer_dtx

    guests = [await person(url_pages, srv, n) for n in ("Ben", "Chloe", "Dev")]
    await wait_until(guests[0], "(id) => !!document.querySelector("
                     "`.room-card[data-room-id='${id}']`)", room_id)
    await guests[0].screenshot(path=str(screenshots_dir / "lobby.png"))
    for guest in guests:
        await join_room(guest, room_id)
    owner_id = await self_id(owner)
    for guest in guests:
        await listening(guest)
        mids = await guest.evaluate(MIDS)
        assert len(mids["slots"]) == 3
        await rising(guest, mids["video"], "framesDecoded", 20, timeout=15)
        await rising(guest, mids["main"], "packetsReceived", 20)
        assert await guest.evaluate("window.spaces.listener.mainSource()") == owner_id
        # The owner is in the main tracks, so never in a multiplexed one.
        assert owner_id not in [v["sourceId"] for v in await guest.evaluate(VADS)]
    # Everyone is listed, online, in the owner's audience.
    await wait_until(owner, "() => window.spaces.room.participants.filter("
                     "(p) => p.role === 'listener' && p.online).length === 3")
    assert url_pages.errors() == []


async def accept_invitation(page: Page, accept: bool = True) -> None:
    answer = "yes" if accept else "no"
    await page.click(f"#invitation button[data-answer='{answer}']", timeout=10000)


# Counts the page's getUserMedia calls: a mic that never opened sent nothing.
COUNT_GUM = """(() => {
  window.gumCalls = 0;
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = (c) => { window.gumCalls += 1; return real(c); };
})();"""


async def test_an_invitation_waits_for_the_listeners_consent(
    srv: RunningServer, url_pages: UrlPages, screenshots_dir: Path
) -> None:
    owner = await person(url_pages, srv, "Host")
    room_id = await create_room(owner, "Consent first", audio_only=True)
    await speaking_connected(owner)
    ann = await person(url_pages, srv, "Ann", init_script=COUNT_GUM)
    bob = await person(url_pages, srv, "Bob")
    for page in (ann, bob):
        await join_room(page, room_id)
        await listening(page)
    ann_id = await self_id(ann)

    # Invited without a raised hand: Ann is asked; for 5 s nothing of hers goes anywhere.
    await owner.click(f".tile[data-user-id='{ann_id}'] button.invite")
    await ann.wait_for_selector("#invitation", timeout=10000)
    await ann.screenshot(path=str(screenshots_dir / "invitation.png"))
    await owner.wait_for_selector(f".tile[data-user-id='{ann_id}'] button.invite.pending")
    await asyncio.sleep(5.0)
    assert await ann.evaluate("window.gumCalls") == 0, "the microphone was opened"
    assert await ann.evaluate("window.spaces.role") == "listener"
    assert await ann.evaluate("window.spaces.speaker") is None
    assert not await bob.evaluate("(id) => window.spaces.listener.live.includes(id)", ann_id)

    # She declines: the host is told and sees it; still nothing opened.
    await accept_invitation(ann, accept=False)
    await owner.wait_for_selector(f".tile[data-user-id='{ann_id}'] button.invite.declined")
    await owner.wait_for_selector(".toast >> text=Ann declined to speak.")
    assert await ann.evaluate("window.gumCalls") == 0

    # Invited again, she accepts: her mic goes live and Bob hears her.
    await owner.click(f".tile[data-user-id='{ann_id}'] button.invite")
    await accept_invitation(ann)
    await speaking_connected(ann)
    mid = await slot_of(bob, ann_id)
    await rising(bob, mid, "packetsReceived", 10)
    await rising(bob, mid, "totalAudioEnergy", 0.001)
    assert url_pages.errors() == []


async def test_hand_promote_speak_demote(
    srv: RunningServer, url_pages: UrlPages, screenshots_dir: Path
) -> None:
    owner = await person(url_pages, srv, "Maya Rivera")
    room_id = await create_room(owner, "Building an SFU in Python")
    await speaking_connected(owner)
    await owner.click("#mic")  # muted: only the promoted speaker's voice should light up
    await wait_until(owner, "() => window.spaces.room.participants.find("
                     "(p) => p.role === 'owner').muted")
    ann, bob, cat = [await person(url_pages, srv, n) for n in ("Ann Lee", "Bob Stone", "Cat")]
    for page in (ann, bob, cat):
        await join_room(page, room_id)
        await listening(page)
    ann_id, bob_id, owner_id = await self_id(ann), await self_id(bob), await self_id(owner)

    # Ann raises her hand; the owner sees it and invites her up.
    await ann.click("#hand")
    row = f"#hands .hand-row[data-user-id='{ann_id}'] button.invite"
    await owner.wait_for_selector(row, timeout=10000)
    await cat.click("#hand")  # a second hand stays up (shown in the screenshot)
    await owner.click(row)
    # A raised hand still asks: Ann confirms before her mic goes live.
    await accept_invitation(ann)
    await wait_until(ann, "() => window.spaces.role === 'speaker'")
    await speaking_connected(ann)
    ann_offer_dtx = await ann.evaluate(
        "window.spaces.speaker.pc.localDescription.sdp.includes('usedtx=1')"
    )
    assert ann_offer_dtx

    # Bob hears Ann in a multiplexed track, and her tile lights up, nobody else's.
    mid = await slot_of(bob, ann_id)
    await rising(bob, mid, "packetsReceived", 10)
    await rising(bob, mid, "totalAudioEnergy", 0.001)
    await wait_until(bob, "(id) => (window.spaces.speaking || []).includes(id)", ann_id)
    assert await tile_speaking(bob, ann_id)
    for other in (owner_id, bob_id):
        assert not await tile_speaking(bob, other)
    assert set(await bob.evaluate(SPEAKING)) == {ann_id}
    # The owner hears her too (the owner's main audio or a slot carries her).
    await wait_until(owner, "(id) => (window.spaces.speaking || []).includes(id)", ann_id)
    await owner.screenshot(path=str(screenshots_dir / "room-with-speakers.png"))
    phone = await person(url_pages, srv, "Phone Listener", viewport=(390, 844))
    await join_room(phone, room_id)
    await listening(phone)
    await wait_until(phone, "(id) => (window.spaces.speaking || []).includes(id)", ann_id)
    await phone.screenshot(path=str(screenshots_dir / "room-phone.png"))

    # Ann never hears herself: her sourceId is in none of her own slots or vad events, and
    # her main track carries the owner.
    await asyncio.sleep(1.0)
    assert ann_id not in [v["sourceId"] for v in await ann.evaluate(VADS)]
    assert ann_id not in (await ann.evaluate(SLOTS)).values()
    assert await ann.evaluate("window.spaces.listener.mainSource()") == owner_id

    # The owner moves Ann back to the audience: her source stops on the SFU.
    await owner.click(f".tile[data-user-id='{ann_id}'] button.demote")
    await wait_until(ann, "() => window.spaces.role === 'listener' && !window.spaces.speaker")
    await wait_until(bob, "(id) => !window.spaces.listener.live.includes(id)", ann_id)
    await wait_until(bob, "(m) => window.spaces.listener.vad.get(m) === null", mid)
    await wait_until(bob, "(id) => !(window.spaces.speaking || []).includes(id)", ann_id)
    await asyncio.sleep(0.5)
    before = (await inbound(bob))[mid]["packetsReceived"]
    await asyncio.sleep(1.5)
    assert (await inbound(bob))[mid]["packetsReceived"] == before
    assert not await tile_speaking(bob, ann_id)
    # Her new join gives her no publish JWT any more.
    joined = await ann.evaluate(
        "async () => { const i = JSON.parse(localStorage.getItem('hubbub.spaces.identity'));"
        " const r = await fetch(`api/rooms/${window.spaces.roomId}/join`, {method: 'POST',"
        " headers: {Authorization: `Bearer ${i.secret}`}}); return r.json(); }"
    )
    assert joined["publisher"] is None and joined["role"] == "listener"
    assert url_pages.errors() == []


async def test_reload_keeps_identity_and_room(srv: RunningServer, url_pages: UrlPages) -> None:
    owner = await person(url_pages, srv, "Host")
    room_id = await create_room(owner, "Reload me", audio_only=True)
    guest = await person(url_pages, srv, "Guest")
    await join_room(guest, room_id)
    await listening(guest)
    guest_id = await self_id(guest)
    await guest.click("#hand")
    await wait_until(owner, "(id) => window.spaces.room.hands.includes(id)", guest_id)

    await guest.reload()
    await wait_until(guest, "(id) => window.spaces.page === 'room' && window.spaces.roomId === id"
                     " && window.spaces.state === 'live'", room_id)
    await listening(guest)
    assert await guest.evaluate("window.spaces.selfId") == guest_id
    # Same person in the room: still one participant, hand still up, back online.
    await wait_until(owner, "(id) => { const p = window.spaces.room.participants; return "
                     "p.length === 2 && p.some((x) => x.id === id && x.online && x.raisedHand)"
                     " }", guest_id)
    mids = await guest.evaluate(MIDS)
    assert mids["video"] is None  # an audio-only room asks for no video
    await rising(guest, mids["main"], "packetsReceived", 20)

    # The owner ends the room: the guest is told.
    await owner.click("#end")  # an in-app dialog asks first
    await owner.click("dialog.modal button[data-answer='yes']")
    await wait_until(guest, "() => window.spaces.state === 'ended' && "
                     "window.spaces.ended === 'closed'")
    assert await guest.is_visible("#ended")


DENY_MIC = """navigator.mediaDevices.getUserMedia = async () => {
  throw new DOMException('Permission denied', 'NotAllowedError');
};"""


async def test_clear_errors_for_denied_microphone_and_expired_session(
    srv: RunningServer, url_pages: UrlPages, screenshots_dir: Path
) -> None:
    owner = await person(url_pages, srv, "Host")
    room_id = await create_room(owner, "Errors", audio_only=True)
    guest = await person(url_pages, srv, "No Mic", init_script=DENY_MIC)
    await join_room(guest, room_id)
    await listening(guest)
    guest_id = await self_id(guest)
    await owner.click(f".tile[data-user-id='{guest_id}'] button.invite")
    await accept_invitation(guest)
    await wait_until(guest, "() => window.spaces.role === 'speaker' && window.spaces.micError")
    banner = await guest.inner_text("#banner")
    assert "Microphone access was denied" in banner and "Try again" in banner
    await guest.screenshot(path=str(screenshots_dir / "mic-denied.png"))
    # The others see it: "mic blocked", not a speaker who is merely silent or muted.
    blocked = f".tile[data-user-id='{guest_id}'] .state.mic-blocked"
    await owner.wait_for_selector(blocked, timeout=10000)
    assert await owner.inner_text(blocked) == "mic blocked"
    await owner.screenshot(path=str(screenshots_dir / "mic-blocked-seen-by-host.png"))

    # The server forgot this identity (e.g. its data was reset): the lobby says so.
    await guest.evaluate(
        "() => { const i = JSON.parse(localStorage.getItem('hubbub.spaces.identity'));"
        " i.secret = 'expired-secret'; localStorage.setItem('hubbub.spaces.identity',"
        " JSON.stringify(i)); }"
    )
    await guest.reload()
    await wait_until(guest, "() => window.spaces.page === 'lobby'")
    await guest.wait_for_selector("#notice", timeout=10000)
    assert "session expired" in (await guest.inner_text("#notice")).lower()
    assert await guest.evaluate("localStorage.getItem('hubbub.spaces.identity')") is None
