"""Request input the databases cannot hold is refused with a 400 (on SQLite and PostgreSQL alike)."""

from __future__ import annotations

import pytest

from tests.api.conftest import DID, Tenant, assert_error


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_nul_characters_are_refused_not_stored(acme: Tenant) -> None:
    # PostgreSQL cannot store NUL: without the guard these were 500s there (found by schemathesis).
    trunk = {"name": "a\u0000b", "host": "sip.example.net"}
    assert_error(await acme.client.post("/trunks", json=trunk), 400, "VALIDATION_ERROR")
    campaign = {
        "name": "Spring",
        "agent_id": str(acme.agent),
        "candidates": [{"name": "\u0000", "phone": DID}],
    }
    assert_error(await acme.client.post("/campaigns", json=campaign), 400, "VALIDATION_ERROR")
    assert_error(await acme.client.get("/calls", params={"agent_id": "\u0000"}), 400, "VALIDATION_ERROR")
    csv = b"name,phone\nAnn\x00,+14155552671\n"
    created = await acme.client.post("/campaigns", json={**campaign, "candidates": [], "from_numbers": [DID]})
    url = f"/campaigns/{created.json()['campaign_id']}/prospects"
    upload = await acme.client.post(url, content=csv, headers={"Content-Type": "text/csv"})
    assert upload.status_code == 400, upload.text
    trunks = (await acme.client.get("/trunks")).json()
    assert [t["name"] for t in trunks["data"]] == ["main"], "nothing was stored"
