"""A signaling session: one WebSocket, its outbound queue and its event filter."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from hubbub.control import messages

log = logging.getLogger(__name__)

DEFAULT_EVENTS = frozenset({"active", "inactive", "stopped"})
KNOWN_EVENTS = frozenset(
    {"active", "inactive", "stopped", "viewercount", "vad", "layers", "migrate", "updated"}
)

_ids = itertools.count(1)

CLOSE_POLICY = 1008
"""RFC 6455 §7.4.1 "policy violation": a client over a limit (send queue, command flood)."""

DEFAULT_QUEUE_BYTES = 1024 * 1024


def new_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):x}"


class Session:
    """Serializes everything sent on one socket: texts are written in order by one task."""

    def __init__(self, send_text: Callable[[str], Awaitable[None]],
                 max_queue_bytes: int = DEFAULT_QUEUE_BYTES) -> None:
        self._send_text = send_text
        # Texts not yet written, and the task writing them: it exists only while there is
        # something to write, so an idle socket (most of a listener's life) holds neither a
        # task nor a queue.
        self._pending: list[str] = []
        self._writer: asyncio.Task[None] | None = None
        # Bounded: a client that does not read must not hold the server's memory.
        self.max_queue_bytes = max_queue_bytes
        self.queued_bytes = 0
        self.overflowed = False
        self.events: frozenset[str] = DEFAULT_EVENTS
        self.closed = False
        self.on_close_request: Callable[[int, str], None] = lambda code, reason: None

    def set_events(self, events: Any) -> None:
        """Clients name the events they want; absent means the default set (PROTOCOL.md)."""
        if events is None:
            return
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise messages.ProtocolError("events must be a list of strings")
        self.events = frozenset(e for e in events if e in KNOWN_EVENTS)

    async def handle(self, command: messages.Command) -> dict[str, Any]:
        """Run one command and return the reply's data (subclasses: publish, view)."""
        raise messages.ProtocolError(f"unknown command {command.name!r}")

    def after_reply(self) -> None:
        """Called once the reply to a successful command is queued (view sends `active`)."""

    def send(self, text: str) -> None:
        if self.closed or self.overflowed:
            return
        if self.queued_bytes + len(text) > self.max_queue_bytes:
            self.overflowed = True
            log.info("closing a socket whose client does not read (%d bytes queued)",
                     self.queued_bytes)
            self.request_close(CLOSE_POLICY, f"more than {self.max_queue_bytes} bytes queued "
                               "for this client: it does not read")
            return
        self.queued_bytes += len(text)
        self._pending.append(text)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    def send_event(self, name: str, data: dict[str, Any] | None) -> None:
        if name in self.events:
            self.write_event(name, data)

    def write_event(self, name: str, data: dict[str, Any] | None) -> None:
        """Put one event on the wire: a WebSocket message here, an SSE record for WHEP."""
        self.send(messages.event(name, data))

    def media_failed(self, reason: str, ice_failed: bool) -> None:
        """Why the peer connection's transport failed, as an `error` event before the socket
        closes (a hubbub extension, sent whatever `events` asked for: PROTOCOL.md)."""
        code = "ice-failed" if ice_failed else "transport-failed"
        self.write_event("error", {"code": code, "message": reason})

    def end(self, reason: str) -> None:
        """Stop the media side of the session (subclasses); the socket stays open."""

    def terminate(self, reason: str) -> None:
        """End the media side and close the socket with `reason` (normal closure, 1000)."""
        self.end(reason)
        self.request_close(1000, reason)

    def request_close(self, code: int, reason: str) -> None:
        """Ask the socket owner to close the WebSocket (after queued messages are out)."""
        self.on_close_request(code, reason)

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until everything queued so far has been written."""
        writer = self._writer
        if writer is not None:
            await asyncio.wait([writer], timeout=timeout)

    async def _drain(self) -> None:
        try:
            while self._pending and not self.closed:
                batch, self._pending = self._pending, []
                for text in batch:
                    try:
                        await self._send_text(text)
                    except Exception:
                        # The socket is gone; the receive loop notices and tears the session
                        # down.
                        self.closed = True
                        self._pending = []
                        return
                    self.queued_bytes -= len(text)
        finally:
            self._writer = None

    def close(self) -> None:
        self.closed = True
        self._pending = []
        if self._writer is not None:
            self._writer.cancel()
