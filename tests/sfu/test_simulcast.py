"""Simulcast publish (one Track per layer, RID or SSRC-group) and RTX (RFC 4588) unwrapping,
and a DownTrack moving between layers at a keyframe of the target layer without a gap."""

from __future__ import annotations

from dataclasses import replace

from hubbub.media import rtp
from hubbub.sfu import SfuConfig, Source
from hubbub.sfu.layers import LayerRequest
from tests.sfu.fakes import (
    ABS_IN,
    MID_IN,
    VP8_DELTA,
    VP8_KEY,
    VP8_PT,
    FakeClock,
    FakeSink,
    down_video,
    make_streams,
    video_packet,
    video_params,
)

RID_IN = 6
RRID_IN = 7
RTX_PT = 97


def rid_params() -> object:
    params = video_params(ssrc=None)
    params.ext_ids.update({rtp.RID: RID_IN, rtp.REPAIRED_RID: RRID_IN})
    return replace(params, rids=["q", "h", "f"], rtx_payload_type=RTX_PT,
                   rtcp_fbs=["nack", "nack pli"])


def layer_packet(seq: int, ts: int, ssrc: int, rid: bytes | None, key: bool = False,
                 pt: int = VP8_PT, payload: bytes | None = None,
                 rid_id: int = RID_IN) -> bytes:
    ext = [(ABS_IN, b"\x04\x05\x06"), (MID_IN, b"1")]
    if rid is not None:
        ext.append((rid_id, rid))
    body = payload if payload is not None else (VP8_KEY if key else VP8_DELTA)
    return rtp.build_packet(pt, seq & 0xFFFF, ts, ssrc, body, False, ext)


def make_source(params: object) -> Source:
    return Source(None, [params], FakeSink(), SfuConfig(), FakeClock(), 1)  # type: ignore[list-item]


def test_rid_layers_are_learned_from_the_rid_extension() -> None:
    source = make_source(rid_params())
    (track,) = source.tracks
    assert [t.rid for t in track.layers] == ["q", "h", "f"] and track.simulcast
    assert track is track.layers[-1] and len(source.all_tracks) == 3
    source.on_rtp(layer_packet(1, 0, 0xA1, b"q"))
    source.on_rtp(layer_packet(1, 0, 0xA3, b"f"))
    source.on_rtp(layer_packet(2, 0, 0xA3, None))  # learned: later packets need no RID
    source.on_rtp(layer_packet(1, 0, 0xA2, b"h"))
    assert [t.packets for t in track.layers] == [1, 1, 2]
    assert [t.media_ssrc for t in track.layers] == [0xA1, 0xA2, 0xA3]
    assert [t.encoding_id for t in track.layers] == ["q", "h", "f"]
    source.on_rtp(layer_packet(1, 0, 0xA9, None))  # a layer without its RID: unplaceable
    assert source.packets_unknown == 1


def test_ssrc_group_layers_keep_the_group_order() -> None:
    params = replace(video_params(ssrc=None), layer_ssrcs=[11, 22, 33])
    source = make_source(params)
    (track,) = source.tracks
    assert [t.params.ssrcs for t in track.layers] == [[11], [22], [33]]
    assert [t.encoding_id for t in track.layers] == ["0", "1", "2"]
    for ssrc in (33, 11, 22, 22):
        source.on_rtp(video_packet(1, 0, ssrc=ssrc))
    assert [t.packets for t in track.layers] == [1, 2, 1]


def rtx_of(original: bytes, rtx_seq: int, rtx_ssrc: int, offset: int, rid: bytes | None) -> bytes:
    """A retransmission of `original` as RFC 4588 §4 builds it."""
    osn = original[2:4]
    body = osn + original[offset:]
    return layer_packet(rtx_seq, int.from_bytes(original[4:8], "big"), rtx_ssrc, rid,
                        pt=RTX_PT, payload=body, rid_id=RRID_IN)


def test_rtx_is_unwrapped_into_the_layer_it_repairs() -> None:
    source = make_source(rid_params())
    track = source.tracks[0]
    sink = FakeSink()
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    live = stream.publish(None, [rid_params()], FakeSink())  # type: ignore[list-item]
    viewer = stream.add_viewer([down_video()], sink)
    layer = live.tracks[0].layers[1]  # "h"
    assert viewer.main_video is not None
    viewer.main_video.bind(layer)
    first = layer_packet(500, 9000, 0xB2, b"h", key=True)
    live.on_rtp(first)
    lost = layer_packet(502, 9000, 0xB2, None)
    offset = rtp.payload_offset(lost)
    live.on_rtp(layer_packet(501, 9000, 0xB2, None))
    live.on_rtp(layer_packet(503, 9000, 0xB2, None))  # 502 is missing: we NACK it
    live.on_rtp(rtx_of(lost, 7, 0xC2, offset, b"h"))
    assert live.packets_repaired == 1 and layer.packets == 4
    sent = sink.headers()
    assert [h[2] for h in sent][-1] == [h[2] for h in sent][0] + 2  # the OSN, rewritten
    assert sink.rtp_out[-1].endswith(VP8_DELTA)  # the payload without the OSN
    assert {h[0] for h in sent} == {120}  # the viewer's VP8 PT, not RTX
    # Without a repaired-RID and without an FID group the RTX stream cannot be placed.
    source.on_rtp(rtx_of(lost, 8, 0xC9, offset, None))
    assert source.packets_unknown == 1 and track.packets == 0


def test_rtx_of_a_plain_track_is_placed_by_its_fid_group() -> None:
    params = replace(video_params(ssrc=2222), rtx_payload_type=RTX_PT,
                     repair_ssrcs={3333: 2222}, rtcp_fbs=["nack"])
    source = make_source(params)
    source.on_rtp(video_packet(39, 100, ssrc=2222))
    source.on_rtp(video_packet(41, 100, ssrc=2222))
    original = video_packet(40, 100, ssrc=2222)
    offset = rtp.payload_offset(original)
    source.on_rtp(rtx_of(original, 1, 3333, offset, None))
    assert source.packets_repaired == 1 and source.tracks[0].packets == 3
    assert source.tracks[0].last_seq == 40


def test_rtx_of_a_packet_already_here_is_a_probe_not_media() -> None:
    """libwebrtc probes with RTX copies of packets it sent ("payload padding"): they must
    neither reach viewers twice nor count as the layer's bitrate."""
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    sink = FakeSink()
    live = stream.publish(None, [rid_params()], FakeSink())  # type: ignore[list-item]
    viewer = stream.add_viewer([down_video()], sink)
    layer = live.tracks[0].layers[0]  # "q"
    assert viewer.main_video is not None
    viewer.main_video.bind(layer)
    layer.measure(clock.now)
    first = layer_packet(100, 9000, 0xB1, b"q", key=True)
    live.on_rtp(first)
    offset = rtp.payload_offset(first)
    for n in range(50):
        live.on_rtp(rtx_of(first, 1 + n, 0xC1, offset, b"q"))
    # Padding-only packets on the media SSRC are forwarded (they hold seqs) but not bitrate.
    padding = bytearray(layer_packet(101, 9000, 0xB1, None, payload=b""))
    padding[0] |= 0x20
    live.on_rtp(bytes(padding) + bytes(199) + bytes((200,)))
    clock.now += 1.0
    layer.measure(clock.now)
    assert live.packets_redundant == 50 and live.packets_repaired == 0
    assert len(sink.rtp_out) == 2  # the keyframe once, then the padding
    assert layer.bitrate == len(first) * 8


def test_a_layer_switch_waits_for_the_target_keyframe_and_stays_continuous() -> None:
    streams, _, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    params = replace(video_params(ssrc=None), layer_ssrcs=[11, 22])
    source = stream.publish(None, [params], FakeSink())
    sink = FakeSink()
    viewer = stream.add_viewer([down_video()], sink)
    down = viewer.main_video
    low, high = source.tracks[0].layers
    assert down is not None and down.track is high  # viewers start on the last layer
    down.bind(low)
    source.on_rtp(video_packet(10, 1000, ssrc=11, key=True))
    source.on_rtp(video_packet(11, 4000, ssrc=11))
    down.switch_to(high)
    assert down.pending is high and down.track is low
    clock.advance(0.033)
    source.on_rtp(video_packet(900, 50_000, ssrc=22))  # not a keyframe: keep the low layer
    source.on_rtp(video_packet(12, 7000, ssrc=11))
    assert down.track is low and len(sink.rtp_out) == 3
    clock.advance(0.033)
    source.on_rtp(video_packet(901, 53_000, ssrc=22, key=True))
    source.on_rtp(video_packet(13, 10_000, ssrc=11))  # the old layer is no longer sent
    source.on_rtp(video_packet(902, 56_000, ssrc=22))
    assert down.track is high and down.pending is None and down.switches == 1
    headers = sink.headers()
    assert [h[2] for h in headers] == [10, 11, 12, 13, 14]  # one seq space, no gap
    ts = [h[3] for h in headers]
    assert ts[3] - ts[2] >= 2970 and ts[4] - ts[3] == 3000  # continuous time
    assert sink.rtp_out[3].endswith(VP8_KEY)


def test_a_pending_switch_is_cancelled_by_a_bind_and_by_the_source_going_away() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    params = replace(video_params(ssrc=None), layer_ssrcs=[11, 22])
    source = stream.publish(None, [params], FakeSink())
    viewer = stream.add_viewer([down_video()], FakeSink())
    down = viewer.main_video
    low, high = source.tracks[0].layers
    assert down is not None
    down.bind(low)
    source.on_rtp(video_packet(1, 0, ssrc=11, key=True))
    down.switch_to(high)
    assert high.switchers == [down] and high.keyframe_waiters == 1
    down.switch_to(low)  # back to where it is: nothing pending
    assert high.switchers == [] and high.keyframe_waiters == 0 and down.pending is None
    down.switch_to(high)
    stream.unpublish(source)
    assert down.pending is None and down.track is None and high.keyframe_waiters == 0


def vp8_key(width: int, height: int) -> bytes:
    """A VP8 keyframe's first packet: descriptor, frame tag, start code, size (RFC 6386 §9.1)."""
    return (b"\x10" + b"\x00\x00\x00" + b"\x9d\x01\x2a" + width.to_bytes(2, "little")
            + height.to_bytes(2, "little") + b"k" * 20)


def sized_packet(seq: int, ts: int, ssrc: int, size: tuple[int, int] | None) -> bytes:
    body = vp8_key(*size) if size is not None else VP8_DELTA
    return rtp.build_packet(VP8_PT, seq & 0xFFFF, ts, ssrc, body, False,
                            [(ABS_IN, b"\x01\x02\x03")])


def test_automatic_mode_takes_the_largest_live_layer_and_select_pins_one() -> None:
    """RID order says nothing about size: the layers are ranked by their keyframes' size, the
    viewer moves up to the largest, `layers` events describe them, a pin moves it down, and a
    layer that stops sending is left."""
    streams, recorder, clock, _ = make_streams()
    stream = streams.get_or_create("s")
    params = replace(video_params(ssrc=None), layer_ssrcs=[11, 22, 33])
    source = stream.publish(None, [params], FakeSink())
    viewer = stream.add_viewer([down_video(mid="v0")], FakeSink())
    down = viewer.main_video
    assert down is not None
    sizes = {11: (1280, 720), 22: (320, 180), 33: (640, 360)}  # not in size order
    seq = 0

    def second(keys: bool, ssrcs: tuple[int, ...] = (11, 22, 33)) -> None:
        nonlocal seq
        for step in range(30):
            seq += 1
            for ssrc in ssrcs:
                key = keys and step == 0
                source.on_rtp(sized_packet(seq, seq * 3000, ssrc, sizes[ssrc] if key else None))
            clock.advance(1 / 30)
            streams.tick()

    second(keys=True)
    second(keys=True)  # the switch to the largest waits for its keyframe
    layers = source.tracks[0].layers
    assert [(t.width, t.height) for t in layers] == [sizes[11], sizes[22], sizes[33]]
    assert down.track is layers[0] and down.switches >= 1  # 1280x720, listed first
    events = [e[2] for e in recorder.events if e[0] == "layers"]
    mid, entry = events[-1]
    assert mid == "v0"
    assert [(a["id"], a["simulcastIdx"], a["width"]) for a in entry["active"]] == [
        ("1", 0, 320), ("2", 1, 640), ("0", 2, 1280)]
    assert entry["inactive"] == [] and all(a["bitrate"] > 0 for a in entry["active"])
    assert [x["encodingId"] for x in entry["layers"]] == ["1", "2", "0"]
    assert {x["spatialLayerId"] for x in entry["layers"]} == {255}

    viewer.request_layer("v0", LayerRequest("1"))  # select {"encodingId": "1"}
    assert down.pending is layers[1]
    second(keys=True)
    assert down.track is layers[1]
    viewer.request_layer("v0", LayerRequest())  # back to automatic
    second(keys=True)
    assert down.track is layers[0]
    for _ in range(3):  # the top layer stops (its publisher's uplink): gone after 1 s
        second(keys=True, ssrcs=(22, 33))
    assert down.track is layers[2]  # 640x360: the largest still live
    _, entry = [e[2] for e in recorder.events if e[0] == "layers"][-1]
    assert [a["id"] for a in entry["inactive"]] == ["0"]


def test_a_viewer_pinned_before_media_flows_starts_on_its_layer() -> None:
    """An edge's copy of a source, or a publisher's first second: nothing is live yet, and a
    viewer that asked for a layer must not decode the last-listed one first."""
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    params = replace(video_params(ssrc=None), layer_ssrcs=[11, 22, 33])
    source = stream.publish(None, [params], FakeSink())
    sink = FakeSink()
    viewer = stream.add_viewer([down_video(mid="v0")], sink)
    down = viewer.main_video
    layers = source.tracks[0].layers
    assert down is not None and down.track is layers[2]
    viewer.request_layer("v0", LayerRequest("1"))
    assert down.track is layers[1] and down.pending is None
    for ssrc in (33, 22):
        source.on_rtp(video_packet(1, 0, ssrc=ssrc, key=True))
    assert [h[4] for h in sink.headers()] == [down.ssrc]  # layer "1"'s keyframe only
    viewer.request_layer("v0", LayerRequest("9"))  # no such layer: automatic
    assert down.track is layers[1]
