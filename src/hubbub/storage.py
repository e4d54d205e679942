"""Database plumbing shared by the token store and apps: async engines and secret hashing.

SQLite (the default, a file in the data dir) or PostgreSQL by URL, through SQLAlchemy 2 async.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_IMMEDIATE = "hubbub_sqlite_immediate"
"""Execution option: on SQLite, begin with BEGIN IMMEDIATE (takes the write lock up front, so
two processes starting at once cannot both run a migration)."""


def make_engine(url: str) -> AsyncEngine:
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_pre_ping=True)
    engine = create_async_engine(url, connect_args={"timeout": 10})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # WAL: `hubbub token ...` and a running server share the file without blocking reads.
        # busy_timeout first: switching to WAL needs the lock another first start may hold.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()
        # pysqlite runs DDL outside its implicit transactions: we BEGIN ourselves (below), so
        # migrations are atomic.
        dbapi_connection.isolation_level = None

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get(SQLITE_IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def hash_secret(secret: str) -> str:
    """Bearer secrets are 256-bit random strings: a plain SHA-256 keeps a database dump from
    revealing usable tokens, and needs no salt or stretching at that entropy."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
