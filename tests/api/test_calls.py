"""Calls over HTTP: create through the runtime, list with filters, read, transfer and hang up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx

from api.app import create_app
from dialer.domain import AttemptResult, ProspectState, ProspectUpdate
from dialer.outcome import Outcome
from dialer.storage import SqlStore, TrunkSpec
from tests.api.conftest import DID, DID_2, FakeRuntime, Tenant, assert_error, serve
from tests.api.test_campaigns import seed_body

TO = "+14155552671"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
NO_UPDATE = ProspectUpdate(ProspectState.FAILED, None, Outcome.FAILED)


def sip(agent: UUID, **sip_data: Any) -> dict[str, Any]:
    return {"agent_id": str(agent), "type": "sip", "sip_data": {"to": TO, "name": "John Doe"} | sip_data}


async def test_create_places_the_stored_call(acme: Tenant, store: SqlStore, runtime: FakeRuntime) -> None:
    response = await acme.client.post("/calls/create", json=sip(acme.agent, from_number=DID))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "triggered" and body["worker_url"] is None
    call_id = UUID(body["call_id"])
    assert runtime.placed == [(acme.id, call_id)]
    record = await store.get_attempt(call_id)
    assert record is not None and record.tenant_id == acme.id and record.to_number == TO
    assert record.from_number == DID and record.from_did_id == acme.did and record.trunk_id == acme.trunk
    assert record.agent_id == acme.agent and record.status == "dialing"

    detail = (await acme.client.get(f"/calls/{call_id}")).json()
    assert detail["status"] == "triggered" and detail["phone_to"] == TO and detail["phone_from"] == DID
    assert detail["agent"] == {
        "id": str(acme.agent),
        "name": "Receptionist",
        "phone": None,
        "client": {"name": "Acme", "base_prospect_group_id": None},
    }
    # sip_data.name is who was called: stored on the call, shown as the seed's prospect (no prospect row).
    assert record.callee_name == "John Doe" and record.prospect_id is None
    assert detail["prospect"] == {"id": None, "name": "John Doe", "phone": TO, "prospect_data": []}


async def test_create_links_the_prospect_and_defaults_the_name(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    campaign = (await acme.client.post("/campaigns", json=seed_body(acme.agent))).json()["campaign_id"]
    prospects = (await acme.client.get(f"/campaigns/{campaign}/prospects")).json()["data"]
    jane = next(p for p in prospects if p["name"] == "Jane Roe")
    body = {"agent_id": str(acme.agent), "type": "sip", "sip_data": {"to": TO, "from_number": DID}}
    response = await acme.client.post("/calls/create", json=body | {"prospect_id": jane["id"]})
    assert response.status_code == 200, response.text
    call_id = UUID(response.json()["call_id"])
    record = await store.get_attempt(call_id)
    assert record is not None and (record.prospect_id, record.callee_name) == (UUID(jane["id"]), "Unknown")
    detail = (await acme.client.get(f"/calls/{call_id}")).json()
    assert detail["prospect"]["id"] == jane["id"] and detail["prospect"]["name"] == "Unknown"
    assert detail["prospect"]["prospect_data"] == [{"key": "plan", "value": "gold"}]
    listed = (await acme.client.get("/calls")).json()["calls"]
    assert listed[0]["prospect"] == {"id": jane["id"], "name": "Unknown", "phone": TO}

    # The call ends unplaced: the linked prospect keeps its campaign state (only its campaign moves it).
    runtime.reject = "no free SIP line"
    refused = await acme.client.post("/calls/create", json=body | {"prospect_id": jane["id"]})
    assert_error(refused, 503, "UPSTREAM_SERVICE_TIMEOUT")
    prospect = await store.get_prospect(UUID(jane["id"]))
    assert prospect is not None and prospect.state.value == "pending" and prospect.total_attempts == 0


async def test_create_without_from_number_uses_the_managed_pool(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    assert_error(await acme.client.post("/calls/create", json=sip(acme.agent)), 400, "VALIDATION_ERROR")
    operator = await store.create_tenant("Operator")
    pool_trunk = await store.create_trunk(operator, TrunkSpec(name="pool", host="pool.example.net"))
    await store.import_number(operator, "+12125550100", pool_trunk, country="US", managed=True)
    local = await store.import_number(operator, "+14155550177", pool_trunk, country="US", managed=True)
    body = (await acme.client.post("/calls/create", json=sip(acme.agent))).json()
    record = await store.get_attempt(UUID(body["call_id"]))
    assert record is not None and record.from_did_id == local  # same area code as the callee


async def test_create_errors(acme: Tenant, other: Tenant, store: SqlStore, runtime: FakeRuntime) -> None:
    url = "/calls/create"
    web = {"agent_id": str(acme.agent), "type": "web"}
    assert_error(await acme.client.post(url, json=web), 400, "WEB_CALLS_NOT_SUPPORTED")
    assert_error(
        await acme.public.post(url, json=sip(acme.agent, from_number=DID)), 403, "INSUFFICIENT_SCOPE"
    )
    assert_error(await acme.anonymous.post(url, json=sip(acme.agent)), 401, "UNAUTHORIZED")
    assert_error(
        await acme.client.post(url, json={"agent_id": str(acme.agent), "type": "sip"}),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(await acme.client.post(url, json={"type": "sip"}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.post(url, json=sip(acme.agent) | {"type": "fax"}), 400, "VALIDATION_ERROR")
    for bad in ("4155552671", "+1 415 555 2671", "+123", "+1415555267199999"):
        bad_to = sip(acme.agent, from_number=DID)
        bad_to["sip_data"]["to"] = bad
        assert_error(await acme.client.post(url, json=bad_to), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.post(url, json=sip(other.agent, from_number=DID)), 404, "AGENT_NOT_FOUND")
    unknown_prospect = sip(acme.agent, from_number=DID) | {"prospect_id": str(uuid4())}
    assert_error(await acme.client.post(url, json=unknown_prospect), 404, "PROSPECT_NOT_FOUND")
    assert_error(
        await acme.client.post(url, json=sip(acme.agent, from_number="+14155559999")),
        404,
        "PHONE_NUMBER_NOT_FOUND",
    )
    await store.add_dnc(acme.id, TO)
    assert_error(
        await acme.client.post(url, json=sip(acme.agent, from_number=DID)), 409, "NUMBER_ON_DNC_LIST"
    )
    assert runtime.placed == []
    assert (await store.list_calls(acme.id))[1] == 0  # nothing stored by any refusal


async def test_gateway_missing_or_refusing(acme: Tenant, store: SqlStore, runtime: FakeRuntime) -> None:
    runtime.reject = "no free SIP line"
    error = assert_error(
        await acme.client.post("/calls/create", json=sip(acme.agent, from_number=DID)),
        503,
        "UPSTREAM_SERVICE_TIMEOUT",
    )
    assert "no free SIP line" in str(error["message"])
    [view], total = await store.list_calls(acme.id)
    assert total == 1 and view.attempt.ended_at is not None and view.attempt.outcome is Outcome.FAILED

    async for url in serve(create_app(store)):
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": acme.sk}) as client:
            response = await client.post("/calls/create", json=sip(acme.agent, from_number=DID))
            assert_error(response, 503, "UPSTREAM_SERVICE_TIMEOUT")
            live = await store.create_call(acme.id, DID, TO, agent_id=acme.agent)
            assert_error(await client.post(f"/calls/{live}/hangup"), 503, "UPSTREAM_SERVICE_TIMEOUT")
            assert_error(
                await client.post(f"/calls/{live}/transfer", json={"to_number": DID_2}),
                503,
                "UPSTREAM_SERVICE_TIMEOUT",
            )
    assert (await store.list_calls(acme.id))[1] == 2  # the runtime-less create stored nothing


async def finished(
    store: SqlStore, tenant: Tenant, outcome: Outcome | None, *, at: datetime, agent: UUID | None = None
) -> UUID:
    call = await store.create_call(tenant.id, DID, TO, agent_id=agent or tenant.agent, created_at=at)
    if outcome is not None:
        answered = at + timedelta(seconds=5) if outcome is Outcome.ANSWERED else None
        result = AttemptResult(
            outcome=outcome,
            ended_at=at + timedelta(seconds=65),
            answered_at=answered,
            sip_code=486 if outcome is Outcome.BUSY else 200,
        )
        await store.finish_attempt(call, result, NO_UPDATE)
    return call


async def test_list_filters_and_pages(acme: Tenant, other: Tenant, store: SqlStore) -> None:
    second_agent = await store.create_agent(acme.id, "Sales", "sip:sales@worker.example")
    answered = await finished(store, acme, Outcome.ANSWERED, at=T0)
    busy = await finished(store, acme, Outcome.BUSY, at=T0 + timedelta(minutes=1))
    live = await finished(store, acme, None, at=T0 + timedelta(minutes=2), agent=second_agent)
    await finished(store, other, Outcome.ANSWERED, at=T0)

    everything = (await acme.client.get("/calls")).json()
    assert everything["total"] == 3
    assert [c["id"] for c in everything["calls"]] == [str(live), str(busy), str(answered)]
    by_id = {c["id"]: c for c in everything["calls"]}
    assert by_id[str(answered)]["status"] == "completed" and by_id[str(answered)]["duration"] == 60
    assert by_id[str(busy)]["status"] == "failed" and by_id[str(busy)]["outcome"] == "busy"
    assert by_id[str(busy)]["sip_code"] == 486 and by_id[str(live)]["status"] == "triggered"
    assert by_id[str(live)]["type"] == "sip_call" and by_id[str(live)]["direction"] == "outbound"

    async def ids(query: str) -> list[str]:
        response = await acme.client.get(f"/calls?{query}")
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["calls"]]

    assert await ids("status=completed") == [str(answered)]
    assert await ids("status=failed") == [str(busy)]
    assert await ids("status=triggered") == [str(live)]
    assert await ids("status=in-progress") == []
    assert await ids(f"agent_id={second_agent}") == [str(live)]
    assert await ids("direction=inbound") == []
    assert await ids(f"campaign_id={uuid4()}") == []
    page = (await acme.client.get("/calls?limit=1&offset=1")).json()
    assert page["total"] == 3 and [c["id"] for c in page["calls"]] == [str(busy)]

    for bad in ("status=done", "limit=0", "limit=501", "offset=-1", "agent_id=nope", "direction=up"):
        assert_error(await acme.client.get(f"/calls?{bad}"), 400, "VALIDATION_ERROR")


async def test_read_errors_and_isolation(acme: Tenant, other: Tenant, store: SqlStore) -> None:
    call = await finished(store, acme, Outcome.ANSWERED, at=T0)
    detail = (await acme.client.get(f"/calls/{call}")).json()
    assert (
        detail["status"] == "completed"
        and detail["outcome"] == "answered"
        and detail["client_id"] == str(acme.id)
    )
    assert detail["extra_details"]["duration"] == 60
    assert_error(await other.client.get(f"/calls/{call}"), 404, "CALL_NOT_FOUND")
    assert_error(await acme.client.get(f"/calls/{uuid4()}"), 404, "CALL_NOT_FOUND")
    assert_error(await acme.client.get("/calls/not-a-uuid"), 400, "VALIDATION_ERROR")
    assert (await acme.client.get("/calls")).json()["total"] == 1
    assert (await other.client.get("/calls")).json() == {"calls": [], "data": [], "total": 0}


async def test_transfer_and_hangup(
    acme: Tenant, other: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    live = await finished(store, acme, None, at=T0)
    done = await finished(store, acme, Outcome.ANSWERED, at=T0)

    moved = await acme.client.post(
        f"/calls/{live}/transfer", json={"to_number": "(415) 555-0199", "mode": "refer"}
    )
    assert moved.json() == {"success": True, "call_id": str(live), "action": "transfer"}
    assert runtime.transfers == [(acme.id, live, "+14155550199", "refer")]
    assert_error(
        await acme.client.post(f"/calls/{live}/transfer", json={}), 400, "VALIDATION_ERROR"
    )  # no default
    assert_error(
        await acme.client.post(f"/calls/{live}/transfer", json={"to_number": "+1", "mode": "auto"}),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await acme.client.post(f"/calls/{live}/transfer", json={"to_number": DID, "mode": "teleport"}),
        400,
        "VALIDATION_ERROR",
    )

    hung = await acme.client.post(f"/calls/{live}/hangup")
    assert hung.json() == {"success": True, "call_id": str(live), "action": "hangup"}
    assert runtime.hangups == [(acme.id, live)]

    assert_error(await acme.client.post(f"/calls/{done}/hangup"), 409, "CALL_ENDED")
    assert_error(await other.client.post(f"/calls/{live}/hangup"), 404, "CALL_NOT_FOUND")
    assert_error(await acme.public.post(f"/calls/{live}/hangup"), 403, "INSUFFICIENT_SCOPE")
    runtime.reject = "the call is not on this gateway"
    error = assert_error(await acme.client.post(f"/calls/{live}/hangup"), 502, "UPSTREAM_SERVICE_ERROR")
    assert "not on this gateway" in str(error["message"])
    assert_error(
        await acme.client.post(f"/calls/{live}/transfer", json={"to_number": DID_2}),
        502,
        "UPSTREAM_SERVICE_ERROR",
    )


async def test_transfer_defaults_to_the_agent_number(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    agent = await store.create_agent(acme.id, "Desk", "wss://desk.example", transfer_number="+14155550142")
    live = await finished(store, acme, None, at=T0, agent=agent)
    assert (await acme.client.post(f"/calls/{live}/transfer", json={})).status_code == 200
    assert runtime.transfers == [(acme.id, live, "+14155550142", "auto")]


async def test_seed_human_transfer_tool(
    acme: Tenant, other: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    live = await finished(store, acme, None, at=T0)
    done = await finished(store, acme, Outcome.ANSWERED, at=T0)
    url = "/webhook/human-transfer"
    # The seed's body verbatim (international digits, no '+'), call id in the body...
    moved = await acme.client.post(url, json={"to_number": "919182517283", "call_id": str(live)})
    assert moved.status_code == 200, moved.text
    assert moved.json()["success"] is True and moved.json()["call_id"] == str(live)
    # ...or in the query, as the tool's request.query would put it.
    again = await acme.client.post(f"{url}?call_id={live}", json={"to_number": "+14155550199"})
    assert again.status_code == 200, again.text
    assert runtime.transfers == [
        (acme.id, live, "+919182517283", "auto"),
        (acme.id, live, "+14155550199", "auto"),
    ]
    assert_error(await acme.client.post(url, json={"to_number": "919182517283"}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.post(url, json={"call_id": "nope"}), 400, "VALIDATION_ERROR")
    assert_error(
        await acme.client.post(url, json={"call_id": str(live)}), 400, "VALIDATION_ERROR"
    )  # no default
    body = {"to_number": "+14155550199", "call_id": str(live)}
    assert_error(await acme.anonymous.post(url, json=body), 401, "UNAUTHORIZED")
    assert_error(await acme.public.post(url, json=body), 403, "INSUFFICIENT_SCOPE")
    assert_error(await other.client.post(url, json=body), 404, "CALL_NOT_FOUND")
    assert_error(await acme.client.post(url, json=body | {"call_id": str(done)}), 409, "CALL_ENDED")
    runtime.reject = "REFER refused and no bridge"
    assert_error(await acme.client.post(url, json=body), 502, "UPSTREAM_SERVICE_ERROR")
    assert len(runtime.transfers) == 2
