"""Campaigns over real HTTP, on SQLite and PostgreSQL: the seed's create, read, list and lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from api.seed_examples import CAMPAIGN_CREATE
from dialer.domain import (
    AttemptResult,
    CampaignStatus,
    NewAttempt,
    Prospect,
    ProspectState,
    ProspectUpdate,
)
from dialer.outcome import Outcome
from dialer.storage import SqlStore
from tests.api.conftest import DID, DID_2, FakeRuntime, Tenant, assert_error


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


PENDING = ProspectState.PENDING


def seed_body(agent: UUID, **changes: Any) -> dict[str, Any]:
    """The seed's example body (api/seed_examples.py) with our agent, fictional numbers and no start."""
    body: dict[str, Any] = CAMPAIGN_CREATE | {
        "agent_id": str(agent),
        "candidates": [
            {"name": "John Doe", "phone": "+14155552671"},
            {"name": "Jane Roe", "phone": "(415) 555-2672", "plan": "gold"},
        ],
        "start_campaign": False,
        "from_numbers": [DID, DID_2],
        "use_vanira_managed": False,
    }
    return body | changes


async def test_create_read_and_list_with_the_seed_body(acme: Tenant, store: SqlStore) -> None:
    created = await acme.client.post("/campaigns", json=seed_body(acme.agent))
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["success"] is True and body["started"] is False
    assert body["total_prospects"] == 2 and body["duplicates"] == 0
    campaign_id = UUID(body["campaign_id"])

    record = await store.get_campaign(campaign_id)
    assert record is not None and record.tenant_id == acme.id
    assert record.spec.timezone == "Asia/Kolkata" and record.spec.provider == "vonage"
    assert record.spec.max_retries_busy == 2 and record.status is CampaignStatus.DRAFT

    got = (await acme.client.get(f"/campaigns/{campaign_id}")).json()
    assert got["id"] == str(campaign_id) and got["status"] == "draft"
    assert got["total_prospects"] == 2 and got["pending_prospects"] == 2 and got["active_prospects"] == 0
    assert [d["number"] for d in got["allocated_dids"]] == [DID, DID_2]
    assert {d["did_id"] for d in got["allocated_dids"]} == {str(acme.did), str(acme.did_2)}
    assert got["allocated_dids"][0]["max_concurrent_calls"] == 2
    assert got["call_days"][0] == "Monday" and got["call_hours_start"] == "09:00:00"

    # National format read in the tenant's region; extra candidate fields kept as custom data.
    prospects = (await acme.client.get(f"/campaigns/{campaign_id}/prospects")).json()
    by_phone = {p["phone"]: p for p in prospects["data"]}
    assert set(by_phone) == {"+14155552671", "+14155552672"}
    assert by_phone["+14155552672"]["custom"] == {"plan": "gold"}

    listed = (await acme.client.get("/campaigns")).json()["data"]
    assert [c["id"] for c in listed] == [str(campaign_id)]
    assert listed[0]["total_prospects"] == 2 and listed[0]["client_id"] == str(acme.id)
    assert listed[0]["successful_calls"] == 0 and listed[0]["failed_calls"] == 0


async def test_start_campaign_true_starts_and_wakes_the_dispatcher(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    body = seed_body(acme.agent, start_campaign=True, from_numbers=[], use_vanira_managed=True)
    created = (await acme.client.post("/campaigns", json=body)).json()
    assert created["started"] is True
    record = await store.get_campaign(UUID(created["campaign_id"]))
    assert record is not None and record.status is CampaignStatus.ACTIVE
    assert record.spec.use_vanira_managed and runtime.changed == 1


async def test_lifecycle_and_impossible_transitions(acme: Tenant, runtime: FakeRuntime) -> None:
    campaign = (await acme.client.post("/campaigns", json=seed_body(acme.agent))).json()["campaign_id"]
    base = f"/campaigns/{campaign}"

    assert_error(await acme.client.post(f"{base}/pause"), 409, "INVALID_CAMPAIGN_TRANSITION")
    assert_error(await acme.client.post(f"{base}/resume"), 409, "INVALID_CAMPAIGN_TRANSITION")

    started = await acme.client.post(f"{base}/start")
    assert started.status_code == 200
    assert started.json() == {
        "success": True,
        "campaign_id": campaign,
        "status": "active",
        "message": "Campaign started successfully",
        "extra_data": {"id": campaign, "status": "active"},
    }
    assert runtime.changed == 1
    assert_error(await acme.client.post(f"{base}/start"), 409, "INVALID_CAMPAIGN_TRANSITION")

    paused = (await acme.client.post(f"{base}/pause")).json()
    assert paused["status"] == "paused" and paused["message"] == "Campaign paused successfully"
    error = assert_error(await acme.client.post(f"{base}/pause"), 409, "INVALID_CAMPAIGN_TRANSITION")
    assert "paused" in str(error["message"])

    resumed = (await acme.client.post(f"{base}/resume")).json()
    assert resumed["status"] == "active" and runtime.changed == 2
    assert (await acme.client.get(base)).json()["status"] == "active"


async def test_completed_campaign_cannot_start(acme: Tenant, store: SqlStore) -> None:
    campaign = (await acme.client.post("/campaigns", json=seed_body(acme.agent))).json()["campaign_id"]
    await store.set_campaign_status(UUID(campaign), CampaignStatus.COMPLETED)
    for verb in ("start", "pause", "resume"):
        assert_error(
            await acme.client.post(f"/campaigns/{campaign}/{verb}"), 409, "INVALID_CAMPAIGN_TRANSITION"
        )
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = await acme.client.post(
        f"/campaigns/{campaign}/schedule-start", json={"scheduled_start_time": future}
    )
    assert_error(response, 409, "INVALID_CAMPAIGN_TRANSITION")


async def test_schedule_start(acme: Tenant, store: SqlStore) -> None:
    campaign = (await acme.client.post("/campaigns", json=seed_body(acme.agent))).json()["campaign_id"]
    url = f"/campaigns/{campaign}/schedule-start"
    when = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)
    scheduled = await acme.client.post(
        url, json={"scheduled_start_time": when.isoformat().replace("+00:00", "Z")}
    )
    assert scheduled.status_code == 200, scheduled.text
    body = scheduled.json()
    assert body["status"] == "scheduled" and body["extra_data"] == {"id": campaign, "status": "scheduled"}
    assert datetime.fromisoformat(body["scheduled_start_time"]) == when
    record = await store.get_campaign(UUID(campaign))
    assert record is not None and record.status is CampaignStatus.SCHEDULED
    assert record.scheduled_start_time == when

    for bad in ({}, {"scheduled_start_time": "  "}, {"scheduled_start_time": "next tuesday"}):
        assert_error(await acme.client.post(url, json=bad), 400, "VALIDATION_ERROR")
    naive = (datetime.now(UTC) + timedelta(hours=3)).replace(tzinfo=None).isoformat()
    assert_error(await acme.client.post(url, json={"scheduled_start_time": naive}), 400, "VALIDATION_ERROR")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert_error(await acme.client.post(url, json={"scheduled_start_time": past}), 400, "VALIDATION_ERROR")
    # A scheduled campaign may still be started by hand.
    assert (await acme.client.post(f"/campaigns/{campaign}/start")).json()["status"] == "active"


async def test_create_errors_follow_the_seed(acme: Tenant, store: SqlStore) -> None:
    too_many = [{"name": f"P{i}", "phone": f"+1415555{2600 + i:04d}"} for i in range(51)]
    assert_error(
        await acme.client.post("/campaigns", json=seed_body(acme.agent, candidates=too_many)),
        400,
        "VALIDATION_ERROR",
    )
    no_ids = seed_body(acme.agent, from_numbers=[], use_vanira_managed=False)
    assert_error(await acme.client.post("/campaigns", json=no_ids), 400, "VALIDATION_ERROR")
    for missing in ("agent_id", "name", "candidates"):
        body = seed_body(acme.agent)
        del body[missing]
        error = assert_error(await acme.client.post("/campaigns", json=body), 400, "VALIDATION_ERROR")
        assert missing in str(error["message"])
    assert_error(
        await acme.client.post("/campaigns", json=seed_body(acme.agent, agent_id="not-a-uuid")),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(await acme.client.post("/campaigns", json=seed_body(uuid4())), 404, "AGENT_NOT_FOUND")
    assert_error(
        await acme.client.post("/campaigns", json=seed_body(acme.agent, timezone="Mars/Olympus")),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await acme.client.post("/campaigns", json=seed_body(acme.agent, call_days=["Funday"])),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await acme.client.post("/campaigns", json=seed_body(acme.agent, from_numbers=["+14155559999"])),
        404,
        "PHONE_NUMBER_NOT_FOUND",
    )
    assert_error(
        await acme.client.post("/campaigns", json=seed_body(acme.agent, from_numbers=["12"])),
        400,
        "VALIDATION_ERROR",
    )
    assert await store.list_campaigns(acme.id) == []  # nothing half-made by any of these


async def test_every_field_error_of_a_body_comes_in_one_answer(acme: Tenant, store: SqlStore) -> None:
    # Shape errors (missing fields, types, ranges) all at once ...
    shape = seed_body(acme.agent, max_concurrent_calls=0, call_timeout_seconds="soon")
    del shape["name"]
    error = assert_error(await acme.client.post("/campaigns", json=shape), 400, "VALIDATION_ERROR")
    fields = {d["field"] for d in error["details"]}  # type: ignore[attr-defined]
    assert fields == {"name", "max_concurrent_calls", "call_timeout_seconds"}, error
    assert all(f in str(error["message"]) for f in fields)
    # ... then time zone, weekdays, phones, caller IDs and agent together: the caller-ID rule masks none.
    body = seed_body(uuid4(), from_numbers=[], use_vanira_managed=False, timezone="Mars/Olympus")
    body["call_days"] = ["Monday", "Funday"]
    body["candidates"] = [{"name": "A", "phone": "+14155552671"}, {"name": "B", "phone": "12"}]
    error = assert_error(await acme.client.post("/campaigns", json=body), 400, "VALIDATION_ERROR")
    assert [d["field"] for d in error["details"]] == [  # type: ignore[attr-defined]
        "timezone",
        "call_days.1",
        "candidates.1.phone",
        "from_numbers",
        "agent_id",
    ], error
    message = str(error["message"])
    assert "Mars/Olympus" in message and "Funday" in message and "No Caller IDs" in message
    assert "agent not found" in message and "Value error" not in message
    body = seed_body(uuid4(), from_numbers=["+14155559999", "12"])
    error = assert_error(await acme.client.post("/campaigns", json=body), 400, "VALIDATION_ERROR")
    fields = {d["field"] for d in error["details"]}  # type: ignore[attr-defined]
    assert fields == {"from_numbers.0", "from_numbers.1", "agent_id"}, error
    # An unknown agent and number alone: the seed's 404, still naming both.
    error = assert_error(
        await acme.client.post("/campaigns", json=seed_body(uuid4(), from_numbers=["+14155559999"])),
        404,
        "AGENT_NOT_FOUND",
    )
    assert {d["field"] for d in error["details"]} == {"agent_id", "from_numbers.0"}  # type: ignore[attr-defined]
    assert await store.list_campaigns(acme.id) == []


async def test_invalid_candidates_are_reported_per_row_and_nothing_is_created(
    acme: Tenant, store: SqlStore
) -> None:
    candidates = [
        {"name": "Ok", "phone": "+14155552671"},
        {"name": "Short", "phone": "555"},
        {"name": "Words", "phone": "call me"},
    ]
    response = await acme.client.post("/campaigns", json=seed_body(acme.agent, candidates=candidates))
    error = assert_error(response, 400, "VALIDATION_ERROR")
    details = error["details"]
    assert isinstance(details, list)
    assert [d["row"] for d in details] == [2, 3]
    assert all(d["reason"] for d in details) and "555" not in str(details)
    assert await store.list_campaigns(acme.id) == []


async def test_duplicate_candidates_are_counted(acme: Tenant) -> None:
    candidates = [{"name": "A", "phone": "+14155552671"}, {"name": "A again", "phone": "415-555-2671"}]
    body = (await acme.client.post("/campaigns", json=seed_body(acme.agent, candidates=candidates))).json()
    assert body["total_prospects"] == 1 and body["duplicates"] == 1


async def test_patch_campaign(acme: Tenant, store: SqlStore) -> None:
    campaign = (await acme.client.post("/campaigns", json=seed_body(acme.agent, from_numbers=[DID]))).json()[
        "campaign_id"
    ]
    url = f"/campaigns/{campaign}"
    patched = await acme.client.patch(
        url,
        json={
            "name": "Renamed",
            "max_concurrent_calls": None,
            "allow_reschedule": False,
            "from_numbers": [DID_2],
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Renamed" and patched.json()["status"] == "draft"
    record = await store.get_campaign(UUID(campaign))
    assert record is not None and record.spec.name == "Renamed" and record.spec.allow_reschedule is False
    assert record.spec.max_concurrent_calls == 5  # null means "leave as is"
    assert len((await acme.client.get(url)).json()["allocated_dids"]) == 2

    assert_error(await acme.client.patch(url, json={}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.patch(url, json={"max_concurrent_calls": "many"}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.patch(url, json={"timezone": "Nowhere/Else"}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.patch(url, json={"agent_id": str(uuid4())}), 404, "AGENT_NOT_FOUND")
    assert_error(
        await acme.client.patch(f"/campaigns/{uuid4()}", json={"name": "x"}), 404, "CAMPAIGN_NOT_FOUND"
    )


async def test_opt_out_digit_is_set_changed_and_cleared(acme: Tenant, store: SqlStore) -> None:
    created = await acme.client.post("/campaigns", json=seed_body(acme.agent, opt_out_digit="#"))
    assert created.status_code == 200, created.text
    url = f"/campaigns/{created.json()['campaign_id']}"
    assert (await acme.client.get(url)).json()["opt_out_digit"] == "#"
    for digit, shown in (("9", "9"), (None, "9"), ("", None)):  # null: unchanged; "": none any more
        response = await acme.client.patch(url, json={"opt_out_digit": digit, "name": "Spring"})
        assert response.status_code == 200, response.text
        assert (await acme.client.get(url)).json()["opt_out_digit"] == shown
    for bad in ("10", "a", "**", 5):
        body = seed_body(acme.agent, opt_out_digit=bad)
        assert_error(await acme.client.post("/campaigns", json=body), 400, "VALIDATION_ERROR")
        assert_error(await acme.client.patch(url, json={"opt_out_digit": bad}), 400, "VALIDATION_ERROR")


async def test_ids_and_tenants(acme: Tenant, other: Tenant) -> None:
    campaign = (await acme.client.post("/campaigns", json=seed_body(acme.agent))).json()["campaign_id"]
    for path in ("", "/start", "/pause", "/resume"):
        method = acme.client.get if path == "" else acme.client.post
        assert_error(await method(f"/campaigns/not-a-uuid{path}"), 400, "VALIDATION_ERROR")
        assert_error(await method(f"/campaigns/{uuid4()}{path}"), 404, "CAMPAIGN_NOT_FOUND")
        other_method = other.client.get if path == "" else other.client.post
        assert_error(await other_method(f"/campaigns/{campaign}{path}"), 404, "CAMPAIGN_NOT_FOUND")
    assert (await other.client.get("/campaigns")).json() == {"data": [], "total": 0}
    # Another tenant's agent is as unknown as a made-up one.
    assert_error(await other.client.post("/campaigns", json=seed_body(acme.agent)), 404, "AGENT_NOT_FOUND")
    assert (await acme.client.get(f"/campaigns/{campaign}")).json()["status"] == "draft"


async def _attempted(store: SqlStore, acme: Tenant, prospect: Prospect, update: ProspectUpdate) -> None:
    """Record one ended attempt for ``prospect`` and apply the retry policy's ``update``."""
    now = datetime.now(UTC)
    attempt = NewAttempt(
        id=uuid4(),
        tenant_id=acme.id,
        campaign_id=prospect.campaign_id,
        prospect_id=prospect.id,
        attempt_number=1,
        from_did_id=acme.did,
        from_number=DID,
        to_number=prospect.phone,
        trunk_id=acme.trunk,
        lease_token=1,
        created_at=now,
    )
    assert await store.claim_attempt(attempt, now)
    assert await store.finish_attempt(attempt.id, AttemptResult(update.last_outcome, now), update)


async def test_patching_the_window_replans_what_the_old_window_deferred(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    phones = [f"+1415555{2680 + i}" for i in range(6)]
    candidates = [{"name": f"P{i}", "phone": phone} for i, phone in enumerate(phones)]
    body = seed_body(acme.agent, candidates=candidates, start_campaign=True)
    campaign = UUID((await acme.client.post("/campaigns", json=body)).json()["campaign_id"])
    listed, _ = await store.list_prospects(campaign)
    fresh, retried, retry_due, held, no_zone, done = sorted(listed, key=lambda p: phones.index(p.phone))

    now = datetime.now(UTC)
    opening = now + timedelta(hours=20)  # the old window's next opening
    retry = now + timedelta(hours=1)  # the busy retry that the old window moved to its opening
    soon = now + timedelta(minutes=30)  # a retry inside the old window: not the window's doing
    await store.defer_prospect(fresh.id, opening, "campaign_hours")
    await store.defer_prospect(held.id, None, "campaign_day", hold=True)
    await store.defer_prospect(no_zone.id, None, "unknown_timezone", hold=True)
    await _attempted(store, acme, retried, ProspectUpdate(PENDING, opening, Outcome.BUSY, not_before=retry))
    await _attempted(store, acme, retry_due, ProspectUpdate(PENDING, soon, Outcome.BUSY, not_before=soon))
    await _attempted(store, acme, done, ProspectUpdate(ProspectState.COMPLETED, None, Outcome.ANSWERED))

    async def state(prospect: Prospect) -> tuple[str, datetime | None]:
        found = await store.get_prospect(prospect.id)
        assert found is not None
        return found.state.value, found.next_attempt_at

    url = f"/campaigns/{campaign}"
    changed = runtime.changed
    assert (await acme.client.patch(url, json={"max_retries_busy": 3})).status_code == 200
    assert await state(fresh) == ("pending", opening), "no window change, nothing re-planned"

    before = datetime.now(UTC)
    patched = await acme.client.patch(
        url, json={"timezone": "America/Los_Angeles", "call_hours_start": "00:00:00"}
    )
    assert patched.status_code == 200, patched.text
    after = datetime.now(UTC)
    assert runtime.changed == changed + 2, "every PATCH wakes the dispatcher"

    for prospect in (fresh, held):  # due now: the dispatcher checks them against the new window
        status, due = await state(prospect)
        assert status == "pending" and due is not None and before <= due <= after, prospect.name
    assert await state(retried) == ("pending", retry), "a retry is never brought before its delay"
    assert await state(retry_due) == ("pending", soon)
    assert await state(no_zone) == ("held", None), "no window opens for a number with no known zone"
    assert (await state(done))[0] == "completed"
    got = (await acme.client.get(url)).json()
    assert got["call_hours_start"] == "00:00:00" and got["timezone"] == "America/Los_Angeles"

    # A completed campaign never dials again: its holds stay (they would only show as pending).
    await store.defer_prospect(fresh.id, None, "campaign_day", hold=True)
    assert await store.set_campaign_status(campaign, CampaignStatus.COMPLETED, expect=[CampaignStatus.ACTIVE])
    assert (await acme.client.patch(url, json={"call_days": ["Saturday"]})).status_code == 200
    assert await state(fresh) == ("held", None)
