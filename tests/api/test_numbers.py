"""Phone numbers over HTTP: the seed's list, import, link and delete, plus caps and tenant isolation."""

from __future__ import annotations

from uuid import UUID, uuid4

from dialer.storage import SqlStore, TrunkSpec
from tests.api.conftest import DID, DID_2, Tenant, assert_error

NEW = "+14155550123"


async def test_list_has_the_seed_fields(acme: Tenant, other: Tenant) -> None:
    numbers = (await acme.client.get("/phone-numbers")).json()["numbers"]
    assert [n["number"] for n in numbers] == [DID, DID_2]
    first = numbers[0]
    assert first["id"] == str(acme.did) and first["client_id"] == str(acme.id)
    assert first["country_code"] == "US" and first["trunk_id"] == str(acme.trunk)
    assert first["is_active"] is True and first["is_vanira_internal"] is False
    assert first["agent_id"] == str(acme.agent) and numbers[1]["agent_id"] is None
    assert {n["id"] for n in (await other.client.get("/phone-numbers")).json()["numbers"]}.isdisjoint(
        {str(acme.did), str(acme.did_2)}
    )


async def test_import_link_update_delete(acme: Tenant, store: SqlStore) -> None:
    imported = await acme.client.post(
        "/phone-numbers/import",
        json={
            "phone_number": "(415) 555-0123",
            "agent_id": str(acme.agent),
            "vobiz_auth_id": "MA_ignored",
            "vobiz_auth_token": "ignored",
            "label": "Front desk",
            "max_concurrent_calls": 3,
        },
    )
    assert imported.status_code == 200, imported.text
    body = imported.json()
    assert body["phone_number"] == NEW and body["agent_id"] == str(acme.agent)
    assert body["outbound_trunk_id"] == str(acme.trunk) and body["trunk_endpoint"] == "main"
    assert body["assigned"] is True and body["country_code"] == "US"
    stored = await store.find_number(acme.id, NEW)
    assert stored is not None and stored.id == UUID(body["id"]) and stored.max_concurrent_calls == 3
    assert stored.label == "Front desk"

    assert_error(
        await acme.client.post(
            "/phone-numbers/import", json={"phone_number": NEW, "agent_id": str(acme.agent)}
        ),
        409,
        "CONFLICT",
    )

    second_agent = await store.create_agent(acme.id, "Sales", "sip:sales@worker.example")
    linked = await acme.client.put(
        "/phone-numbers/link", json={"phone_number": NEW, "agent_id": str(second_agent)}
    )
    assert linked.json() == {"success": True, "phone_number": NEW, "agent_id": str(second_agent)}
    stored = await store.find_number(acme.id, NEW)
    assert stored is not None and stored.agent_id == second_agent

    patched = await acme.client.patch(
        "/phone-numbers/%2B14155550123", json={"daily_cap": 50, "is_active": False}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["daily_cap"] == 50 and patched.json()["is_active"] is False
    assert_error(await acme.client.patch("/phone-numbers/%2B14155550123", json={}), 400, "VALIDATION_ERROR")

    deleted = await acme.client.delete("/phone-numbers/%2B14155550123")
    assert deleted.json() == {"phone_number": NEW, "deleted": True, "unassigned": True}
    assert await store.find_number(acme.id, NEW) is None
    assert_error(await acme.client.delete("/phone-numbers/%2B14155550123"), 404, "PHONE_NUMBER_NOT_FOUND")


async def test_delete_removes_campaign_allocations(acme: Tenant, store: SqlStore) -> None:
    body = {
        "name": "C",
        "agent_id": str(acme.agent),
        "candidates": [{"name": "A", "phone": "+14155552671"}],
        "from_numbers": [DID, DID_2],
    }
    campaign = (await acme.client.post("/campaigns", json=body)).json()["campaign_id"]
    assert (await acme.client.delete(f"/phone-numbers/{DID_2}")).status_code == 200  # a raw + works too
    dids = (await acme.client.get(f"/campaigns/{campaign}")).json()["allocated_dids"]
    assert [d["number"] for d in dids] == [DID]


async def test_import_errors(acme: Tenant, other: Tenant, store: SqlStore) -> None:
    url = "/phone-numbers/import"
    assert_error(await acme.client.post(url, json={"agent_id": str(acme.agent)}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.post(url, json={"phone_number": "12"}), 400, "VALIDATION_ERROR")
    assert_error(
        await acme.client.post(url, json={"phone_number": NEW, "agent_id": str(other.agent)}),
        404,
        "AGENT_NOT_FOUND",
    )
    assert_error(
        await acme.client.post(url, json={"phone_number": NEW, "trunk_id": str(other.trunk)}),
        404,
        "TRUNK_NOT_FOUND",
    )
    await store.create_trunk(acme.id, TrunkSpec(name="backup", host="sip2.example.net"))
    error = assert_error(await acme.client.post(url, json={"phone_number": NEW}), 400, "VALIDATION_ERROR")
    assert "trunk_id" in str(error["message"])
    assert await store.find_number(acme.id, NEW) is None


async def test_link_and_delete_errors(acme: Tenant, other: Tenant) -> None:
    link = "/phone-numbers/link"
    assert_error(
        await acme.client.put(link, json={"phone_number": NEW, "agent_id": str(acme.agent)}),
        404,
        "PHONE_NUMBER_NOT_FOUND",
    )
    assert_error(
        await acme.client.put(link, json={"phone_number": DID, "agent_id": str(uuid4())}),
        404,
        "AGENT_NOT_FOUND",
    )
    assert_error(
        await acme.client.put(link, json={"phone_number": DID, "agent_id": str(other.agent)}),
        404,
        "AGENT_NOT_FOUND",
    )
    assert_error(await acme.client.put(link, json={"phone_number": DID}), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.delete("/phone-numbers/not-a-number"), 400, "VALIDATION_ERROR")
    # Both tenants hold DID; deleting Acme's leaves Other's.
    assert (await acme.client.delete(f"/phone-numbers/%2B{DID[1:]}")).status_code == 200
    assert DID in [n["number"] for n in (await other.client.get("/phone-numbers")).json()["numbers"]]
