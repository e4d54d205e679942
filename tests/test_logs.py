"""Bounded, escaped and de-flooded log output (hubbub.logs)."""

from __future__ import annotations

import io
import logging

from hubbub.logs import MAX_MESSAGE, BoundedFormatter, FloodFilter, clip


def test_clip_escapes_and_truncates() -> None:
    assert clip("view") == "view"
    assert clip("a\nFAKE ERROR line\r\x1b[31m") == "a\\nFAKE ERROR line\\r\\x1b[31m"
    long = clip("x" * 200_000)
    assert long == "x" * 120 + "…(200000 chars in all)"
    assert clip({"k": 1}, 4) == "{'k'…(8 chars in all)"


def logger_with(handler_filter: logging.Filter | None = None) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(BoundedFormatter("%(levelname)s %(message)s"))
    if handler_filter is not None:
        handler.addFilter(handler_filter)
    logger = logging.getLogger(f"test-logs-{id(out)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, out


def test_every_line_is_bounded_whatever_the_arguments() -> None:
    logger, out = logger_with()
    logger.info("command refused: %s", "n\n" * 150_000)
    [line] = out.getvalue().splitlines()
    assert len(line) < MAX_MESSAGE + 100
    assert line.startswith("INFO command refused: n\\nn\\n")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_repeated_cause_is_logged_a_few_times_then_counted() -> None:
    clock = Clock()
    logger, out = logger_with(FloodFilter(burst=3, interval=60, clock=clock))
    for i in range(1000):
        logger.info("command refused: %s", f"unknown command {i}")
    logger.warning("another cause")
    assert len(out.getvalue().splitlines()) == 4  # 3 of the flood, 1 of the other cause
    clock.now = 61
    logger.info("command refused: %s", "again")
    last = out.getvalue().splitlines()[-1]
    assert last == ("INFO command refused: again [and 997 more like this in the previous "
                    "60 s, not logged]")
