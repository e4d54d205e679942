"""Multiplexer: fills each viewer's extra audio m-lines (slots) with the most active sources.

One `Ranking` per Stream, updated once per tick; per viewer only the slot pass runs, and only when
the ranking changed or the viewer has a newcomer waiting. Rules (docs/ARCHITECTURE.md,
"Multiplexer"):

- candidates: speaking sources with a sourceId, minus the viewer's excluded ones and its main
  source (never heard twice);
- sticky: a source keeps its slot while it is among the viewer's top N, and a silent one keeps it
  until somebody needs it;
- a newcomer in the top N takes an idle slot, else the slot of the quietest silent holder, else
  the slot of the quietest speaking holder that has fallen out of the top N, held it at least
  `hold` and is `switch_margin_db` quieter;
- a packet that starts speech runs the same choice for itself at once, so it is forwarded in
  its new slot (switch latency ~ one packet); anything blocked by `hold` waits for a tick.

Every change of a slot's source is reported once through `notify(viewer, mid, source_id)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from hubbub.sfu.activity import Ranking
from hubbub.sfu.config import MultiplexerConfig

if TYPE_CHECKING:
    from hubbub.sfu.downtrack import DownTrack
    from hubbub.sfu.source import Source
    from hubbub.sfu.track import Track
    from hubbub.sfu.viewer import Viewer

SlotNotify = Callable[["Viewer", str, "str | None"], None]


class Slot:
    """One multiplexed m-line of a viewer: the DownTrack and what it was last reported to carry."""

    __slots__ = ("down", "reported", "since")

    def __init__(self, down: DownTrack) -> None:
        self.down = down
        self.reported: str | None = None  # sourceId of the last notify (None = idle)
        self.since = float("-inf")  # when the current source got the slot

    @property
    def mid(self) -> str:
        return self.down.mid

    @property
    def source(self) -> Source | None:
        track = self.down.track
        return track.source if track is not None else None


class _ViewerSlots:
    __slots__ = ("viewer", "slots", "pending", "version")

    def __init__(self, viewer: Viewer) -> None:
        self.viewer = viewer
        self.slots = [Slot(d) for d in viewer.extra_audio]
        self.pending = True  # run a full pass at the next opportunity
        self.version = -1  # ranking version of the last full pass


class Multiplexer:
    """Slot assignment for one Stream. Driven by the Stream: `sources_changed` after any publish,
    replace or unpublish, `add_viewer` / `remove_viewer`, `tick(now)` periodically, and
    `on_speech(track)` from a Track's packet path when a source starts speaking."""

    def __init__(self, config: MultiplexerConfig, notify: SlotNotify) -> None:
        self.config = config
        self.ranking = Ranking()
        self.switches = 0  # slot source changes made (not counting a slot going idle)
        self._notify = notify
        self._tracks: list[Track] = []  # ranked audio Track per live source with a sourceId
        self._viewers: dict[Viewer, _ViewerSlots] = {}
        self._margin = 10.0 ** (config.switch_margin_db / 20.0)

    # --- wiring --------------------------------------------------------------------------

    def sources_changed(self, sources: list[Source], now: float) -> None:
        """The live sources changed: rank their first audio Tracks; fix every viewer's slots
        (a departed source leaves its slot to the next candidate or idle)."""
        tracks = []
        for source in sources:
            track = source.track("audio")
            if source.source_id is not None and track is not None:
                track.on_speech = self.on_speech
                tracks.append(track)
        self._tracks = tracks
        self.ranking.update(tracks, now)
        for state in self._viewers.values():
            state.pending = True
        self._run(now, force=True)

    def add_viewer(self, viewer: Viewer, now: float) -> None:
        state = _ViewerSlots(viewer)
        if not state.slots:
            return
        self._viewers[viewer] = state
        self._assign(state, now)

    def remove_viewer(self, viewer: Viewer) -> None:
        self._viewers.pop(viewer, None)

    def slots(self, viewer: Viewer) -> dict[str, str | None]:
        """mid -> sourceId in each multiplexed slot of `viewer` (None = idle), as reported."""
        state = self._viewers.get(viewer)
        return {} if state is None else {s.mid: s.reported for s in state.slots}

    # --- timing --------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Re-rank (once for all viewers), then run the slot pass where something may move."""
        self.ranking.update(self._tracks, now)
        self._run(now, force=False)

    def on_speech(self, track: Track) -> None:
        """A packet of `track` just started speech: in every viewer that may hear it, give it an
        idle slot, else a silent one, else evict as the tick would (quietest holder past `hold`
        and `switch_margin_db` quieter) — at once, so that very packet is already forwarded."""
        now = track.activity.time
        source = track.source
        if source.source_id is None or source.closed:
            return
        for state in self._viewers.values():
            viewer = state.viewer
            if source is viewer.main_source or source.source_id in viewer.excluded:
                continue
            slots = state.slots
            if any(s.down.track is track for s in slots):
                continue
            for slot in slots:
                held = slot.down.track
                if held is not None:
                    held.activity.decay(now)  # DTX holders: silent by now, not as of last tick
            target = _free_slot(slots) or self._evictable(slots, (), track, now)
            if target is None:
                state.pending = True
                continue
            self._bind(target, track, now)
            self._report(state)

    # --- the slot pass -------------------------------------------------------------------

    def _run(self, now: float, force: bool) -> None:
        version = self.ranking.version
        for state in self._viewers.values():
            if force or state.pending or state.version != version:
                self._assign(state, now)

    def _assign(self, state: _ViewerSlots, now: float) -> None:
        viewer = state.viewer
        slots = state.slots
        main = viewer.main_source
        excluded = viewer.excluded
        state.version = self.ranking.version
        state.pending = False
        # Vacate slots whose source may no longer be heard there.
        for slot in slots:
            source = slot.source
            if source is not None and (
                source is main or source.closed or source.source_id in excluded
            ):
                slot.down.bind(None)
        top: list[Track] = []
        for track in self.ranking.order:
            source = track.source
            if source is main or source.closed or source.source_id in excluded:
                continue
            top.append(track)
            if len(top) == len(slots):
                break
        for track in top:
            if any(s.down.track is track for s in slots):
                continue  # sticky
            target = _free_slot(slots) or self._evictable(slots, top, track, now)
            if target is None:
                state.pending = True  # blocked by hold or margin: try again next tick
                continue
            self._bind(target, track, now)
        self._report(state)

    def _evictable(self, slots: list[Slot], top: Sequence[Track], track: Track,
                   now: float) -> Slot | None:
        """The quietest speaking holder outside the top N that held its slot long enough and is
        enough quieter than `track`."""
        best: Slot | None = None
        best_value = track.activity.value / self._margin
        for slot in slots:
            held = slot.down.track
            if held is None or held in top or now - slot.since < self.config.hold:
                continue
            value = held.activity.value
            if value <= best_value:
                best, best_value = slot, value
        return best

    def _bind(self, slot: Slot, track: Track, now: float) -> None:
        slot.down.bind(track)
        slot.since = now
        self.switches += 1

    def _report(self, state: _ViewerSlots) -> None:
        for slot in state.slots:
            source = slot.source
            current = source.source_id if source is not None else None
            if current != slot.reported:
                slot.reported = current
                self._notify(state.viewer, slot.mid, current)


def _free_slot(slots: list[Slot]) -> Slot | None:
    """An idle slot, else the one whose silent holder is quietest; None if all holders speak."""
    best: Slot | None = None
    best_value = float("inf")
    for slot in slots:
        held = slot.down.track
        if held is None:
            return slot
        meter = held.activity
        if not meter.speaking and meter.value < best_value:
            best, best_value = slot, meter.value
    return best
