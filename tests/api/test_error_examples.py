"""The examples /docs shows are true: request examples are accepted, every documented error happens.

For every operation of /openapi.json and every error code documented on it (api/error_codes.py), a
request made here gets that very answer from the live API: the code, its status, the error body's
shape. Codes every route of a kind gives (no key, a bad key, a publishable key, a bad id or body, a
missing resource, a spent allowance) are triggered the same way on every route; the others by a
recipe each. Only the 500s are not triggered per route (test_auth_and_errors makes one happen).
"""

from __future__ import annotations

import copy
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from api import error_codes
from api import seed_examples as examples
from api.app import create_app
from api.ratelimit import Limit, RateLimits
from api.runtime import GatewayUnavailable
from dialer.domain import AttemptResult, ProspectState, ProspectUpdate
from dialer.outcome import Outcome
from dialer.storage import SqlStore
from tests.api.conftest import DID, ROOMY, FakeRuntime, Tenant, make_tenant, serve

UNKNOWN_PHONE = "+14155559999"
#: Not triggered per route: no request can make them happen on purpose (test_auth_and_errors forces one).
UNTRIGGERED = {"INTERNAL_SERVER_ERROR", "DATABASE_ERROR", "DATABASE_UNAVAILABLE"}
#: The resource a path's first id names, and the code for it missing.
PATH_RESOURCE = {
    "/campaigns/{id}": "CAMPAIGN_NOT_FOUND",
    "/calls/{id}": "CALL_NOT_FOUND",
    "/trunks/{id}": "TRUNK_NOT_FOUND",
    "/agents/{id}": "AGENT_NOT_FOUND",
    "/keys/{id}": "KEY_NOT_FOUND",
    "/webhooks/{id}": "WEBHOOK_NOT_FOUND",
    "/phone-numbers/{number}": "PHONE_NUMBER_NOT_FOUND",
    "/dnc/{phone}": "DNC_ENTRY_NOT_FOUND",
}


def fill(path: str, **values: str) -> str:
    """``path`` with its placeholders set: ids random (or as given), phone numbers unknown."""
    defaults = {"number": "%2B14155559999", "phone": "%2B14155559999"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m[1], defaults.get(m[1], str(uuid4()))), path)


def mine(example: dict[str, Any], **ids: Any) -> dict[str, Any]:
    """A copy of a documented request example with its resource ids swapped for the caller's."""
    body = copy.deepcopy(example)
    for key, value in ids.items():
        body[key] = str(value)
    return body


def answer_of(document: dict[str, Any], method: str, path: str, code: str) -> dict[str, Any]:
    status = str(error_codes.CODES[code].status)
    content = document["paths"][path][method]["responses"][status]["content"]["application/json"]
    example: dict[str, Any] = content["examples"][code]["value"]
    return example


def check(response: httpx.Response, code: str, documented: dict[str, Any], where: str) -> None:
    """The real answer has the documented code and status, and the documented body's every key."""
    assert response.status_code == error_codes.CODES[code].status, (where, response.text)
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code, (where, body)
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], (where, body)
    assert set(documented["error"]) <= set(body["error"]), (where, body)
    if code == "VALIDATION_ERROR":
        assert all({"field", "reason"} <= set(d) for d in body["error"]["details"]), (where, body)
        if where.endswith(" generic"):  # the route's own example: this very answer
            assert body["error"] == documented["error"], (where, body)
    route = tuple(where.split()[:2])
    if (*route, code) in error_codes.ROUTE_EXAMPLES and where.endswith(" recipe"):
        # The route's own wording, counts aside ("2 phone number(s) use this trunk").
        assert _counts_aside(body["error"]["message"]) == _counts_aside(documented["error"]["message"]), where


def _counts_aside(message: str) -> str:
    return re.sub(r"\b\d+\b", "N", message)


@dataclass
class World:
    """What the recipes act on: a tenant on the app, its runtime and store."""

    acme: Tenant
    runtime: FakeRuntime
    store: SqlStore
    document: dict[str, Any] | None = None  # the OpenAPI document, once fetched

    def reset(self) -> None:
        """The runtime as the fixture made it: accepting, healthy, its own methods."""
        self.runtime.reject, self.runtime.fail_health = None, False
        for name in ("transfer_call", "hangup_call"):
            vars(self.runtime).pop(name, None)

    async def campaign(self, *, start: bool = False) -> str:
        body = {
            "name": "C",
            "agent_id": str(self.acme.agent),
            "candidates": [{"name": "Ann", "phone": "+14155552671"}],
            "from_numbers": [DID],
            "start_campaign": start,
        }
        response = await self.acme.client.post("/campaigns", json=body)
        assert response.status_code == 200, response.text
        campaign_id: str = response.json()["campaign_id"]
        return campaign_id

    async def call(self, *, ended: bool = False) -> UUID:
        call = await self.store.create_call(self.acme.id, DID, "+14155552671", agent_id=self.acme.agent)
        if ended:
            result = AttemptResult(outcome=Outcome.FAILED, ended_at=datetime.now(UTC), reason="test")
            await self.store.finish_attempt(call, result, ProspectUpdate(ProspectState.FAILED, None, None))
        return call


Recipe = Callable[[World], Awaitable[httpx.Response]]


def _call_body(world: World, **sip: Any) -> dict[str, Any]:
    sip = {"to": "+14155552681"} | sip  # not the number _dnc_then_call puts on the list
    return {"agent_id": str(world.acme.agent), "type": "sip", "sip_data": sip}


async def _on_call_action(world: World, path: str, call: UUID) -> httpx.Response:
    if path == "/webhook/human-transfer":
        return await world.acme.client.post(path, json={"to_number": DID, "call_id": str(call)})
    return await world.acme.client.post(fill(path, id=str(call)), json={"to_number": DID})


def _gateway_gone(world: World) -> None:
    async def unavailable(*_args: object) -> None:
        raise GatewayUnavailable("no gateway answered")

    world.runtime.transfer_call = unavailable  # type: ignore[method-assign]
    world.runtime.hangup_call = unavailable  # type: ignore[method-assign]


def _call_action_recipes(path: str) -> dict[tuple[str, str, str], Recipe]:
    async def ended(w: World) -> httpx.Response:
        return await _on_call_action(w, path, await w.call(ended=True))

    async def refused(w: World) -> httpx.Response:
        w.runtime.reject = "call is not up"
        return await _on_call_action(w, path, await w.call())

    async def gone(w: World) -> httpx.Response:
        _gateway_gone(w)
        return await _on_call_action(w, path, await w.call())

    return {
        ("post", path, "CALL_ENDED"): ended,
        ("post", path, "UPSTREAM_SERVICE_ERROR"): refused,
        ("post", path, "UPSTREAM_SERVICE_TIMEOUT"): gone,
    }


async def _transition(
    w: World, verb: str, *, start: bool, body: dict[str, Any] | None = None
) -> httpx.Response:
    campaign = await w.campaign(start=start)
    return await w.acme.client.post(f"/campaigns/{campaign}/{verb}", json=body)


async def _dnc_then_call(w: World) -> httpx.Response:
    await w.acme.client.post("/dnc", json={"phone": "+14155552680"})
    return await w.acme.client.post("/calls/create", json=_call_body(w, to="+14155552680", from_number=DID))


async def _call_refused(w: World) -> httpx.Response:
    w.runtime.reject = "no capacity"
    return await w.acme.client.post("/calls/create", json=_call_body(w, from_number=DID))


async def _patch_trunk_to_taken_name(w: World) -> httpx.Response:
    other = await w.acme.client.post("/trunks", json={"name": "second", "host": "203.0.113.6"})
    assert other.status_code == 201, other.text
    return await w.acme.client.patch(f"/trunks/{w.acme.trunk}", json={"name": "second"})


async def _patch_trunk_to_unresolvable_host(w: World) -> httpx.Response:
    return await w.acme.client.patch(f"/trunks/{w.acme.trunk}", json={"host": "no-such-host.invalid"})


async def _patch_campaign(w: World, body: dict[str, Any]) -> httpx.Response:
    return await w.acme.client.patch(f"/campaigns/{await w.campaign()}", json=body)


async def _remove_unknown_prospect(w: World) -> httpx.Response:
    return await w.acme.client.delete(f"/campaigns/{await w.campaign()}/prospects/{uuid4()}")


async def _no_campaign_transfer(w: World) -> httpx.Response:
    return await w.acme.client.post(
        "/webhook/human-transfer", json={"to_number": DID, "call_id": str(uuid4())}
    )


async def _unrecorded_call(w: World) -> httpx.Response:
    return await w.acme.client.get(f"/calls/{await w.call(ended=True)}/recording")


async def _not_ready(w: World) -> httpx.Response:
    w.runtime.fail_health = True
    return await w.acme.anonymous.get("/ready")


def _post(path: str, body: Callable[[World], dict[str, Any]], client: str = "client") -> Recipe:
    async def send(w: World) -> httpx.Response:
        http: httpx.AsyncClient = getattr(w.acme, client)
        return await http.post(path, json=body(w))

    return send


def _put(path: str, body: Callable[[World], dict[str, Any]]) -> Recipe:
    async def send(w: World) -> httpx.Response:
        return await w.acme.client.put(path, json=body(w))

    return send


def _delete_own(path: str, attr: str) -> Recipe:
    async def send(w: World) -> httpx.Response:
        return await w.acme.client.delete(fill(path, id=str(getattr(w.acme, attr))))

    return send


RECIPES: dict[tuple[str, str, str], Recipe] = {
    ("post", "/campaigns", "AGENT_NOT_FOUND"): _post(
        "/campaigns", lambda w: examples.CAMPAIGN_CREATE | {"from_numbers": [DID]}
    ),
    ("post", "/campaigns", "PHONE_NUMBER_NOT_FOUND"): _post(
        "/campaigns",
        lambda w: mine(examples.CAMPAIGN_CREATE, agent_id=w.acme.agent) | {"from_numbers": [UNKNOWN_PHONE]},
    ),
    ("patch", "/campaigns/{id}", "AGENT_NOT_FOUND"): lambda w: _patch_campaign(w, {"agent_id": str(uuid4())}),
    ("patch", "/campaigns/{id}", "PHONE_NUMBER_NOT_FOUND"): lambda w: _patch_campaign(
        w, {"from_numbers": [UNKNOWN_PHONE]}
    ),
    ("post", "/campaigns/{id}/start", "INVALID_CAMPAIGN_TRANSITION"): lambda w: _transition(
        w, "start", start=True
    ),
    ("post", "/campaigns/{id}/pause", "INVALID_CAMPAIGN_TRANSITION"): lambda w: _transition(
        w, "pause", start=False
    ),
    ("post", "/campaigns/{id}/resume", "INVALID_CAMPAIGN_TRANSITION"): lambda w: _transition(
        w, "resume", start=False
    ),
    ("post", "/campaigns/{id}/schedule-start", "INVALID_CAMPAIGN_TRANSITION"): lambda w: _transition(
        w, "schedule-start", start=True, body=examples.SCHEDULE_START
    ),
    ("delete", "/campaigns/{id}/prospects/{pid}", "PROSPECT_NOT_FOUND"): _remove_unknown_prospect,
    ("post", "/phone-numbers/import", "TRUNK_NOT_FOUND"): _post(
        "/phone-numbers/import", lambda w: {"phone_number": "+14155550150", "trunk_id": str(uuid4())}
    ),
    ("post", "/phone-numbers/import", "AGENT_NOT_FOUND"): _post(
        "/phone-numbers/import", lambda w: {"phone_number": "+14155550151", "agent_id": str(uuid4())}
    ),
    ("post", "/phone-numbers/import", "CONFLICT"): _post(
        "/phone-numbers/import", lambda w: {"phone_number": DID}
    ),
    ("put", "/phone-numbers/link", "PHONE_NUMBER_NOT_FOUND"): _put(
        "/phone-numbers/link", lambda w: {"phone_number": UNKNOWN_PHONE, "agent_id": str(w.acme.agent)}
    ),
    ("put", "/phone-numbers/link", "AGENT_NOT_FOUND"): _put(
        "/phone-numbers/link", lambda w: {"phone_number": DID, "agent_id": str(uuid4())}
    ),
    ("post", "/calls/create", "INSUFFICIENT_SCOPE"): _post("/calls/create", _call_body, client="public"),
    ("post", "/calls/create", "WEB_CALLS_NOT_SUPPORTED"): _post(
        "/calls/create", lambda w: {"agent_id": str(w.acme.agent), "type": "web"}
    ),
    ("post", "/calls/create", "AGENT_NOT_FOUND"): _post(
        "/calls/create", lambda w: _call_body(w) | {"agent_id": str(uuid4())}
    ),
    ("post", "/calls/create", "PROSPECT_NOT_FOUND"): _post(
        "/calls/create", lambda w: _call_body(w) | {"prospect_id": str(uuid4())}
    ),
    ("post", "/calls/create", "PHONE_NUMBER_NOT_FOUND"): _post(
        "/calls/create", lambda w: _call_body(w, from_number=UNKNOWN_PHONE)
    ),
    ("post", "/calls/create", "NUMBER_ON_DNC_LIST"): _dnc_then_call,
    ("post", "/calls/create", "UPSTREAM_SERVICE_TIMEOUT"): _call_refused,
    ("post", "/webhook/human-transfer", "CALL_NOT_FOUND"): _no_campaign_transfer,
    **_call_action_recipes("/calls/{id}/transfer"),
    **_call_action_recipes("/calls/{id}/hangup"),
    **_call_action_recipes("/webhook/human-transfer"),
    ("post", "/trunks", "CONFLICT"): _post("/trunks", lambda w: {"name": "main", "host": "203.0.113.5"}),
    ("patch", "/trunks/{id}", "CONFLICT"): _patch_trunk_to_taken_name,
    ("post", "/trunks", "TRUNK_HOST_UNRESOLVABLE"): _post(
        "/trunks", lambda w: {"name": "typo", "host": "no-such-host.invalid"}
    ),
    ("patch", "/trunks/{id}", "TRUNK_HOST_UNRESOLVABLE"): _patch_trunk_to_unresolvable_host,
    ("delete", "/trunks/{id}", "CONFLICT"): _delete_own("/trunks/{id}", "trunk"),
    ("delete", "/agents/{id}", "CONFLICT"): _delete_own("/agents/{id}", "agent"),
    ("post", "/webhooks", "WEBHOOK_URL_NOT_ALLOWED"): _post(
        "/webhooks", lambda w: {"url": "http://127.0.0.1:9/hook", "events": ["call.completed"]}
    ),
    ("post", "/webhooks", "WEBHOOK_URL_UNRESOLVABLE"): _post(
        "/webhooks", lambda w: {"url": "https://no-such-host.invalid/hook", "events": ["call.completed"]}
    ),
    ("get", "/ready", "NOT_READY"): _not_ready,
    ("get", "/calls/{id}/recording", "RECORDING_NOT_FOUND"): _unrecorded_call,
}


def _valid_body(method: str, path: str) -> dict[str, Any] | None:
    """A body the route accepts as to its shape (its documented example), so the id is what fails."""
    return examples.REQUESTS.get((method, path))


async def generic(world: World, method: str, path: str, code: str) -> httpx.Response | None:
    """Trigger a code every route of a kind gives, or None when ``code`` is not one of those."""
    acme = world.acme
    body = _valid_body(method, path)
    if code == "UNAUTHORIZED":
        return await acme.anonymous.request(method, fill(path), json=body)
    if code == "INVALID_API_KEY":
        bogus = {"X-API-Key": "sk_live_" + "0" * 48}
        return await acme.anonymous.request(method, fill(path), json=body, headers=bogus)
    if code == "INSUFFICIENT_SCOPE" and (method, path) != ("post", "/calls/create"):
        return await acme.public.request(method, fill(path), json=body)
    if code == "VALIDATION_ERROR":  # the mistakes error_codes.validation_example words
        if "{" in path:
            bad = fill(path, id="not-a-uuid", pid="not-a-uuid", number="abc", phone="abc")
            return await acme.client.request(method, bad, json=body)
        if method in ("get", "delete"):
            return await acme.client.request(method, path, params={"limit": 0})
        return await acme.client.request(
            method, path, json={} if _requires_fields(world, method, path) else []
        )
    prefix = next((p for p in PATH_RESOURCE if path.startswith(p)), None)
    if prefix is not None and PATH_RESOURCE[prefix] == code:
        return await acme.client.request(method, fill(path), json=body)
    return None


def _requires_fields(world: World, method: str, path: str) -> bool:
    """Whether the route's JSON body has required fields (then ``{}`` is the mistake to make)."""
    assert world.document is not None
    schema = world.document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = world.document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return bool(schema.get("required"))


@pytest.fixture
async def world(store: SqlStore, runtime: FakeRuntime, acme: Tenant) -> World:
    return World(acme, runtime, store)


async def test_every_documented_error_is_what_the_route_answers(world: World) -> None:
    document = (await world.acme.anonymous.get("/openapi.json")).json()
    used: set[tuple[str, str, str]] = set()
    untriggered: set[str] = set()
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = _error_codes(operation)
            for code in codes:
                if code == "RATE_LIMITED":
                    continue  # test_every_keyed_route_is_rate_limited
                world.reset()
                recipe = RECIPES.get((method, path, code))
                world.document = document
                if recipe is not None:
                    used.add((method, path, code))
                    response, how = await recipe(world), "recipe"
                else:
                    response, how = await generic(world, method, path, code), "generic"
                if response is None:
                    untriggered.add(code)
                    continue
                where = f"{method} {path} {code} {how}"
                check(response, code, answer_of(document, method, path, code), where)
                checked += 1
    assert untriggered <= UNTRIGGERED, untriggered - UNTRIGGERED
    assert used == set(RECIPES), set(RECIPES) - used  # no recipe for a code no longer documented
    assert checked > 150


def _error_codes(operation: dict[str, Any]) -> list[str]:
    """The codes of the operation's documented error answers (4xx and 5xx)."""
    return [
        code
        for status, answer in operation["responses"].items()
        if int(status) >= 400
        for code in answer["content"]["application/json"]["examples"]
    ]


@pytest.fixture
async def strict(store: SqlStore) -> AsyncIterator[Tenant]:
    """A tenant on an app that allows two requests per route and key (near-zero refill)."""
    limits = RateLimits(general=Limit(0.01, 2), call_creation=Limit(0.01, 2))
    async for url in serve(create_app(store, runtime=FakeRuntime(), limits=limits)):
        async for tenant in make_tenant(store, url):
            yield tenant


async def test_every_keyed_route_is_rate_limited(strict: Tenant) -> None:
    document = (await strict.anonymous.get("/openapi.json")).json()
    limited = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "RATE_LIMITED" not in _error_codes(operation):
                continue
            url = fill(path)
            for _ in range(2):
                await strict.client.request(method, url, json=_valid_body(method, path))
            response = await strict.client.request(method, url, json=_valid_body(method, path))
            check(
                response,
                "RATE_LIMITED",
                answer_of(document, method, path, "RATE_LIMITED"),
                f"{method} {path}",
            )
            assert int(response.headers["Retry-After"]) >= 1
            limited += 1
    assert limited > 40


@pytest.fixture
async def open_world(store: SqlStore) -> AsyncIterator[Tenant]:
    """A tenant on an app whose webhooks may be private (the webhook example's documentation address)."""
    app = create_app(store, runtime=FakeRuntime(), limits=ROOMY, webhook_allow_private=True)
    async for url in serve(app):
        async for tenant in make_tenant(store, url):
            yield tenant


async def test_every_request_example_is_accepted(open_world: Tenant) -> None:
    """Each documented request example, its resource ids swapped for the tenant's, succeeds as is."""
    client = open_world.client
    sent: set[tuple[str, str]] = set()

    async def send(method: str, path: str, url: str, body: dict[str, Any], **query: str) -> dict[str, Any]:
        sent.add((method, path))
        response = await client.request(method, url, json=body, params=query or None)
        assert response.status_code in (200, 201), (method, path, response.text)
        answer: dict[str, Any] = response.json()
        return answer

    agent = (await send("post", "/agents", "/agents", examples.AGENT_CREATE))["id"]
    await send(
        "post", "/phone-numbers/import", "/phone-numbers/import", mine(examples.NUMBER_IMPORT, agent_id=agent)
    )
    await send("post", "/phone-numbers/import", "/phone-numbers/import", {"phone_number": "+919876543210"})
    await send(
        "put", "/phone-numbers/link", "/phone-numbers/link", mine(examples.NUMBER_LINK, agent_id=agent)
    )
    number = "/phone-numbers/%2B918071387205"
    await send("patch", "/phone-numbers/{number}", number, examples.NUMBER_UPDATE)
    campaign = (
        await send("post", "/campaigns", "/campaigns", mine(examples.CAMPAIGN_CREATE, agent_id=agent))
    )["campaign_id"]
    await send("patch", "/campaigns/{id}", f"/campaigns/{campaign}", examples.CAMPAIGN_PATCH)
    await client.post(f"/campaigns/{campaign}/pause")  # it started: schedulable once paused
    await send(
        "post",
        "/campaigns/{id}/schedule-start",
        f"/campaigns/{campaign}/schedule-start",
        examples.SCHEDULE_START,
    )
    prospects = f"/campaigns/{campaign}/prospects"
    uploaded = await send("post", "/campaigns/{id}/prospects", prospects, examples.PROSPECTS_UPLOAD)
    assert uploaded["inserted"] == 2 and uploaded["invalid"] == 0
    prospect = (await client.get(prospects)).json()["data"][0]["id"]
    call = (
        await send(
            "post",
            "/calls/create",
            "/calls/create",
            mine(examples.CALL_CREATE, agent_id=agent, prospect_id=prospect),
        )
    )["call_id"]
    await send("post", "/calls/{id}/transfer", f"/calls/{call}/transfer", examples.CALL_TRANSFER)
    await send(
        "post", "/webhook/human-transfer", "/webhook/human-transfer", examples.HUMAN_TRANSFER, call_id=call
    )
    trunk = (await send("post", "/trunks", "/trunks", examples.TRUNK_CREATE))["id"]
    await send("patch", "/trunks/{id}", f"/trunks/{trunk}", examples.TRUNK_UPDATE)
    await send("patch", "/agents/{id}", f"/agents/{agent}", examples.AGENT_UPDATE)
    await send("post", "/dnc", "/dnc", examples.DNC_ADD)
    await send("post", "/keys", "/keys", examples.KEY_CREATE)
    await send("post", "/webhooks", "/webhooks", examples.WEBHOOK_CREATE)
    await send("patch", "/settings/recordings", "/settings/recordings", examples.RECORDING_RETENTION)
    assert sent == set(examples.REQUESTS), set(examples.REQUESTS) - sent
    document = (await open_world.anonymous.get("/openapi.json")).json()
    with_body = {
        (method, path)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    }
    assert with_body == sent, with_body ^ sent  # every JSON body documented has an example, tried here


async def test_the_table_in_docs_errors_md_is_current(acme: Tenant) -> None:
    """docs/errors.md holds ``python -m api.error_codes``'s table for the app as it is, and every code
    the API's source raises is in the catalog."""
    document = (await acme.anonymous.get("/openapi.json")).json()
    assert error_codes.table(document) in _read(ROOT / "docs" / "errors.md"), (
        "regenerate: python -m api.error_codes"
    )
    raised = set()
    for source in (ROOT / "api").rglob("*.py"):
        raised |= set(re.findall(r'[A-Za-z]\(\s*"([A-Z][A-Z_]+)"', _read(source)))
    assert raised <= set(error_codes.CODES) | {"HTTP_ERROR"}, raised - set(error_codes.CODES)
    assert {"NOT_FOUND", "CAMPAIGN_NOT_FOUND", "CONFLICT"} <= raised  # the scan finds codes


ROOT = Path(__file__).resolve().parents[2]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
