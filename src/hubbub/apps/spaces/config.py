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
    """A participant whose presence socket is gone this long leaves the room: long enough for
    a page reload or a network blip, short enough that the audience list stays truthful."""

    http_timeout: float = 10.0
    """Limit on one call to the platform (Director, admin API)."""

    max_open_rooms: int = 1000
    """Rooms open at once; creating more is refused (429)."""
