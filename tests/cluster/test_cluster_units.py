"""Cluster control code in process: registry records, placement, viewer counts, link keys."""

from __future__ import annotations

import json

import pytest

from hubbub.cluster import keys, messages
from hubbub.cluster.counts import ViewerCounts
from hubbub.cluster.placement import choose
from hubbub.cluster.records import DRAINING, NodeRecord, SourceClaim
from hubbub.media.relay_link import LinkKey
from hubbub.sfu.types import TrackParams


def node(node_id: str, load: int = 0, state: str = "up", capacity: int = 100) -> NodeRecord:
    return NodeRecord(id=node_id, url=f"ws://{node_id}:8080", media=("127.0.0.1", 10000),
                      link_key=bytes(32), jwk={"kty": "EC"}, state=state, load=load,
                      capacity=capacity)


CLAIM = SourceClaim(
    stream="room", source_id="alice", node="n1", epoch=7,
    tracks=[TrackParams("audio", "0", "opus", 111, 48000, "useinbandfec=1", [0x1234],
                        {"urn:ietf:params:rtp-hdrext:ssrc-audio-level": 1}, [])],
)


def test_records_round_trip() -> None:
    assert NodeRecord.from_json(node("a", 3).to_json()) == node("a", 3)
    assert SourceClaim.from_json(CLAIM.to_json()) == CLAIM
    main = SourceClaim("room", None, "n1", 1, CLAIM.tracks)
    assert SourceClaim.from_json(main.to_json()).source_id is None


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d.update(epoch="7"), "epoch must be an integer"),
    (lambda d: d.update(tracks=[]), "tracks must be a list of 1-16"),
    (lambda d: d["tracks"][0].update(ssrcs=[0]), "32-bit SSRCs"),
    (lambda d: d["tracks"][0].update(kind="data"), "track kind"),
    (lambda d: d["tracks"][0].update(payload_type=300), "payload_type"),
    (lambda d: d["tracks"][0].update(ext_ids={"x": 300}), "ext_ids"),
    (lambda d: d.update(source_id=5), "source_id"),
])
def test_malformed_claims_are_refused_with_the_reason(mutate: object, reason: str) -> None:
    data = json.loads(CLAIM.to_json())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=reason):
        SourceClaim.from_json(json.dumps(data))


def test_malformed_node_records_and_messages_are_refused() -> None:
    good = json.loads(node("a").to_json())
    for key, value in [("media", ["h"]), ("link_key", "!!"), ("state", "gone"), ("load", None)]:
        with pytest.raises(ValueError):
            NodeRecord.from_json(json.dumps({**good, key: value}))
    on_stream, on_node = keys.stream_channel("room"), keys.node_channel("n1")
    for channel, text in [(on_stream, ""), (on_stream, "[]"), (on_stream, "{}"),
                          (on_stream, '{"t": "count", "node": "a", "n": "3"}'),
                          (on_stream, messages.wants("e", ["room"])),  # wrong channel
                          (on_node, '{"t": "wants", "edge": "e", "streams": [1]}'),
                          (on_stream, messages.claim(CLAIM.to_json()).replace("room", "x"))]:
        with pytest.raises(ValueError):
            messages.decode(channel, text)


def test_messages_round_trip() -> None:
    on_stream, on_node = keys.stream_channel("room"), keys.node_channel("n1")
    assert messages.decode(on_stream, messages.claim(CLAIM.to_json())) == messages.Claimed(CLAIM)
    assert messages.decode(on_stream, messages.release(CLAIM)) == messages.Released(
        "room", "alice", "n1", 7)
    assert messages.decode(on_stream, messages.count("n2", 5)) == messages.Counted(
        "room", "n2", 5)
    assert messages.decode(on_node, messages.wants("e", ["a", "b"])) == messages.Wants(
        "e", frozenset({"a", "b"}))
    assert messages.decode(on_node, messages.stop("room", "alice", "why")) == messages.Stop(
        "room", "alice", "why")


def test_placement_least_loaded_then_carriers_then_self() -> None:
    nodes = [node("a", 10), node("b", 2), node("c", 3)]
    loads = {n.id: n.load for n in nodes}
    assert choose(nodes, loads, set(), 0.0, "a").id == "b"
    # c carries the stream and is within the slack of the least loaded: no new relay needed.
    assert choose(nodes, loads, {"c"}, 0.05, "a").id == "c"
    # ... but not beyond it.
    assert choose(nodes, loads, {"a"}, 0.05, "a").id == "b"
    # Draining nodes get nobody; equal loads prefer the asking node.
    assert choose([node("a", 0), node("b", 0, DRAINING)], {}, set(), 0.0, "x").id == "a"
    assert choose([node("a", 1), node("b", 1)], {}, set(), 0.0, "b").id == "b"
    assert choose([node("a", 0, DRAINING)], {}, set(), 0.0, "a") is None


def test_viewer_counts_sum_live_nodes_and_forget_dead_ones() -> None:
    reported: list[tuple[str, int]] = []
    counts = ViewerCounts("me", lambda s, n: reported.append((s, n)))
    counts.watch("s", {"me": 9, "b": 2, "dead": 5}, live={"me", "b"})
    assert reported[-1] == ("s", 2)  # our own entry comes from us, the dead one is ignored
    counts.set_local("s", 3)
    counts.on_message("s", "c", 4)
    assert reported[-1] == ("s", 9)
    counts.on_message("other", "c", 4)  # not watched: ignored
    counts.node_gone("b")
    assert reported[-1] == ("s", 7)
    assert counts.take_dirty() == {"s": 3} and counts.take_dirty() == {}


def test_link_keys_agree_per_direction_and_differ_between_pairs() -> None:
    a, b, c = LinkKey(), LinkKey(), LinkKey()
    ab = a.srtp_keys("a", "b", b.public)
    ba = b.srtp_keys("b", "a", a.public)
    assert ab.tx_key == ba.rx_key and ab.rx_key == ba.tx_key and ab.tx_key != ab.rx_key
    assert len(ab.tx_key) == 28
    assert a.srtp_keys("a", "c", c.public).tx_key != ab.tx_key
    with pytest.raises(ValueError):
        a.srtp_keys("a", "b", b"short")
