"""WebSocket signaling client: Millicast-style transactions and events.

Wire format (docs/PROTOCOL.md, "WebSocket transactions"):
command ``{"type": "cmd", "transId": n, "name": ..., "data": ...}`` with ``transId`` counting from 0
per socket; the server answers ``{"type": "response", "transId": n, "data": {...}}`` or
``{"type": "error", "transId": n, "data": "reason"}`` and pushes
``{"type": "event", "name": ..., "data": {...}}`` at any time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

log = logging.getLogger(__name__)

EventCallback = Callable[[str, dict[str, Any]], None]


class SignalingError(Exception):
    """The server answered a command with an ``error`` reply, or the socket went away."""

    def __init__(self, reason: str, command: str | None = None) -> None:
        super().__init__(reason if command is None else f"{command}: {reason}")
        self.reason = reason
        self.command = command


def with_token(url: str, token: str | None) -> str:
    """Return ``url`` with ``?token=<token>`` added (other query parameters are kept)."""
    if token is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


def event_data(data: object) -> dict[str, Any]:
    """Normalise an event's ``data``: an object as is, missing/null as ``{}``,
    anything else as ``{"value": data}``."""
    if isinstance(data, dict):
        return data
    if data is None:
        return {}
    return {"value": data}


class Signaling:
    """One signaling WebSocket.

    ``on_event(name, data)`` is called synchronously, in arrival order, for every ``event``
    message; ``on_close()`` once when the socket closes for any reason.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        on_event: EventCallback | None = None,
        on_close: Callable[[], None] | None = None,
        origin: str | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = with_token(url, token)
        self.on_event = on_event
        self.on_close = on_close
        self._origin = origin
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._next_id = 0
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str = ""

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def connect(self) -> None:
        if self._ws is not None:
            raise RuntimeError("signaling already connected")
        self._ws = await connect(
            self.url,
            origin=Origin(self._origin) if self._origin is not None else None,
            open_timeout=self._open_timeout,
        )
        self._reader = asyncio.create_task(self._read_loop(self._ws), name="signaling-reader")

    async def command(
        self, name: str, data: dict[str, Any], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Send one command and return the ``data`` of its ``response``.

        Raises ``SignalingError`` on an ``error`` reply or when the socket closes first, and
        ``TimeoutError`` when no reply comes within ``timeout`` seconds.
        """
        if self._ws is None:
            raise RuntimeError("signaling not connected")
        if self.closed:
            raise SignalingError(self._closed_reason(), name)
        trans_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[trans_id] = (name, future)
        message = {"type": "cmd", "transId": trans_id, "name": name, "data": data}
        try:
            await self._ws.send(json.dumps(message))
            async with asyncio.timeout(timeout):
                return await future
        except ConnectionClosed as exc:
            raise SignalingError(self._closed_reason(), name) from exc
        finally:
            self._pending.pop(trans_id, None)

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await self._reader
            except asyncio.CancelledError:
                # The reader's own cancellation ends it; ours (the task closing us was
                # cancelled) must go on, or a caller's cancel is lost and it hangs later.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
        self._mark_closed()

    async def wait_closed(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._closed.wait()

    async def __aenter__(self) -> Signaling:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _read_loop(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._dispatch(raw)
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code
            self.close_reason = ws.close_reason or ""
            self._mark_closed()

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("signaling: ignoring a frame that is not JSON: %.80r", raw)
            return
        if not isinstance(message, dict):
            log.warning("signaling: ignoring a frame that is not an object: %.80r", raw)
            return
        kind = message.get("type")
        if kind == "event":
            if self.on_event is not None:
                try:
                    self.on_event(str(message.get("name")), event_data(message.get("data")))
                except Exception:  # a broken callback must not stop the reader
                    log.exception("signaling: on_event callback failed")
        elif kind in ("response", "error"):
            self._resolve(kind, message)
        else:
            log.warning("signaling: ignoring a message of type %r", kind)

    def _resolve(self, kind: str, message: dict[str, Any]) -> None:
        trans_id = message.get("transId")
        entry = self._pending.get(trans_id) if isinstance(trans_id, int) else None
        if entry is None:
            log.warning("signaling: %s for unknown transId %r", kind, trans_id)
            return
        name, future = entry
        if future.done():
            return
        data = message.get("data")
        if kind == "error":
            reason = data if isinstance(data, str) else json.dumps(data)
            future.set_exception(SignalingError(reason, name))
        elif isinstance(data, dict):
            future.set_result(data)
        else:
            future.set_exception(SignalingError(f"response data is not an object: {data!r}", name))

    def _closed_reason(self) -> str:
        return f"connection closed (code {self.close_code}: {self.close_reason or 'no reason'})"

    def _mark_closed(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for name, future in self._pending.values():
            if not future.done():
                future.set_exception(SignalingError(self._closed_reason(), name))
        if self.on_close is not None:
            self.on_close()
