"""The OpenAPI document and /docs, and the seed's response fields: every one is in our answers.

The seed's examples live in api/seed_examples.py and are served in the OpenAPI document; here real
answers of the routes they document must hold every key those examples show (our answers may carry
more; a field we cannot fill, like ``recording_url``, is present as null rather than missing).
"""

from __future__ import annotations

from typing import Any

import httpx

from api import seed_examples as seed
from tests.api.conftest import DID, Tenant
from tests.api.test_campaigns import seed_body


def missing_keys(example: Any, ours: Any, where: str = "") -> list[str]:
    """Key paths of ``example`` absent from ``ours`` (nested objects, and lists by their first item)."""
    if isinstance(example, dict):
        if not isinstance(ours, dict):
            return [where or "."]
        found = []
        for key, value in example.items():
            if key not in ours:
                found.append(f"{where}.{key}")
            else:
                found += missing_keys(value, ours[key], f"{where}.{key}")
        return found
    if isinstance(example, list) and example and isinstance(ours, list) and ours:
        return missing_keys(example[0], ours[0], f"{where}[]")
    return []


def ok(response: httpx.Response) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


async def test_docs_and_the_document(acme: Tenant) -> None:
    docs = await acme.anonymous.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
    document = ok(await acme.anonymous.get("/openapi.json"))
    assert set(document["components"]["securitySchemes"]) == {"APIKeyHeader", "HTTPBearer"}
    for (method, path), body in seed.REQUESTS.items():
        content = document["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert content["examples"]["example"]["value"] == body, (method, path)
    for (method, path), body in seed.RESPONSES.items():
        responses = document["paths"][path][method]["responses"]
        content = (responses.get("200") or responses["201"])["content"]["application/json"]
        assert content["examples"]["seed"]["value"] == body, (method, path)
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)  # validation errors are 400s here
            assert responses["500"]["content"]["application/json"]["schema"] == error
            if "security" in operation:  # 403 only where a publishable key is refused (test_error_examples)
                assert {"401", "429"} <= set(responses), (method, path)


async def test_campaign_answers_hold_every_seed_field(acme: Tenant) -> None:
    created = ok(await acme.client.post("/campaigns", json=seed_body(acme.agent)))
    assert missing_keys(seed.CAMPAIGN_CREATED, created) == []
    url = f"/campaigns/{created['campaign_id']}"
    assert missing_keys(seed.CAMPAIGN, ok(await acme.client.get(url))) == []
    assert missing_keys(seed.CAMPAIGN_LIST, ok(await acme.client.get("/campaigns"))) == []
    assert missing_keys(seed.CAMPAIGN_UPDATED, ok(await acme.client.patch(url, json={"name": "N"}))) == []
    for verb in ("start", "pause", "resume"):
        example = seed.RESPONSES[("post", f"/campaigns/{{id}}/{verb}")]
        assert missing_keys(example, ok(await acme.client.post(f"{url}/{verb}"))) == [], verb
    await acme.client.post(f"{url}/pause")
    when = {"scheduled_start_time": "2099-01-01T09:00:00Z"}
    scheduled = ok(await acme.client.post(f"{url}/schedule-start", json=when))
    assert missing_keys(seed.SCHEDULED, scheduled) == []


async def test_call_answers_hold_every_seed_field(acme: Tenant) -> None:
    campaign = ok(await acme.client.post("/campaigns", json=seed_body(acme.agent)))["campaign_id"]
    prospects = ok(await acme.client.get(f"/campaigns/{campaign}/prospects"))["data"]
    jane = next(p for p in prospects if p["name"] == "Jane Roe")  # has custom data: prospect_data
    body = {"agent_id": str(acme.agent), "type": "sip", "prospect_id": jane["id"]}
    body["sip_data"] = {"to": "+14155552672", "name": "Jane Roe", "from_number": DID}
    created = ok(await acme.client.post("/calls/create", json=body))
    assert missing_keys(seed.CALL_CREATED, created) == []
    detail = ok(await acme.client.get(f"/calls/{created['call_id']}"))
    assert missing_keys(seed.CALL, detail) == []
    assert detail["prospect"]["prospect_data"] and detail["agent"]["client"]["name"] == "Acme"
    assert detail["provider_call_id"] is None  # not known to this gateway: present, null
    listed = ok(await acme.client.get("/calls"))
    assert missing_keys(seed.CALL_LIST, listed) == []
    [call] = listed["calls"]
    assert call["recording_url"] is None and call["is_call_successful_according_to_agent_criteria"] is None


async def test_phone_number_answers_hold_every_seed_field(acme: Tenant) -> None:
    assert missing_keys(seed.NUMBER_LIST, ok(await acme.client.get("/phone-numbers"))) == []
    number = "+14155550123"
    imported = ok(await acme.client.post("/phone-numbers/import", json={"phone_number": number}))
    assert missing_keys(seed.NUMBER_IMPORTED, imported) == []
    link = {"phone_number": number, "agent_id": str(acme.agent)}
    assert missing_keys(seed.NUMBER_LINKED, ok(await acme.client.put("/phone-numbers/link", json=link))) == []
    deleted = ok(await acme.client.delete("/phone-numbers/%2B14155550123"))
    assert missing_keys(seed.NUMBER_DELETED, deleted) == []


def test_missing_keys_finds_what_is_missing() -> None:
    example = {"a": 1, "b": {"c": 2, "d": [{"e": 3}]}}
    assert missing_keys(example, {"a": None, "b": {"c": None, "d": [{"e": None, "f": 1}]}}) == []
    assert missing_keys(example, {"b": {"d": [{}]}}) == [".a", ".b.c", ".b.d[].e"]
    assert missing_keys(example, {"a": 1, "b": None}) == [".b"]
