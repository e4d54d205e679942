"""Rooms, members and users as plain values, and their JSON shape (the UI's room state)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OWNER = "owner"
SPEAKER = "speaker"
LISTENER = "listener"
ROLES = (OWNER, SPEAKER, LISTENER)


@dataclass(frozen=True)
class User:
    id: str
    name: str


@dataclass(frozen=True)
class Member:
    user_id: str
    name: str
    role: str
    hand_raised_on: float | None
    muted: bool
    banned: bool
    joined_on: float
    invited_on: float | None = None
    invite_declined_on: float | None = None

    @property
    def speaks(self) -> bool:
        """Owner and speakers may publish into the room's stream."""
        return self.role in (OWNER, SPEAKER)

    @property
    def invite(self) -> str | None:
        """A listener's invitation to the stage: "pending", "declined" or None."""
        if self.invited_on is not None:
            return "pending"
        return "declined" if self.invite_declined_on is not None else None


@dataclass(frozen=True)
class Room:
    id: str
    name: str
    owner_id: str
    audio_only: bool
    created_on: float
    closed_on: float | None
    end_reason: str | None = None  # closed (by the owner) | host_left
    members: list[Member] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        return self.closed_on is not None

    def member(self, user_id: str) -> Member | None:
        return next((m for m in self.members if m.user_id == user_id), None)

    def present(self) -> list[Member]:
        """Members in the room (the banned are kept only to refuse their return)."""
        return [m for m in self.members if not m.banned]


@dataclass(frozen=True)
class MediaStatus:
    """What a speaker's browser reports about its own media (kept in memory: it describes one
    page's session, not the membership): the microphone was refused, video is published."""

    mic_blocked: bool = False
    video: bool = False


NO_MEDIA = MediaStatus()


def room_json(room: Room, online: set[str],
              media: dict[str, MediaStatus] | None = None) -> dict[str, Any]:
    """The room as the UI sees it (PROTOCOL.md "The reference Spaces app's API" shape, plus
    roles, hands in raise order, who is connected right now and what speakers' media is)."""
    media = media or {}
    present = sorted(room.present(), key=lambda m: (m.joined_on, m.user_id))
    hands = sorted(
        (m for m in present if m.hand_raised_on is not None),
        key=lambda m: (m.hand_raised_on or 0.0, m.user_id),
    )
    return {
        "id": room.id,
        "name": room.name,
        "ownerId": room.owner_id,
        "audioOnly": room.audio_only,
        "createdOn": room.created_on,
        "closed": room.closed,
        "endReason": room.end_reason,
        "participants": [
            {
                "id": m.user_id,
                "username": m.name,
                "role": m.role,
                "muted": m.muted,
                "raisedHand": m.hand_raised_on is not None,
                "invite": m.invite,
                "online": m.user_id in online,
                "micBlocked": m.speaks and media.get(m.user_id, NO_MEDIA).mic_blocked,
                "video": m.role == OWNER and media.get(m.user_id, NO_MEDIA).video,
            }
            for m in present
        ],
        "speakers": [m.user_id for m in present if m.speaks],
        "hands": [m.user_id for m in hands],
    }


def room_summary(room: Room, online: set[str],
                 media: dict[str, MediaStatus] | None = None) -> dict[str, Any]:
    """A lobby entry: enough to choose a room, without the member list. Counts are of the
    people connected now, not of everyone who joined."""
    here = [m for m in room.present() if m.user_id in online]
    owner = room.member(room.owner_id)
    return {
        "id": room.id,
        "name": room.name,
        "ownerId": room.owner_id,
        "ownerName": owner.name if owner is not None else "",
        "audioOnly": room.audio_only,
        # "with video" only while the host really publishes it (a host without a camera,
        # or in an audio-only room, does not)
        "video": (media or {}).get(room.owner_id, NO_MEDIA).video,
        "createdOn": room.created_on,
        "speakers": [m.name for m in here if m.speaks],
        "listeners": sum(1 for m in here if not m.speaks),
        "online": len(here),
    }
