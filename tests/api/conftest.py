"""Fixtures for the API suite: a real uvicorn server on a free port around create_app, and a tenant."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.ratelimit import Limit, RateLimits
from api.runtime import CallRejected
from dialer.storage import SqlStore, TrunkSpec
from tests.conftest import postgres_schema

DID = "+14155550100"
DID_2 = "+14155550101"
# Generous: the suite makes many requests per key; the rate-limit tests build their own app.
ROOMY = RateLimits(general=Limit(6000, 1000), call_creation=Limit(6000, 1000))


@dataclass
class FakeRuntime:
    """Records what the API asked of the running dialer; ``reject`` makes it refuse like the gateway."""

    reject: str | None = None
    fail_health: bool = False
    changed: int = 0
    placed: list[tuple[UUID, UUID]] = field(default_factory=list)
    transfers: list[tuple[UUID, UUID, str, str]] = field(default_factory=list)
    hangups: list[tuple[UUID, UUID]] = field(default_factory=list)

    def campaigns_changed(self) -> None:
        self.changed += 1

    async def place_call(self, tenant_id: UUID, call_id: UUID) -> None:
        if self.reject:
            raise CallRejected(self.reject)
        self.placed.append((tenant_id, call_id))

    async def transfer_call(self, tenant_id: UUID, call_id: UUID, to_number: str, mode: str) -> None:
        if self.reject:
            raise CallRejected(self.reject)
        self.transfers.append((tenant_id, call_id, to_number, mode))

    async def hangup_call(self, tenant_id: UUID, call_id: UUID) -> None:
        if self.reject:
            raise CallRejected(self.reject)
        self.hangups.append((tenant_id, call_id))

    async def health(self) -> dict[str, dict[str, object]]:
        if self.fail_health:
            raise RuntimeError("runtime down")
        return {"sip_workers": {"healthy": True, "latency_ms": 0.0, "workers": 1}}


@pytest.fixture
def backend() -> str:
    """Which database the API runs on; modules that also run on PostgreSQL override this."""
    return "sqlite"


@pytest.fixture
def store_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'api.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_url"), "test_api") as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    store = SqlStore(store_url)
    store.migrate()
    try:
        yield store
    finally:
        store.dispose()


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


async def serve(app: object) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 and a free port until the generator is closed."""
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=0,
        log_config=None,
        lifespan="off",
        ws="none",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def base_url(store: SqlStore, runtime: FakeRuntime) -> AsyncIterator[str]:
    async for url in serve(create_app(store, runtime=runtime, limits=ROOMY)):
        yield url


@dataclass
class Tenant:
    """A tenant with a secret and a publishable key, a trunk, an agent and two DIDs."""

    id: UUID
    sk: str
    pk: str
    sk_id: UUID
    trunk: UUID
    agent: UUID
    did: UUID
    did_2: UUID
    client: httpx.AsyncClient  # sends the secret key
    public: httpx.AsyncClient  # sends the publishable key
    anonymous: httpx.AsyncClient  # sends no key


async def make_tenant(store: SqlStore, base_url: str, name: str = "Acme") -> AsyncIterator[Tenant]:
    tenant = await store.create_tenant(name, default_region="US")
    sk_id, sk = await store.create_api_key(tenant)
    _pk_id, pk = await store.create_api_key(tenant, publishable=True)
    trunk = await store.create_trunk(tenant, TrunkSpec(name="main", host="sip.example.net"))
    agent = await store.create_agent(tenant, "Receptionist", "wss://worker.example/stream")
    did = await store.import_number(tenant, DID, trunk, country="US", agent_id=agent, max_concurrent_calls=2)
    did_2 = await store.import_number(tenant, DID_2, trunk, country="US")
    async with (
        httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": sk}) as client,
        httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {pk}"}) as public,
        httpx.AsyncClient(base_url=base_url) as anonymous,
    ):
        yield Tenant(tenant, sk, pk, sk_id, trunk, agent, did, did_2, client, public, anonymous)


@pytest.fixture
async def acme(store: SqlStore, base_url: str) -> AsyncIterator[Tenant]:
    async for tenant in make_tenant(store, base_url, "Acme"):
        yield tenant


@pytest.fixture
async def other(store: SqlStore, base_url: str) -> AsyncIterator[Tenant]:
    """A second tenant, to show that nothing of Acme's is visible to it."""
    async for tenant in make_tenant(store, base_url, "Other"):
        yield tenant


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    """The response is the seed's error body with this status and code; returns the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    error: dict[str, object] = body["error"]
    return error
