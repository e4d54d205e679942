"""Stream and Streams: the registry, publish/replace/unpublish, viewers and periodic work."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from hubbub.media import rtcp
from hubbub.sfu.config import SfuConfig
from hubbub.sfu.multiplexer import Multiplexer
from hubbub.sfu.relay import RelayFeed
from hubbub.sfu.source import Source
from hubbub.sfu.totals import Totals
from hubbub.sfu.types import Clock, DownTrackParams, NtpClock, RtpSink, StreamListener, TrackParams
from hubbub.sfu.viewer import Viewer

LAYER_MEASURE_INTERVAL = 1.0  # seconds between bitrate measurements of simulcast layers
LAYER_CHOICE_INTERVAL = 0.5  # seconds between layer choices for viewers (automatic mode)
LAYERS_EVENT_INTERVAL = 5.0  # a `layers` event is sent again at least this often


class Stream:
    """Sources by sourceId (None = main) and the Viewers watching them.

    Close cascade: unpublishing the last Source reports `stopped`, but the Stream lives on while
    viewers wait; it leaves the registry once it has neither sources nor viewers.
    """

    def __init__(
        self,
        name: str,
        listener: StreamListener,
        config: SfuConfig,
        clock: Clock,
        on_empty: Callable[[Stream], None],
        retired: Totals | None = None,
    ) -> None:
        self.name = name
        self.live_since = clock()  # when its first live source of this run went live
        self.sources: dict[str | None, Source] = {}
        self.viewers: list[Viewer] = []
        self.relays: list[RelayFeed] = []
        self.probing: list[Viewer] = []  # viewers with probe padding to pace (Streams.pace)
        self._listener = listener
        self._config = config
        self._clock = clock
        self._on_empty = on_empty
        self._order = 0
        self._measure_due = float("-inf")
        self._layers_due = float("-inf")
        self.multiplexer = Multiplexer(config.multiplexer, self._slot_changed)
        # Counts of the Sources and Viewers that left, for node totals (sfu/totals.py).
        self.retired = retired if retired is not None else Totals()

    def publish(self, source_id: str | None, tracks: list[TrackParams], sink: RtpSink) -> Source:
        """A new Source; a live one with the same sourceId is replaced without viewers noticing:
        its DownTracks move to the new Source's Tracks (same kind, same index), no events."""
        self._order += 1
        source = Source(source_id, tracks, sink, self._config, self._clock, self._order)
        old = self.sources.get(source_id)
        self.sources[source_id] = source
        if old is None:
            if not any(s is not source for s in self.sources.values()):
                self.live_since = self._clock()
            self._listener.source_active(self, source)
            self._refresh_viewers()
            self._sources_changed()
            return source
        source.order = old.order  # the replacement keeps its place in "oldest live source"
        for track in old.tracks:
            same_kind = [t for t in old.tracks if t.kind == track.kind]
            target = source.track(track.kind, same_kind.index(track))
            if target is None:
                continue
            for layer in track.layers:
                # The same simulcast layer where the new publisher has it, else its first.
                index = track.layers.index(layer)
                moved = target.layers[index] if index < len(target.layers) else target
                for down in list(layer.down_tracks) + layer.switchers:
                    down.bind(moved)
        for viewer in self.viewers:
            if viewer.main_source is old:
                viewer.set_main(source)
        old.replaced = True
        old.close()
        self.retired.add_source(old)
        self._sources_changed()
        if old.on_replaced is not None:
            old.on_replaced()
        return source

    def unpublish(self, source: Source) -> None:
        """Remove a live Source; a Source already replaced or removed is ignored."""
        if self.sources.get(source.source_id) is not source:
            return
        del self.sources[source.source_id]
        source.close()
        self.retired.add_source(source)
        self._refresh_viewers()
        self._sources_changed()
        self._listener.source_inactive(self, source)
        if not self.sources:
            self._listener.stopped(self)
            self._maybe_empty()

    def add_viewer(
        self,
        params: list[DownTrackParams],
        sink: RtpSink,
        pinned_source_id: str | None = None,
        excluded: list[str] | None = None,
    ) -> Viewer:
        viewer = Viewer(params, sink, pinned_source_id, excluded or [], self._config, self._clock)
        self.viewers.append(viewer)
        viewer.set_main(self.main_source_for(viewer))
        self.multiplexer.add_viewer(viewer, self._clock())
        self._listener.viewer_count(self, len(self.viewers))
        return viewer

    def remove_viewer(self, viewer: Viewer) -> None:
        if viewer not in self.viewers:
            return
        self.viewers.remove(viewer)
        self.multiplexer.remove_viewer(viewer)
        viewer.close()
        self.retired.add_viewer(viewer)
        self._listener.viewer_count(self, len(self.viewers))
        self._maybe_empty()

    def add_relay(self, source: Source, ssrcs: list[int], sink: RtpSink) -> RelayFeed:
        """Forward a live Source of this Stream to another node (see `RelayFeed`)."""
        if self.sources.get(source.source_id) is not source:
            raise ValueError(f"source {source.source_id!r} is not live in {self.name}")
        feed = RelayFeed(source, ssrcs, sink, self._config, self._clock)
        self.relays.append(feed)
        return feed

    def remove_relay(self, feed: RelayFeed) -> None:
        if feed in self.relays:
            self.relays.remove(feed)
            feed.close()
            self.retired.add_viewer(feed)
            self._maybe_empty()

    def main_source_for(self, viewer: Viewer) -> Source | None:
        """The pinned source if live, else the one without sourceId, else the oldest live one;
        excluded sources never qualify."""
        pinned = viewer.pinned_source_id
        if pinned is not None and pinned not in viewer.excluded and pinned in self.sources:
            return self.sources[pinned]
        if None in self.sources:
            return self.sources[None]
        live = [s for s in self.sources.values() if s.source_id not in viewer.excluded]
        return min(live, key=lambda s: s.order) if live else None

    def _refresh_viewers(self) -> None:
        for viewer in self.viewers:
            main = self.main_source_for(viewer)
            if main is not viewer.main_source:
                viewer.set_main(main)

    def _sources_changed(self) -> None:
        self.multiplexer.sources_changed(list(self.sources.values()), self._clock())

    def _slot_changed(self, viewer: Viewer, mid: str, source_id: str | None) -> None:
        self._listener.slot_changed(self, viewer, mid, source_id)

    def tick_multiplexer(self, now: float) -> None:
        """Re-rank voice activity and move slots; runs from `tick`, and may be called more
        often (e.g. every 20 ms) for finer hold and silence timing."""
        self.multiplexer.tick(now)

    def _maybe_empty(self) -> None:
        if not self.sources and not self.viewers and not self.relays:
            self._on_empty(self)

    def tick(self, now: float, ntp_now: int) -> None:
        """SRs to viewers, RRs to publishers, media-timeout reports (see Streams.tick)."""
        config = self._config
        self.multiplexer.tick(now)
        choose = now >= self._layers_due
        if choose:
            self._layers_due = now + LAYER_CHOICE_INTERVAL
        probing: list[Viewer] = []
        for viewer in self.viewers:
            viewer.tick(now, ntp_now, config.sr_interval)
            if choose or now >= viewer.choose_at:
                for mid, entry in viewer.update_layers(now, LAYERS_EVENT_INTERVAL):
                    self._listener.layers(self, viewer, mid, entry)
            if viewer.probing:
                probing.append(viewer)
        self.probing = probing
        for relay in self.relays:
            relay.tick(now, ntp_now, config.sr_interval)
        measure = now >= self._measure_due
        if measure:
            self._measure_due = now + LAYER_MEASURE_INTERVAL
        for source in list(self.sources.values()):
            for track in source.all_tracks:
                if measure and track.simulcast:
                    track.measure(now)
                track.send_due_nacks(now)
                if now >= track.rr_due:
                    track.rr_due = now + config.rr_interval
                    report = track.build_receiver_report(now)
                    if report is not None:
                        source.sink.send_rtcp(report)
            if not source.timed_out and now - source.last_packet_time >= config.media_timeout:
                source.timed_out = True  # reported once; cleared when media flows again
                self._listener.source_timed_out(self, source)


def _ntp_int(clock: NtpClock) -> int:
    seconds, fraction = clock()
    return (seconds << 32) | fraction


class Streams:
    """Registry of Streams by name; owns the clocks and runs the periodic work."""

    def __init__(
        self,
        listener: StreamListener,
        config: SfuConfig | None = None,
        clock: Clock = time.monotonic,
        ntp_clock: NtpClock | None = None,
    ) -> None:
        self.config = config or SfuConfig()
        self._listener = listener
        self._clock = clock
        self._ntp_clock: NtpClock = ntp_clock or rtcp.ntp_now
        self._streams: dict[str, Stream] = {}
        self.retired = Totals()  # counts of what left; node totals = this + live (totals.py)
        self._probing: list[Stream] = []  # streams with probe padding to pace

    def get(self, name: str) -> Stream | None:
        return self._streams.get(name)

    def get_or_create(self, name: str) -> Stream:
        stream = self._streams.get(name)
        if stream is None:
            stream = Stream(name, self._listener, self.config, self._clock, self._drop,
                            self.retired)
            self._streams[name] = stream
        return stream

    def discard_if_empty(self, stream: Stream) -> bool:
        """Forget a Stream that has neither sources nor viewers (e.g. created for a session that
        never connected); True if it was removed."""
        busy = stream.sources or stream.viewers or stream.relays
        if busy or self._streams.get(stream.name) is not stream:
            return False
        del self._streams[stream.name]
        self.retired.multiplexer_switches += stream.multiplexer.switches
        return True

    def _drop(self, stream: Stream) -> None:
        if self._streams.get(stream.name) is stream:
            del self._streams[stream.name]
            self.retired.multiplexer_switches += stream.multiplexer.switches

    def __iter__(self) -> Iterator[Stream]:
        return iter(list(self._streams.values()))

    def __len__(self) -> int:
        return len(self._streams)

    def pace(self, now: float) -> bool:
        """Send the bandwidth probes due by `now` (`Viewer.pace`); True while any is under
        way. Control calls it every few ms after a `tick` that left probes to send."""
        busy: list[Stream] = []
        for stream in self._probing:
            stream.probing = [v for v in stream.probing if v.pace(now)]
            if stream.probing:
                busy.append(stream)
        self._probing = busy
        return bool(busy)

    def tick(self, now: float | None = None) -> None:
        """Periodic work, called by control every ~100 ms: every `sr_interval` each viewer's
        SRs (one per sending DownTrack) with their SDES, aggregated per viewer (`Viewer.tick`),
        an RR per publisher Track every `rr_interval`, and
        `listener.source_timed_out` once for a Source silent for `media_timeout`."""
        if now is None:
            now = self._clock()
        ntp_now = _ntp_int(self._ntp_clock)
        probing: list[Stream] = []
        for stream in list(self._streams.values()):
            stream.tick(now, ntp_now)
            if stream.probing:
                probing.append(stream)
        self._probing = probing  # what `pace` visits: not every stream, every 5 ms
