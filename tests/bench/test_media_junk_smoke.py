"""Smoke run of bench/media_junk.py: the harness works (server, canary bots, attacker process,
counters), not a speed test: two kinds, one low rate, short steps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_media_junk_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "media_junk.json"
    subprocess.run(
        [sys.executable, "bench/media_junk.py", "--kinds", "bad-mi,rtp", "--rates", "2000",
         "--many", "300", "--step", "1.5", "--pause", "0", "--quiet", "--output", str(out)],
        cwd=REPO_ROOT, check=True, timeout=300, stdout=subprocess.DEVNULL)
    result = json.loads(out.read_text())
    assert result["command"][0].endswith("media_junk.py") and result["params"]["step"] == 1.5
    assert set(result["summary"]) == {"bad-mi/one", "bad-mi/many", "rtp/one", "rtp/many"}
    for run in result["results"]:
        (step,) = run["steps"]
        assert step["sent"] > 2000, step
        assert step["canary_received"] > 100, step  # the canary room carried media
        counters = run["server_counters"]
        if run["kind"] == "bad-mi":
            dropped = counters.get("stun_bad_integrity", 0) + counters.get("stun_over_budget", 0)
        else:
            dropped = counters.get("dropped_unknown_peer", 0)
        assert dropped >= step["sent"] * 0.9, (run["kind"], counters, step)
