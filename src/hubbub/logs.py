"""Log output an attacker can neither grow nor flood.

- `clip(value)`: a client-supplied value for a log line or an error reply: printable, escaped
  (no newlines to forge entries with), and truncated with the size of what was cut.
- `BoundedFormatter`: every message is escaped and cut to `MAX_MESSAGE` characters, whatever
  its arguments carried (tracebacks, which only server faults produce, stay multi-line).
- `FloodFilter`: a cause (logger, level, message template) is logged `burst` times per
  `interval`; further occurrences are counted and reported once per interval.
- `bind(stream=..., source=..., viewer=..., peer=...)`: fields of every line the calling task
  logs from then on (a contextvar, so no other session's task sees them). A task started from
  it inherits them but shows them only once it calls `bind()` itself: a session's helper task
  does, while a long-lived service task that happened to be started inside a session (a webhook
  sender, a recording watcher) must not log as that session. `ContextFilter` puts them on each
  record; text lines end with ` stream=demo peer=203.0.113.7:51234`, JSON lines have them as
  keys. A line about another session (an event sent to a viewer from a publisher's task) shows
  the task's session: name the other one in the message.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

MAX_MESSAGE = 2000
BURST = 5
INTERVAL = 60.0

_ESCAPES = {i: f"\\x{i:02x}" for i in range(32)} | {0x7F: "\\x7f"}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def clip(value: object, limit: int = 120) -> str:
    """`value` as one bounded, printable line."""
    text = value if isinstance(value, str) else repr(value)
    escaped = text[:limit].translate(_ESCAPES)
    if len(text) <= limit and len(escaped) <= limit:
        return escaped
    return f"{escaped[:limit]}…({len(text)} chars in all)"  # escapes are longer: cut again


FIELDS = ("stream", "source", "viewer", "peer")
"""Context fields, in the order text lines show them."""

_NONE: Mapping[str, str] = MappingProxyType({})
_context: contextvars.ContextVar[tuple[object, Mapping[str, str]]] = contextvars.ContextVar(
    "log_context", default=(None, _NONE))
"""(the task that bound the fields, the fields)."""


def bind(**fields: object) -> None:
    """Add `fields` (None: left out) to this task's log context for the rest of it, on top of
    what it inherited. Values are client-supplied: clipped when formatted."""
    _context.set(_bound(fields))


@contextmanager
def context(**fields: object) -> Iterator[None]:
    """`bind` for a block: the fields are gone again after it."""
    token = _context.set(_bound(fields))
    try:
        yield
    finally:
        _context.reset(token)


def current() -> Mapping[str, str]:
    """The fields this task shows: those it bound, not those merely inherited."""
    owner, fields = _context.get()
    return fields if owner is _task() else _NONE


def _bound(fields: dict[str, object]) -> tuple[object, Mapping[str, str]]:
    new = {key: str(value) for key, value in fields.items() if value is not None}
    return _task(), {**_context.get()[1], **new}


def _task() -> object:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop in this thread
        return None


class ContextFilter(logging.Filter):
    """Puts the log context on each record (`record.stream`, ...; also `record.context`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = current()
        record.context = fields
        for key, value in fields.items():
            setattr(record, key, value)
        return True


def _context_of(record: logging.LogRecord) -> Mapping[str, str]:
    fields: Mapping[str, str] = getattr(record, "context", {})
    return fields


class BoundedFormatter(logging.Formatter):
    """Text lines: the message clipped and escaped, then the context as `key=value`."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging API)
        record.message = clip(record.message, MAX_MESSAGE)
        line = super().formatMessage(record)
        fields = _context_of(record)
        extra = "".join(f" {key}={clip(fields[key])}" for key in FIELDS if key in fields)
        return line + extra


class JsonFormatter(_JsonFormatter):
    """One JSON object per line (python-json-logger): time, level, logger, message, the
    context fields; the message clipped and escaped as in text lines, tracebacks in
    `exc_info` (JSON strings never hold a raw newline)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level",
                                        "name": "logger"},
                         reserved_attrs=[*_RESERVED, "context", *FIELDS])

    def formatTime(self, record: logging.LogRecord,  # noqa: N802 (logging API)
                   datefmt: str | None = None) -> str:
        # RFC 3339 in UTC, what log pipelines parse without configuration.
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["message"] = clip(log_data.get("message", ""), MAX_MESSAGE)
        return log_data

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        fields = _context_of(record)
        for key in FIELDS:
            if key in fields:
                log_data[key] = clip(fields[key])


_RESERVED = [*vars(logging.LogRecord("", 0, "", 0, "", None, None)), "message", "asctime"]


Key = tuple[str, int, str]


class FloodFilter(logging.Filter):
    def __init__(self, burst: int = BURST, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._window_start: dict[Key, float] = {}
        self._seen: dict[Key, int] = {}
        self._suppressed: dict[Key, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        with self._lock:
            start = self._window_start.get(key)
            if start is None or now - start >= self._interval:
                suppressed = self._suppressed.pop(key, 0)
                self._window_start[key] = now
                self._seen[key] = 1
                if suppressed:
                    # One line says what the flood was, then this occurrence is logged.
                    record.msg = (f"{record.msg} [and {suppressed} more like this in the "
                                  f"previous {self._interval:.0f} s, not logged]")
                if len(self._window_start) > 10_000:
                    self._forget_old(now)
                return True
            self._seen[key] += 1
            if self._seen[key] <= self._burst:
                return True
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False

    def _forget_old(self, now: float) -> None:
        for key, start in list(self._window_start.items()):
            if now - start >= self._interval and key not in self._suppressed:
                del self._window_start[key]
                self._seen.pop(key, None)


def install(level: str, form: str = "text") -> None:
    """Root logging for `hubbub serve` (uvicorn's loggers propagate to it): bounded lines,
    floods aggregated, the session context on each line; `form` is text or json."""
    logging.basicConfig(level=level.upper())
    logging.captureWarnings(True)  # warnings are log lines too (JSON consumers parse stderr)
    formatter: logging.Formatter = (
        JsonFormatter() if form == "json"
        else BoundedFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    flood = FloodFilter()
    context_filter = ContextFilter()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
        handler.addFilter(context_filter)
        handler.addFilter(flood)
