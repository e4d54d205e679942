"""Running a target: `fuzz_main(one_input, target)` under atheris (coverage guided), or
`mutate_loop` without it. See tests/fuzz/__init__.py for the commands."""

from __future__ import annotations

import importlib
import random
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
CORPUS_DIR = FUZZ_DIR / "corpus"
TARGETS = ("stun", "rtp", "rtcp", "sdp", "signaling")

OneInput = Callable[[bytes], None]


def corpus_of(target: str) -> Path:
    return CORPUS_DIR / target


def harness(target: str) -> OneInput:
    module = importlib.import_module(f"tests.fuzz.fuzz_{target}")
    one_input: OneInput = module.one_input
    return one_input


def fuzz_main(one_input: OneInput, target: str, max_len: int) -> None:
    """libFuzzer's command line (sys.argv) with this target's defaults added."""
    import atheris  # type: ignore  # only needed to fuzz, not to replay (no stubs)

    args = list(sys.argv)
    flags = [a for a in args[1:] if a.startswith("-")]
    if not any(a for a in args[1:] if not a.startswith("-")):
        args.append(str(corpus_of(target)))
    defaults = [("-timeout", "5"), ("-rss_limit_mb", "2048"), ("-max_len", str(max_len))]
    dictionary = FUZZ_DIR / f"{target}.dict"
    if dictionary.exists():
        defaults.append(("-dict", str(dictionary)))
    for flag, value in defaults:
        if not any(f.startswith(flag + "=") for f in flags):
            args.append(f"{flag}={value}")
    args[0] = _relauncher(target)
    atheris.instrument_all()
    atheris.Setup(args, one_input)
    atheris.Fuzz()


def _relauncher(target: str) -> str:
    """An executable that runs this target again: libFuzzer's -merge and -fork run argv[0]
    as a program, and `python -m` leaves a .py path there that the shell cannot run."""
    shim = Path(tempfile.mkdtemp(prefix="hubbub-fuzz-")) / f"fuzz_{target}"
    root = shlex.quote(str(FUZZ_DIR.parents[1]))
    shim.write_text(f'#!/bin/sh\nPYTHONPATH={root}${{PYTHONPATH:+:$PYTHONPATH}} exec '
                    f'{shlex.quote(sys.executable)} -m tests.fuzz.fuzz_{target} "$@"\n')
    shim.chmod(0o755)
    return str(shim)


def _mutate(data: bytes, pool: list[bytes], rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.randrange(6)
        if op == 0 and out:
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[rng.randrange(len(out))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2 and out:
            del out[rng.randrange(len(out)):]
        elif op == 3:
            i = rng.randrange(len(out) + 1)
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4 and pool:
            other = rng.choice(pool)
            i, j = rng.randrange(len(out) + 1), rng.randrange(len(other) + 1)
            out = out[:i] + other[j:]
        elif op == 5 and len(out) > 1:
            i = rng.randrange(len(out))
            j = rng.randrange(i, len(out))
            out[i:i] = out[i:j + 1]
    return bytes(out)


def mutate_loop(target: str, seconds: float, seed: int = 0) -> int:
    """Mutate the saved corpus for `seconds`; print and count inputs that escape the harness."""
    one_input = harness(target)
    pool = [p.read_bytes() for p in sorted(corpus_of(target).iterdir()) if p.is_file()]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    runs = failures = 0
    while time.monotonic() < deadline:
        data = _mutate(rng.choice(pool) if pool else b"", pool, rng)
        runs += 1
        try:
            one_input(data)
        except Exception as exc:  # a finding: show it and the input
            failures += 1
            print(f"{target}: {type(exc).__name__}: {exc} on {data!r}")
    print(f"{target}: {runs} inputs, {failures} failures")
    return failures


if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in TARGETS:
        raise SystemExit(f"usage: python -m tests.fuzz.harness {{{','.join(TARGETS)}}} [seconds]")
    raise SystemExit(1 if mutate_loop(name, float(sys.argv[2]) if len(sys.argv) > 2 else 60)
                     else 0)
