"""Multiplexed audio slots: ranking, stickiness, hold, exclusion, DTX, vad reports, continuity.

Every source sends packets whose payload names it, so the tests read back from the viewer's
output bytes which source is heard in which mid.
"""

from __future__ import annotations

import pytest

from hubbub.media import rtp
from hubbub.sfu import SfuConfig, Source, Stream, Streams, Viewer
from hubbub.sfu.activity import ActivityMeter, to_dbov
from hubbub.sfu.config import MultiplexerConfig
from tests.sfu.fakes import (
    LEVEL_IN,
    MID_IN,
    MID_OUT,
    OPUS_PT,
    FakeClock,
    FakeNtp,
    FakeSink,
    Recorder,
    audio_params,
    down_audio,
    extension,
)

LOUD = 20  # -20 dBov: speech
QUIET = 45  # -45 dBov: still speech, but much quieter
SILENT = 127
MAIN_MID = "m"
SLOT_MIDS = ("s1", "s2", "s3")


class SlotRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.vad: list[tuple[int, str, str | None]] = []  # (id(viewer), mid, sourceId)

    def slot_changed(self, stream: Stream, viewer: Viewer, mid: str,
                     source_id: str | None) -> None:
        self.vad.append((id(viewer), mid, source_id))


class Sim:
    """A stream with named audio sources sending one 20 ms packet each per step."""

    def __init__(self, **config: float) -> None:
        self.clock = FakeClock()
        self.recorder = SlotRecorder()
        self.config = MultiplexerConfig(**config)
        self.streams = Streams(self.recorder, SfuConfig(multiplexer=self.config), self.clock,
                               FakeNtp())
        self.stream = self.streams.get_or_create("room")
        self.sources: dict[str | None, Source] = {}
        self._seq: dict[str | None, int] = {}
        self._ssrc = 100
        self.steps = 0

    def publish(self, *names: str | None) -> None:
        for name in names:
            self._ssrc += 1
            self.sources[name] = self.stream.publish(
                name, [audio_params(ssrc=self._ssrc)], FakeSink()
            )
            self._seq[name] = 1000 * self._ssrc

    def unpublish(self, name: str) -> None:
        self.stream.unpublish(self.sources.pop(name))

    def viewer(self, slots: int = 3, pinned: str | None = None,
               excluded: list[str] | None = None) -> tuple[Viewer, FakeSink]:
        sink = FakeSink()
        params = [down_audio(0xA0, MAIN_MID)] + [
            down_audio(0xA1 + i, SLOT_MIDS[i]) for i in range(slots)
        ]
        return self.stream.add_viewer(params, sink, pinned, excluded), sink

    def packet(self, name: str | None, level: int) -> None:
        source = self.sources[name]
        seq = self._seq[name]
        self._seq[name] = seq + 1
        tag = (name or "-").encode()
        source.on_rtp(rtp.build_packet(
            OPUS_PT, seq & 0xFFFF, (seq * 960) & 0xFFFFFFFF, source.tracks[0].media_ssrc,
            b"\xfc" + tag, False, [(LEVEL_IN, bytes((level,))), (MID_IN, b"0")],
        ))

    def run(self, seconds: float, **levels: int | None) -> None:
        """Every 20 ms each named source sends a packet at its level (None/absent: nothing, like
        DTX); the 100 ms tick runs as in production."""
        for _ in range(round(seconds / 0.02)):
            for name, level in levels.items():
                if level is not None:
                    self.packet(name, level)
            self.clock.advance(0.02)
            self.steps += 1
            if self.steps % 5 == 0:
                self.streams.tick()

    def vad(self, viewer: Viewer) -> list[tuple[str, str | None]]:
        return [(mid, sid) for v, mid, sid in self.recorder.vad if v == id(viewer)]


def heard(sink: FakeSink, since: int = 0) -> dict[str, list[str]]:
    """mid -> source tags of the packets sent since index `since`, in order."""
    out: dict[str, list[str]] = {}
    for data in sink.rtp_out[since:]:
        mid = extension(data, MID_OUT)
        assert mid is not None
        out.setdefault(mid.decode(), []).append(data[rtp.payload_offset(data) + 1:].decode())
    return out


def heard_sets(sink: FakeSink, since: int = 0) -> dict[str, set[str]]:
    return {mid: set(tags) for mid, tags in heard(sink, since).items()}


def slot_sources(sink: FakeSink, since: int) -> set[str]:
    found = heard_sets(sink, since)
    return set().union(*(found.get(mid, set()) for mid in SLOT_MIDS))


# --- the meter ---------------------------------------------------------------------------


def test_meter_attack_is_one_packet_release_is_slow_and_silence_by_absence() -> None:
    meter = ActivityMeter(MultiplexerConfig())
    now = 10.0
    assert meter.update(SILENT, now) is False
    assert meter.update(LOUD, now + 0.02) is True  # one 20 ms packet at -20 dBov starts speech
    assert meter.speaking and -22.0 < meter.dbov < -20.0
    assert meter.update(LOUD, now + 0.04) is False  # reported once per onset
    # Pauses between words (300 ms of silent packets) keep the state.
    t = now + 0.04
    for _ in range(15):
        t += 0.02
        meter.update(SILENT, t)
        meter.decay(t)
    assert meter.speaking and -33.0 < meter.dbov < -30.0  # ~35 dB/s release
    # No packets at all (DTX): after stale_after the tick decays it exactly the same way.
    dtx = ActivityMeter(MultiplexerConfig())
    dtx.update(LOUD, now)
    dtx.decay(now + 0.2)
    assert dtx.dbov == pytest.approx(-20.0, abs=0.1)  # not stale yet: last level holds
    dtx.decay(now + 0.3)
    assert dtx.dbov == pytest.approx(-20 - 8.686 * 0.3 / 0.25, abs=0.1)
    dtx.decay(now + 1.0)
    assert dtx.speaking and dtx.dbov == pytest.approx(-20 - 8.686 * 1.0 / 0.25, abs=0.1)
    dtx.decay(now + 1.3)
    assert not dtx.speaking and dtx.dbov < -60


def test_to_dbov_floors_at_silence() -> None:
    meter = ActivityMeter(MultiplexerConfig())
    assert meter.dbov == -127.0
    assert to_dbov(1.0) == 0.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("attack", 0.0), ("release", -1.0), ("stale_after", 0.0), ("hold", -0.5),
     ("switch_margin_db", -1.0), ("speech_on_dbov", -70.0), ("speech_off_dbov", -130.0)],
)
def test_config_rejects_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError):
        MultiplexerConfig(**{field: value})


# --- slot assignment ---------------------------------------------------------------------


def test_three_of_five_talking_fill_three_slots_and_are_reported_once() -> None:
    sim = Sim()
    sim.publish("a", "b", "c", "d", "e")
    viewer, sink = sim.viewer()
    sim.run(1.0, a=LOUD, b=LOUD, c=SILENT, d=LOUD, e=SILENT)
    since = len(sink.rtp_out)
    sim.run(1.0, a=LOUD, b=LOUD, c=SILENT, d=LOUD, e=SILENT)
    found = heard(sink, since)
    # The main m-line carries the oldest source; the slots carry the other talkers, each
    # uninterrupted in one mid.
    assert set(found[MAIN_MID]) == {"a"}
    assert sorted(set(found[m][0] for m in SLOT_MIDS if m in found)) == ["b", "d"]
    assert all(len(set(found[m])) == 1 for m in found)
    assert len(found[SLOT_MIDS[0]]) == 50 and len(found[SLOT_MIDS[1]]) == 50
    assert SLOT_MIDS[2] not in found
    assert sim.vad(viewer) == [("s1", "b"), ("s2", "d")]
    assert sim.stream.multiplexer.slots(viewer) == {"s1": "b", "s2": "d", "s3": None}


def test_slots_are_sticky_while_others_come_and_go() -> None:
    sim = Sim()
    sim.publish("main", "a", "b", "c", "d", "e")
    viewer, sink = sim.viewer()
    sim.run(1.0, main=SILENT, a=LOUD, b=LOUD)
    assert sim.vad(viewer) == [("s1", "a"), ("s2", "b")]
    # c and d, then e, talk in turns while a and b keep talking: a and b never move.
    for talker in ("c", "d", "e", "c"):
        levels = {name: SILENT for name in "cde"} | {talker: LOUD}
        sim.run(2.5, main=SILENT, a=LOUD, b=LOUD, **levels)
        sim.run(2.0, main=SILENT, a=LOUD, b=LOUD, c=SILENT, d=SILENT, e=SILENT)
    vad = sim.vad(viewer)
    assert vad[:2] == [("s1", "a"), ("s2", "b")]
    assert all(mid == "s3" for mid, _ in vad[2:])
    assert [sid for _, sid in vad[2:]] == ["c", "d", "e", "c"]
    found = heard_sets(sink)
    assert found["s1"] == {"a"} and found["s2"] == {"b"} and found["s3"] == {"c", "d", "e"}


def test_two_speaker_conversation_makes_no_switches() -> None:
    sim = Sim()
    sim.publish("host", "x", "y")
    viewer, _ = sim.viewer()
    for _ in range(10):  # alternating turns with pauses, a minute of it
        sim.run(2.0, host=SILENT, x=LOUD, y=SILENT)
        sim.run(0.5, host=SILENT, x=SILENT, y=SILENT)
        sim.run(3.0, host=SILENT, x=SILENT, y=QUIET)
    assert sim.vad(viewer) == [("s1", "x"), ("s2", "y")]
    assert sim.stream.multiplexer.switches == 2


def test_newcomer_takes_a_silent_slot_at_once_but_waits_for_hold_to_evict_a_talker() -> None:
    sim = Sim(hold=1.5)
    sim.publish("main", "a", "b", "c", "d")
    viewer, sink = sim.viewer()
    sim.run(0.5, main=SILENT, a=LOUD, b=LOUD, c=QUIET, d=SILENT)
    assert sim.stream.multiplexer.slots(viewer) == {"s1": "a", "s2": "b", "s3": "c"}
    # d talks loudly; every slot holder still talks and c got its slot 0.5 s ago: no eviction
    # before c's hold ends, then c (the least active) gives way to d.
    since = len(sink.rtp_out)
    sim.run(0.9, main=SILENT, a=LOUD, b=LOUD, c=QUIET, d=LOUD)
    assert "d" not in slot_sources(sink, since)
    sim.run(0.3, main=SILENT, a=LOUD, b=LOUD, c=QUIET, d=LOUD)
    assert sim.vad(viewer)[-1] == ("s3", "d")
    assert heard(sink)["s1"] == ["a"] * len(heard(sink)["s1"])  # the louder talkers stay
    # Now a goes silent (DTX: no packets) and c talks up: it takes a's silent slot without
    # any hold, on its first loud packet after a turned silent.
    sim.run(1.6, main=SILENT, b=LOUD, c=SILENT, d=LOUD)
    before = len(sim.vad(viewer))
    sim.packet("c", LOUD)
    assert sim.vad(viewer)[before:] == [("s1", "c")]
    assert heard(sink)["s1"][-1] == "c"  # the onset packet itself is forwarded


def test_hold_protects_a_fresh_talker_but_a_louder_one_wins_after_it() -> None:
    sim = Sim(hold=1.0)
    sim.publish("main", "a", "b", "c", "d")
    viewer, sink = sim.viewer()
    sim.run(2.0, main=SILENT, a=LOUD, b=LOUD, c=QUIET)
    # d only slightly louder than c: within the margin, never evicts it.
    sim.run(3.0, main=SILENT, a=LOUD, b=LOUD, c=QUIET, d=QUIET - 3)
    assert sim.stream.multiplexer.slots(viewer)["s3"] == "c"
    sim.run(0.2, main=SILENT, a=LOUD, b=LOUD, c=QUIET, d=LOUD)
    assert sim.stream.multiplexer.slots(viewer)["s3"] == "d"
    assert [sid for mid, sid in sim.vad(viewer) if mid == "s3"] == ["c", "d"]


def test_excluded_source_is_never_heard_and_main_never_duplicated() -> None:
    sim = Sim()
    sim.publish(None, "me", "a", "b", "pin")
    own, own_sink = sim.viewer(excluded=["me"])
    pinned, pinned_sink = sim.viewer(pinned="pin", excluded=["me"])
    for talkers in (("me", "a"), ("me", "pin", "b"), ("a", "b", "me", "pin")):
        levels = {n: (LOUD if n in talkers else SILENT) for n in ("me", "a", "b", "pin")}
        sim.run(2.0, **levels)
    for sink in (own_sink, pinned_sink):
        assert "me" not in set().union(*heard_sets(sink).values())
    assert set(heard(pinned_sink)[MAIN_MID]) == {"pin"}
    assert "pin" not in slot_sources(pinned_sink, 0)
    assert slot_sources(own_sink, 0) == {"a", "b", "pin"}


def test_source_without_source_id_is_never_multiplexed() -> None:
    sim = Sim()
    sim.publish(None, "a")
    viewer, sink = sim.viewer(pinned="a")
    for _ in range(100):
        sim.packet(None, LOUD)
        sim.packet("a", LOUD)
        sim.clock.advance(0.02)
    sim.streams.tick()
    assert heard_sets(sink) == {MAIN_MID: {"a"}}
    assert sim.vad(viewer) == []


def test_main_source_change_vacates_its_slot() -> None:
    sim = Sim()
    sim.publish("a", "b")
    viewer, sink = sim.viewer(pinned="b")
    sim.run(0.5, a=LOUD, b=LOUD)  # pinned b is main, a in a slot
    assert sim.stream.multiplexer.slots(viewer)["s1"] == "a"
    sim.unpublish("b")  # a becomes main: it must leave the slot
    assert sim.vad(viewer) == [("s1", "a"), ("s1", None)]
    since = len(sink.rtp_out)
    sim.run(0.5, a=LOUD)
    assert heard_sets(sink, since) == {MAIN_MID: {"a"}}


def test_departing_source_leaves_slot_to_next_candidate_or_idle() -> None:
    sim = Sim()
    sim.publish("main", "a", "b", "c")
    viewer, sink = sim.viewer(slots=2)
    sim.run(1.0, main=SILENT, a=LOUD, b=LOUD, c=QUIET)
    assert sim.stream.multiplexer.slots(viewer) == {"s1": "a", "s2": "b"}
    sim.unpublish("a")
    assert sim.vad(viewer)[-1] == ("s1", "c")  # no idle report in between
    sim.unpublish("c")
    assert sim.vad(viewer)[-1] == ("s1", None)
    since = len(sink.rtp_out)
    sim.run(0.5, main=SILENT, b=LOUD)
    assert heard_sets(sink, since) == {MAIN_MID: {"main"}, "s2": {"b"}}


def test_republished_source_keeps_its_slot_without_vad() -> None:
    sim = Sim()
    sim.publish("main", "a")
    viewer, sink = sim.viewer()
    sim.run(0.5, main=SILENT, a=LOUD)
    sim.publish("a")  # same sourceId: replacement
    sim.run(0.5, main=SILENT, a=LOUD)
    assert sim.vad(viewer) == [("s1", "a")]
    headers = [rtp.read_header(p) for p in sink.rtp_out if extension(p, MID_OUT) == b"s1"]
    seqs = [h[2] for h in headers]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_dtx_talker_switches_in_and_out_within_one_packet() -> None:
    sim = Sim()
    sim.publish("main", "a", "b", "c", "d")
    viewer, sink = sim.viewer()
    sim.run(1.0, main=SILENT, a=LOUD, b=LOUD, c=LOUD)
    # c goes DTX (sends nothing): its slot stays (no vad), it decays to silent, no freeze.
    sim.run(2.0, main=SILENT, a=LOUD, b=LOUD)
    assert sim.stream.multiplexer.slots(viewer)["s3"] == "c"
    assert not sim.sources["c"].tracks[0].activity.speaking
    count = len(sim.vad(viewer))
    # d starts: its first loud packet takes c's silent slot and is forwarded in it.
    sim.packet("d", LOUD)
    assert sim.vad(viewer)[count:] == [("s3", "d")]
    assert heard(sink)["s3"][-1] == "d"
    sim.run(2.0, main=SILENT, a=LOUD, b=LOUD, d=LOUD)
    # a goes DTX; c comes back from DTX with speech and takes a's slot on its first packet.
    sim.run(2.0, main=SILENT, b=LOUD, d=LOUD)
    count = len(sim.vad(viewer))
    sim.packet("c", LOUD)
    assert sim.vad(viewer)[count:] == [("s1", "c")]
    assert heard(sink)["s1"][-1] == "c"


def test_sequence_and_timestamps_continue_across_switches() -> None:
    sim = Sim()
    sim.publish("main", "a", "b", "c")
    viewer, sink = sim.viewer(slots=1)
    sim.run(1.0, main=SILENT, a=LOUD)
    sim.run(0.7, main=SILENT, a=SILENT)  # a silent: still forwarded, still in the slot
    sim.run(0.3, main=SILENT)  # nothing: a gap of 300 ms
    sim.run(1.0, main=SILENT, b=LOUD)
    sim.run(2.0, main=SILENT, c=LOUD)
    assert [sid for _, sid in sim.vad(viewer)] == ["a", "b", "c"]
    slot = [p for p in sink.rtp_out if extension(p, MID_OUT) == b"s1"]
    headers = [rtp.read_header(p) for p in slot]
    tags = [p[rtp.payload_offset(p) + 1:].decode() for p in slot]
    assert {h[4] for h in headers} == {0xA1}
    seqs = [h[2] for h in headers]
    assert seqs == [(seqs[0] + i) & 0xFFFF for i in range(len(seqs))]
    steps = [(b[3] - a[3]) & 0xFFFFFFFF for a, b in zip(headers, headers[1:], strict=False)]
    switches = [i for i in range(1, len(tags)) if tags[i] != tags[i - 1]]
    assert len(switches) == 2
    for i, step in enumerate(steps, start=1):
        if i not in switches:
            assert step == 960
    # a -> b after 300 ms without packets (a had gone quiet): b's first packet is forwarded
    # and ts advances by the wall-clock gap of 320 ms.
    assert tags.count("b") == 50
    assert steps[switches[0] - 1] == round(0.32 * 48000)
    # b -> c right as b stops: b still counts as speaking until it decays, so c's first packets
    # are not heard; ts still advances by the wall-clock gap, 20 ms per packet c sent meanwhile.
    skipped = 100 - tags.count("c")
    assert 0 < skipped <= 20
    assert steps[switches[1] - 1] == 960 * (skipped + 1)


def test_ranking_runs_once_per_tick_for_any_number_of_viewers() -> None:
    sim = Sim()
    sim.publish("main", "a", "b")
    viewers = [sim.viewer() for _ in range(50)]
    calls = 0
    ranking = sim.stream.multiplexer.ranking
    original = ranking.update

    def counting(*args: object, **kwargs: object) -> bool:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)  # type: ignore[arg-type]

    ranking.update = counting  # type: ignore[method-assign]
    sim.run(1.0, main=SILENT, a=LOUD, b=LOUD)
    assert calls == 10  # ten 100 ms ticks
    for viewer, sink in viewers:
        assert sim.stream.multiplexer.slots(viewer) == {"s1": "a", "s2": "b", "s3": None}
        assert heard_sets(sink)["s1"] == {"a"}


def test_viewer_without_extra_audio_is_not_tracked() -> None:
    sim = Sim()
    sim.publish("main", "a")
    viewer, sink = sim.viewer(slots=0)
    sim.run(0.5, main=LOUD, a=LOUD)
    assert sim.stream.multiplexer.slots(viewer) == {}
    assert heard_sets(sink) == {MAIN_MID: {"main"}}
    sim.stream.remove_viewer(viewer)
