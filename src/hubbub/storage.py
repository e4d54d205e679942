"""Database plumbing shared by the token store and apps: async engines and secret hashing.

SQLite (the default, a file in the data dir) or PostgreSQL by URL, through SQLAlchemy 2 async.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_IMMEDIATE = "hubbub_sqlite_immediate"
"""Execution option: on SQLite, begin with BEGIN IMMEDIATE (takes the write lock up front, so
two processes starting at once cannot both run a migration)."""


DRIVER_EXTRAS = {"asyncpg": "postgres"}  # database driver module -> the hubbub extra with it


def require_driver(url: str) -> None:
    """ValueError naming the extra to install when the URL's driver (e.g. asyncpg for
    postgresql+asyncpg://) is missing: a server-only install has SQLite's alone."""
    if not url or url.startswith("sqlite"):
        return
    driver = make_url(url).get_driver_name()
    if driver in DRIVER_EXTRAS and importlib.util.find_spec(driver) is None:
        raise ValueError(f"{make_url(url).get_backend_name()} needs the {driver} driver: "
                         f"pip install 'hubbub[{DRIVER_EXTRAS[driver]}]'")


def make_engine(url: str) -> AsyncEngine:
    if not url.startswith("sqlite"):
        require_driver(url)
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url, connect_args={"timeout": 10})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # WAL: `hubbub token ...` and a running server share the file without blocking reads.
        # busy_timeout first: switching to WAL needs the lock another first start may hold.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")
        _use_wal(cursor)
        cursor.close()
        # pysqlite runs DDL outside its implicit transactions: we BEGIN ourselves (below), so
        # migrations are atomic.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


WAL_SWITCH_WAIT = 10.0


def _use_wal(cursor: Any) -> None:
    """Put the file in WAL mode unless it already is (the mode is stored in the file, so only
    a first start switches). The switch needs the file to itself, and SQLite refuses it with
    "database is locked" at once, without waiting out busy_timeout, while another process's
    first start holds it: try again for up to WAL_SWITCH_WAIT seconds (first starts only)."""
    deadline = time.monotonic() + WAL_SWITCH_WAIT
    while True:
        cursor.execute("PRAGMA journal_mode")
        row = cursor.fetchone()
        if row is not None and str(row[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError, as the adapter raises it
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def hash_secret(secret: str) -> str:
    """Bearer secrets are 256-bit random strings: a plain SHA-256 keeps a database dump from
    revealing usable tokens, and needs no salt or stretching at that entropy."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
