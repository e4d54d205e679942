"""RTMP as a stream's main source, end to end: Debian's ffmpeg pushes H.264 + AAC to a real
`hubbub serve`, and an aiortc viewer hears the tone (AAC → Opus) and decodes the video
(RFC 6184 repacketization), with the token rules of a WebRTC publish."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from tests.helpers import tokens
from tests.helpers.canary import Canary
from tests.helpers.server import RunningServer, ServerStartError
from tests.helpers.tokens import admin_token
from tests.helpers.tones import which_tone

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder, ToneTrack, VideoCounter
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg"),
]

ADMIN = "admin-secret-rtmp-ingest-0123456789"
CODECS = ["-c:v", "libx264", "-profile:v", "baseline", "-tune", "zerolatency", "-bf", "0",
          "-g", "30", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2"]


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    args = ["--api-secret", ADMIN, "--open-viewing", "rtmp-*"]
    with RunningServer(name="rtmp-ingest", allow_any_stream=False, rtmp_port=0,
                       extra_args=args) as s:
        yield s


@pytest.fixture(scope="module")
def publish_token(srv: RunningServer) -> str:
    return str(admin_token(srv.http_url, ADMIN, pattern="rtmp-*")["token"])


def view_jwt(srv: RunningServer, stream: str) -> str:
    return tokens.view_jwt(srv.http_url, stream)


def publish_jwt(srv: RunningServer, token: str, stream: str) -> str:
    return tokens.publish_jwt(srv.http_url, token, stream)


async def ffmpeg(url: str, seconds: float,
                 codecs: list[str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440",
        *(CODECS if codecs is None else codecs), "-t", str(seconds), "-threads", "1",
        "-f", "flv", url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


@asynccontextmanager
async def pushing(url: str, seconds: float = 20,
                  codecs: list[str] | None = None) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await ffmpeg(url, seconds, codecs)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


def main_source(data: dict[str, Any]) -> bool:
    return data.get("sourceId") is None


async def refused(url: str, codecs: list[str] | None = None) -> str:
    """ffmpeg pushes to `url` and is refused (exits non-zero); what it printed."""
    async with pushing(url, 3, codecs) as proc:
        assert proc.stderr is not None
        stderr = (await asyncio.wait_for(proc.stderr.read(), 15)).decode(errors="replace")
        code = await proc.wait()
    assert code != 0, stderr
    return stderr


def stale_token(srv: RunningServer, action: str) -> str:
    """A publish token for `rtmp-*` that the admin API has just expired or revoked."""
    headers = {"Authorization": f"Bearer {ADMIN}"}
    created = admin_token(srv.http_url, ADMIN, pattern="rtmp-*")
    path = f"/api/publish_token/{created['id']}"
    if action == "expire":
        reply = httpx.put(srv.http_url + path, json={"expiresOn": "2000-01-01T00:00:00Z"},
                          headers=headers, timeout=10)
    else:
        reply = httpx.post(srv.http_url + path + "/revoke", headers=headers, timeout=10)
    assert reply.status_code == 200, reply.text
    return str(created["token"])


# What WebRTC players cannot play: the encoder settings and the reason the encoder is told.
UNPLAYABLE = [
    (["-c:v", "libx264", "-profile:v", "high", "-bf", "2", "-preset", "ultrafast",
      "-c:a", "aac"], "B-frames are not supported"),
    (["-c:v", "flv1", "-c:a", "aac"], "video is not supported (use H.264)"),
    (["-c:v", "libx264", "-bf", "0", "-preset", "ultrafast", "-c:a", "libmp3lame"],
     "audio is not supported (use AAC)"),
]


async def test_ffmpeg_is_the_main_source(srv: RunningServer, publish_token: str) -> None:
    stream = "rtmp-main"
    async with Viewer(srv.ws_sub_url, stream, token=view_jwt(srv, stream)) as viewer:
        await viewer.wait_connected()
        audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], 3).start()
        video = VideoCounter(viewer.tracks_by_mid[viewer.video_mid or ""]).start()
        async with pushing(srv.rtmp_url(stream, f"token={publish_token}")) as proc:
            await viewer.wait_for_event("active", main_source, timeout=10)
            await video.wait_for_frames(30, timeout=10)
            await audio.wait_for_frames(100, timeout=10)
            freq = dominant_frequency(audio.samples(1.5), audio.sample_rate)
            assert abs(freq - 440) < 5, f"viewer hears {freq:.1f} Hz"
            assert video.last_size == (320, 240)
            print(f"rtmp → viewer: {freq:.1f} Hz, {video.frames} video frames at "
                  f"{video.last_size}")
            since = len(viewer.events)
            proc.kill()  # the encoder dies: the main source goes inactive
            await viewer.wait_for_event("inactive", main_source, since=since, timeout=10)
        await audio.stop()
        await video.stop()


async def test_bad_token_is_refused(srv: RunningServer) -> None:
    logged = len(srv.log_text().splitlines())
    stderr = await refused(srv.rtmp_url("rtmp-bad", "token=not-a-token"))
    assert "Invalid token" in stderr, stderr
    lines = [line for line in srv.log_text().splitlines()[logged:]
             if "refused" in line and "Invalid token" in line]
    assert len(lines) == 1, lines


async def test_expired_and_revoked_tokens_are_refused(srv: RunningServer) -> None:
    for action, reason in (("expire", "token expired"), ("revoke", "token revoked")):
        stderr = await refused(srv.rtmp_url("rtmp-old", f"token={stale_token(srv, action)}"))
        assert f"Server error: hubbub: Unauthorized: {reason}" in stderr, stderr


async def test_stream_outside_the_token_is_refused(srv: RunningServer,
                                                   publish_token: str) -> None:
    stderr = await refused(srv.rtmp_url("elsewhere", f"token={publish_token}"))
    assert "does not cover stream 'elsewhere'" in stderr, stderr


@pytest.mark.parametrize(("codecs", "reason"), UNPLAYABLE, ids=["b-frames", "flv1", "mp3"])
async def test_what_players_cannot_play_is_refused(srv: RunningServer, publish_token: str,
                                                   codecs: list[str], reason: str) -> None:
    stderr = await refused(srv.rtmp_url("rtmp-refused", f"token={publish_token}"), codecs)
    assert "Server error: hubbub: " in stderr and reason in stderr, stderr


@asynccontextmanager
async def webrtc_canary(srv: RunningServer, token: str) -> AsyncIterator[Canary]:
    """tests.helpers.canary's canary_of for this token-checking server: a WebRTC publisher
    sending 440 Hz to `rtmp-canary` (open for viewing) and a viewer decoding it, 50 frames in."""
    stream = "rtmp-canary"
    async with Publisher(srv.ws_pub_url, stream, token=publish_jwt(srv, token, stream),
                         tracks=[ToneTrack(440)]):
        async with Viewer(srv.ws_sub_url, stream, token=view_jwt(srv, stream),
                          video=False) as viewer:
            bird = Canary(viewer)
            await bird.rec.wait_for_frames(50, timeout=10)
            yield bird
            await bird.rec.stop()


async def test_refusals_disturb_nothing(srv: RunningServer, publish_token: str) -> None:
    """Issue 16: "each gets a clear error, and nothing else is disturbed". While every refusal
    above happens again, one after the other, a WebRTC canary and a live RTMP stream on the
    same server keep decoding ≥ 45 of their 50 audio frames a second and stay at 440 Hz; the
    token refusals aim at the live stream's own name, and none of them takes it over."""
    live = "rtmp-live"
    attempts = [
        (srv.rtmp_url(live, "token=not-a-token"), None, "Invalid token"),
        (srv.rtmp_url(live, f"token={stale_token(srv, 'expire')}"), None, "token expired"),
        (srv.rtmp_url(live, f"token={stale_token(srv, 'revoke')}"), None, "token revoked"),
        (srv.rtmp_url("elsewhere", f"token={publish_token}"), None,
         "does not cover stream 'elsewhere'"),
        *((srv.rtmp_url("rtmp-refused", f"token={publish_token}"), codecs, reason)
          for codecs, reason in UNPLAYABLE),
    ]

    async def every_refusal() -> None:
        for url, codecs, reason in attempts:
            stderr = await refused(url, codecs)
            assert "Server error: hubbub: " in stderr and reason in stderr, stderr

    async with pushing(srv.rtmp_url(live, f"token={publish_token}"), 60) as encoder, \
            Viewer(srv.ws_sub_url, live, token=view_jwt(srv, live), video=False) as viewer, \
            webrtc_canary(srv, publish_token) as webrtc:
        await viewer.wait_for_event("active", main_source, timeout=10)
        rtmp = Canary(viewer)
        await rtmp.rec.wait_for_frames(50, timeout=10)
        since = len(viewer.events)
        attack = asyncio.ensure_future(every_refusal())
        fps = dict(zip(("webrtc", "rtmp"), await asyncio.gather(
            webrtc.fps_during(attack), rtmp.fps_during(attack)), strict=True))
        heard = {name: dominant_frequency(bird.rec.samples(1.0), bird.rec.sample_rate)
                 for name, bird in (("webrtc", webrtc), ("rtmp", rtmp))}
        print(f"during {len(attempts)} refusals: " + ", ".join(
            f"{name} {fps[name]:.1f} frames/s at {heard[name]:.1f} Hz" for name in fps))
        for name in fps:
            assert fps[name] >= 45, f"the {name} stream decoded {fps[name]:.1f} frames/s"
            assert abs(heard[name] - 440) < 5, f"the {name} stream is at {heard[name]:.1f} Hz"
        assert encoder.returncode is None, "the live encoder was cut off"
        assert not [(n, d) for n, d in viewer.events[since:]
                    if n in ("active", "inactive") and main_source(d)], viewer.events[since:]
        await rtmp.rec.stop()


async def test_a_second_ffmpeg_replaces_the_first(srv: RunningServer,
                                                  publish_token: str) -> None:
    stream = "rtmp-replace"
    url = srv.rtmp_url(stream, f"token={publish_token}")
    async with Viewer(srv.ws_sub_url, stream, token=view_jwt(srv, stream),
                      video=False) as viewer:
        await viewer.wait_connected()
        audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""], 3).start()
        async with pushing(url) as first:
            await viewer.wait_for_event("active", main_source, timeout=10)
            await audio.wait_for_frames(50, timeout=10)
            since = len(viewer.events)
            async with pushing(url) as second:
                assert first.stderr is not None
                stderr = (await asyncio.wait_for(first.stderr.read(), 15)).decode()
                assert await first.wait() != 0
                assert "replaced by a new publisher" in stderr, stderr
                before = audio.frames
                await audio.wait_for_frames(before + 75, timeout=10)
                freq = dominant_frequency(audio.samples(1.0), audio.sample_rate)
                assert abs(freq - 440) < 5, f"viewer hears {freq:.1f} Hz after the replacement"
                assert second.returncode is None
                # seamless: the viewer saw no inactive/active for the main source
                assert not [n for n, d in viewer.events[since:]
                            if n in ("active", "inactive") and main_source(d)]
        await audio.stop()


def test_a_busy_rtmp_port_is_a_startup_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = RunningServer(name="rtmp-busy", rtmp_port=busy.getsockname()[1],
                               startup_timeout=10)
        with pytest.raises(ServerStartError, match="cannot listen for RTMP on 127.0.0.1"):
            server.start()


async def test_rtmp_main_source_with_webrtc_speakers(srv: RunningServer) -> None:
    """The seed's case: RTMP is the main source, WebRTC publishers with sourceIds talk in the
    same stream; a viewer hears the RTMP tone on its main track and the speakers in its
    multiplexed slots, as the `vad` events say."""
    stream = "rtmp-mixed"
    token = str(admin_token(srv.http_url, ADMIN, pattern="rtmp-*", multisource=True)["token"])
    tones = {"main": 440.0, "s1": 500.0, "s2": 700.0}
    async with pushing(srv.rtmp_url(stream, f"token={token}")):
        jwt = publish_jwt(srv, token, stream)
        speakers = [Publisher(srv.ws_pub_url, stream, source_id=s, token=jwt,
                              tracks=[ToneTrack(tones[s])]) for s in ("s1", "s2")]
        for speaker in speakers:
            await speaker.connect()
            await speaker.wait_connected()
        try:
            async with Viewer(srv.ws_sub_url, stream, token=view_jwt(srv, stream), video=False,
                              multiplexed_audio_tracks=2) as viewer:
                await viewer.wait_connected()
                await viewer.wait_for_event("active", main_source, timeout=10)
                mids = [viewer.audio_mid or "", *viewer.multiplexed_mids]
                recs = {mid: AudioRecorder(viewer.tracks_by_mid[mid], 3).start() for mid in mids}
                await asyncio.sleep(2.0)
                heard = {mid: which_tone(rec, tones) for mid, rec in recs.items()}
                assert heard[viewer.audio_mid or ""] == "main", heard
                assert sorted(filter(None, viewer.slots.values())) == ["s1", "s2"], viewer.slots
                for mid in viewer.multiplexed_mids:
                    assert heard[mid] == viewer.slots[mid], (heard, viewer.slots)
                for rec in recs.values():
                    await rec.stop()
        finally:
            for speaker in speakers:
                await speaker.close()


async def test_rtmp_speaker_takes_a_multiplexed_slot(srv: RunningServer) -> None:
    """An RTMP source under a sourceId is a speaker like any other: its audio carries the
    RFC 6464 level, so a viewer whose main source is a WebRTC publisher gets it in a slot."""
    stream = "rtmp-speaker"
    token = str(admin_token(srv.http_url, ADMIN, pattern="rtmp-*", multisource=True)["token"])
    tones = {"host": 500.0, "cam": 440.0}
    host = Publisher(srv.ws_pub_url, stream, token=publish_jwt(srv, token, stream),
                     tracks=[ToneTrack(tones["host"])])
    await host.connect()
    await host.wait_connected()
    try:
        async with pushing(srv.rtmp_url(stream, f"token={token}&sourceId=cam")):
            async with Viewer(srv.ws_sub_url, stream, token=view_jwt(srv, stream), video=False,
                              multiplexed_audio_tracks=1) as viewer:
                await viewer.wait_connected()
                await viewer.wait_for_event("vad", lambda d: d.get("sourceId") == "cam",
                                            timeout=10)
                mids = [viewer.audio_mid or "", *viewer.multiplexed_mids]
                recs = {mid: AudioRecorder(viewer.tracks_by_mid[mid], 3).start() for mid in mids}
                await asyncio.sleep(1.5)
                heard = {mid: which_tone(rec, tones) for mid, rec in recs.items()}
                assert heard == {viewer.audio_mid: "host", viewer.multiplexed_mids[0]: "cam"}, \
                    (heard, viewer.slots)
                for rec in recs.values():
                    await rec.stop()
    finally:
        await host.close()
