"""The request and answer examples the OpenAPI document shows: the seed's (Campaigns, Calls, Phone
Numbers) on its routes, and ours on our own routes (trunks, agents, prospects, do-not-call, keys, webhooks).

Seed values are verbatim except where noted (a request our API would refuse as written). Every request
example is accepted by the API, its ids swapped for the caller's (tests/api/test_error_examples.py);
our answers carry every field the seed's answers show, and more (tests/api/test_openapi.py).
"""

from __future__ import annotations

from typing import Any

CAMPAIGN_ID = "1a817016-a3f5-41c1-995c-c74a5fb33720"

CAMPAIGN_CREATE = {
    "name": "Q1 Feedback Survey",
    "agent_id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    # The seed's "+1234567890" is no phone number (too short for +1): the seed's own callee instead.
    "candidates": [{"name": "John Doe", "phone": "+919182517283"}],
    "provider": "vonage",
    "timezone": "Asia/Kolkata",
    "call_hours_start": "09:00:00",
    "call_hours_end": "18:00:00",
    "call_days": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"],
    "max_concurrent_calls": 5,
    "call_timeout_seconds": 60,
    "start_campaign": True,
    "from_numbers": ["+918071387205", "+919876543210"],
    "use_vanira_managed": True,
    "retry_failed_calls": True,
    "max_retries_failed": 3,
    "retry_delay_failed_seconds": 300,
    "retry_busy_calls": True,
    "max_retries_busy": 2,
    "retry_delay_busy_seconds": 180,
    "retry_no_answer_calls": True,
    "max_retries_no_answer": 3,
    "retry_delay_no_answer_seconds": 600,
}
CAMPAIGN_CREATED = {
    "success": True,
    "campaign_id": "c1234567-89ab-cdef-0123-456789abcdef",
    "total_prospects": 2,
    "message": "Campaign created successfully",
    "started": False,
}


def transitioned(status: str, message: str) -> dict[str, Any]:
    """The seed's answer to start, pause and resume."""
    return {
        "success": True,
        "campaign_id": CAMPAIGN_ID,
        "status": status,
        "message": message,
        "extra_data": {"id": CAMPAIGN_ID, "status": status},
    }


# The seed's 2026-04-01 is past: a start time must be in the future, so the year is moved on.
SCHEDULE_START = {"scheduled_start_time": "2030-04-01T09:00:00Z"}
SCHEDULED = {
    "success": True,
    "campaign_id": CAMPAIGN_ID,
    "scheduled_start_time": "2030-04-01T09:00:00Z",
    "status": "scheduled",
    "message": "Campaign start scheduled successfully",
    "extra_data": {"id": CAMPAIGN_ID, "status": "scheduled"},
}
CAMPAIGN_LIST = {
    "data": [
        {
            "id": CAMPAIGN_ID,
            "name": "Q1 Outreach",
            "status": "active",
            "agent_id": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
            "client_id": "c2d3e4f5-1111-2222-3333-444455556666",
            "provider": "vobiz",
            "total_prospects": 150,
            "successful_calls": 45,
            "failed_calls": 12,
            "created_at": "2026-03-29T10:00:00Z",
            "updated_at": "2026-03-29T10:00:00Z",
        }
    ]
}
CAMPAIGN = {
    "id": CAMPAIGN_ID,
    "name": "Q1 Outreach",
    "status": "active",
    "max_concurrent_calls": 3,
    "timezone": "Asia/Kolkata",
    "call_timeout_seconds": 60,
    "allow_reschedule": True,
    "max_reschedules_per_prospect": 3,
    "reschedule_min_delay_hours": 1,
    "total_prospects": 150,
    "active_prospects": 2,
    "pending_prospects": 91,
    "is_hr_campaign": False,
    "created_at": "2026-03-29T10:00:00Z",
    "allocated_dids": [
        {
            "did_id": "09d89078-b9cc-452d-ae06-126d04239b73",
            "number": "918071387205",
            "max_concurrent_calls": 3,
        }
    ],
}
# The seed's PATCH example sends nulls: here, as in the seed, null means "leave as is".
CAMPAIGN_PATCH = {
    "name": "<name>",
    "max_concurrent_calls": None,
    "allow_reschedule": False,
    "max_reschedules_per_prospect": None,
}
CAMPAIGN_UPDATED = {
    "id": CAMPAIGN_ID,
    "name": "Updated Campaign Name",
    "status": "paused",
    "updated_at": "2026-03-29T10:05:00Z",
}

# The seed's example creates a web call; this gateway places SIP calls, so the example says "sip".
CALL_CREATE = {
    "agent_id": "919801d9-f357-4033-8ea0-97de12a989c2",
    "type": "sip",
    "sip_data": {"to": "+919182517283", "name": "John Doe", "from_number": "+918071387205"},
    "prospect_id": "7fdc9111-2b35-4252-a85c-781c37470ac0",
}
CALL_CREATED = {"call_id": "6fdc9111-2b35-4252-a85c-781c37470ac0", "status": "triggered", "worker_url": None}
CALL_LIST = {
    "calls": [
        {
            "id": "da4ca1e9-e488-4059-b1d2-fdc348d26950",
            "agent_id": "919801d9-f357-4033-8ea0-97de12a989c2",
            "client_id": "91b5f2de-9e01-4520-837f-58f284e40a4c",
            "phone_to": "+917268030283",
            "phone_from": None,
            "status": "completed",
            "direction": "outbound",
            "type": "sip_call",
            "created_at": "2026-05-01T10:00:00Z",
            "duration": 142,
            "recording_url": None,
            "is_call_successful_according_to_agent_criteria": True,
            "prospect": {"id": "<uuid>", "name": "John Doe", "phone": "+917268030283"},
            "agent": {"id": "919801d9-...", "name": "Support Agent"},
            "call_data": [{"key": "sentiment", "value": "positive"}],
        }
    ],
    "total": 3308,
}
CALL = {
    "id": "6fdc9111-2b35-4252-a85c-781c37470ac0",
    "agent_id": "919801d9-f357-4033-8ea0-97de12a989c2",
    "client_id": "91b5f2de-9e01-4520-837f-58f284e40a4c",
    "phone_from": "+919182517283",
    "phone_to": "+917268030283",
    "status": "completed",
    "call_triggered_at": "2026-03-13T10:00:00Z",
    "extra_details": {"duration": 142},
    "provider_call_id": "prov-abc-123",
    "prospect": {
        "id": "<prospect-uuid>",
        "name": "John Doe",
        "phone": "+919182517283",
        "prospect_data": [{"key": "company", "value": "Acme Corp"}],
    },
    "agent": {
        "id": "919801d9-f357-4033-8ea0-97de12a989c2",
        "client": {"name": "Demo Client", "base_prospect_group_id": "<group-uuid>"},
    },
}
HUMAN_TRANSFER = {"to_number": "919182517283"}

NUMBER_LIST = {
    "numbers": [
        {
            "id": "09d89078-b9cc-452d-ae06-126d04239b73",
            "number": "+918071387205",
            "country_code": "IN",
            "label": "Primary DID",
            "client_id": "91b5f2de-9e01-4520-837f-58f284e40a4c",
            "trunk_id": "0c014935-8e11-4632-8cfe-9028d01b492c",
            "is_active": True,
            "is_vanira_internal": False,
            "agent_id": "caaa5b2a-5fd9-4974-a59e-1c9c01c4c6f5",
        }
    ]
}
NUMBER_IMPORT = {
    "phone_number": "+918071387205",
    "agent_id": "caaa5b2a-5fd9-4974-a59e-1c9c01c4c6f5",
    "vobiz_auth_id": "<vobiz_auth_id>",
    "vobiz_auth_token": "<vobiz_auth_token>",
    "use_existing_credentials": False,
    "credential_label": "<credential_label>",
}
NUMBER_IMPORTED = {
    "phone_number": "+918071387205",
    "agent_id": "caaa5b2a-5fd9-4974-a59e-1c9c01c4c6f5",
    "trunk_endpoint": "endpoint-1387205",
    "outbound_trunk_id": "8747b89c-a5d4-4307-8e12-ccbdabcc2907",
    "assigned": True,
    "service_reloaded": True,
}
NUMBER_LINK = {"phone_number": "+918071387205", "agent_id": "5396166a-f107-4918-b108-ff97b5987178"}
NUMBER_LINKED = {"success": True, **NUMBER_LINK}
NUMBER_DELETED = {"phone_number": "+918071387205", "deleted": True, "unassigned": True}

NUMBER_UPDATE = {"label": "Primary DID", "max_concurrent_calls": 3, "daily_cap": 500, "is_active": True}
CALL_TRANSFER = {"to_number": "+919182517283", "mode": "auto"}

# Our own resources (not in the seed). Hosts are IP literals of the documentation range 203.0.113.0/24:
# they need no DNS (a trunk host or webhook URL that does not resolve is refused); put your own.
TRUNK_CREATE = {
    "name": "carrier",
    "host": "203.0.113.5",
    "port": 5060,
    "transport": "udp",
    "username": "acme",
    "password": "s3cret",
    "register": False,
    "max_concurrent_calls": 20,
    "max_cps": 2.0,
    "allowed_countries": ["IN"],
    "inbound_cidrs": ["203.0.113.0/28"],
}
TRUNK_UPDATE = {"max_concurrent_calls": 30, "max_cps": 5.0}
AGENT_CREATE = {
    "name": "Receptionist",
    "worker_url": "wss://203.0.113.7/stream",
    "transfer_number": "+918071387205",
}
AGENT_UPDATE = {"name": "Front desk"}
PROSPECTS_UPLOAD = {
    "prospects": [
        {"name": "Jane Roe", "phone": "+919876543210", "plan": "gold"},
        {"name": "Richard Roe", "phone": "+917268030283"},
    ]
}
DNC_ADD = {"phone": "+917268030283", "reason": "asked not to be called"}
KEY_CREATE = {"publishable": False}
# A documentation address is not public: accepted where DIALER_WEBHOOK_ALLOW_PRIVATE=true, else
# WEBHOOK_URL_NOT_ALLOWED. Put your endpoint's URL.
WEBHOOK_CREATE = {
    "url": "https://203.0.113.10/hooks/dialer",
    "events": ["call.completed", "campaign.completed"],
    "description": "CRM",
}
RECORDING_RETENTION = {"retention_days": 90}

#: (method, path) -> the request body example.
REQUESTS: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/campaigns"): CAMPAIGN_CREATE,
    ("patch", "/campaigns/{id}"): CAMPAIGN_PATCH,
    ("post", "/campaigns/{id}/schedule-start"): SCHEDULE_START,
    ("post", "/calls/create"): CALL_CREATE,
    ("post", "/webhook/human-transfer"): HUMAN_TRANSFER,
    ("post", "/phone-numbers/import"): NUMBER_IMPORT,
    ("put", "/phone-numbers/link"): NUMBER_LINK,
    ("patch", "/phone-numbers/{number}"): NUMBER_UPDATE,
    ("post", "/calls/{id}/transfer"): CALL_TRANSFER,
    ("post", "/campaigns/{id}/prospects"): PROSPECTS_UPLOAD,
    ("post", "/trunks"): TRUNK_CREATE,
    ("patch", "/trunks/{id}"): TRUNK_UPDATE,
    ("post", "/agents"): AGENT_CREATE,
    ("patch", "/agents/{id}"): AGENT_UPDATE,
    ("post", "/dnc"): DNC_ADD,
    ("post", "/keys"): KEY_CREATE,
    ("post", "/webhooks"): WEBHOOK_CREATE,
    ("patch", "/settings/recordings"): RECORDING_RETENTION,
}
#: (method, path) -> the seed's 200 response example.
RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/campaigns"): CAMPAIGN_CREATED,
    ("get", "/campaigns"): CAMPAIGN_LIST,
    ("get", "/campaigns/{id}"): CAMPAIGN,
    ("patch", "/campaigns/{id}"): CAMPAIGN_UPDATED,
    ("post", "/campaigns/{id}/start"): transitioned("active", "Campaign started successfully"),
    ("post", "/campaigns/{id}/pause"): transitioned("paused", "Campaign paused successfully"),
    ("post", "/campaigns/{id}/resume"): transitioned("active", "Campaign resumed successfully"),
    ("post", "/campaigns/{id}/schedule-start"): SCHEDULED,
    ("post", "/calls/create"): CALL_CREATED,
    ("get", "/calls"): CALL_LIST,
    ("get", "/calls/{id}"): CALL,
    ("get", "/phone-numbers"): NUMBER_LIST,
    ("post", "/phone-numbers/import"): NUMBER_IMPORTED,
    ("put", "/phone-numbers/link"): NUMBER_LINKED,
    ("delete", "/phone-numbers/{number}"): NUMBER_DELETED,
}
