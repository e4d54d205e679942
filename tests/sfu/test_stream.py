"""Stream lifecycle: main-source choice, pinning, exclusion, replacement, events, timeouts."""

from hubbub.sfu import Source, Stream, Viewer
from tests.sfu.fakes import (
    FakeSink,
    Recorder,
    audio_packet,
    audio_params,
    down_audio,
    down_video,
    make_streams,
    video_params,
)


def bound_source(viewer: Viewer, index: int = 0) -> Source | None:
    track = viewer.down_tracks[index].track
    return track.source if track is not None else None


def setup() -> tuple[Stream, Recorder]:
    streams, recorder, _, _ = make_streams()
    return streams.get_or_create("s"), recorder


def test_main_source_is_the_one_without_source_id() -> None:
    stream, _ = setup()
    a = stream.publish("a", [video_params(), audio_params()], FakeSink())
    main = stream.publish(None, [video_params(), audio_params()], FakeSink())
    viewer = stream.add_viewer([down_video(), down_audio()], FakeSink())
    assert bound_source(viewer, 0) is main and bound_source(viewer, 1) is main
    assert viewer.down_tracks[0].track is main.tracks[0]
    assert viewer.down_tracks[1].track is main.tracks[1]
    assert a.tracks[0].down_tracks == []


def test_without_main_the_oldest_live_source_is_chosen() -> None:
    stream, _ = setup()
    stream.publish("b", [audio_params()], FakeSink())
    stream.publish("a", [audio_params()], FakeSink())
    viewer = stream.add_viewer([down_audio()], FakeSink())
    source = bound_source(viewer)
    assert source is not None and source.source_id == "b"


def test_pinned_viewer_gets_a_not_b() -> None:
    stream, _ = setup()
    a = stream.publish("A", [audio_params()], FakeSink())
    b = stream.publish(None, [audio_params()], FakeSink())
    sink = FakeSink()
    viewer = stream.add_viewer([down_audio()], sink, pinned_source_id="A")
    assert bound_source(viewer) is a
    b.on_rtp(audio_packet(1, 960))
    assert sink.rtp_out == []
    a.on_rtp(audio_packet(1, 960))
    assert len(sink.rtp_out) == 1


def test_pinned_source_appearing_later_takes_over_main_tracks() -> None:
    stream, _ = setup()
    main = stream.publish(None, [audio_params()], FakeSink())
    viewer = stream.add_viewer([down_audio()], FakeSink(), pinned_source_id="A")
    assert bound_source(viewer) is main
    a = stream.publish("A", [audio_params()], FakeSink())
    assert bound_source(viewer) is a
    stream.unpublish(a)
    assert bound_source(viewer) is main


def test_excluded_source_is_never_bound() -> None:
    stream, _ = setup()
    me = stream.publish("me", [audio_params()], FakeSink())
    viewer = stream.add_viewer([down_audio()], FakeSink(), pinned_source_id="me",
                               excluded=["me"])
    assert bound_source(viewer) is None
    other = stream.publish("other", [audio_params()], FakeSink())
    assert bound_source(viewer) is other
    stream.unpublish(other)
    assert bound_source(viewer) is None
    assert me.tracks[0].down_tracks == []


def test_viewer_waiting_on_empty_stream_is_bound_when_main_appears() -> None:
    stream, _ = setup()
    viewer = stream.add_viewer([down_video(), down_audio(), down_audio(0xA2, "a1")],
                               FakeSink())
    assert all(d.track is None for d in viewer.down_tracks)
    main = stream.publish(None, [audio_params(), video_params()], FakeSink())
    assert viewer.down_tracks[0].track is main.tracks[1]
    assert viewer.down_tracks[1].track is main.tracks[0]
    assert viewer.down_tracks[2].track is None  # left for the multiplexer


def test_unpublished_main_leaves_down_tracks_idle_then_next_main_binds() -> None:
    stream, _ = setup()
    main = stream.publish(None, [audio_params()], FakeSink())
    viewer = stream.add_viewer([down_audio()], FakeSink())
    stream.unpublish(main)
    assert viewer.down_tracks[0].track is None and viewer.main_source is None
    new = stream.publish("late", [audio_params()], FakeSink())
    assert bound_source(viewer) is new


def test_events_in_order_and_replacement_is_invisible() -> None:
    stream, recorder = setup()
    replaced: list[str] = []
    first = stream.publish("a", [audio_params()], FakeSink())
    first.on_replaced = lambda: replaced.append("first")
    viewer = stream.add_viewer([down_audio()], FakeSink())
    second = stream.publish("a", [audio_params()], FakeSink())
    assert first.closed and first.replaced and not second.closed
    stream.publish(None, [audio_params()], FakeSink())
    viewer2 = stream.add_viewer([down_audio()], FakeSink())
    stream.remove_viewer(viewer)
    stream.unpublish(first)  # already replaced: ignored
    stream.unpublish(second)
    stream.unpublish(stream.sources[None])
    stream.remove_viewer(viewer2)
    stream.remove_viewer(viewer2)  # twice: ignored
    assert replaced == ["first"]
    assert recorder.events == [
        ("active", "s", "a"),
        ("viewers", "s", 1),
        ("active", "s", None),
        ("viewers", "s", 2),
        ("viewers", "s", 1),
        ("inactive", "s", "a"),
        ("inactive", "s", None),
        ("stopped", "s", None),
        ("viewers", "s", 0),
    ]


def test_replacement_moves_down_tracks_to_matching_tracks() -> None:
    stream, _ = setup()
    old = stream.publish("a", [video_params(), audio_params()], FakeSink())
    viewer = stream.add_viewer([down_video(), down_audio()], FakeSink(), pinned_source_id="a")
    new = stream.publish("a", [audio_params(ssrc=5), video_params(ssrc=6)], FakeSink())
    assert viewer.down_tracks[0].track is new.tracks[1]
    assert viewer.down_tracks[1].track is new.tracks[0]
    assert viewer.main_source is new
    assert all(t.down_tracks == [] for t in old.tracks)


def test_replacement_without_matching_kind_leaves_idle() -> None:
    stream, _ = setup()
    stream.publish(None, [video_params(), audio_params()], FakeSink())
    viewer = stream.add_viewer([down_video(), down_audio()], FakeSink())
    new = stream.publish(None, [audio_params()], FakeSink())
    assert viewer.down_tracks[0].track is None
    assert viewer.down_tracks[1].track is new.tracks[0]


def test_stream_leaves_registry_when_empty_and_stays_while_viewers_wait() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    viewer = stream.add_viewer([down_audio()], FakeSink())
    source = stream.publish(None, [audio_params()], FakeSink())
    stream.unpublish(source)
    assert streams.get("s") is stream
    stream.remove_viewer(viewer)
    assert streams.get("s") is None
    assert len(streams) == 0
    assert streams.get_or_create("s") is not stream


def test_media_timeout_is_reported_once_until_media_resumes() -> None:
    streams, recorder, clock, _ = make_streams(media_timeout=10.0)
    stream = streams.get_or_create("s")
    source = stream.publish("a", [audio_params()], FakeSink())
    recorder.events.clear()
    clock.advance(9.9)
    streams.tick(clock.now)
    assert recorder.events == []
    clock.advance(0.2)
    streams.tick(clock.now)
    streams.tick(clock.now + 1)
    assert recorder.events == [("timeout", "s", "a")]
    source.on_rtp(audio_packet(1, 960))
    clock.advance(10.0)
    streams.tick(clock.now)
    assert recorder.events == [("timeout", "s", "a"), ("timeout", "s", "a")]
    assert "a" in stream.sources  # control decides; the sfu does not unpublish by itself


def test_discard_if_empty_only_drops_unused_streams() -> None:
    streams, _, _, _ = make_streams()
    used = streams.get_or_create("used")
    used.add_viewer([down_audio()], FakeSink())
    unused = streams.get_or_create("unused")
    assert streams.discard_if_empty(used) is False
    assert streams.discard_if_empty(unused) is True
    assert streams.discard_if_empty(unused) is False
    assert streams.get("used") is used and streams.get("unused") is None
