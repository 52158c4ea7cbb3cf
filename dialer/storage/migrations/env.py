"""Alembic environment: migrates the connection SqlStore.migrate hands in, or ``-x url=...`` by hand."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from dialer.storage.engine import make_engine
from dialer.storage.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    # Batch mode on SQLite: later migrations that ALTER columns need table rebuilds there.
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("DIALER_DATABASE_URL")
    if not url:
        raise SystemExit("give the database URL: alembic -x url=... or DIALER_DATABASE_URL")
    return url


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()
