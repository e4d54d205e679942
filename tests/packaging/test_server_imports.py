"""The server never imports the client extra (aiortc, numpy) or asyncpg: `hubbub serve` runs in
this environment (where they are installed) with an import hook that refuses them and notes
every attempt, and still forwards media. Plus the messages a server-only install gives."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hubbub.client.analysis import dominant_frequency
from hubbub.client.media import AudioRecorder
from hubbub.client.viewer import Viewer
from tests.helpers.server import RunningServer
from tests.packaging.forwarding import assert_forwards_media

pytestmark = [pytest.mark.slow]

BLOCKED = ("aiortc", "numpy", "asyncpg")

# `python -c BLOCKING_MAIN serve ...`: hubbub's CLI behind a finder that refuses BLOCKED and
# logs each refusal with the hubbub frames that asked ("cli.py:main client/patches.py:<module>").
BLOCKING_MAIN = f"""
import importlib.abc, os, sys, traceback
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED!r}:
            frames = [f"{{f.filename.rpartition('/hubbub/')[2]}}:{{f.name}}"
                      for f in traceback.extract_stack() if "/hubbub/" in f.filename]
            with open(os.environ["HUBBUB_REFUSED_LOG"], "a") as log:
                log.write(name + " " + " ".join(frames) + "\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}} (refused)", name=name)
        return None
sys.meta_path.insert(0, Refuse())
from hubbub.cli import main
raise SystemExit(main())
"""


def server_imports(refusals: str) -> list[str]:
    """The refused imports not made by the CLI's own client guard (`main` trying
    hubbub.client.commands to offer publish/view)."""
    unexpected = []
    for line in refusals.splitlines():
        frames = line.split()[1:]
        if not (frames[:1] == ["cli.py:main"] and frames[1:2] != []
                and frames[1].startswith("client/")):
            unexpected.append(line)
    return unexpected


def _without(modules: tuple[str, ...], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter where importing any of `modules` fails."""
    block = f"import sys\nfor m in {modules!r}: sys.modules[m] = None\n"
    return subprocess.run([sys.executable, "-c", block + code, *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "200"})


def refusing_server(refused: Path) -> RunningServer:
    """`hubbub serve` (RTMP on) whose process refuses BLOCKED, logging to `refused`."""
    refused.touch()
    srv = RunningServer(name="packaging-refusing-imports", rtmp_port=0,
                        env={"HUBBUB_REFUSED_LOG": str(refused)})
    assert srv.args[1:3] == ["-m", "hubbub"]
    srv.args[1:3] = ["-c", BLOCKING_MAIN]
    return srv


async def test_serve_forwards_media_without_importing_client_or_asyncpg(
        tmp_path: Path) -> None:
    refused = tmp_path / "refused.txt"
    async with refusing_server(refused) as srv:
        await assert_forwards_media(srv)
    assert "aiortc" in refused.read_text()  # the CLI's guard: the hook works
    assert server_imports(refused.read_text()) == []
    assert "Traceback" not in srv.log_text()


async def test_rtmp_aac_becomes_opus_without_numpy(tmp_path: Path) -> None:
    """ingest/aac_opus.py (PyAV) at work: an encoder's AAC 440 Hz tone reaches a viewer."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        reason = "ffmpeg not found: run scripts/test (it installs Debian's ffmpeg)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    refused = tmp_path / "refused.txt"
    async with refusing_server(refused) as srv:
        encoder = await asyncio.create_subprocess_exec(
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error",
            "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30",
            "-re", "-f", "lavfi", "-i", "sine=frequency=440",
            "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-tune",
            "zerolatency", "-g", "30", "-c:a", "aac", "-ac", "2", "-t", "8", "-threads", "1",
            "-f", "flv", srv.rtmp_url("rtmp-aac"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.sleep(1.5)  # the source is live
            async with Viewer(srv.ws_sub_url, "rtmp-aac", video=False) as viewer:
                audio = AudioRecorder(viewer.tracks_by_mid[viewer.audio_mid or ""],
                                      seconds=3).start()
                await audio.wait_for_frames(100, timeout=15)
                freq = dominant_frequency(audio.samples(1.0), audio.sample_rate)
                assert abs(freq - 440) < 5, f"heard {freq:.1f} Hz"
                await audio.stop()
        finally:
            if encoder.returncode is None:
                encoder.kill()
            await encoder.wait()
    assert server_imports(refused.read_text()) == []
    assert "Traceback" not in srv.log_text()


def test_publish_and_view_without_the_client_say_what_to_install() -> None:
    for argv in (["publish", "--url", "ws://127.0.0.1:1/ws/v2/pub", "--tone", "440"],
                 ["view", "--help"]):
        run = _without(("aiortc",), "from hubbub.cli import main; raise SystemExit(main())",
                       *argv)
        assert run.returncode == 2, run.stderr
        assert "pip install 'hubbub[client]'" in run.stderr
        assert f"hubbub {argv[0]} needs the Python client" in run.stderr
        assert "Traceback" not in run.stderr


def test_help_lists_publish_and_view_with_the_extra_to_install() -> None:
    run = _without(("aiortc",), "from hubbub.cli import main; raise SystemExit(main())",
                   "--help")
    assert run.returncode == 0, run.stderr
    assert "publish (needs: pip install 'hubbub[client]')" in run.stdout


def test_a_broken_client_install_is_not_hidden_as_a_missing_extra() -> None:
    # A missing module that is no part of hubbub[client] is a bug to show, not a hint.
    run = _without(("hubbub.client.director",),
                   "from hubbub.cli import main; raise SystemExit(main())", "publish")
    assert run.returncode != 0
    assert "ModuleNotFoundError" in run.stderr


def test_postgresql_without_asyncpg_names_the_extra(tmp_path: Path) -> None:
    run = _without(("asyncpg",), "from hubbub.cli import main; raise SystemExit(main())",
                   "serve", "--data-dir", str(tmp_path), "--database-url",
                   "postgresql+asyncpg://hubbub:pw@127.0.0.1:1/hubbub")
    assert run.returncode == 2, run.stderr
    assert "pip install 'hubbub[postgres]'" in run.stderr
    assert "Traceback" not in run.stderr
