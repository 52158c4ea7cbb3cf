"""Engines for the SQL store (SQLite or PostgreSQL) and the programmatic Alembic upgrade."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Self, cast

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

_HERE = Path(__file__).resolve().parent
# Any constant works; it only has to be the same for every node migrating the same database.
_MIGRATION_LOCK = 0x5D1A1E12


def normalise_url(url: str) -> URL:
    """Parse ``url``; a bare ``postgresql://`` means psycopg 3 (the driver we ship), not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or None (another backend, or in memory)."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the per-backend settings the store relies on."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite":
        # pre_ping: a PostgreSQL restart must not turn into errors on the next dispatch tick.
        return sa.create_engine(parsed, pool_pre_ping=True)
    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    path = sqlite_file(parsed)
    if path is None:
        # One shared connection, or every worker thread would see its own empty in-memory database.
        kwargs["poolclass"] = StaticPool
    else:
        kwargs["connect_args"]["factory"] = _queued_writers(path)
    engine = sa.create_engine(parsed, **kwargs)
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers (API, reports) do not block the dispatcher's writes, nor the other way round.
    cursor.execute("PRAGMA journal_mode=WAL")
    # Writers queue for the lock instead of failing at once with "database is locked".
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def migrate(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to the newest schema; a no-op when it is current."""
    path = sqlite_file(engine.url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several nodes starting at once: one migrates, the others wait and then find it done.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


# SQLite has one writer at a time. A writer that finds the lock taken sleeps and retries on SQLite's
# busy ladder (1, 2, 5, 10, 15, 20, 25 ... ms), so under a few concurrent writes (a call's outcome,
# the next call's attempt row) a write waited up to tens of ms after the lock was free: the refill
# of a line waited for it. Writers of this process queue on a lock of their own, taken when a
# transaction's first write statement runs (where SQLite takes its write lock) and released when it
# ends: the next writer starts at once. Only a speed-up: SQLite's own locking still decides, and
# writers of other processes still wait on busy_timeout.
_WRITE_QUEUES: dict[Path, threading.Lock] = {}
_WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE", "REPLACE")
_QUEUE_WAIT = 10.0  # as busy_timeout: a writer never waits on the queue longer than it would on SQLite


class _QueuedCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        cast(_QueuedConnection, self.connection).queue(sql)
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> Self:
        cast(_QueuedConnection, self.connection).queue(sql)
        return super().executemany(sql, parameters)


class _QueuedConnection(sqlite3.Connection):
    """A connection that takes its database's writer lock (``write_queue``, set per file by a subclass)."""

    write_queue: threading.Lock
    holds = False

    def queue(self, sql: str) -> None:
        if not self.holds and sql.lstrip()[:7].upper().startswith(_WRITE_STATEMENTS):
            self.holds = self.write_queue.acquire(timeout=_QUEUE_WAIT)

    def leave(self) -> None:
        if self.holds:
            self.holds = False
            self.write_queue.release()

    def cursor(self, factory: Any = _QueuedCursor) -> Any:
        return super().cursor(factory)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave()


def _queued_writers(path: Path) -> type[_QueuedConnection]:
    """The connection class ``sqlite3.connect`` makes for ``path``: its writers share one queue."""
    lock = _WRITE_QUEUES.setdefault(path.resolve(), threading.Lock())
    return type("QueuedConnection", (_QueuedConnection,), {"write_queue": lock})
