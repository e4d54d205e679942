"""Multiplexed audio through a real `hubbub serve`: five aiortc tone publishers talk and fall
silent on a script; viewers with three multiplexed tracks decode every track and must hear
exactly the talkers the `vad` events put there — never an excluded source, never their main
source twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tests.helpers.server import RunningServer
from tests.helpers.tones import which_tone

from hubbub.client.media import AudioRecorder, ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

pytestmark = pytest.mark.slow

FREQS = {"s0": 300.0, "s1": 500.0, "s2": 700.0, "s3": 900.0, "s4": 1100.0}
TALK = 0.3  # amplitude: about -13.5 dBov in aiortc's RFC 6464 level
SETTLE = 1.6  # > hold (1 s) + the ~0.2 s a stopped talker needs to fall 6 dB below a newcomer
WINDOW = 0.8  # seconds of decoded audio analysed per track and phase


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    with RunningServer(name="multiplex-aiortc") as s:
        yield s


class Room:
    def __init__(self) -> None:
        self.tones = {name: ToneTrack(freq, amplitude=0.0) for name, freq in FREQS.items()}
        self.publishers: dict[str, Publisher] = {}

    def talk(self, *talkers: str) -> None:
        for name, tone in self.tones.items():
            tone.amplitude = TALK if name in talkers else 0.0


def recorders(viewer: Viewer) -> dict[str, AudioRecorder]:
    mids = [viewer.audio_mid or "", *viewer.multiplexed_mids]
    return {mid: AudioRecorder(viewer.tracks_by_mid[mid], seconds=3).start() for mid in mids}


def what_is_heard(recorder: AudioRecorder) -> str | None:
    """The source whose tone the last WINDOW seconds carry; "" for silence, None for no audio."""
    return which_tone(recorder, FREQS, WINDOW)


async def phase(
    room: Room, viewers: list[tuple[Viewer, dict[str, AudioRecorder]]], *talkers: str
) -> list[dict[str, str | None]]:
    """Run one phase; per viewer, mid -> what is heard at its end. Also checks that every
    mid holding a source keeps decoding (about 50 frames a second, no stalls after switches)."""
    frames_before = [{m: r.frames for m, r in recs.items()} for _, recs in viewers]
    room.talk(*talkers)
    await asyncio.sleep(SETTLE)
    out = []
    for (viewer, recs), before in zip(viewers, frames_before, strict=True):
        for mid in viewer.multiplexed_mids:
            if viewer.slots[mid] is not None:
                # 50 frames a second; half of that leaves room for a loaded machine, a decoder
                # stalled by a switch would fall far below.
                decoded = recs[mid].frames - before[mid]
                assert decoded >= 0.5 * 50 * SETTLE, (mid, viewer.slots, decoded)
        out.append({mid: what_is_heard(r) for mid, r in recs.items()})
    return out


def check(viewer: Viewer, heard: dict[str, str | None], talking: set[str], main: str) -> None:
    """The main track carries `main` (if it talks); each slot carries what its last vad said,
    audibly when that source talks; no slot repeats the main source."""
    assert heard[viewer.audio_mid or ""] == (main if main in talking else ""), heard
    for mid in viewer.multiplexed_mids:
        source = viewer.slots[mid]
        assert source != main
        if source is None:
            assert heard[mid] is None, (mid, heard, viewer.slots)
        else:
            assert heard[mid] == (source if source in talking else ""), (mid, heard, viewer.slots)


def vad_events(viewer: Viewer) -> list[tuple[str, str | None]]:
    return [(d["mediaId"], d.get("sourceId")) for n, d in viewer.events if n == "vad"]


async def test_three_slots_carry_the_talkers_the_vad_events_name(srv: RunningServer) -> None:
    room = Room()
    name = "mux-room"
    try:
        for source, tone in room.tones.items():  # s0 first: the oldest, main by default
            pub = Publisher(srv.ws_pub_url, name, source_id=source, tracks=[tone])
            room.publishers[source] = pub
            await pub.connect()
            await pub.wait_connected()
        # `me` speaks as s4 and excludes itself, and pins the host s0; `lobby` takes defaults.
        me = Viewer(srv.ws_sub_url, name, video=False, multiplexed_audio_tracks=3,
                    pinned_source_id="s0", excluded_source_ids=["s4"])
        lobby = Viewer(srv.ws_sub_url, name, video=False, multiplexed_audio_tracks=3)
        async with me, lobby:
            await me.wait_connected()
            await lobby.wait_connected()
            viewers = [(me, recorders(me)), (lobby, recorders(lobby))]

            talking = {"s0", "s1", "s2"}
            heard_me, heard_lobby = await phase(room, viewers, *talking)
            for viewer, heard in ((me, heard_me), (lobby, heard_lobby)):
                check(viewer, heard, talking, "s0")
                assert sorted(filter(None, viewer.slots.values())) == ["s1", "s2"]
            first_slots = dict(me.slots)

            talking = {"s1", "s2", "s3", "s4"}  # four talkers: lobby has room for three
            heard_me, heard_lobby = await phase(room, viewers, *talking)
            check(me, heard_me, talking, "s0")
            check(lobby, heard_lobby, talking, "s0")
            assert sorted(filter(None, me.slots.values())) == ["s1", "s2", "s3"]
            assert len({lobby.slots[m] for m in lobby.multiplexed_mids} & talking) == 3
            newcomer_in_lobby = next(s for s in ("s3", "s4") if s in lobby.slots.values())

            talking = {"s2", "s3", "s4"}  # s1 falls silent: in lobby the waiting talker takes it
            heard_me, heard_lobby = await phase(room, viewers, *talking)
            check(me, heard_me, talking, "s0")
            check(lobby, heard_lobby, talking, "s0")
            assert sorted(filter(None, lobby.slots.values())) == ["s2", "s3", "s4"]
            assert heard_me[next(m for m, s in me.slots.items() if s == "s1")] == ""

            talking = {"s0", "s1"}  # s1 returns: sticky in `me`, a silent slot in lobby
            heard_me, heard_lobby = await phase(room, viewers, *talking)
            check(me, heard_me, talking, "s0")
            check(lobby, heard_lobby, talking, "s0")
            assert "s1" in lobby.slots.values()

            # Stickiness: in `me` every source kept the slot it first got, and s1/s2 never moved.
            assert {m: s for m, s in me.slots.items() if s in ("s1", "s2")} == {
                m: s for m, s in first_slots.items() if s is not None
            }
            assert len(vad_events(me)) == 3
            mids_of: dict[str | None, set[str]] = {}
            for mid, sid in vad_events(lobby):
                mids_of.setdefault(sid, set()).add(mid)
            assert len(mids_of["s2"]) == 1  # s2 talked throughout phases 1-3: never moved
            assert newcomer_in_lobby in mids_of
            # Excluded and main sources are never announced in a slot, nor heard in one.
            assert not any(s in ("s4", "s0") for _, s in vad_events(me))
            assert not any(s == "s0" for _, s in vad_events(lobby))

            # A slot's source leaves: `me` has no other candidate, so the slot goes idle.
            s1_mid = next(m for m, s in me.slots.items() if s == "s1")
            count = len(me.events)
            await room.publishers.pop("s1").close()
            await me.wait_for_event(
                "vad", lambda d: d == {"mediaId": s1_mid, "sourceId": None}, since=count
            )
            for _, recs in viewers:
                for rec in recs.values():
                    await rec.stop()
    finally:
        for pub in room.publishers.values():
            await pub.close()
