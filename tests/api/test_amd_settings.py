"""Answering-machine detection settings over the API: campaigns (POST/PATCH/GET) and single calls."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from dialer.domain import AmdSettings, AttemptResult
from dialer.outcome import Outcome
from dialer.storage import SqlStore
from tests.api.conftest import DID, FakeRuntime, Tenant, assert_error
from tests.api.test_calls import sip
from tests.api.test_campaigns import seed_body

MESSAGE = "https://example.com/voicemail.wav"
BAD_SETTINGS: list[dict[str, Any]] = [
    {"amd": "maybe"},
    {"amd": 1},
    {"amd_on_machine": "voicemail"},
    {"amd_timeout_seconds": 0},
    {"amd_timeout_seconds": 500},
    {"amd_message_url": "ftp://example.com/a.wav"},
    {"amd_message_url": "/etc/passwd"},
    {"amd": "detect", "amd_on_machine": "leave_message"},  # no message to leave
    {"max_retries_voicemail": -1},
    {"retry_delay_voicemail_seconds": "soon"},
]


async def test_campaign_amd_settings_are_stored_shown_and_changed(acme: Tenant, store: SqlStore) -> None:
    created = await acme.client.post("/campaigns", json=seed_body(acme.agent))
    assert created.status_code == 200, created.text
    url = f"/campaigns/{created.json()['campaign_id']}"
    shown = (await acme.client.get(url)).json()
    assert (shown["amd"], shown["amd_timeout_seconds"], shown["amd_async"]) == ("off", 30, False)
    assert (shown["amd_on_machine"], shown["amd_message_url"]) == ("hangup", None)
    assert (shown["retry_voicemail_calls"], shown["max_retries_voicemail"]) == (True, 2)
    change = {
        "amd": "detect_and_wait_for_beep",
        "amd_timeout_seconds": 20,
        "amd_async": True,
        "amd_on_machine": "leave_message",
        "amd_message_url": MESSAGE,
        "max_retries_voicemail": 4,
        "retry_delay_voicemail_seconds": 7200,
    }
    response = await acme.client.patch(url, json=change)
    assert response.status_code == 200, response.text
    shown = (await acme.client.get(url)).json()
    assert {name: shown[name] for name in change} == change
    plan = await store.campaign_plan(UUID(created.json()["campaign_id"]))
    assert plan is not None
    assert plan.amd == AmdSettings("detect_and_wait_for_beep", 20, True, "leave_message", MESSAGE)
    assert plan.retry.voicemail.max_retries == 4 and plan.retry.voicemail.delay_seconds == 7200
    # The message stays while the action needs it; "" clears it once it does not.
    assert_error(await acme.client.patch(url, json={"amd_message_url": ""}), 400, "VALIDATION_ERROR")
    response = await acme.client.patch(url, json={"amd_on_machine": "worker", "amd_message_url": ""})
    assert response.status_code == 200, response.text
    assert (await acme.client.get(url)).json()["amd_message_url"] is None


async def test_bad_campaign_amd_settings_are_refused(acme: Tenant) -> None:
    created = await acme.client.post("/campaigns", json=seed_body(acme.agent))
    url = f"/campaigns/{created.json()['campaign_id']}"
    for bad in BAD_SETTINGS:
        assert_error(
            await acme.client.post("/campaigns", json=seed_body(acme.agent, **bad)), 400, "VALIDATION_ERROR"
        )
        assert_error(await acme.client.patch(url, json=bad), 400, "VALIDATION_ERROR")
    shown = (await acme.client.get(url)).json()
    assert shown["amd"] == "off" and shown["amd_on_machine"] == "hangup"  # nothing half-applied


async def test_a_single_call_keeps_its_amd_settings_and_shows_the_verdict(
    acme: Tenant, store: SqlStore, runtime: FakeRuntime
) -> None:
    body = sip(acme.agent, from_number=DID) | {"amd": "detect", "amd_on_machine": "worker", "amd_async": True}
    response = await acme.client.post("/calls/create", json=body)
    assert response.status_code == 200, response.text
    call_id = UUID(response.json()["call_id"])
    record = await store.get_attempt(call_id)
    assert record is not None and record.amd is not None
    assert AmdSettings(**record.amd) == AmdSettings("detect", 30, True, "worker", None)
    now = datetime.now(UTC)
    result = AttemptResult(Outcome.VOICEMAIL, now, 200, answered_at=now, answered_by="machine_start")
    assert await store.finish_attempt(call_id, result, None)
    detail = (await acme.client.get(f"/calls/{call_id}")).json()
    assert detail["answered_by"] == "machine_start" and detail["outcome"] == "voicemail"
    listed = (await acme.client.get("/calls")).json()["data"]
    assert [c["answered_by"] for c in listed if c["id"] == str(call_id)] == ["machine_start"]
    plain = await acme.client.post("/calls/create", json=sip(acme.agent, from_number=DID))
    record = await store.get_attempt(UUID(plain.json()["call_id"]))
    assert record is not None and record.amd is None  # detection off: nothing stored


async def test_bad_single_call_amd_settings_are_refused(acme: Tenant, runtime: FakeRuntime) -> None:
    for bad in BAD_SETTINGS:
        if bad.keys() & {"max_retries_voicemail", "retry_delay_voicemail_seconds"}:
            continue  # campaign settings only (a body's unknown fields are ignored, as the seed's)
        response = await acme.client.post("/calls/create", json=sip(acme.agent, from_number=DID) | bad)
        assert_error(response, 400, "VALIDATION_ERROR")
    assert runtime.placed == []
