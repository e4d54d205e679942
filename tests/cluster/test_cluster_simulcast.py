"""Simulcast across the relay, two nodes in process (real redis-server, real UDP, as
test_cluster_inprocess), and the claim that announces the layers. Every layer of a source
published on A reaches B under its own relay SSRC and the origin's encoding ids; B's viewer
gets the layer it selects and moves between layers without a seq gap; its keyframe requests
and NACKs reach the right layer on A."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, cast

import pytest
import pytest_asyncio

from hubbub.cluster import ClusterConfig, ClusterCoordinator
from hubbub.cluster.links import Links
from hubbub.cluster.origin import Hosted, Origin
from hubbub.cluster.records import SourceClaim
from hubbub.config import Config
from hubbub.control.auth.keys import SigningKey
from hubbub.control.node import Node
from hubbub.media import rtp
from hubbub.sfu import rtcp_io
from hubbub.sfu.layers import LayerRequest
from hubbub.sfu.source import Source
from hubbub.sfu.track import Track
from hubbub.sfu.types import TrackParams
from tests.helpers.redis import RedisServer
from tests.sfu.fakes import MID_IN, VP8_PT, FakeSink, down_video, make_streams, video_params

RID_IN = 6
# Publisher SSRC and keyframe size per layer, in the offer's order (lowest first).
LAYERS = {"q": (0xA1, 320, 180), "h": (0xA2, 640, 360), "f": (0xA3, 1280, 720)}


def rid_video_params() -> TrackParams:
    params = video_params(ssrc=None)
    params.ext_ids[rtp.RID] = RID_IN
    return replace(params, rids=list(LAYERS), rtcp_fbs=["nack", "nack pli"])


def vp8_payload(rid: str, key: bool) -> bytes:
    """A VP8 packet of one layer; its last byte names the layer (the payload is relayed and
    forwarded untouched past the descriptor)."""
    _, width, height = LAYERS[rid]
    if key:  # RFC 6386 §9.1: frame tag, start code, 14-bit width and height
        body = b"\x00\x00\x00\x9d\x01\x2a" + width.to_bytes(2, "little") + height.to_bytes(
            2, "little")
    else:
        body = b"\x01" + b"d" * 9
    return b"\x10" + body + b"x" * 20 + rid.encode()


class Publisher:
    """A RID simulcast publisher on A: a one-packet frame per layer at a time; a layer sends a
    keyframe when A asked for one (PLI for that layer's SSRC) and at its start."""

    def __init__(self, source: Source, sink: FakeSink) -> None:
        self.source = source
        self.sink = sink
        self.seq = dict.fromkeys(LAYERS, 0)
        self.plis: list[int] = []  # media SSRCs A asked keyframes of, in order
        self._read = 0  # of sink.rtcp_out

    def frame(self) -> None:
        fresh: set[int] = set()
        for packet in self.sink.rtcp_out[self._read:]:
            events, _ = rtcp_io.read_feedback(packet)
            fresh |= {e.media_ssrc for e in events if isinstance(e, rtcp_io.KeyframeEvent)}
            self.plis += [e.media_ssrc for e in events if isinstance(e, rtcp_io.KeyframeEvent)]
        self._read = len(self.sink.rtcp_out)
        for rid, (ssrc, _, _) in LAYERS.items():
            seq = self.seq[rid]
            self.seq[rid] = seq + 1
            self.source.on_rtp(rtp.build_packet(
                VP8_PT, seq, seq * 3000, ssrc, vp8_payload(rid, seq == 0 or ssrc in fresh),
                True, [(MID_IN, b"1"), (RID_IN, rid.encode())]))


def layer_of(packet: bytes) -> str:
    return chr(packet[-1])


def runs(packets: list[bytes]) -> list[str]:
    """The layers a viewer got, one entry per stretch of the same layer."""
    out: list[str] = []
    for packet in packets:
        if not out or out[-1] != layer_of(packet):
            out.append(layer_of(packet))
    return out


def continuous(packets: list[bytes]) -> bool:
    seqs = [rtp.read_header(p)[2] for p in packets]
    return [(s - seqs[0]) & 0xFFFF for s in seqs] == list(range(len(seqs)))


async def play_until(publisher: Publisher, check: Callable[[], bool],
                     timeout: float = 5.0) -> None:
    """Frames every 5 ms until `check` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        publisher.frame()
        await asyncio.sleep(0.005)


def make_node(redis: RedisServer, node_id: str) -> Node:
    config = Config()
    config.media.host = "127.0.0.1"
    config.media.port = 0
    coordinator = ClusterCoordinator(
        ClusterConfig(redis_url=redis.url, node_id=node_id, url=f"ws://{node_id}",
                      heartbeat=0.2, ttl=1.0),
        SigningKey.generate().jwk,
    )
    return Node(config, coordinator)


def cluster(node: Node) -> ClusterCoordinator:
    assert isinstance(node.coordinator, ClusterCoordinator)
    return node.coordinator


async def wait_for(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def hosted_claim(node: Node, stream: str, source: Source) -> Hosted:
    """`source` published on `node`, once its claim is in the registry."""
    origin = cluster(node).origin
    cluster(node).source_published(node.streams.get_or_create(stream), source)
    await wait_for(lambda: (stream, source.source_id) in origin.hosted
                   and origin.hosted[(stream, source.source_id)].claim is not None)
    return origin.hosted[(stream, source.source_id)]


@pytest_asyncio.fixture
async def nodes(redis: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    stamp = str(time.monotonic_ns())[-6:]
    a, b = make_node(redis, f"a{stamp}"), make_node(redis, f"b{stamp}")
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await b.stop()
        await a.stop()


async def test_an_edge_viewer_gets_the_layer_it_selects_and_moves_between_layers(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    stream_a = a.streams.get_or_create("sim")
    publisher_sink = FakeSink()
    source = stream_a.publish(None, [rid_video_params()], publisher_sink)
    hosted = await hosted_claim(a, "sim", source)
    assert hosted.claim is not None
    (claimed,) = hosted.claim.tracks
    assert claimed.rids == ["q", "h", "f"] and claimed.layer_ssrcs == hosted.ssrcs
    assert hosted.claim.ssrcs == hosted.ssrcs and len(set(hosted.ssrcs)) == 3

    interest = cluster(b).interest("sim", "view")
    await interest.ready()
    stream_b = b.streams.get("sim")
    assert stream_b is not None
    (copied,) = stream_b.sources[None].tracks
    layers_b = copied.layers
    # The same layers as on A, under the same names, each fed by its relay SSRC.
    assert [t.encoding_id for t in layers_b] == ["q", "h", "f"]
    assert [t.media_ssrc for t in layers_b] == hosted.ssrcs
    assert copied is layers_b[-1]  # a viewer starts on the last-listed layer, as on A

    sink = FakeSink()
    viewer = stream_b.add_viewer([down_video()], sink)
    down = viewer.down_tracks[0]
    await wait_for(lambda: bool(stream_a.relays))
    (feed,) = stream_a.relays
    assert feed.ssrcs == hosted.ssrcs
    assert [d.track for d in feed.down_tracks] == source.all_tracks  # one per layer

    publisher = Publisher(source, publisher_sink)
    # Every layer crosses the relay, whichever the viewer watches; sizes come with keyframes.
    await play_until(publisher, lambda: all(t.width for t in layers_b))
    assert [(t.width, t.height) for t in layers_b] == [(320, 180), (640, 360), (1280, 720)]

    def watching(layer: Track, rid: str) -> Callable[[], bool]:
        return lambda: down.track is layer and bool(sink.rtp_out) and layer_of(
            sink.rtp_out[-1]) == rid

    viewer.request_layer("v0", LayerRequest("h"))  # select {"encodingId": "h"}
    await play_until(publisher, watching(layers_b[1], "h"))
    await play_until(publisher, lambda: len(sink.rtp_out) >= 30)
    asked = len(publisher.plis)
    viewer.request_layer("v0", LayerRequest("q"))
    await play_until(publisher, watching(layers_b[0], "q"))
    # B's keyframe request for q went to q's relay SSRC and from A to q's publisher SSRC.
    assert LAYERS["q"][0] in publisher.plis[asked:]
    assert LAYERS["f"][0] not in publisher.plis[asked:]
    count = len(sink.rtp_out)
    await play_until(publisher, lambda: len(sink.rtp_out) >= count + 20)
    await asyncio.sleep(0.1)  # packets still on the way
    got = sink.rtp_out
    assert runs(got)[-2:] == ["h", "q"] and len(runs(got)) == len(set(runs(got)))
    assert {rtp.read_header(p)[4] for p in got} == {down.ssrc}
    assert continuous(got), "seq continuous across the layer switches"
    interest.release()


async def test_a_layer_lost_between_nodes_is_resent_by_the_origin(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    stream_a = a.streams.get_or_create("simloss")
    publisher_sink = FakeSink()
    source = stream_a.publish(None, [rid_video_params()], publisher_sink)
    hosted = await hosted_claim(a, "simloss", source)
    h_relay = hosted.ssrcs[1]
    # The network between the nodes loses two packets of h once (set before A's link to B
    # exists: replacing `sendto` keeps the C sender off for it).
    to_b = (b.port.local_addr[0], b.port.local_addr[1])
    lose = False
    dropped: list[int] = []
    send = a.port.sendto

    def lossy(data: bytes, addr: tuple[str, int]) -> None:
        if lose and addr == to_b and len(data) > 12 and data[1] & 0x7F == VP8_PT:
            seq, ssrc = int.from_bytes(data[2:4], "big"), int.from_bytes(data[8:12], "big")
            if ssrc == h_relay and len(dropped) < 2 and seq % 5 == 0 and seq not in dropped:
                dropped.append(seq)
                return
        send(data, addr)

    a.port.sendto = lossy  # type: ignore[method-assign]
    interest = cluster(b).interest("simloss", "view")
    await interest.ready()
    stream_b = b.streams.get("simloss")
    assert stream_b is not None
    layers_b = stream_b.sources[None].tracks[0].layers
    sink = FakeSink()
    viewer = stream_b.add_viewer([down_video()], sink)
    down = viewer.down_tracks[0]
    await wait_for(lambda: bool(stream_a.relays))
    publisher = Publisher(source, publisher_sink)
    await play_until(publisher, lambda: all(t.packets for t in layers_b))
    viewer.request_layer("v0", LayerRequest("h"))
    await play_until(publisher, lambda: down.track is layers_b[1] and bool(sink.rtp_out)
                     and layer_of(sink.rtp_out[-1]) == "h")
    start = len(sink.rtp_out)
    lose = True
    await play_until(publisher, lambda: len(dropped) == 2)
    count = len(sink.rtp_out)
    await play_until(publisher, lambda: len(sink.rtp_out) >= count + 20)
    await asyncio.sleep(0.2)
    got = sink.rtp_out[start:]
    assert {layer_of(p) for p in got} == {"h"}
    seqs = sorted(rtp.read_header(p)[2] for p in got)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "every h packet, lost ones resent"
    (feed,) = stream_a.relays
    assert [d.packets_resent for d in feed.down_tracks] == [0, 2, 0]  # h's relay only
    assert not [p for p in publisher_sink.rtcp_out if p[1] == 205], "no NACK to the publisher"
    interest.release()


# --- the claim ---------------------------------------------------------------------------

SIMULCAST_CLAIM = SourceClaim(
    stream="room", source_id="cam", node="n1", epoch=3,
    tracks=[
        TrackParams("audio", "0", "opus", 111, 48000, "", [0x10], {}, []),
        TrackParams("video", "1", "VP8", 96, 90000, "", [0x23], {rtp.ABS_SEND_TIME: 2},
                    ["nack"], rids=["q", "h", "f"], layer_ssrcs=[0x21, 0x22, 0x23]),
    ],
)


def test_a_simulcast_claim_round_trips_and_older_nodes_read_one_layer() -> None:
    text = SIMULCAST_CLAIM.to_json()
    assert SourceClaim.from_json(text) == SIMULCAST_CLAIM
    assert SIMULCAST_CLAIM.ssrcs == [0x10, 0x21, 0x22, 0x23]  # every relay SSRC is routed
    video = json.loads(text)["tracks"][1]
    assert video["layers"] == [{"id": "q", "ssrc": 0x21}, {"id": "h", "ssrc": 0x22},
                               {"id": "f", "ssrc": 0x23}]
    # A node from before layers were relayed reads `ssrcs` only: the first-shown layer.
    assert video["ssrcs"] == [0x23] and "rids" not in video and "layer_ssrcs" not in video


def test_a_claim_written_before_layers_were_relayed_reads_as_one_layer() -> None:
    # Such claims held the publisher's own RIDs or SIM SSRCs: meaningless on the edge.
    data = json.loads(SIMULCAST_CLAIM.to_json())
    del data["tracks"][1]["layers"]
    data["tracks"][1].update(rids=["q", "h", "f"], layer_ssrcs=[7, 8, 9],
                             rtx_payload_type=97, repair_ssrcs={"5": 7})
    (_, video) = SourceClaim.from_json(json.dumps(data)).tracks
    assert video.ssrcs == [0x23] and video.rids == [] and video.layer_ssrcs == []


def _set_layers(layers: object, track: int = 1) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data["tracks"][track]["layers"] = layers
    return mutate


LAYER = {"id": "q", "ssrc": 0x21}


@pytest.mark.parametrize("mutate, reason", [
    (_set_layers({"q": 1}), "layers must be a list of 2-16"),
    (_set_layers([LAYER]), "layers must be a list of 2-16"),
    (_set_layers([{"id": str(n), "ssrc": n + 1} for n in range(17)]), "2-16"),
    (_set_layers([LAYER, LAYER], track=0), "of a video track"),
    (_set_layers([LAYER, "h"]), "layer must be an object"),
    (_set_layers([LAYER, {"id": 5, "ssrc": 0x23}]), "id must be a string"),
    (_set_layers([LAYER, {"id": "h h", "ssrc": 0x23}]), "visible ASCII"),
    (_set_layers([LAYER, {"id": "h" * 65, "ssrc": 0x23}]), "1-64"),
    (_set_layers([LAYER, {"id": "h", "ssrc": 2**32}]), "32-bit SSRC"),
    (_set_layers([LAYER, {"id": "h", "ssrc": True}]), "32-bit SSRC"),
    (_set_layers([LAYER, {"id": "q", "ssrc": 0x23}]), "ids must be unique"),
    (_set_layers([LAYER, {"id": "h", "ssrc": 0x22}]), "must be among its layers"),
    (_set_layers([LAYER, {"id": "h", "ssrc": 0x10}, {"id": "f", "ssrc": 0x23}]),
     "relay SSRCs must be unique"),
])
def test_malformed_claim_layers_are_refused_with_the_reason(
    mutate: Callable[[dict[str, Any]], None], reason: str,
) -> None:
    data = json.loads(SIMULCAST_CLAIM.to_json())
    mutate(data)
    with pytest.raises(ValueError, match=reason):
        SourceClaim.from_json(json.dumps(data))


def test_a_local_republish_keeps_the_relay_ssrcs_only_with_the_same_layers() -> None:
    streams, _, _, _ = make_streams()
    stream = streams.get_or_create("s")
    origin = Origin(streams, cast(Links, None))  # no edges: no links used
    first = origin.published("s", stream.publish("x", [rid_video_params()], FakeSink()), {})
    assert len(first.ssrcs) == 3 and first.shape == [("video", ["q", "h", "f"])]
    again = origin.published("s", stream.publish("x", [rid_video_params()], FakeSink()), {})
    assert again is first  # same layers: the edges' copies carry on, seamless
    fewer = replace(rid_video_params(), rids=["q", "h"])
    other = origin.published("s", stream.publish("x", [fewer], FakeSink()), {})
    assert other is not first and len(other.ssrcs) == 2
    assert not set(other.ssrcs) & set(first.ssrcs)
