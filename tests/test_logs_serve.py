"""A real `hubbub serve` set up by a config file, an env var and flags: its log lines are JSON
(every one) or text, and a publish/view session's lines carry stream, source/viewer and peer."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from hubbub.client.media import ToneTrack
from hubbub.client.publisher import Publisher
from hubbub.client.viewer import Viewer
from tests.helpers.server import ARTIFACTS_DIR, HOST, free_tcp_port, free_udp_port, stop_group

pytestmark = pytest.mark.slow


def start(tmp_path: Path, log_format: str) -> tuple[subprocess.Popen[bytes], int, int, Path]:
    """`hubbub serve` whose HTTP port and log format come from the file only, its media port
    from the environment: /healthz answering on that port proves the file was read."""
    http_port, media_port = free_tcp_port(), free_udp_port()
    config = tmp_path / "hubbub.toml"
    config.write_text(f'host = "{HOST}"\nhttp_port = {http_port}\nlog_format = "{log_format}"\n'
                      "allow_any_stream = true\nno_spaces = true\n"
                      "[sfu.multiplexer]\nhold = 1.5\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1", HUBBUB_MEDIA_PORT=str(media_port),
               HUBBUB_LOG_FORMAT="text")  # the flag below beats it
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    stderr = ARTIFACTS_DIR / f"logs-{log_format}-{http_port}.stderr"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubbub", "serve", "--config", str(config), "--log-format",
         log_format, "--media-tcp-port", "off", "--rtmp-port", "off",
         "--data-dir", str(tmp_path / "data")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr.open("wb"),
        env=env, start_new_session=True)
    deadline = time.monotonic() + 60  # a loaded CI machine imports slowly
    while True:
        assert proc.poll() is None, stderr.read_text()
        try:
            with urllib.request.urlopen(f"http://{HOST}:{http_port}/healthz", timeout=0.5):
                return proc, http_port, media_port, stderr
        except OSError:
            assert time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.05)


async def publish_and_view(http_port: int, stream: str) -> None:
    base = f"ws://{HOST}:{http_port}/ws/v2"
    async with Publisher(f"{base}/pub", stream, source_id="cam",
                         tracks=[ToneTrack(440)]) as pub:
        await pub.wait_connected()
        async with Viewer(f"{base}/sub", stream, video=False) as viewer:
            await viewer.wait_connected()


async def test_json_lines_of_a_real_server_parse_and_carry_the_session(
        tmp_path: Path) -> None:
    proc, port, _, stderr = start(tmp_path, "json")
    try:
        await publish_and_view(port, "logs-json")
    finally:
        stop_group(proc)
    lines = [line for line in stderr.read_text().splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    publish = next(r for r in records if r["message"].startswith("publish "))
    assert (publish["stream"], publish["source"]) == ("logs-json", "cam")
    assert publish["peer"].startswith(f"{HOST}:")
    view = next(r for r in records if r["message"].startswith("view "))
    assert view["stream"] == "logs-json" and view["viewer"] and view["peer"] != publish["peer"]


async def test_text_lines_of_a_real_server_show_the_session(tmp_path: Path) -> None:
    proc, port, _, stderr = start(tmp_path, "text")
    try:
        await publish_and_view(port, "logs-text")
    finally:
        stop_group(proc)
    text = stderr.read_text()
    publish = next(line for line in text.splitlines() if ": publish " in line)
    assert publish.endswith(f" stream=logs-text source=cam peer={HOST}:" +
                            publish.rpartition(":")[2])
    view = next(line for line in text.splitlines() if ": view " in line)
    assert " stream=logs-text viewer=" in view and f" peer={HOST}:" in view


async def test_floods_of_bad_input_write_a_few_lines_not_one_each(tmp_path: Path) -> None:
    proc, port, media_port, stderr = start(tmp_path, "json")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as junk:
            for i in range(3000):  # RTP, STUN and DTLS-looking junk from an unchecked address
                first = (0x80, 0x00, 0x16)[i % 3]
                junk.sendto(bytes([first]) + os.urandom(60), (HOST, media_port))
        async with connect(f"ws://{HOST}:{port}/ws/v2/pub") as ws:
            for i in range(30):  # under the command rate, each one refused on its own
                await ws.send(f"{{not json {i}")
                assert json.loads(await ws.recv())["type"] == "error"
        await asyncio.sleep(0.5)  # the port's drops reach the log
    finally:
        stop_group(proc)
    records = [json.loads(line) for line in stderr.read_text().splitlines() if line.strip()]
    refused = [r for r in records if r["message"].startswith("command refused")]
    assert 1 <= len(refused) <= 5  # FloodFilter: a cause's first lines, then counted
    assert all(r["peer"].startswith(f"{HOST}:") for r in refused)
    drops = [r for r in records if r["logger"] == "hubbub.media.udp" and "drop" in r["message"]]
    assert 1 <= len(drops) <= 6, drops  # first drop of each cause, then one summary
    assert len(records) < 40
