"""What every packaging test asks of a running server: a 440 Hz tone and VP8 video published
with the Python SDK (the test's own environment has aiortc) reach a viewer."""

from __future__ import annotations

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, PatternTrack, ToneTrack, VideoCounter
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from tests.helpers.server import RunningServer


async def assert_forwards_media(srv: RunningServer, stream: str = "packaging") -> None:
    """The viewer hears 440 Hz (1 s of decoded audio) and decodes 20 video frames."""
    await assert_forwards_media_at(srv.ws_pub_url, srv.ws_sub_url, stream)


async def assert_forwards_media_at(pub_url: str, sub_url: str, stream: str) -> None:
    """The same through signaling URLs of one's choice (e.g. a TLS proxy's wss://)."""
    async with Publisher(pub_url, stream, tracks=[ToneTrack(440), PatternTrack()],
                         codec="vp8") as pub:
        await pub.wait_connected()
        async with Viewer(sub_url, stream) as viewer:
            await viewer.wait_connected()
            assert viewer.audio_mid is not None and viewer.video_mid is not None
            audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid], seconds=3).start()
            video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid]).start()
            await audio.wait_for_frames(100, timeout=15)  # 2 s at 50 frames/s
            freq = dominant_frequency(audio.samples(1.0), audio.sample_rate)
            assert abs(freq - 440) < 5, f"heard {freq:.1f} Hz, expected 440"
            await video.wait_for_frames(20, timeout=15)
            assert video.last_size == (320, 240)
            await audio.stop()
            await video.stop()
