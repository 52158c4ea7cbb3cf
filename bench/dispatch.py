"""Benchmark: the dispatch query's cost must not grow with campaign size (prints medians and a ratio).

Builds one campaign of a small and one of a large size, each in a fresh database (a SQLite temp file;
a PostgreSQL temp schema, dropped afterwards), then times ``SqlStore.due_prospects(limit=100)``.

    python bench/dispatch.py                  # 10k vs 1M prospects, SQLite and PostgreSQL
    python bench/dispatch.py --quick          # 10k vs 100k
    python bench/dispatch.py --backend sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from dialer.storage import CampaignSpec, SqlStore
from dialer.storage.tables import dnc_entries, prospects

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
LIMIT = 100
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
COLUMNS = [c.name for c in prospects.c]
# A campaign some way through: most prospects called already, a few held, in flight or on the DNC list.
STATES = [
    ("pending", 0.55),
    ("completed", 0.25),
    ("failed", 0.08),
    ("held", 0.05),
    ("dnc", 0.05),
    ("dialing", 0.02),
]


def prospect_rows(count: int, campaign_id: UUID, tenant_id: UUID, seed: int) -> Iterator[dict[str, Any]]:
    """``count`` prospects with a mix of states and due times from a week ago to a week ahead."""
    rng = random.Random(seed)
    names, weights = zip(*STATES, strict=True)
    for i in range(count):
        yield {
            "id": UUID(int=rng.getrandbits(128), version=4),
            "campaign_id": campaign_id,
            "tenant_id": tenant_id,
            "name": f"Prospect {i}",
            "phone": f"+1555{i:07d}",
            "custom": {},
            "state": rng.choices(names, weights)[0],
            "next_attempt_at": NOW + timedelta(seconds=rng.randint(-7 * 86400, 7 * 86400)),
            "attempts_busy": 0,
            "attempts_no_answer": 0,
            "attempts_failed": rng.randint(0, 2),
            "total_attempts": rng.randint(0, 3),
            "reschedules": 0,
            "last_outcome": None,
            "hold_reason": None,
            "created_at": NOW - timedelta(days=8),
            "updated_at": NOW - timedelta(days=8),
        }


def load_sqlite(engine: sa.Engine, rows: Iterator[dict[str, Any]]) -> None:
    """executemany in one transaction, values converted by the columns' own SQLAlchemy processors."""
    processors = [
        prospects.c[n].type.dialect_impl(engine.dialect).bind_processor(engine.dialect) for n in COLUMNS
    ]
    sql = f"INSERT INTO prospects ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    converted = (
        tuple(p(row[n]) if p else row[n] for p, n in zip(processors, COLUMNS, strict=True)) for row in rows
    )
    raw = engine.raw_connection()
    try:
        raw.driver_connection.executemany(sql, converted)  # type: ignore[union-attr]
        raw.commit()
    finally:
        raw.close()


def load_postgres(engine: sa.Engine, rows: Iterator[dict[str, Any]]) -> None:
    """COPY, then ANALYZE (autovacuum would, later; the benchmark should not depend on when)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.driver_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY prospects ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([("{}" if n == "custom" else row[n]) for n in COLUMNS])
        cursor.execute("ANALYZE prospects")
        raw.commit()
    finally:
        raw.close()


@contextlib.contextmanager
def fresh_database(backend: str, pg_url: str) -> Iterator[str]:
    """A URL to an empty database that is removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dialer-bench-") as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    schema = f"bench_{random.getrandbits(48):012x}"
    admin = sa.create_engine(pg_url)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            url = sa.make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
            yield url.render_as_string(hide_password=False)
        finally:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


async def build(store: SqlStore, backend: str, size: int) -> UUID:
    """Migrate, then load one campaign of ``size`` prospects and some DNC entries; its id."""
    store.migrate()
    tenant = await store.create_tenant("Bench")
    campaign = await store.create_campaign(tenant, CampaignSpec(name=f"bench {size}"))
    started = time.perf_counter()
    rows = prospect_rows(size, campaign, tenant, seed=size)
    (load_sqlite if backend == "sqlite" else load_postgres)(store.engine, rows)
    with store.engine.begin() as conn:  # every 97th number on the DNC list, so the anti-join has work
        dnc = [
            {"id": UUID(int=i + 1), "tenant_id": tenant, "phone": f"+1555{i:07d}", "created_at": NOW}
            for i in range(0, size, 97)
        ]
        conn.execute(sa.insert(dnc_entries), dnc)
    if backend == "sqlite":
        with store.engine.connect() as conn:  # a long-running database has checkpointed its WAL long ago
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"  {backend:8} {size:>9,} prospects loaded in {time.perf_counter() - started:6.1f} s")
    return campaign


async def run_backend(backend: str, sizes: tuple[int, int], repeats: int, pg_url: str) -> list[float]:
    """Median seconds per due_prospects call for each size, each campaign in its own fresh database.

    Both databases exist at once and the calls alternate in rounds, so a burst of load on the
    machine hits both sizes alike instead of skewing the ratio.
    """
    with contextlib.ExitStack() as stack:
        campaigns: list[tuple[SqlStore, UUID]] = []
        for size in sizes:
            store = SqlStore(stack.enter_context(fresh_database(backend, pg_url)))
            stack.callback(store.dispose)
            campaigns.append((store, await build(store, backend, size)))
        timings: list[list[float]] = [[] for _ in sizes]
        for _ in range(10):  # warm caches and pools
            for store, campaign in campaigns:
                await store.due_prospects(campaign, NOW, LIMIT)
        for _ in range(0, repeats, 20):
            for (store, campaign), samples in zip(campaigns, timings, strict=True):
                for _ in range(20):
                    began = time.perf_counter()
                    due = await store.due_prospects(campaign, NOW, LIMIT)
                    samples.append(time.perf_counter() - began)
                check(due)
        return [statistics.median(samples) for samples in timings]


def check(due: list[Any]) -> None:
    """The benchmark is only worth printing if the query answered correctly."""
    assert len(due) == LIMIT, len(due)
    times = [p.next_attempt_at for p in due]
    assert times == sorted(times) and all(t <= NOW for t in times)
    assert all(p.state == "pending" and int(p.phone[-7:]) % 97 for p in due)


def postgres_reachable(url: str) -> bool:
    engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10k vs 100k instead of 10k vs 1M")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    args = parser.parse_args()
    small, large = 10_000, (100_000 if args.quick else 1_000_000)
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    results: list[tuple[str, float, float]] = []
    for backend in backends:
        if backend == "postgres" and not postgres_reachable(args.postgres_url):
            print(f"  postgres skipped: {args.postgres_url} unreachable")
            continue
        medians = await run_backend(backend, (small, large), args.repeats, args.postgres_url)
        results.append((backend, medians[0], medians[1]))
    print(f"\ndue_prospects(limit={LIMIT}), median of {args.repeats} calls")
    print(f"  {'backend':8} {small:>10,} {large:>12,}   ratio (target <= 2x)")
    worst = 0.0
    for backend, low, high in results:
        ratio = high / low
        worst = max(worst, ratio)
        print(f"  {backend:8} {low * 1000:>8.3f}ms {high * 1000:>10.3f}ms   {ratio:.2f}x")
    return 0 if worst <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
