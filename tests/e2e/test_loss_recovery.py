"""Loss on both legs: NACKs are answered from the viewer's cache and sent up to the publisher.

The node runs in-process so the test can put a seeded lossy shim on its UDP port: 10% of the
RTP the server sends to viewers is dropped, and 10% of the RTP arriving from the publisher.
aiortc peers NACK (viewer) and answer NACKs from their history (publisher), as browsers do.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import uvicorn
from tests.helpers.server import free_tcp_port, free_udp_port

from hubbub.client.media import PatternTrack, VideoCounter
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from hubbub.config import Config
from hubbub.control.app import create_app
from hubbub.control.node import Node

LOSS = 0.10
SECONDS = 6.0
FPS = 15


@pytest.fixture
async def lossy_node() -> AsyncIterator[tuple[Node, int, dict[str, int]]]:
    config = Config()
    config.media.host = "127.0.0.1"
    config.media.port = free_udp_port()
    config.control.allow_any_stream = True
    node = Node(config)
    http_port = free_tcp_port()
    server = uvicorn.Server(uvicorn.Config(
        create_app(node), host="127.0.0.1", port=http_port, log_level="warning", lifespan="on",
    ))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    rng = random.Random(1234)
    dropped = {"down": 0, "up": 0}
    port = node.port
    send, receive = port.sendto, port.datagram_received

    def lossy_send(data: bytes, addr: tuple[str, int]) -> None:
        # RTP only (not RTCP: PT 192-223 sits in the second byte), server -> viewer.
        if 127 < data[0] < 192 and not 191 < data[1] < 224 and rng.random() < LOSS:
            dropped["down"] += 1
            return
        send(data, addr)

    def lossy_receive(data: bytes, addr: tuple[str, int]) -> None:
        if 127 < data[0] < 192 and not 191 < data[1] < 224 and rng.random() < LOSS:
            dropped["up"] += 1
            return
        receive(data, addr)

    port.sendto = lossy_send  # type: ignore[method-assign]
    port.datagram_received = lossy_receive  # type: ignore[method-assign]
    yield node, http_port, dropped
    server.should_exit = True
    await task


async def test_video_survives_ten_percent_loss_each_way(
    lossy_node: tuple[Node, int, dict[str, int]],
) -> None:
    node, http_port, dropped = lossy_node
    base = f"ws://127.0.0.1:{http_port}/ws/v2"
    async with Publisher(f"{base}/pub", "lossy", tracks=[PatternTrack(fps=FPS)]) as pub:
        await pub.wait_connected()
        async with Viewer(f"{base}/sub", "lossy", audio=False) as viewer:
            await viewer.wait_connected()
            video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid or ""]).start()
            await video.wait_for_frames(5, timeout=15)
            start = video.frames
            await asyncio.sleep(SECONDS)
            decoded = video.frames - start
            await video.stop()
    stream_stats = node.port.stats
    assert dropped["down"] > 20 and dropped["up"] > 20, dropped
    # Without recovery a tenth of the packets (and every frame depending on them) is gone;
    # with NACKs answered both ways, nearly every frame decodes.
    assert decoded >= 0.8 * FPS * SECONDS, (decoded, dropped, stream_stats)


async def test_nack_counters_show_both_legs_recovering(
    lossy_node: tuple[Node, int, dict[str, int]],
) -> None:
    node, http_port, dropped = lossy_node
    base = f"ws://127.0.0.1:{http_port}/ws/v2"
    async with Publisher(f"{base}/pub", "lossy2", tracks=[PatternTrack(fps=FPS)]) as pub:
        await pub.wait_connected()
        async with Viewer(f"{base}/sub", "lossy2", audio=False) as viewer:
            await viewer.wait_connected()
            video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid or ""]).start()
            await video.wait_for_frames(30, timeout=15)
            stream = node.streams.get("lossy2")
            assert stream is not None
            source = stream.sources[None]
            track = source.tracks[0]
            assert track.nacks is not None
            assert track.nacks.requested > 0 and track.nacks.recovered > 0
            # aiortc answers with RTX (RFC 4588), negotiated since the answer offers it back:
            # the recovered packets came unwrapped from the repair stream.
            assert source.packets_repaired > 0
            down = stream.viewers[0].main_video
            assert down is not None
            assert down.nacks_received > 0 and down.packets_resent > 0
            await video.stop()
