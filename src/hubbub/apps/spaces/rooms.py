"""RoomService: the rules of a room — who may do what, and what everyone is told.

Roles: the owner (creates the room, always on stage, publishes audio + video unless the room
is audio-only), speakers (publish audio) and listeners. Only the owner promotes, demotes,
removes and closes. Going on stage takes the listener's consent: the owner invites, and only the
listener's acceptance makes them a speaker and gets their publish JWT. Every change is stored
first, then pushed: the full room state to everyone in the room (rooms are small, so a full
state is simpler than deltas and resyncs for free), and `invited` / `demoted` / `kicked` to
that participant only (`declined` to the owner).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from hubbub.apps.spaces.models import (
    LISTENER,
    OWNER,
    SPEAKER,
    MediaStatus,
    Member,
    Room,
    User,
    room_json,
    room_summary,
)
from hubbub.apps.spaces.platform import PUBLISH, SUBSCRIBE, PlatformClient, PlatformError
from hubbub.apps.spaces.presence import Presence
from hubbub.apps.spaces.store import RoomStore

log = logging.getLogger(__name__)

# Presence socket close codes (4000-4999: application-defined, RFC 6455 §7.4.2).
CLOSE_KICKED = 4003
CLOSE_ROOM_CLOSED = 4010

ENDED = {
    "closed": "this room has been closed by its owner",
    "host_left": "this room ended: its host left",
}
"""The 410 message (and presence close reason) by `Room.end_reason`."""

LOBBY_INTERVAL = 0.25
"""Lobby pushes are coalesced to one per this many seconds."""


class SpacesError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class RoomService:
    def __init__(
        self, store: RoomStore, platform: PlatformClient, grace: float, max_open_rooms: int,
        max_rooms_per_owner: int = 5,
    ) -> None:
        self.store = store
        self.platform = platform
        self.max_open_rooms = max_open_rooms
        self.max_rooms_per_owner = max_rooms_per_owner
        self._creating = asyncio.Lock()  # the counts below and the insert, one at a time
        self.presence = Presence(grace, self._on_absent)
        self._locks: dict[str, asyncio.Lock] = {}
        self._media: dict[str, dict[str, MediaStatus]] = {}  # room -> user -> reported media
        self._lobby_due: asyncio.TimerHandle | None = None
        self._lobby_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """After a restart nobody is connected: members who do not come back within the grace
        period leave, as if their socket had just closed, and a host who does not ends the
        room."""
        for room in await self.store.open_rooms():
            for member in room.present():
                self.presence.expect(room.id, member.user_id)

    async def stop(self) -> None:
        await self.presence.stop()

    def _lock(self, room_id: str) -> asyncio.Lock:
        return self._locks.setdefault(room_id, asyncio.Lock())

    # --- reading -------------------------------------------------------------------------

    async def room(self, room_id: str) -> Room:
        room = await self.store.get_room(room_id)
        if room is None:
            raise SpacesError(404, f"no room {room_id!r}")
        return room

    async def open_room(self, room_id: str) -> Room:
        room = await self.room(room_id)
        if room.closed:
            raise SpacesError(410, ENDED.get(room.end_reason or "closed", ENDED["closed"]))
        return room

    def state(self, room: Room) -> dict[str, Any]:
        return room_json(room, self.presence.online(room.id), self._media.get(room.id))

    async def list_rooms(self) -> list[dict[str, Any]]:
        """The rooms that are really live: open, with their host connected now (a room whose
        host is gone is not listed during the grace period that may end it)."""
        rooms = [r for r in await self.store.open_rooms()
                 if r.owner_id in self.presence.online(r.id)]
        rooms.sort(key=lambda r: r.created_on, reverse=True)
        return [room_summary(r, self.presence.online(r.id), self._media.get(r.id)) for r in rooms]

    def lobby_changed(self) -> None:
        """Something a lobby shows may have changed: push the list to lobby sockets, at most
        every LOBBY_INTERVAL (listing loads every open room)."""
        if self._lobby_due is not None or not self.presence.lobby:
            return
        self._lobby_due = asyncio.get_running_loop().call_later(LOBBY_INTERVAL, self._lobby_run)

    def _lobby_run(self) -> None:
        self._lobby_due = None
        if self._lobby_task is None or self._lobby_task.done():
            self._lobby_task = asyncio.get_running_loop().create_task(self._push_lobby())
        else:
            self.lobby_changed()  # a push is running: one more after it

    async def _push_lobby(self) -> None:
        self.presence.broadcast_lobby({"type": "rooms", "rooms": await self.list_rooms()})

    async def member_of(self, user: User, room_id: str) -> tuple[Room, Member]:
        """The open room and the user's membership; 403 for non-members and the removed."""
        room = await self.open_room(room_id)
        member = room.member(user.id)
        if member is None:
            raise SpacesError(403, "join the room first")
        if member.banned:
            raise SpacesError(403, "you were removed from this room")
        return room, member

    async def _owner_action(self, user: User, room_id: str, action: str) -> Room:
        room = await self.open_room(room_id)
        if room.owner_id != user.id:
            raise SpacesError(403, f"only the room's owner can {action}")
        return room

    @staticmethod
    def _target(room: Room, target_id: str) -> Member:
        member = room.member(target_id)
        if member is None or member.banned:
            raise SpacesError(404, f"{target_id!r} is not in this room")
        return member

    async def _push_state(self, room_id: str) -> dict[str, Any]:
        state = self.state(await self.room(room_id))
        self.presence.broadcast(room_id, {"type": "state", "room": state})
        self.lobby_changed()
        return state

    async def _stop_source(self, room_id: str, user_id: str) -> None:
        try:
            await self.platform.stop_source(room_id, user_id)
        except PlatformError as exc:
            # The role is already gone: their JWT is not renewed, and the UI stops publishing.
            log.warning("spaces: could not stop %s in %s: %s", user_id, room_id, exc.message)

    # --- lobby ---------------------------------------------------------------------------

    async def create_room(self, user: User, name: str, audio_only: bool) -> Room:
        async with self._creating:
            if await self.store.count_open_rooms(owner_id=user.id) >= self.max_rooms_per_owner:
                raise SpacesError(
                    409, f"you already have {self.max_rooms_per_owner} open rooms; close one "
                    "before creating another")
            if await self.store.count_open_rooms() >= self.max_open_rooms:
                raise SpacesError(429, "too many open rooms; try again later")
            room = await self.store.create_room(user, name, audio_only)
        # A room whose host never comes in ends like one whose host left.
        self.presence.expect(room.id, user.id)
        log.info("spaces: %s created room %s %r", user.id, room.id, name)
        return room

    # --- participants --------------------------------------------------------------------

    async def join(self, user: User, room_id: str, host: str | None) -> dict[str, Any]:
        """Enter (or re-enter) a room: the Director's subscribe reply, and a publish reply for
        the owner and speakers. Calling it again is how a client renews its JWTs."""
        async with self._lock(room_id):
            room = await self.open_room(room_id)
            member = room.member(user.id)
            if member is not None and member.banned:
                raise SpacesError(403, "you were removed from this room")
            if member is None:
                await self.store.add_member(room_id, user.id)
                room = await self.room(room_id)
                member = room.member(user.id)
                assert member is not None
        self.presence.expect(room_id, user.id)  # joined but never connected: leaves later
        try:
            viewer = await self.platform.director(SUBSCRIBE, room_id, host)
            publisher = (
                await self.platform.director(PUBLISH, room_id, host) if member.speaks else None
            )
        except PlatformError as exc:
            raise SpacesError(502, exc.message) from None
        state = await self._push_state(room_id)
        return {"room": state, "selfId": user.id, "role": member.role,
                "viewer": viewer, "publisher": publisher}

    async def leave(self, user: User, room_id: str) -> None:
        async with self._lock(room_id):
            room, member = await self.member_of(user, room_id)
            if member.role == OWNER:
                # The host stepping out: the room waits the grace period for them (their
                # presence timer runs on), then ends. Ending at once is `close`.
                return
            self.presence.forget(room_id, user.id)
            await self.store.remove_member(room_id, user.id)
            self._forget_media(room_id, user.id)
        if member.role == SPEAKER:
            await self._stop_source(room_id, user.id)
        await self._push_state(room_id)

    async def raise_hand(self, user: User, room_id: str, raised: bool) -> dict[str, Any]:
        async with self._lock(room_id):
            room, member = await self.member_of(user, room_id)
            if member.role != LISTENER:
                raise SpacesError(409, "you are already on stage")
            if raised != (member.hand_raised_on is not None):
                # Raising a hand after declining asks again: the "declined" mark goes.
                await self.store.update_member(
                    room_id, user.id, hand_raised_on=time.time() if raised else None,
                    **({"invite_declined_on": None} if raised else {}))
        return await self._push_state(room_id)

    async def report_media(self, user: User, room_id: str, mic_blocked: bool,
                           video: bool) -> dict[str, Any]:
        """A speaker's page says what its media is: others then see "mic blocked" apart from
        silent, and the lobby says "with video" only while the host publishes it."""
        async with self._lock(room_id):
            room, member = await self.member_of(user, room_id)
            status = MediaStatus(mic_blocked=mic_blocked and member.speaks,
                                 video=video and member.role == OWNER and not room.audio_only)
            self._media.setdefault(room_id, {})[user.id] = status
        return await self._push_state(room_id)

    def _forget_media(self, room_id: str, user_id: str) -> None:
        self._media.get(room_id, {}).pop(user_id, None)

    async def set_muted(self, user: User, room_id: str, muted: bool) -> dict[str, Any]:
        async with self._lock(room_id):
            await self.member_of(user, room_id)
            await self.store.update_member(room_id, user.id, muted=muted)
        return await self._push_state(room_id)

    # --- the owner's controls ------------------------------------------------------------

    async def invite(self, user: User, room_id: str, target_id: str) -> dict[str, Any]:
        """Ask a listener on stage. Nothing goes live yet: the listener is sent `invited`,
        and only their own `answer_invitation(accept=True)` makes them a speaker and gets
        their publish JWT (a raised hand is asking, but the mic still waits for that yes)."""
        async with self._lock(room_id):
            room = await self._owner_action(user, room_id, "invite speakers")
            target = self._target(room, target_id)
            if target.role != LISTENER:
                raise SpacesError(409, f"{target.name} is already on stage")
            await self.store.update_member(
                room_id, target_id, invited_on=time.time(), invite_declined_on=None
            )
        owner = room.member(room.owner_id)
        self.presence.send_to(room_id, target_id, {
            "type": "invited", "by": owner.name if owner is not None else ""})
        log.info("spaces: %s invited %s on stage in %s", user.id, target_id, room_id)
        return await self._push_state(room_id)

    async def uninvite(self, user: User, room_id: str, target_id: str) -> dict[str, Any]:
        """The owner withdraws a pending invitation."""
        async with self._lock(room_id):
            room = await self._owner_action(user, room_id, "withdraw invitations")
            target = self._target(room, target_id)
            if target.invited_on is None:
                raise SpacesError(409, f"{target.name} has no pending invitation")
            await self.store.update_member(room_id, target_id, invited_on=None)
        self.presence.send_to(room_id, target_id, {"type": "uninvited"})
        return await self._push_state(room_id)

    async def answer_invitation(
        self, user: User, room_id: str, accept: bool, host: str | None
    ) -> dict[str, Any]:
        """The invited listener's answer. Yes: they become a speaker and the reply (to this
        request only, so only the tab that said yes goes live) carries the publish JWT. No:
        the owner is told, and sees "declined" until they invite again."""
        publisher = None
        async with self._lock(room_id):
            room, member = await self.member_of(user, room_id)
            if member.role != LISTENER or member.invited_on is None:
                raise SpacesError(409, "you have no pending invitation")
            if accept:
                try:
                    publisher = await self.platform.director(PUBLISH, room_id, host)
                except PlatformError as exc:
                    raise SpacesError(502, exc.message) from None
                await self.store.update_member(
                    room_id, user.id, role=SPEAKER, hand_raised_on=None, muted=False,
                    invited_on=None, invite_declined_on=None)
            else:
                await self.store.update_member(
                    room_id, user.id, invited_on=None, invite_declined_on=time.time())
        if accept:
            log.info("spaces: %s accepted the invitation on stage in %s", user.id, room_id)
        else:
            self.presence.send_to(room_id, room.owner_id, {
                "type": "declined", "userId": user.id, "username": member.name})
            log.info("spaces: %s declined the invitation on stage in %s", user.id, room_id)
        state = await self._push_state(room_id)
        return {"room": state, "publisher": publisher}

    async def demote(self, user: User, room_id: str, target_id: str) -> dict[str, Any]:
        async with self._lock(room_id):
            room = await self._owner_action(user, room_id, "move speakers to the audience")
            target = self._target(room, target_id)
            if target.role != SPEAKER:
                raise SpacesError(409, f"{target.name} is not a speaker")
            await self.store.update_member(room_id, target_id, role=LISTENER, muted=False)
            self._forget_media(room_id, target_id)
        self.presence.send_to(room_id, target_id, {"type": "demoted"})
        await self._stop_source(room_id, target_id)
        log.info("spaces: %s demoted %s in %s", user.id, target_id, room_id)
        return await self._push_state(room_id)

    async def kick(self, user: User, room_id: str, target_id: str) -> dict[str, Any]:
        async with self._lock(room_id):
            room = await self._owner_action(user, room_id, "remove participants")
            target = self._target(room, target_id)
            if target.role == OWNER:
                raise SpacesError(409, "the owner cannot be removed")
            await self.store.update_member(
                room_id, target_id, role=LISTENER, banned=True, hand_raised_on=None
            )
        self.presence.forget(room_id, target_id)
        self.presence.send_to(room_id, target_id, {"type": "kicked"})
        self.presence.close_user(room_id, target_id, CLOSE_KICKED, "removed from the room")
        if target.role == SPEAKER:
            await self._stop_source(room_id, target_id)
        return await self._push_state(room_id)

    async def close(self, user: User, room_id: str) -> None:
        async with self._lock(room_id):
            room = await self._owner_action(user, room_id, "close the room")
            await self.store.close_room(room_id, "closed")
        await self._ended(room, "closed")
        log.info("spaces: %s closed room %s", user.id, room_id)

    async def _ended(self, room: Room, reason: str) -> None:
        """Tell everyone in an ended room, close their sockets, stop the speakers' sources."""
        self.presence.broadcast(room.id, {"type": "closed", "reason": reason})
        self.presence.close_room(room.id, CLOSE_ROOM_CLOSED, ENDED[reason])
        self.lobby_changed()
        self._locks.pop(room.id, None)
        self._media.pop(room.id, None)
        for member in room.present():
            if member.speaks:
                await self._stop_source(room.id, member.user_id)

    # --- presence ------------------------------------------------------------------------

    async def _on_absent(self, room_id: str, user_id: str) -> None:
        """Grace period over: a listener or speaker who did not come back leaves; a host who
        did not ends the room (a room is its host's: listeners pinned to them, their video,
        the owner's controls; nobody else is handed it)."""
        async with self._lock(room_id):
            room = await self.store.get_room(room_id)
            member = room.member(user_id) if room is not None else None
            if room is None or room.closed or member is None or member.banned:
                return
            if user_id in self.presence.online(room_id):
                return
            if member.role == OWNER:
                await self.store.close_room(room_id, "host_left")
            else:
                await self.store.remove_member(room_id, user_id)
            self._forget_media(room_id, user_id)
        if member.role == OWNER:
            log.info("spaces: room %s ended: its host %s was gone for %.0f s", room_id, user_id,
                     self.presence.grace)
            await self._ended(room, "host_left")
            return
        log.info("spaces: %s left %s (presence lost)", user_id, room_id)
        if member.role == SPEAKER:
            await self._stop_source(room_id, user_id)
        await self._push_state(room_id)

    async def connected(self, room_id: str) -> None:
        """Someone's presence changed: everyone sees the new online set."""
        await self._push_state(room_id)
