"""Replays every saved fuzz input (tests/fuzz/corpus/<target>/*) through its target's harness,
plain Python, no atheris: a parser that raises anything but its documented errors on an input
once found interesting fails here. See tests/fuzz/__init__.py to run the fuzzers longer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fuzz.harness import TARGETS, corpus_of, harness

# Reproducers of bugs not fixed yet: (target, file name) -> what goes wrong. Replayed as
# strict xfails: fixing the bug makes the test fail until its entry is removed here.
KNOWN_CRASHES: dict[tuple[str, str], str] = {}

BUDGET = 10.0  # seconds for one target's whole corpus (CI replays all five in well under 20)


def corpus_files(target: str) -> list[Path]:
    return sorted(p for p in corpus_of(target).iterdir() if p.is_file())


def test_every_target_has_a_corpus() -> None:
    for target in TARGETS:
        files = corpus_files(target)
        assert any(p.name.startswith("seed-") for p in files), target
        assert len(files) <= 500, f"{target}: minimize the corpus (tests/fuzz/__init__.py)"
        assert all(p.stat().st_size <= 64 * 1024 for p in files), target


@pytest.mark.parametrize("target", TARGETS)
def test_corpus_replays_cleanly(target: str) -> None:
    one_input = harness(target)
    failures = []
    start = time.monotonic()
    for path in corpus_files(target):
        if (target, path.name) in KNOWN_CRASHES:
            continue
        try:
            one_input(path.read_bytes())
        except Exception as exc:
            failures.append(f"{path.name}: {type(exc).__name__}: {str(exc)[:200]}")
    took = time.monotonic() - start
    assert not failures, f"{target}: {len(failures)} inputs escape the harness:\n" + "\n".join(
        failures[:20])
    assert took < BUDGET, f"{target}: corpus took {took:.1f} s"


@pytest.mark.parametrize(
    ("target", "name"),
    [pytest.param(t, n, marks=pytest.mark.xfail(reason=why, strict=True))
     for (t, n), why in KNOWN_CRASHES.items()] or [pytest.param("", "", marks=pytest.mark.skip(
         reason="no known crashes"))],
)
def test_known_crash_still_reproduces(target: str, name: str) -> None:
    harness(target)((corpus_of(target) / name).read_bytes())
