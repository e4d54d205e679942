"""RelayFeed (origin side) and an edge's copy of the Source, in process: what crosses the relay
is the publisher's packet with the relay SSRC, and the edge forwards it like a local source."""

from __future__ import annotations

from dataclasses import replace

from hubbub.media import rtp
from hubbub.sfu import rtcp_io
from hubbub.sfu.relay import edge_track_params, relayed_track_params
from tests.sfu.fakes import (
    ABS_IN,
    LEVEL_IN,
    LEVEL_OUT,
    MID_IN,
    FakeSink,
    audio_packet,
    audio_params,
    down_audio,
    down_video,
    extension,
    make_streams,
    video_packet,
    video_params,
)

RELAY_A, RELAY_V = 0x5EED0001, 0x5EED0002


def test_feed_keeps_payload_pt_seq_and_extensions_but_not_the_mid() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    source = stream.publish("x", [audio_params(), video_params()], FakeSink())
    link = FakeSink()
    feed = stream.add_relay(source, [RELAY_A, RELAY_V], link)
    source.on_rtp(audio_packet(100, 4800, mid=b"0", level=20))
    [out] = link.rtp_out
    assert rtp.read_header(out) == (111, False, 100, 4800, RELAY_A)
    assert extension(out, LEVEL_IN) == bytes((0x80 | 20,))  # the edge ranks speakers by it
    assert extension(out, ABS_IN) == b"\x01\x02\x03"
    assert extension(out, MID_IN) is None  # the publisher's MID means nothing on the link
    assert out[-31:] == audio_packet(100, 4800)[-31:]  # payload untouched
    assert feed.ssrcs == [RELAY_A, RELAY_V]


def test_feed_answers_nack_from_its_cache_and_passes_pli_to_the_publisher() -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    publisher = FakeSink()
    source = stream.publish("x", [video_params()], publisher)
    link = FakeSink()
    feed = stream.add_relay(source, [RELAY_V], link)
    publisher.rtcp_out.clear()  # the relay's bind asked for a keyframe already
    clock.advance(1)
    source.on_rtp(video_packet(7, 90000, key=True))
    source.on_rtp(video_packet(8, 93000))
    assert len(link.rtp_out) == 2
    feed.on_rtcp(rtcp_io.nack(1, RELAY_V, [7]))
    assert link.rtp_out[2] == link.rtp_out[0]  # resent unchanged
    clock.advance(1)
    feed.on_rtcp(rtcp_io.pli(1, RELAY_V))
    assert publisher.rtcp_out, "PLI from the edge reaches the publisher"


def test_local_republish_keeps_the_relay_continuous() -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    first = stream.publish("x", [audio_params(ssrc=1)], FakeSink())
    link = FakeSink()
    stream.add_relay(first, [RELAY_A], link)
    first.on_rtp(audio_packet(500, 1000, ssrc=1))
    second = stream.publish("x", [audio_params(ssrc=2)], FakeSink())
    clock.advance(0.02)
    second.on_rtp(audio_packet(9, 70000, ssrc=2))
    seqs = [rtp.read_header(p)[2] for p in link.rtp_out]
    ssrcs = {rtp.read_header(p)[4] for p in link.rtp_out}
    assert seqs == [500, 501] and ssrcs == {RELAY_A}


def test_edge_copy_forwards_to_its_viewers_and_asks_the_origin_for_repairs() -> None:
    streams, recorder, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    link = FakeSink()  # the edge's link to the origin
    params = [edge_track_params(audio_params(ssrc=RELAY_A)),
              edge_track_params(video_params(ssrc=RELAY_V))]
    assert params[1].rtcp_fbs == ["nack"] and rtp.SDES_MID not in params[0].ext_ids
    copy = stream.publish("x", params, link)
    sink = FakeSink()
    stream.add_viewer([down_video(), down_audio()], sink)
    assert ("active", "s", "x") in recorder.events
    relayed = audio_packet(100, 4800, ssrc=RELAY_A, level=20)
    copy.on_rtp(relayed)
    [out] = sink.rtp_out
    assert rtp.read_header(out)[4] == down_audio().ssrc
    assert extension(out, LEVEL_OUT) == bytes((0x80 | 20,))
    link.rtcp_out.clear()
    clock.advance(1)
    copy.on_rtp(video_packet(10, 0, ssrc=RELAY_V, key=True))
    copy.on_rtp(video_packet(13, 0, ssrc=RELAY_V))  # 11 and 12 lost between the nodes
    nacks = [p for p in link.rtcp_out if p[1] == 205]
    assert nacks, "the edge NACKs the gap to the origin"


SIM = [11, 22, 33]  # a publisher's SSRC-group simulcast, lowest first
RELAY_LAYERS = [0x5EED0011, 0x5EED0022, 0x5EED0033]


def test_feed_relays_every_layer_on_its_own_ssrc_and_keyframe_requests_reach_that_layer(
) -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    publisher = FakeSink()
    source = stream.publish("x", [replace(video_params(ssrc=None), layer_ssrcs=SIM)], publisher)
    link = FakeSink()
    feed = stream.add_relay(source, RELAY_LAYERS, link)
    assert [d.track for d in feed.down_tracks] == source.all_tracks
    (claimed,) = relayed_track_params(source, RELAY_LAYERS)
    assert claimed.rids == ["0", "1", "2"] and claimed.layer_ssrcs == RELAY_LAYERS
    assert claimed.ssrcs == [RELAY_LAYERS[-1]]  # the layer a viewer starts on
    clock.advance(1)
    for seq in (1, 2):
        for ssrc in SIM:
            source.on_rtp(video_packet(seq, seq * 3000, ssrc=ssrc, key=seq == 1))
    assert [h[4] for h in link.headers()] == RELAY_LAYERS * 2  # never switched, all layers
    publisher.rtcp_out.clear()
    clock.advance(1)
    feed.on_rtcp(rtcp_io.pli(1, RELAY_LAYERS[0]))
    (pli,) = publisher.rtcp_out
    assert rtcp_io.read_feedback(pli)[0] == [rtcp_io.KeyframeEvent(SIM[0])]
    sent = len(link.rtp_out)
    feed.on_rtcp(rtcp_io.nack(1, RELAY_LAYERS[1], [1]))
    assert link.rtp_out[sent:] == [link.rtp_out[1]]  # layer 1's packet, resent unchanged


def test_local_republish_moves_each_relayed_layer_to_the_same_layer() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    first = stream.publish("x", [replace(video_params(ssrc=None), layer_ssrcs=SIM)],
                           FakeSink())
    feed = stream.add_relay(first, RELAY_LAYERS, FakeSink())
    second = stream.publish("x", [replace(video_params(ssrc=None), layer_ssrcs=[4, 5, 6])],
                            FakeSink())
    assert [d.track for d in feed.down_tracks] == second.all_tracks


def test_edge_copy_has_the_origins_layers_by_relay_ssrc() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    claimed = replace(video_params(ssrc=RELAY_LAYERS[-1]), rids=["q", "h", "f"],
                      layer_ssrcs=RELAY_LAYERS)
    params = edge_track_params(claimed)
    copy = stream.publish("x", [params], FakeSink())
    (track,) = copy.tracks
    assert [t.encoding_id for t in track.layers] == ["q", "h", "f"] and track is track.layers[-1]
    for ssrc in (RELAY_LAYERS[1], RELAY_LAYERS[1], RELAY_LAYERS[0]):
        copy.on_rtp(video_packet(1, 0, ssrc=ssrc))
    assert [t.packets for t in track.layers] == [1, 2, 0]
    # RIDs name SSRC layers only when each layer has one; otherwise RIDs are learned as ever.
    (lone,) = stream.publish("y", [replace(params, rids=["q", "h"])], FakeSink()).tracks
    assert [t.encoding_id for t in lone.layers] == ["q", "h"]
    assert [t.media_ssrc for t in lone.layers] == [0, 0]
