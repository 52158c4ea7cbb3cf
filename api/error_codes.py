"""Every error code the API answers with: its HTTP status, what it means, and which routes give it.

The one source of the error answers documented per operation in /openapi.json (api/openapi.py) and
of the table in docs/errors.md (``python -m api.error_codes`` prints it; a test keeps the file
current). Codes are the seed's where the seed names one; request validation has ONE code,
VALIDATION_ERROR, standing for the seed's several spellings of it (see ``SEED_SPELLINGS``).

Codes every route of a kind answers (a key's codes, VALIDATION_ERROR, the 500s) are derived from the
route itself in api/openapi.py; ``ROUTES`` lists the codes particular to each route.
tests/api/test_error_examples.py makes each documented answer happen on its route.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Code:
    """One error code: its status, what it means, and a message the API really answers with."""

    status: int
    meaning: str
    example: str
    details: tuple[dict[str, Any], ...] = ()  # an example ``error.details`` (VALIDATION_ERROR's fields)
    routes: str = ""  # for the table, when not listed in ROUTES (every route, or a route to come)


CODES: dict[str, Code] = {
    "VALIDATION_ERROR": Code(
        400,
        "A request value or shape is wrong: a body field, a path id, a query value, malformed JSON. "
        "`error.details` lists every field at fault (`field`, `reason`) and the message names them all.",
        "nothing was created: 2 invalid fields: timezone: unknown time zone 'Mars/Base' (an IANA name "
        "like Europe/London); candidates.0.phone: too short",
        details=(
            {
                "field": "timezone",
                "reason": "unknown time zone 'Mars/Base' (an IANA name like Europe/London)",
            },
            {"row": 1, "field": "candidates.0.phone", "reason": "too short"},
        ),
        routes="every route with a body, a path id or a query",
    ),
    "WEB_CALLS_NOT_SUPPORTED": Code(
        400,
        'This gateway places SIP calls only: `type` "web" is refused.',
        "this gateway places SIP calls only; web calls are not served",
    ),
    "WEBHOOK_URL_NOT_ALLOWED": Code(
        400,
        "The webhook URL's host is loopback, private, link-local, multicast or reserved.",
        "url resolves to a non-public address (loopback, private, link-local or reserved); "
        "set DIALER_WEBHOOK_ALLOW_PRIVATE=true to allow it",
    ),
    "WEBHOOK_URL_UNRESOLVABLE": Code(
        400, "The webhook URL's host name does not resolve.", "url's host name does not resolve"
    ),
    "TRUNK_HOST_UNRESOLVABLE": Code(
        400,
        "The trunk's host does not resolve.",
        "host: the trunk's host does not resolve",
        routes="`POST /trunks`, `PATCH /trunks/{id}`",
    ),
    "UNAUTHORIZED": Code(
        401,
        "No API key: send `X-API-Key` or `Authorization: Bearer`.",
        "no API key: send X-API-Key or Authorization: Bearer",
    ),
    "INVALID_API_KEY": Code(401, "The API key is unknown or revoked.", "API key is invalid or revoked"),
    "INSUFFICIENT_SCOPE": Code(
        403,
        "A publishable key (`pk_live_`) cannot do this: dial, read calls, or administer.",
        "a publishable key (pk_live_) cannot do this; use a secret key",
    ),
    "CAMPAIGN_NOT_FOUND": Code(
        404, "Campaign not found, or not owned by the key's tenant.", "campaign not found"
    ),
    "CALL_NOT_FOUND": Code(404, "Call not found, or not owned by the key's tenant.", "call not found"),
    "RECORDING_NOT_FOUND": Code(
        404,
        "The call has no recording: it was not recorded, it is not ready yet, or the tenant's retention "
        "deleted it (the message says which).",
        "this call was not recorded",
    ),
    "AGENT_NOT_FOUND": Code(404, "Agent not found, or not owned by the key's tenant.", "agent not found"),
    "PHONE_NUMBER_NOT_FOUND": Code(
        404, "Phone number not found among the tenant's numbers.", "phone number not found"
    ),
    "PROSPECT_NOT_FOUND": Code(
        404, "Prospect not found, or not in this campaign / tenant.", "prospect not found"
    ),
    "TRUNK_NOT_FOUND": Code(404, "Trunk not found, or not owned by the key's tenant.", "trunk not found"),
    "KEY_NOT_FOUND": Code(404, "API key not found among the tenant's keys.", "API key not found"),
    "WEBHOOK_NOT_FOUND": Code(
        404, "Webhook not found, or not owned by the key's tenant.", "webhook not found"
    ),
    "DNC_ENTRY_NOT_FOUND": Code(
        404,
        "The number is not on the tenant's do-not-call list.",
        "this number is not on your do-not-call list",
    ),
    "NOT_FOUND": Code(404, "No such route.", "no such route", routes="any path that is not a route"),
    "METHOD_NOT_ALLOWED": Code(
        405,
        "The route exists, not with this method.",
        "method not allowed on this route",
        routes="any route, with another method",
    ),
    "CONFLICT": Code(
        409,
        "It exists already (a number, a trunk name), or it is still in use (a trunk or agent).",
        "a trunk with this name exists already",
    ),
    "INVALID_CAMPAIGN_TRANSITION": Code(
        409,
        "The campaign's status forbids the action (pause a draft, start an active campaign).",
        "cannot pause a campaign that is draft",
    ),
    "CALL_ENDED": Code(409, "The call has ended: it cannot be transferred or hung up.", "the call has ended"),
    "NUMBER_ON_DNC_LIST": Code(
        409, "The callee is on the tenant's do-not-call list.", "sip_data.to is on your do-not-call list"
    ),
    "RATE_LIMITED": Code(
        429,
        "The key spent its allowance on this route; `Retry-After` says when to retry.",
        "too many requests on this route; retry in 1 s",
    ),
    "INTERNAL_SERVER_ERROR": Code(
        500,
        "Unexpected server error (the body never carries the cause; the log does).",
        "unexpected server error",
        routes="any route",
    ),
    "DATABASE_ERROR": Code(
        500, "Unexpected database error.", "unexpected database error", routes="any route"
    ),
    "DATABASE_UNAVAILABLE": Code(
        503,
        "The database cannot be reached right now (down or restarting); retry. Calls already up go on, "
        "and what they do is written once it is back (README, Storage outages).",
        "the database is unavailable; retry shortly",
        routes="any route",
    ),
    "UPSTREAM_SERVICE_ERROR": Code(
        502,
        "The SIP gateway refused the call action.",
        "the SIP gateway refused: call is not up",
    ),
    "UPSTREAM_SERVICE_TIMEOUT": Code(
        503,
        "No SIP gateway could take the call or the call action (none running, or none answered).",
        "the SIP gateway is not running in this process",
    ),
    "NOT_READY": Code(
        503,
        "This replica cannot take traffic: a component is down.",
        "not ready: storage",
        routes="`GET /ready`",
    ),
}

#: The seed's spellings of a bad request, all answered as VALIDATION_ERROR here (the seed's sections
#: use different ones for the same kind of 400; a client should need to handle one).
SEED_SPELLINGS = ("BAD_REQUEST_FORMAT", "validation_error", "bad_request", "BAD_REQUEST", "VALIDATION_ERROR")

_CALL_ACTION = ("CALL_NOT_FOUND", "CALL_ENDED", "UPSTREAM_SERVICE_ERROR", "UPSTREAM_SERVICE_TIMEOUT")
_TRANSITION = ("CAMPAIGN_NOT_FOUND", "INVALID_CAMPAIGN_TRANSITION")

#: (method, path) -> the codes particular to the route (beyond the derived ones, see module doc).
ROUTES: dict[tuple[str, str], tuple[str, ...]] = {
    ("post", "/campaigns"): ("AGENT_NOT_FOUND", "PHONE_NUMBER_NOT_FOUND"),
    ("get", "/campaigns/{id}"): ("CAMPAIGN_NOT_FOUND",),
    ("patch", "/campaigns/{id}"): ("CAMPAIGN_NOT_FOUND", "AGENT_NOT_FOUND", "PHONE_NUMBER_NOT_FOUND"),
    ("post", "/campaigns/{id}/start"): _TRANSITION,
    ("post", "/campaigns/{id}/pause"): _TRANSITION,
    ("post", "/campaigns/{id}/resume"): _TRANSITION,
    ("post", "/campaigns/{id}/schedule-start"): _TRANSITION,
    ("post", "/campaigns/{id}/prospects"): ("CAMPAIGN_NOT_FOUND",),
    ("get", "/campaigns/{id}/prospects"): ("CAMPAIGN_NOT_FOUND",),
    ("delete", "/campaigns/{id}/prospects/{pid}"): ("CAMPAIGN_NOT_FOUND", "PROSPECT_NOT_FOUND"),
    ("post", "/phone-numbers/import"): ("TRUNK_NOT_FOUND", "AGENT_NOT_FOUND", "CONFLICT"),
    ("put", "/phone-numbers/link"): ("PHONE_NUMBER_NOT_FOUND", "AGENT_NOT_FOUND"),
    ("patch", "/phone-numbers/{number}"): ("PHONE_NUMBER_NOT_FOUND",),
    ("delete", "/phone-numbers/{number}"): ("PHONE_NUMBER_NOT_FOUND",),
    ("post", "/calls/create"): (
        "INSUFFICIENT_SCOPE",
        "WEB_CALLS_NOT_SUPPORTED",
        "AGENT_NOT_FOUND",
        "PROSPECT_NOT_FOUND",
        "PHONE_NUMBER_NOT_FOUND",
        "NUMBER_ON_DNC_LIST",
        "UPSTREAM_SERVICE_TIMEOUT",
    ),
    ("get", "/calls/{id}"): ("CALL_NOT_FOUND",),
    ("get", "/calls/{id}/recording"): ("CALL_NOT_FOUND", "RECORDING_NOT_FOUND"),
    ("post", "/calls/{id}/transfer"): _CALL_ACTION,
    ("post", "/calls/{id}/hangup"): _CALL_ACTION,
    ("post", "/webhook/human-transfer"): _CALL_ACTION,
    ("post", "/trunks"): ("CONFLICT", "TRUNK_HOST_UNRESOLVABLE"),
    ("get", "/trunks/{id}"): ("TRUNK_NOT_FOUND",),
    ("patch", "/trunks/{id}"): ("TRUNK_NOT_FOUND", "CONFLICT", "TRUNK_HOST_UNRESOLVABLE"),
    ("delete", "/trunks/{id}"): ("TRUNK_NOT_FOUND", "CONFLICT"),
    ("get", "/agents/{id}"): ("AGENT_NOT_FOUND",),
    ("patch", "/agents/{id}"): ("AGENT_NOT_FOUND",),
    ("delete", "/agents/{id}"): ("AGENT_NOT_FOUND", "CONFLICT"),
    ("delete", "/dnc/{phone}"): ("DNC_ENTRY_NOT_FOUND",),
    ("post", "/keys/{id}/revoke"): ("KEY_NOT_FOUND",),
    ("post", "/webhooks"): ("WEBHOOK_URL_NOT_ALLOWED", "WEBHOOK_URL_UNRESOLVABLE"),
    ("delete", "/webhooks/{id}"): ("WEBHOOK_NOT_FOUND",),
    ("get", "/webhooks/{id}/deliveries"): ("WEBHOOK_NOT_FOUND",),
    ("get", "/ready"): ("NOT_READY",),
}

_NUMBER_NOT_YOURS = [{"field": "from_numbers.0", "reason": "not one of your phone numbers"}]
_CAMPAIGN_NOT_STARTABLE = "cannot {} a campaign that is {}"

#: (method, path, code) -> the message (and details) the route words that code with, where it differs
#: from the code's own example.
ROUTE_EXAMPLES: dict[tuple[str, str, str], tuple[str, list[dict[str, Any]]]] = {
    ("post", "/campaigns", "AGENT_NOT_FOUND"): (
        "agent_id: agent not found",
        [{"field": "agent_id", "reason": "agent not found"}],
    ),
    ("post", "/campaigns", "PHONE_NUMBER_NOT_FOUND"): (
        "from_numbers.0: not one of your phone numbers",
        _NUMBER_NOT_YOURS,
    ),
    ("patch", "/campaigns/{id}", "PHONE_NUMBER_NOT_FOUND"): (
        "from_numbers.0: not one of your phone numbers",
        _NUMBER_NOT_YOURS,
    ),
    ("post", "/campaigns/{id}/start", "INVALID_CAMPAIGN_TRANSITION"): (
        _CAMPAIGN_NOT_STARTABLE.format("start", "active"),
        [],
    ),
    ("post", "/campaigns/{id}/resume", "INVALID_CAMPAIGN_TRANSITION"): (
        _CAMPAIGN_NOT_STARTABLE.format("resume", "draft"),
        [],
    ),
    ("post", "/campaigns/{id}/schedule-start", "INVALID_CAMPAIGN_TRANSITION"): (
        _CAMPAIGN_NOT_STARTABLE.format("schedule", "active"),
        [],
    ),
    ("post", "/phone-numbers/import", "CONFLICT"): ("Number already exists in system; delete it first", []),
    ("delete", "/trunks/{id}", "CONFLICT"): ("trunk is in use: 2 phone number(s) use this trunk", []),
    ("delete", "/agents/{id}", "CONFLICT"): (
        "agent is in use: 2 campaign(s) and 1 phone number(s) use this agent",
        [],
    ),
    ("post", "/calls/create", "INSUFFICIENT_SCOPE"): (
        "a publishable key (pk_live_) cannot create SIP calls",
        [],
    ),
    ("post", "/calls/create", "PHONE_NUMBER_NOT_FOUND"): (
        "sip_data.from_number is not one of your numbers",
        [],
    ),
    ("post", "/calls/create", "UPSTREAM_SERVICE_TIMEOUT"): (
        "the SIP gateway did not place the call: no capacity",
        [],
    ),
}

#: Codes derived from the route (api/openapi.py): any keyed route, a secret-key route, one with input.
KEYED = ("UNAUTHORIZED", "INVALID_API_KEY", "RATE_LIMITED")
SECRET = ("INSUFFICIENT_SCOPE",)
WITH_INPUT = ("VALIDATION_ERROR",)
ALWAYS = ("INTERNAL_SERVER_ERROR", "DATABASE_ERROR", "DATABASE_UNAVAILABLE")


def example_body(code: str, route: tuple[str, str] | None = None) -> dict[str, Any]:
    """The error body ``route`` (or any route) answers with for ``code``: its message (and details)."""
    entry = CODES[code]
    message, details = entry.example, list(entry.details)
    if route is not None and (own := ROUTE_EXAMPLES.get((*route, code))) is not None:
        message, details = own
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = list(details)
    return {"success": False, "error": error}


def invalid_body(details: list[dict[str, Any]]) -> dict[str, Any]:
    """A VALIDATION_ERROR body as api.errors.invalid makes it, for a route's own example."""
    parts = [f"{d['field']}: {d['reason']}" if d["field"] else d["reason"] for d in details]
    message = parts[0] if len(parts) == 1 else f"{len(parts)} invalid fields: " + "; ".join(parts)
    return {"success": False, "error": {"code": "VALIDATION_ERROR", "message": message, "details": details}}


#: What the route-derived VALIDATION_ERROR examples say (tests/api/test_error_examples.py sends these).
NOT_A_DICT = "Input should be a valid dictionary or object to extract fields from"
LIMIT_TOO_SMALL = "Input should be greater than or equal to 1"
NOT_A_PHONE = "not a phone number"


def validation_example(path: str, body_schema: dict[str, Any] | None) -> dict[str, Any]:
    """The VALIDATION_ERROR a route answers to its most common mistake, as that route words it:
    a malformed path id, a body without its required fields (or not an object), a page of 0."""
    if "{id}" in path:
        what = f"{path.split('/')[1].rstrip('s')} id"
        return invalid_body([{"field": "id", "reason": f"{what} is not a valid UUID"}])
    if "{number}" in path or "{phone}" in path:
        field = "number" if "{number}" in path else "phone"
        return invalid_body([{"field": field, "reason": NOT_A_PHONE}])
    if body_schema is not None:
        required = body_schema.get("required", [])
        if required:
            return invalid_body([{"field": name, "reason": "Field required"} for name in required])
        return invalid_body([{"field": "", "reason": NOT_A_DICT}])
    return invalid_body([{"field": "limit", "reason": LIMIT_TOO_SMALL}])


def documented(document: dict[str, Any]) -> dict[str, list[str]]:
    """code -> the operations (``GET /calls``) whose documented answers in ``document`` include it."""
    found: dict[str, list[str]] = {code: [] for code in CODES}
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            for answer in operation.get("responses", {}).values():
                examples = answer.get("content", {}).get("application/json", {}).get("examples", {})
                for code in examples:
                    if code in found:
                        found[code].append(f"{method.upper()} {path}")
    return found


def _routes_cell(code: str, routes: list[str], keyed: list[str]) -> str:
    if code in KEYED and routes and set(routes) == set(keyed):
        return "every route that takes a key"
    if code in SECRET:
        others = sorted(set(keyed) - set(routes))
        return "every route that takes a key, except " + ", ".join(f"`{r}`" for r in others)
    if CODES[code].routes:
        return CODES[code].routes
    return ", ".join(f"`{r}`" for r in routes)


def table(document: dict[str, Any]) -> str:
    """docs/errors.md's table of codes, by status then code, with the routes ``document`` shows them on."""
    found = documented(document)
    keyed = found["UNAUTHORIZED"]
    lines = ["| code | HTTP status | meaning | routes |", "|---|---|---|---|"]
    for code, entry in sorted(CODES.items(), key=lambda item: (item[1].status, item[0])):
        lines.append(
            f"| `{code}` | {entry.status} | {entry.meaning} | {_routes_cell(code, found[code], keyed)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Print the table for the app as built now (on a throwaway SQLite database)."""
    import tempfile

    from api.app import create_app
    from dialer.storage import SqlStore

    with tempfile.TemporaryDirectory() as folder:
        store = SqlStore(f"sqlite:///{folder}/codes.db")
        try:
            store.migrate()
            sys.stdout.write(table(create_app(store).openapi()))
        finally:
            store.dispose()


if __name__ == "__main__":
    main()
