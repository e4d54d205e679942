"""Presence: who is connected to which room, and the events pushed to them.

One WebSocket per open room page. A member is *online* while at least one socket is open; when
the last one closes, `on_absent(room, user)` runs after `grace` seconds unless they came back
(page reloads and network blips keep the seat). Every socket has its own send queue, so a slow
browser never holds up the others and events reach each socket in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

MAX_QUEUE = 256  # a socket this far behind is dropped; it resyncs when it reconnects

AbsentCallback = Callable[[str, str], Coroutine[Any, Any, None]]


class Connection:
    """One presence socket: `send` queues, a task writes."""

    def __init__(self, room_id: str, user_id: str, send_text: Callable[[str], Awaitable[None]],
                 close: Callable[[int, str], Awaitable[None]]) -> None:
        self.room_id = room_id
        self.user_id = user_id
        self._send_text = send_text
        self._close = close
        self._queue: asyncio.Queue[str | tuple[int, str]] = asyncio.Queue()
        self._writer = asyncio.get_running_loop().create_task(self._drain())
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        self.send_text(json.dumps(message))

    def send_text(self, text: str) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= MAX_QUEUE:
            self.close(1013, "too far behind")
            return
        self._queue.put_nowait(text)

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued has been sent."""
        if not self.closed:
            self._queue.put_nowait((code, reason))
            self.closed = True

    async def _drain(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                if isinstance(item, tuple):
                    await self._close(*item)
                    return
                await self._send_text(item)
            except Exception:
                self.closed = True
                return

    def stop(self) -> None:
        self.closed = True
        self._writer.cancel()


class Presence:
    def __init__(self, grace: float, on_absent: AbsentCallback) -> None:
        self.grace = grace
        self.on_absent = on_absent
        self._rooms: dict[str, dict[str, set[Connection]]] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.lobby: set[Connection] = set()  # lobby pages: the room list is pushed to them

    def online(self, room_id: str) -> set[str]:
        return set(self._rooms.get(room_id, {}))

    def add(self, conn: Connection) -> None:
        self._cancel_timer(conn.room_id, conn.user_id)
        self._rooms.setdefault(conn.room_id, {}).setdefault(conn.user_id, set()).add(conn)

    def remove(self, conn: Connection) -> bool:
        """Forget a socket; True if it was that member's last one (the grace timer starts)."""
        users = self._rooms.get(conn.room_id)
        if users is None or conn not in users.get(conn.user_id, set()):
            return False
        users[conn.user_id].discard(conn)
        if users[conn.user_id]:
            return False
        del users[conn.user_id]
        if not users:
            del self._rooms[conn.room_id]
        self.expect(conn.room_id, conn.user_id)
        return True

    def expect(self, room_id: str, user_id: str) -> None:
        """Start the grace timer of a member who is not connected (also used at startup, for
        members restored from the database who may never come back)."""
        if user_id in self._rooms.get(room_id, {}):
            return
        self._cancel_timer(room_id, user_id)
        loop = asyncio.get_running_loop()
        self._timers[(room_id, user_id)] = loop.call_later(
            self.grace, self._absent, room_id, user_id
        )

    def _cancel_timer(self, room_id: str, user_id: str) -> None:
        timer = self._timers.pop((room_id, user_id), None)
        if timer is not None:
            timer.cancel()

    def _absent(self, room_id: str, user_id: str) -> None:
        self._timers.pop((room_id, user_id), None)
        task = asyncio.get_running_loop().create_task(self.on_absent(room_id, user_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def broadcast(self, room_id: str, message: dict[str, Any]) -> None:
        for conns in self._rooms.get(room_id, {}).values():
            for conn in conns:
                conn.send(message)

    def broadcast_lobby(self, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        for conn in self.lobby:
            conn.send_text(text)

    def send_to(self, room_id: str, user_id: str, message: dict[str, Any]) -> None:
        for conn in self._rooms.get(room_id, {}).get(user_id, set()):
            conn.send(message)

    def close_user(self, room_id: str, user_id: str, code: int, reason: str) -> None:
        for conn in list(self._rooms.get(room_id, {}).get(user_id, set())):
            conn.close(code, reason)

    def close_room(self, room_id: str, code: int, reason: str) -> None:
        for conns in self._rooms.get(room_id, {}).values():
            for conn in conns:
                conn.close(code, reason)

    def forget(self, room_id: str, user_id: str) -> None:
        """No grace timer for someone who left on purpose."""
        self._cancel_timer(room_id, user_id)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for users in self._rooms.values():
            for conns in users.values():
                for conn in conns:
                    conn.stop()
        self._rooms.clear()
        for conn in self.lobby:
            conn.stop()
        self.lobby.clear()
        for task in list(self._tasks):
            task.cancel()
