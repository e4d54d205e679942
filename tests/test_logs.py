"""Bounded, escaped and de-flooded log output (hubbub.logs)."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from hubbub import logs
from hubbub.logs import (
    MAX_MESSAGE,
    BoundedFormatter,
    ContextFilter,
    FloodFilter,
    JsonFormatter,
    clip,
    context,
)


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


def json_logger() -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger(f"test-logs-json-{id(out)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return logger, out


def test_text_lines_end_with_the_session_context_as_key_value() -> None:
    logger, out = logger_with(ContextFilter())
    with context(stream="demo", peer="192.0.2.7:5000"):
        logs.bind(source="cam\nFAKE")  # client-supplied: escaped like the message
        logger.info("publish %s", "pub-1")
    logger.info("after the session")
    assert out.getvalue().splitlines() == [
        "INFO publish pub-1 stream=demo source=cam\\nFAKE peer=192.0.2.7:5000",
        "INFO after the session",
    ]


async def test_each_task_has_its_own_context() -> None:
    logger, out = logger_with(ContextFilter())

    async def session(name: str, started: asyncio.Event, other: asyncio.Event) -> None:
        logs.bind(stream=name)
        started.set()
        await other.wait()
        logger.info("line of %s", name)

    a, b = asyncio.Event(), asyncio.Event()
    await asyncio.gather(session("one", a, b), session("two", b, a))
    assert sorted(out.getvalue().splitlines()) == ["INFO line of one stream=one",
                                                   "INFO line of two stream=two"]


def test_json_lines_are_objects_with_the_context_as_keys() -> None:
    logger, out = json_logger()
    with context(stream="demo", viewer="sub-1", peer="[::1]:5000"):
        logger.info("view pinned=%s", "x\n" * 5000)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("command failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert first["level"] == "INFO" and first["logger"].startswith("test-logs-json")
    assert (first["stream"], first["viewer"], first["peer"]) == ("demo", "sub-1", "[::1]:5000")
    assert "source" not in first and "context" not in first
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert first["message"].startswith("view pinned=x\\nx\\n")  # escaped as in text
    assert len(first["message"]) < MAX_MESSAGE + 100
    assert "ValueError: boom" in second["exc_info"]


def test_json_lines_are_flood_filtered_too() -> None:
    logger, out = json_logger()
    logger.handlers[0].addFilter(FloodFilter(burst=2, interval=60))
    for i in range(100):
        logger.info("command refused: %s", f"bad JSON {i}")
    assert [json.loads(line)["message"] for line in out.getvalue().splitlines()] == [
        "command refused: bad JSON 0", "command refused: bad JSON 1"]


async def test_a_task_started_in_a_session_shows_its_fields_only_if_it_binds() -> None:
    logger, out = logger_with(ContextFilter())

    async def service() -> None:  # e.g. a webhook sender started by a session's first event
        logger.info("service line")

    async def helper() -> None:  # e.g. the session's receive loop
        logs.bind()
        logger.info("helper line")

    logs.bind(stream="demo", peer="192.0.2.7:5000")
    await asyncio.gather(asyncio.create_task(service()), asyncio.create_task(helper()))
    logger.info("session line")
    assert out.getvalue().splitlines() == [
        "INFO service line",
        "INFO helper line stream=demo peer=192.0.2.7:5000",
        "INFO session line stream=demo peer=192.0.2.7:5000",
    ]
