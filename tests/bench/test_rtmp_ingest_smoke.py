"""Smoke run of bench/rtmp_ingest.py: the harness works (pre-encode, ffmpeg pushes, the
signaling-only liveness probe, the CPU window, the viewer check), not a speed test: one stream,
short windows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")]


def test_rtmp_ingest_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "rtmp_ingest.json"
    subprocess.run(
        [sys.executable, "bench/rtmp_ingest.py", "--parts", "scale", "--streams", "1",
         "--file-seconds", "4", "--window", "2", "--settle", "2", "--check", "1", "--quiet",
         "--output", str(out)],
        cwd=REPO_ROOT, check=True, timeout=120, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    assert result["command"][0].endswith("rtmp_ingest.py") and result["params"]["window"] == 2
    (point,) = result["scale"]["points"]
    assert point["live_before"]["live"] == 1 and point["live_after"]["live"] == 1, point
    assert point["ffmpeg_alive"] == 1 and not point["ffmpeg_errors"], point
    assert point["server_cpu_pct"] > 0 and point["viewer_audio_fps"] > 0, point
    # Whether a loaded CI machine kept 45 audio / 25 video fps over the 1-s check is the
    # bench's finding, not this test's (it failed once so in CI): the summary must agree with it.
    assert result["summary"].get("max_n_kept_up") == (1 if point["kept_up"] else None), point
