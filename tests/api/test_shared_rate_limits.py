"""Rate limits shared through Redis: two API replicas spend from one bucket per key and route."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest

from api.app import create_app
from api.ratelimit import Limit, RateLimits
from dialer.coordination import make_coordinator
from dialer.ports import Coordinator
from dialer.storage import SqlStore
from tests.api.conftest import FakeRuntime, Tenant, assert_error, serve

pytestmark = pytest.mark.redis

STRICT = RateLimits(general=Limit(1, 3), call_creation=Limit(1, 1))


@pytest.fixture
async def coordinator(redis_url: str) -> AsyncIterator[Coordinator]:
    found = make_coordinator(redis_url, namespace=f"test-{uuid4().hex[:12]}")
    try:
        yield found
    finally:
        await found.close()


async def test_two_replicas_share_one_bucket(acme: Tenant, store: SqlStore, coordinator: Coordinator) -> None:
    replicas = [
        serve(create_app(store, runtime=FakeRuntime(), limits=STRICT, coordinator=coordinator))
        for _ in range(2)
    ]
    urls = [await anext(r) for r in replicas]
    try:
        async with (
            httpx.AsyncClient(base_url=urls[0], headers={"X-API-Key": acme.sk}) as first,
            httpx.AsyncClient(base_url=urls[1], headers={"X-API-Key": acme.sk}) as second,
        ):
            codes = [(await c.get("/campaigns")).status_code for c in (first, second, first)]
            assert codes == [200, 200, 200]  # burst 3, spent across both replicas
            limited = await second.get("/campaigns")
            assert_error(limited, 429, "RATE_LIMITED")
            assert 1 <= int(limited.headers["Retry-After"]) <= 60
            assert_error(await first.get("/campaigns"), 429, "RATE_LIMITED")
            assert (await second.get("/phone-numbers")).status_code == 200  # its own bucket
    finally:
        for replica in replicas:
            await replica.aclose()
