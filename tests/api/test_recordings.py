"""The recording settings of the API: ``record`` on campaigns and single calls, the tenant's retention."""

from __future__ import annotations

from uuid import UUID

import pytest

from api.seed_examples import CAMPAIGN_CREATE
from dialer.storage import SqlStore
from tests.api.conftest import DID, FakeRuntime, Tenant, assert_error


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_a_campaign_records_when_asked_and_its_plan_says_so(acme: Tenant, store: SqlStore) -> None:
    body = CAMPAIGN_CREATE | {"agent_id": str(acme.agent), "from_numbers": [DID], "record": True}
    created = await acme.client.post("/campaigns", json=body)
    assert created.status_code == 200, created.text
    campaign = created.json()["campaign_id"]
    assert (await acme.client.get(f"/campaigns/{campaign}")).json()["record"] is True
    plan = await store.campaign_plan(UUID(campaign))
    assert plan is not None and plan.record
    patched = await acme.client.patch(f"/campaigns/{campaign}", json={"record": False})
    assert patched.status_code == 200, patched.text
    assert (await acme.client.get(f"/campaigns/{campaign}")).json()["record"] is False
    plan = await store.campaign_plan(UUID(campaign))
    assert plan is not None and not plan.record


async def test_a_campaign_does_not_record_by_default(acme: Tenant) -> None:
    body = CAMPAIGN_CREATE | {"agent_id": str(acme.agent), "from_numbers": [DID]}
    campaign = (await acme.client.post("/campaigns", json=body)).json()["campaign_id"]
    assert (await acme.client.get(f"/campaigns/{campaign}")).json()["record"] is False


async def test_a_single_call_asked_to_record_is_stored_so(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    body = {
        "agent_id": str(acme.agent),
        "type": "sip",
        "sip_data": {"to": "+14155552671", "from_number": DID},
        "record": True,
    }
    created = await acme.client.post("/calls/create", json=body)
    assert created.status_code == 200, created.text
    call = await store.get_attempt(UUID(created.json()["call_id"]))
    assert call is not None and call.record
    detail = (await acme.client.get(f"/calls/{call.id}")).json()
    assert detail["recording"] == {
        "requested": True,
        "url": None,
        "made_at": None,
        "duration_seconds": None,
        "deleted_at": None,
    }
    assert detail["recording_url"] is None
    missing = await acme.client.get(f"/calls/{call.id}/recording")
    assert_error(missing, 404, "RECORDING_NOT_FOUND")
    assert "not ready" in missing.json()["error"]["message"]


async def test_retention_is_per_tenant_and_checked(acme: Tenant, other: Tenant) -> None:
    assert (await acme.client.get("/settings/recordings")).json() == {"retention_days": None}
    done = await acme.client.patch("/settings/recordings", json={"retention_days": 30})
    assert done.status_code == 200 and done.json() == {"retention_days": 30}
    assert (await acme.client.get("/settings/recordings")).json() == {"retention_days": 30}
    assert (await other.client.get("/settings/recordings")).json() == {"retention_days": None}
    for bad in ({"retention_days": -1}, {"retention_days": "a week"}, {}, {"retention_days": 1, "x": 1}):
        assert_error(await acme.client.patch("/settings/recordings", json=bad), 400, "VALIDATION_ERROR")
    cleared = await acme.client.patch("/settings/recordings", json={"retention_days": None})
    assert cleared.json() == {"retention_days": None}
    assert_error(await acme.public.get("/settings/recordings"), 403, "INSUFFICIENT_SCOPE")
