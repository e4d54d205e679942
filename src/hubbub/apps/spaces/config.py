"""Settings of the Spaces app; each field says why it has its default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def default_database_url(data_dir: str) -> str:
    """SQLite file `spaces.db` beside the node's token store."""
    return f"sqlite+aiosqlite:///{Path(data_dir).resolve()}/spaces.db"


@dataclass
class SpacesConfig:
    hubbub_url: str
    """HTTP base URL of the hubbub node whose Director and admin API Spaces uses."""

    api_secret: str
    """Admin API secret of that node: Spaces makes its wildcard tokens with it (once, kept in
    its database) and stops demoted speakers' sources."""

    database_url: str
    """SQLAlchemy async URL of the rooms database (SQLite by default, PostgreSQL works too)."""

    path: str = "/spaces"
    """Where the app is mounted (UI at `path/`, REST at `path/api`, presence at `path/ws`)."""

    forward_host: bool = False
    """Embedded in `hubbub serve`: call the Director with the browser's Host header, so the
    signaling URLs it returns are the ones the browser reached us at (not 127.0.0.1)."""

    presence_grace: float = 20.0
    """A participant whose presence socket is gone this long leaves the room, and a host gone
    this long ends it: long enough for a page reload, a network blip or a server restart (the
    page reconnects within 8 s), short enough that the lobby and the audience stay truthful."""

    http_timeout: float = 10.0
    """Limit on one call to the platform (Director, admin API)."""

    max_open_rooms: int = 1000
    """Rooms open at once; creating more is refused (429)."""

    max_rooms_per_owner: int = 5
    """Rooms one identity may have open at once; a sixth is refused (409) until one is closed.
    A host runs one stage at a time, and a few forgotten tabs fit; without it, one identity
    could fill `max_open_rooms` and lock everyone else out of creating rooms."""

    max_body_bytes: int = 8 * 1024
    """Largest request body the API reads (413 above, refused before the rest is read). The
    largest valid body is under 1 KiB (an 80-character room name, every character escaped);
    8 KiB leaves room for clients that add fields, and makes a flood of big bodies cost
    nothing (they were read in full: 4 x 50 MB took the RSS from 206 to 523 MB)."""

    user_rate: float = 1.0
    """New identities (POST /api/users) per second per client address, on average (429 with
    Retry-After above it). A browser makes one and keeps it, so a sustained rate of more than
    one a second from one address is a script (2,000 were made in 5.4 s)."""

    user_burst: int = 30
    """New identities one address may make at once: a classroom or an office behind one NAT
    opening the same stage together."""

    room_rate: float = 0.1
    """New rooms (POST /api/rooms) per second per client address, on average: one every 10 s.
    People create rooms by hand, a few a day."""

    room_burst: int = 20
    """New rooms one address may create at once (several hosts behind one NAT)."""

    max_tracked_addresses: int = 10_000
    """Client addresses whose budgets are remembered; past it, refilled budgets are forgotten
    first, then the least recently seen (memory stays bounded under a spread-out flood)."""
