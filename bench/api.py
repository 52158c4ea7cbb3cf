"""Benchmark: REST API latency of ``GET /campaigns/{id}`` and ``POST /campaigns`` against a trivial
FastAPI route served by the same app in the same run (prints p50/p99 and their ratios).

The app runs under uvicorn in a process of its own on loopback (real HTTP), over a fresh database (a
SQLite temp file; a PostgreSQL scratch schema, dropped afterwards). The client sends at a fixed rate
(open loop: a slow answer does not slow the sender, so queueing shows in the latency), cycling through
the three routes so that each sees the same load, for a bounded number of requests. Every answer must
be a 200, else the run fails.

    python bench/api.py                        # SQLite and PostgreSQL, 45 requests/s, 400 per route
    python bench/api.py --backend sqlite --rate 60 --count 300
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not

from bench.dispatch import postgres_reachable
from dialer.storage import CampaignSpec, SqlStore, TrunkSpec

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DID = "+14155550100"
TRIVIAL = "/bench/trivial"
ROUTES = ("trivial", "GET /campaigns/{id}", "POST /campaigns")
WARMUP = 30  # requests per route before measuring (connections, caches, the first query plans)


@dataclass(frozen=True)
class Seeded:
    key: str
    agent: str
    campaign: str


async def seed(url: str) -> Seeded:
    """Migrate, then one tenant with a secret key, a trunk, an agent, a DID and a 20-prospect campaign."""
    store = SqlStore(url)
    try:
        store.migrate()
        tenant = await store.create_tenant("Bench", default_region="US")
        _key_id, key = await store.create_api_key(tenant)
        trunk = await store.create_trunk(tenant, TrunkSpec(name="main", host="sip.example.net"))
        agent = await store.create_agent(tenant, "Receptionist", "wss://worker.example/stream")
        did = await store.import_number(tenant, DID, trunk, country="US", agent_id=agent)
        campaign = await store.create_campaign(tenant, CampaignSpec(name="Read me", agent_id=agent))
        await store.allocate_dids(campaign, [did])
        await store.add_prospects(campaign, [(f"P{i}", f"+1415555{i:04d}", {}) for i in range(20)])
        return Seeded(key, str(agent), str(campaign))
    finally:
        store.dispose()


def serve(url: str, port: int) -> None:
    """The server process: the real app (no rate limits) plus one route that does nothing."""
    import uvicorn

    from api.app import create_app
    from api.ratelimit import Limit, RateLimits

    unlimited = Limit(10**9, 10**9)
    app = create_app(SqlStore(url), limits=RateLimits(general=unlimited, call_creation=unlimited))

    @app.get(TRIVIAL, include_in_schema=False)
    async def trivial() -> dict[str, bool]:
        return {"ok": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def fresh_database(backend: str, pg_url: str) -> Iterator[str]:
    """A URL to an empty database that is removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dialer-bench-api-") as folder:
            yield f"sqlite:///{folder}/bench.db"
        return
    from tests.conftest import postgres_schema

    with postgres_schema(pg_url, "bench_api") as url:
        yield url


@contextlib.contextmanager
def server(url: str) -> Iterator[str]:
    """The API in its own process (so the client's work never shares its interpreter); its base URL."""
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(url, port), daemon=True)
    process.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(10)


async def wait_up(client: httpx.AsyncClient, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(TRIVIAL)).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise SystemExit("the API server did not come up")


def campaign_body(seeded: Seeded, n: int) -> dict[str, Any]:
    """The seed's POST /campaigns body, with two candidates, our agent and our DID."""
    return {
        "name": f"Bench {n}",
        "agent_id": seeded.agent,
        "candidates": [
            {"name": "John Doe", "phone": "+14155552671"},
            {"name": "Jane Roe", "phone": "+14155552672", "plan": "gold"},
        ],
        "provider": "main",
        "timezone": "America/Los_Angeles",
        "call_hours_start": "09:00:00",
        "call_hours_end": "18:00:00",
        "call_days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
        "max_concurrent_calls": 5,
        "call_timeout_seconds": 60,
        "start_campaign": False,
        "from_numbers": [DID],
    }


async def request(client: httpx.AsyncClient, route: str, seeded: Seeded, n: int) -> httpx.Response:
    if route == "trivial":
        return await client.get(TRIVIAL)
    if route == "GET /campaigns/{id}":
        return await client.get(f"/campaigns/{seeded.campaign}")
    return await client.post("/campaigns", json=campaign_body(seeded, n))


async def run_at_rate(
    client: httpx.AsyncClient, seeded: Seeded, rate: float, per_route: int
) -> dict[str, list[float]]:
    """``per_route`` requests to each route, one every ``1/rate`` s in turn; seconds per answer."""
    samples: dict[str, list[float]] = {route: [] for route in ROUTES}
    failures: list[str] = []

    async def one(route: str, n: int) -> None:
        began = time.perf_counter()
        response = await request(client, route, seeded, n)
        elapsed = time.perf_counter() - began
        if response.status_code != 200:
            failures.append(f"{route}: HTTP {response.status_code} {response.text[:200]}")
        samples[route].append(elapsed)

    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    for n in range(per_route * len(ROUTES)):
        due = start + n / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(ROUTES[n % len(ROUTES)], n)))
    await asyncio.gather(*tasks)
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return samples


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if q < 100 else max(values)


async def run_backend(backend: str, pg_url: str, rate: float, count: int) -> dict[str, tuple[float, float]]:
    """p50 and p99 in seconds per route, on one backend."""
    with fresh_database(backend, pg_url) as url:
        seeded = await seed(url)
        with server(url) as base:
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            headers = {"X-API-Key": seeded.key}
            async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as client:
                await wait_up(client)
                await run_at_rate(client, seeded, rate, WARMUP)
                samples = await run_at_rate(client, seeded, rate, count)
    return {route: (percentile(s, 50), percentile(s, 99)) for route, s in samples.items()}


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--rate", type=float, default=45.0, help="requests per second, all routes together")
    parser.add_argument("--count", type=int, default=400, help="measured requests per route")
    parser.add_argument("--postgres-url", default=DEFAULT_PG)
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    print(f"{args.count} requests per route at {args.rate:g} requests/s (each route {args.rate / 3:g}/s)")
    for backend in backends:
        if backend == "postgres" and not postgres_reachable(args.postgres_url):
            print(f"  postgres skipped: {args.postgres_url} unreachable")
            continue
        results = await run_backend(backend, args.postgres_url, args.rate, args.count)
        base50, base99 = results["trivial"]
        print(f"\n{backend}")
        print(f"  {'route':22} {'p50':>9} {'p99':>9}   p50 ratio  p99 ratio (vs trivial route)")
        for route, (p50, p99) in results.items():
            print(
                f"  {route:22} {p50 * 1000:7.2f}ms {p99 * 1000:7.2f}ms"
                f"   {p50 / base50:8.2f}x {p99 / base99:9.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
