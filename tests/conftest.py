"""Shared fixtures: the external services the contract suites run against."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import uuid4

import pytest
import redis

from tests.system_tools import required


def _services_required() -> bool:
    """Under CI (``CI`` or DIALER_TEST_REQUIRE_SERVICES=1) a missing server fails the run, not skips it."""
    return required()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis (DIALER_TEST_REDIS_URL); tests use their own key namespace."""
    url = os.environ.get("DIALER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at {url} unreachable: {exc}"
        if _services_required():
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of a reachable PostgreSQL (DIALER_TEST_POSTGRES_URL); tests make their own schema."""
    import sqlalchemy as sa

    url = os.environ.get("DIALER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        message = f"PostgreSQL at {url} unreachable: {exc}"
        if _services_required():
            pytest.fail(message)
        pytest.skip(message)
    finally:
        engine.dispose()
    return url


@contextmanager
def postgres_schema(postgres_url: str, prefix: str = "test") -> Iterator[str]:
    """A URL whose connections use a fresh PostgreSQL schema, dropped (with everything in it) after."""
    import sqlalchemy as sa

    base = sa.make_url(postgres_url)
    schema = f"{prefix}_{uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
