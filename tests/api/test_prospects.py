"""Prospect uploads beyond the seed's 50: JSON and CSV, per-row errors, duplicates, listing, removal."""

from __future__ import annotations

from uuid import uuid4

from dialer.storage import SqlStore
from tests.api.conftest import DID, FakeRuntime, Tenant, assert_error


async def new_campaign(tenant: Tenant, *, start: bool = False) -> str:
    body = {
        "name": "Bulk",
        "agent_id": str(tenant.agent),
        "candidates": [{"name": "First", "phone": "+14155552600"}],
        "from_numbers": [DID],
        "start_campaign": start,
    }
    response = await tenant.client.post("/campaigns", json=body)
    assert response.status_code == 200, response.text
    campaign_id: str = response.json()["campaign_id"]
    return campaign_id


async def test_json_upload_keeps_valid_rows_and_reports_the_rest(acme: Tenant, runtime: FakeRuntime) -> None:
    campaign = await new_campaign(acme, start=True)
    woken = runtime.changed
    rows = [{"name": f"P{i}", "phone": f"+1415555{2700 + i:04d}", "tier": i % 2} for i in range(120)]
    rows += [
        {"name": "dup of an earlier row", "phone": "+14155552700"},
        {"name": "dup of a stored one", "phone": "(415) 555-2600"},
        {"name": "bad", "phone": "12"},
        {"name": "worse", "phone": "phone"},
    ]
    response = await acme.client.post(f"/campaigns/{campaign}/prospects", json={"prospects": rows})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["received"], body["inserted"], body["duplicates"], body["invalid"]) == (124, 120, 2, 2)
    assert [(e["row"], e["field"]) for e in body["errors"]] == [(123, "phone"), (124, "phone")]
    assert runtime.changed == woken + 1  # an active campaign's dispatcher is woken for the new rows

    again = (await acme.client.post(f"/campaigns/{campaign}/prospects", json={"prospects": rows[:10]})).json()
    assert again["inserted"] == 0 and again["duplicates"] == 10  # a retried upload adds nothing

    page = (await acme.client.get(f"/campaigns/{campaign}/prospects?limit=50&offset=100")).json()
    assert page["total"] == 121 and len(page["data"]) == 21 and set(page) == {"data", "total"}
    assert (await acme.client.get(f"/campaigns/{campaign}")).json()["total_prospects"] == 121


async def test_csv_upload(acme: Tenant) -> None:
    campaign = await new_campaign(acme)
    csv_body = "name,phone,plan\nAnn,415-555-2801,gold\nBob,+14155552802,\nCid,,silver\n"
    response = await acme.client.post(
        f"/campaigns/{campaign}/prospects", content=csv_body.encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["inserted"], body["invalid"]) == (2, 1) and body["errors"][0]["row"] == 3
    data = (await acme.client.get(f"/campaigns/{campaign}/prospects?state=pending")).json()["data"]
    ann = next(p for p in data if p["name"] == "Ann")
    assert ann["phone"] == "+14155552801" and ann["custom"] == {"plan": "gold"}

    no_phone = b"name,number\nAnn,4155552801\n"
    response = await acme.client.post(
        f"/campaigns/{campaign}/prospects", content=no_phone, headers={"Content-Type": "text/csv"}
    )
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_upload_errors_and_removal(acme: Tenant, other: Tenant, store: SqlStore) -> None:
    campaign = await new_campaign(acme)
    url = f"/campaigns/{campaign}/prospects"
    assert_error(await acme.client.post(url, json={"rows": []}), 400, "VALIDATION_ERROR")
    assert_error(
        await acme.client.post(url, json={"prospects": [{"name": "no phone"}]}), 400, "VALIDATION_ERROR"
    )
    too_many = {"prospects": [{"phone": "+14155552671"}] * 10_001}
    assert_error(await acme.client.post(url, json=too_many), 400, "VALIDATION_ERROR")
    assert_error(await other.client.post(url, json={"prospects": []}), 404, "CAMPAIGN_NOT_FOUND")
    assert_error(await other.client.get(url), 404, "CAMPAIGN_NOT_FOUND")
    assert_error(await acme.client.get(f"{url}?state=sleeping"), 400, "VALIDATION_ERROR")

    [first] = (await acme.client.get(url)).json()["data"]
    removed = await acme.client.delete(f"{url}/{first['id']}")
    assert removed.json() == {"success": True, "prospect_id": first["id"], "state": "removed"}
    assert (await acme.client.get(f"/campaigns/{campaign}")).json()["total_prospects"] == 0
    assert_error(await acme.client.delete(f"{url}/{uuid4()}"), 404, "PROSPECT_NOT_FOUND")
    assert_error(await acme.client.delete(f"{url}/zzz"), 400, "VALIDATION_ERROR")
    assert_error(await other.client.delete(f"{url}/{first['id']}"), 404, "CAMPAIGN_NOT_FOUND")


async def test_multipart_csv_upload(acme: Tenant) -> None:
    campaign = await new_campaign(acme)
    url = f"/campaigns/{campaign}/prospects"
    csv_body = b"\xef\xbb\xbfname,phone,plan\nAnn,415-555-2801,gold\nBob,nope,\n"
    files = {"file": ("leads.csv", csv_body, "text/csv")}
    response = await acme.client.post(url, files=files)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["received"], body["inserted"], body["invalid"]) == (2, 1, 1) and body["errors"][0][
        "row"
    ] == 2
    data = (await acme.client.get(f"{url}?state=pending")).json()["data"]
    assert ("+14155552801", {"plan": "gold"}) in [(p["phone"], p["custom"]) for p in data]
    again = (await acme.client.post(url, files=files)).json()
    assert again["inserted"] == 0 and again["duplicates"] == 1
    assert_error(await acme.client.post(url, files={"other": ("x.csv", csv_body)}), 400, "VALIDATION_ERROR")
    assert_error(
        await acme.client.post(url, data={"file": "not a file"}, files={"x": ("a", b"")}),
        400,
        "VALIDATION_ERROR",
    )
    malformed = {"Content-Type": "multipart/form-data; boundary=zzz"}
    assert_error(await acme.client.post(url, content=b"garbage", headers=malformed), 400, "VALIDATION_ERROR")
