from __future__ import annotations

import argparse
import io
import json
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import MediaStreamTrack

from hubbub.client import commands
from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import ToneTrack
from tests.client.fakes import FakeConnection, FakeServer, FakeSfu, Handler

MakeServer = Callable[[Handler], Awaitable[FakeServer]]


def parse(add: Callable[[argparse.ArgumentParser], None], argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)
    return parser.parse_args(argv)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_defaults() -> None:
    pub = parse(commands.add_publish_arguments, ["--stream", "s"])
    assert (pub.url, pub.tone, pub.file, pub.video, pub.codec, pub.duration) == (
        "ws://127.0.0.1:8080/ws/v2/pub", 440.0, None, False, "vp8", 0.0)
    view = parse(commands.add_view_arguments, ["--stream", "s", "--exclude", "a",
                                                "--exclude", "b", "--multiplex", "3"])
    assert (view.url, view.exclude, view.multiplex, view.pin, view.record) == (
        "ws://127.0.0.1:8080/ws/v2/sub", ["a", "b"], 3, None, None)
    with pytest.raises(SystemExit):
        parse(commands.add_publish_arguments, ["--stream", "s", "--tone", "1", "--file", "x"])


async def test_publish_prints_the_publisher_id_then_stats(
    make_server: MakeServer, sfu: FakeSfu
) -> None:
    async def accept(conn: FakeConnection, name: str, data: Any) -> dict[str, Any]:
        assert data["sourceId"] == "bot" and data["codec"] == "vp8"
        return {"sdp": await sfu.answer(data["sdp"]), "publisherId": "p1", "streamId": "a/s"}

    server = await make_server(accept)
    args = parse(commands.add_publish_arguments, [
        "--url", server.url("/ws/v2/pub"), "--stream", "s", "--source-id", "bot",
        "--tone", "500", "--video", "--duration", "1.2"])
    out = io.StringIO()
    assert await commands.publish(args, out) == 0
    first, *stats = lines(out)
    assert first == {"publisherId": "p1", "streamId": "a/s"}
    assert len(stats) == 2  # after 1 s and at the 1.2 s end
    assert 0.9 <= stats[0]["t"] < 1.2 <= stats[1]["t"] < 2
    final = stats[-1]["sent"]
    assert final["audio"]["packets"] > 30 and final["video"]["packets"] > 3


async def test_view_prints_events_and_per_mid_stats_and_records_wav(
    make_server: MakeServer, sfu: FakeSfu, tmp_path: Path
) -> None:
    async def accept(conn: FakeConnection, name: str, data: Any) -> None:
        send: dict[int, MediaStreamTrack] = {0: ToneTrack(440), 1: ToneTrack(990)}
        answer = await sfu.answer(data["sdp"], send)
        await conn.reply(0, {"sdp": answer, "subscriberId": "v1", "streamId": "a/s"})
        await conn.send_event("vad", {"mediaId": "1", "sourceId": "bob"})

    server = await make_server(accept)
    path = tmp_path / "out.wav"
    args = parse(commands.add_view_arguments, [
        "--url", server.url(), "--stream", "s", "--no-video", "--multiplex", "1",
        "--duration", "2", "--record", str(path)])
    out = io.StringIO()
    assert await commands.view(args, out) == 0
    output = lines(out)
    assert {"event": "vad", "data": {"mediaId": "1", "sourceId": "bob"}} in output
    assert {"subscriberId": "v1", "streamId": "a/s", "mids": {"0": "audio", "1": "audio"}} in output
    final = output[-1]["received"]
    assert abs(final["0"]["frequency"] - 440) < 3 and final["0"]["frames"] > 40
    assert abs(final["1"]["frequency"] - 990) < 3 and final["1"]["sourceId"] == "bob"

    with wave.open(str(path)) as recorded:
        rate = recorded.getframerate()
        channels = recorded.getnchannels()
        data = np.frombuffer(recorded.readframes(recorded.getnframes()), dtype="<i2")
    mono = data.reshape(-1, channels).mean(axis=1)
    assert len(mono) > rate  # over a second of the main audio
    assert abs(dominant_frequency(mono[-rate // 2:], rate) - 440) < 3


async def test_view_refused_exits_1(make_server: MakeServer, capsys: Any) -> None:
    async def refuse(conn: FakeConnection, name: str, data: Any) -> str:
        return "Unauthorized: Invalid token"

    server = await make_server(refuse)
    args = parse(commands.add_view_arguments, ["--url", server.url(), "--stream", "s"])
    assert await commands.view(args, io.StringIO()) == 1
    assert json.loads(capsys.readouterr().err)["error"] == "view: Unauthorized: Invalid token"


async def test_view_exits_1_when_the_server_hangs_up(
    make_server: MakeServer, sfu: FakeSfu
) -> None:
    async def accept_then_close(conn: FakeConnection, name: str, data: Any) -> None:
        answer = await sfu.answer(data["sdp"], {0: ToneTrack(440)})
        await conn.reply(0, {"sdp": answer, "subscriberId": "v1"})
        await conn.send_event("stopped", {})
        await conn.ws.close()

    server = await make_server(accept_then_close)
    args = parse(commands.add_view_arguments, [
        "--url", server.url(), "--stream", "s", "--no-video", "--duration", "5"])
    out = io.StringIO()
    assert await commands.view(args, out) == 1
    assert {"event": "stopped", "data": {}} in lines(out)

