"""Send-side bandwidth estimation for viewers: every RTP packet to a viewer that negotiated
transport-cc carries a transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-
extensions-01 §2), one consecutive space over all its tracks and over the C fan-out, the
Python path and NACK resends alike; the viewer's feedback then drives its estimate.

The viewer's transport is a real SRTP association over loopback (a RelayLink between two
MediaPorts): the same SrtpPeer send path, C Target and protect as a browser's transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hubbub.config import MediaConfig
from hubbub.media import rtp
from hubbub.media.relay_link import LinkKey, RelayLink
from hubbub.media.udp import MediaPort
from hubbub.sfu import DownTrackParams, SfuConfig, Streams
from tests.sfu.fakes import (
    MID_OUT,
    VIEW_EXT,
    FakeSink,
    Recorder,
    audio_packet,
    audio_params,
    video_packet,
    video_params,
)

TWCC_OUT = 11


@pytest.fixture
async def link_pair() -> AsyncIterator[tuple[RelayLink, RelayLink]]:
    a = MediaPort(MediaConfig(host="127.0.0.1", port=0))
    b = MediaPort(MediaConfig(host="127.0.0.1", port=0))
    await a.start()
    await b.start()
    ka, kb = LinkKey(), LinkKey()
    to_b = RelayLink(a, ("127.0.0.1", b.local_addr[1]), ka.srtp_keys("a", "b", kb.public), "b")
    to_a = RelayLink(b, ("127.0.0.1", a.local_addr[1]), kb.srtp_keys("b", "a", ka.public), "a")
    yield to_b, to_a
    to_b.close()
    to_a.close()
    await a.stop()
    await b.stop()


def viewer_ext() -> dict[str, int]:
    return {**VIEW_EXT, rtp.TRANSPORT_CC: TWCC_OUT}


async def received(packets: list[bytes], count: int) -> None:
    async with asyncio.timeout(5):
        while len(packets) < count:
            await asyncio.sleep(0.01)


async def test_every_packet_to_the_viewer_carries_the_next_transport_seq(
        link_pair: tuple[RelayLink, RelayLink]) -> None:
    viewer_link, far_end = link_pair
    streams = Streams(Recorder(), SfuConfig())
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params(ssrc=1), video_params(ssrc=2)], FakeSink())
    params = [DownTrackParams("audio", "a0", 0xA1, {"opus": 109}, viewer_ext()),
              DownTrackParams("video", "v0", 0xB1, {"VP8": 120}, viewer_ext())]
    viewer = stream.add_viewer(params, viewer_link)
    assert viewer_link.send_twcc_id == TWCC_OUT
    assert viewer.estimator is None  # made once the video has simulcast layers to choose
    got: list[bytes] = []
    far_end.rtp_routes[0xA1] = got.append
    far_end.rtp_routes[0xB1] = got.append
    source.on_rtp(video_packet(1, 0, ssrc=2, key=True))
    for i in range(20):
        source.on_rtp(audio_packet(10 + i, 960 * i, ssrc=1))
        source.on_rtp(video_packet(2 + i, 3000 * i, ssrc=2))
    await received(got, 41)
    seqs = [_transport_seq(p) for p in got]
    assert sorted(seqs) == list(range(41)), seqs  # one space for audio and video
    for p in got:
        assert rtp.find_extension(p, MID_OUT) is not None  # the MID is still there
    # A NACKed packet goes out again through Python, with a new transport seq. (The far
    # end refuses it as an SRTP replay: it did get the original; a browser asks only for
    # what it lost.)
    video = viewer.main_video
    assert video is not None
    resent: list[bytes] = []
    protect = viewer_link._srtp.protect  # type: ignore[union-attr]
    viewer_link._srtp.protect = lambda data: resent.append(data) or protect(data)  # type: ignore[union-attr,func-returns-value]
    assert video.on_nack([video.last_seq], 0.0) == 1
    assert len(resent) == 1 and _transport_seq(resent[0]) == 41
    assert rtp.read_header(resent[0])[2] == video.last_seq
    sent = viewer_link.drain_sent()
    assert sorted(s[0] for s in sent) == list(range(42))
    assert viewer_link.drain_sent() == []
    # With nothing to estimate (no layers to choose), feedback discards the records unread.
    source.on_rtp(video_packet(22, 3000 * 20, ssrc=2))
    await received(got, 42)
    viewer._on_transport_feedback(b"", 0.0)
    assert viewer_link.drain_sent() == []

    for _seq, size, when in sent:
        assert size > 12 and when > 0


async def test_a_viewer_without_transport_cc_gets_no_element(
        link_pair: tuple[RelayLink, RelayLink]) -> None:
    viewer_link, far_end = link_pair
    streams = Streams(Recorder(), SfuConfig())
    stream = streams.get_or_create("s")
    source = stream.publish(None, [audio_params(ssrc=1)], FakeSink())
    viewer = stream.add_viewer([DownTrackParams("audio", "a0", 0xA1, {"opus": 109},
                                                dict(VIEW_EXT))], viewer_link)
    got: list[bytes] = []
    far_end.rtp_routes[0xA1] = got.append
    source.on_rtp(audio_packet(1, 0, ssrc=1))
    await received(got, 1)
    assert viewer.estimator is None and viewer_link.send_twcc_id == 0
    assert rtp.find_extension(got[0], TWCC_OUT) is None


def _transport_seq(packet: bytes) -> int:
    found = rtp.find_extension(packet, TWCC_OUT)
    assert found is not None and found[1] == 2
    return int.from_bytes(packet[found[0]:found[0] + 2], "big")
