"""The engine-owning base of the SQL store, and the decorator that runs its sync bodies off the loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from dialer.ports import StorageUnavailable
from dialer.storage.engine import make_engine, migrate

P = ParamSpec("P")
R = TypeVar("R")


def threaded(fn: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Make a blocking method awaitable by running it in a worker thread.

    Storage is sync SQLAlchemy underneath (one code path for SQLite and PostgreSQL); the thread keeps
    the event loop, and so SIP event handling, responsive while a query runs.
    """

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            # Connection refused/reset, server shutting down, SQLite busy: nothing was written (the
            # transaction did not commit), and the same call may succeed later.
            raise StorageUnavailable(_first_line(exc)) from exc

    return run


def _first_line(exc: Exception) -> str:
    """The driver's message without the SQL and parameters SQLAlchemy appends (they may hold numbers)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def utcnow() -> datetime:
    """Wall-clock time for audit columns (created_at and the like); the dialing logic passes its own."""
    return datetime.now(UTC)


def insert_ignoring_duplicates(conn: Connection, table: sa.Table) -> sa.Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the connection's dialect (both spell it the same)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def require_owned(conn: Connection, table: sa.Table, row_id: UUID, tenant_id: UUID) -> None:
    """LookupError unless the row exists and is the tenant's: no tenant uses another's trunk or agent."""
    owned = sa.select(table.c.id).where(table.c.id == row_id, table.c.tenant_id == tenant_id)
    if conn.scalar(owned) is None:
        raise LookupError(f"{table.name} {row_id} not found for this tenant")


class SqlBase:
    """Owns the engine: one per store, created from the URL, nothing connected until first use."""

    def __init__(self, url: str) -> None:
        self._engine = make_engine(url)

    @property
    def engine(self) -> sa.Engine:
        """The underlying engine (benchmarks and tests inspect plans through it)."""
        return self._engine

    @threaded
    def ping(self) -> None:
        """Round-trip to the database (health checks); raises when it cannot be reached."""
        with self._engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def migrate(self) -> None:
        """Bring the schema up to date (Alembic ``upgrade head``); safe to call at every start."""
        migrate(self._engine)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()
