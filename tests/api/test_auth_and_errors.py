"""Keys, scopes, tenant isolation, the one error body, rate limits, /health and /ready."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.ratelimit import Limit, RateLimits, TokenBuckets
from dialer.storage import SqlStore
from tests.api.conftest import DID, FakeRuntime, Tenant, assert_error, serve
from tests.api.test_campaigns import seed_body


async def test_missing_unknown_and_revoked_keys(acme: Tenant, store: SqlStore) -> None:
    assert_error(await acme.anonymous.get("/campaigns"), 401, "UNAUTHORIZED")
    assert_error(
        await acme.anonymous.get("/campaigns", headers={"Authorization": "Basic abc"}), 401, "UNAUTHORIZED"
    )
    made_up = "sk_live_" + "0" * 48
    assert_error(
        await acme.anonymous.get("/campaigns", headers={"X-API-Key": made_up}), 401, "INVALID_API_KEY"
    )
    assert (await acme.client.get("/campaigns")).status_code == 200
    assert (
        await acme.anonymous.get("/campaigns", headers={"Authorization": f"Bearer {acme.sk}"})
    ).status_code == 200

    assert await store.revoke_api_key(acme.sk_id)
    assert_error(await acme.client.get("/campaigns"), 401, "INVALID_API_KEY")  # at once, no cache


async def test_keys_are_listed_minted_and_revoked_through_the_api(
    acme: Tenant, other: Tenant, store: SqlStore
) -> None:
    minted = await acme.client.post("/keys", json={"publishable": False})
    assert minted.status_code == 201
    body = minted.json()
    assert body["key"].startswith("sk_live_") and body["scope"] == "secret"
    assert body["key"].startswith(body["prefix"])
    with store.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT key_hash, prefix FROM api_keys")).all()
    assert all(body["key"] not in (row.key_hash, row.prefix) for row in stored)  # never in clear

    fresh = httpx.AsyncClient(base_url=str(acme.client.base_url), headers={"X-API-Key": body["key"]})
    async with fresh:
        assert (await fresh.get("/campaigns")).status_code == 200
        listed = (await acme.client.get("/keys")).json()["data"]
        assert body["id"] in {k["id"] for k in listed} and "key" not in listed[0]

        assert_error(await other.client.post(f"/keys/{body['id']}/revoke"), 404, "KEY_NOT_FOUND")
        assert_error(await acme.client.post("/keys/nope/revoke"), 400, "VALIDATION_ERROR")
        revoked = await acme.client.post(f"/keys/{body['id']}/revoke")
        assert revoked.json() == {"success": True, "id": body["id"], "revoked": True}
        assert_error(await fresh.get("/campaigns"), 401, "INVALID_API_KEY")

    pk = (await acme.client.post("/keys", json={"publishable": True})).json()
    assert pk["key"].startswith("pk_live_") and pk["scope"] == "publishable"


async def test_publishable_keys_read_but_do_not_dial_or_administer(acme: Tenant) -> None:
    assert (await acme.public.get("/campaigns")).status_code == 200
    assert (await acme.public.get("/phone-numbers")).status_code == 200
    assert (await acme.public.get("/agents")).status_code == 200
    for method, path in (
        ("GET", "/calls"),
        ("GET", f"/calls/{uuid4()}"),
        ("POST", "/campaigns"),
        ("POST", "/keys"),
        ("GET", "/keys"),
        ("GET", "/dnc"),
        ("GET", "/trunks"),
        ("POST", f"/campaigns/{uuid4()}/start"),
    ):
        assert_error(await acme.public.request(method, path, json={}), 403, "INSUFFICIENT_SCOPE")


async def test_framework_errors_use_the_error_body(acme: Tenant) -> None:
    assert_error(await acme.client.get("/no/such/route"), 404, "NOT_FOUND")
    assert_error(await acme.client.delete("/campaigns"), 405, "METHOD_NOT_ALLOWED")
    response = await acme.client.post(
        "/campaigns", content=b'{"name": "x" "agent_id": 1}', headers={"Content-Type": "application/json"}
    )
    error = assert_error(response, 400, "VALIDATION_ERROR")
    assert error["message"] == "request body is not valid JSON: Expecting ',' delimiter at line 1 column 14"
    assert error["details"] == [{"field": "", "reason": error["message"]}]
    campaign = (await acme.client.post("/campaigns", json=seed_body(acme.agent))).json()["campaign_id"]
    response = await acme.client.post(
        f"/campaigns/{campaign}/prospects", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON: Expecting property name" in str(
        assert_error(response, 400, "VALIDATION_ERROR")["message"]
    )


async def test_unexpected_errors_are_500_without_details(acme: Tenant, store: SqlStore) -> None:
    call = await store.create_call(acme.id, "+14155550100", "+14155552671", agent_id=acme.agent)

    class Broken(FakeRuntime):
        async def hangup_call(self, tenant_id: object, call_id: object) -> None:
            raise RuntimeError("secret internals /etc/passwd")

    async for url in serve(create_app(store, runtime=Broken())):
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": acme.sk}) as client:
            response = await client.post(f"/calls/{call}/hangup")
    error = assert_error(response, 500, "INTERNAL_SERVER_ERROR")
    assert "passwd" not in response.text and "Traceback" not in response.text and "details" not in error


async def test_a_database_outage_is_503_database_unavailable(acme: Tenant) -> None:
    """Nothing listens where the store points (an outage): a clear 503 to retry, not a 500."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = SqlStore(f"postgresql+psycopg://postgres@127.0.0.1:{port}/test?connect_timeout=2")
    try:
        async for url in serve(create_app(down, runtime=FakeRuntime())):
            async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": acme.sk}) as client:
                response = await client.get("/campaigns")
    finally:
        down.dispose()
    error = assert_error(response, 503, "DATABASE_UNAVAILABLE")
    assert "retry" in error["message"] and str(port) not in response.text


@pytest.fixture
async def strict_url(store: SqlStore) -> AsyncIterator[str]:
    """An app with tiny allowances: two requests per route, one call creation, near-zero refill."""
    limits = RateLimits(general=Limit(1, 2), call_creation=Limit(1, 1))
    async for url in serve(create_app(store, runtime=FakeRuntime(), limits=limits)):
        yield url


async def test_rate_limits_per_key_and_route(acme: Tenant, other: Tenant, strict_url: str) -> None:
    async with (
        httpx.AsyncClient(base_url=strict_url, headers={"X-API-Key": acme.sk}) as client,
        httpx.AsyncClient(base_url=strict_url, headers={"X-API-Key": other.sk}) as other_client,
    ):
        assert [(await client.get("/campaigns")).status_code for _ in range(2)] == [200, 200]
        limited = await client.get("/campaigns")
        assert_error(limited, 429, "RATE_LIMITED")
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert (await client.get("/phone-numbers")).status_code == 200  # its own bucket
        assert (await other_client.get("/campaigns")).status_code == 200  # another key's bucket
        body = {
            "agent_id": str(acme.agent),
            "type": "sip",
            "sip_data": {"to": "+14155552671", "from_number": DID},
        }
        assert (await client.post("/calls/create", json=body)).status_code == 200
        assert_error(await client.post("/calls/create", json=body), 429, "RATE_LIMITED")
        for _ in range(5):  # health is never limited
            assert (await client.get("/health")).status_code == 200


def test_token_bucket_refills_with_time() -> None:
    now = [0.0]
    buckets = TokenBuckets(clock=lambda: now[0])
    limit = Limit(per_minute=60, burst=2)
    assert [buckets.take("k", limit) for _ in range(2)] == [0.0, 0.0]
    assert buckets.take("k", limit) == pytest.approx(1.0)
    now[0] = 0.5
    assert buckets.take("k", limit) == pytest.approx(0.5)
    now[0] = 1.0
    assert buckets.take("k", limit) == 0.0
    assert buckets.take("other", limit) == 0.0


async def test_health_and_ready(acme: Tenant, store: SqlStore, runtime: FakeRuntime) -> None:
    health = (await acme.anonymous.get("/health")).json()
    assert health["status"] == "healthy" and health["version"]
    assert set(health["components"]) == {"database", "sip_workers"}
    assert health["components"]["database"]["healthy"] is True
    ready = await acme.anonymous.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"

    runtime.fail_health = True
    assert (await acme.anonymous.get("/health")).json()["status"] == "unhealthy"
    assert_error(await acme.anonymous.get("/ready"), 503, "NOT_READY")

    broken = SqlStore("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    async for url in serve(create_app(broken)):
        async with httpx.AsyncClient(base_url=url) as client:
            body = (await client.get("/health")).json()
            assert body["status"] == "unhealthy" and body["components"]["database"]["healthy"] is False
            assert_error(await client.get("/ready"), 503, "NOT_READY")
    broken.dispose()


async def test_openapi_and_docs_are_served(acme: Tenant) -> None:
    spec = (await acme.anonymous.get("/openapi.json")).json()
    for path in (
        "/campaigns",
        "/campaigns/{id}/schedule-start",
        "/calls/create",
        "/phone-numbers/import",
        "/ready",
    ):
        assert path in spec["paths"]
    upload = spec["paths"]["/campaigns/{id}/prospects"]["post"]["requestBody"]["content"]
    assert set(upload) == {"application/json", "text/csv", "multipart/form-data"}
    docs = await acme.anonymous.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
