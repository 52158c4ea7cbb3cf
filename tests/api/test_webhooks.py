"""Webhooks end to end: CRUD, signed deliveries to a real receiver, retries, restart, no blocking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from api.app import create_app
from dialer.metrics import MeteredLauncher, Metrics
from dialer.outcome import Outcome
from dialer.ports import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallLauncher,
    CallRequest,
    CallRinging,
    DispatchObserver,
)
from dialer.storage import SqlStore
from dialer.webhook_delivery import WebhookSender, verify
from dialer.webhook_targets import WebhookTargets
from dialer.webhooks import WebhookEmitter, build_webhooks
from tests.api.conftest import ROOMY, FakeRuntime, Tenant, assert_error, serve
from tests.api.test_campaigns import seed_body
from tests.api.webhook_receiver import Receiver, eventually, run_receiver

FAST = (0.05, 0.1, 0.2, 0.4)  # the production schedule (1, 4, 16, 64 s) scaled down
LOOPBACK = WebhookTargets(allow_private=True)  # the test receivers listen on 127.0.0.1


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def emitter(store: SqlStore, metrics: Metrics) -> AsyncIterator[WebhookEmitter]:
    emitter = build_webhooks(store, metrics, retry_delays=FAST, timeout=0.5, allow_private=True)
    await emitter.start()
    try:
        yield emitter
    finally:
        await emitter.stop()


@pytest.fixture
async def base_url(store: SqlStore, runtime: FakeRuntime, emitter: WebhookEmitter) -> AsyncIterator[str]:
    async for url in serve(create_app(store, runtime=runtime, limits=ROOMY, webhooks=emitter)):
        yield url


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async for running in run_receiver(Receiver()):
        yield running


async def subscribe(tenant: Tenant, receiver: Receiver, *events: str) -> str:
    response = await tenant.client.post("/webhooks", json={"url": receiver.url, "events": list(events)})
    assert response.status_code == 201, response.text
    receiver.secret = response.json()["secret"]
    return str(response.json()["id"])


def delivered_count(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("dialer_webhook_deliveries_total", {"result": result})
    return value or 0.0


async def test_crud_secret_once_and_errors(acme: Tenant, other: Tenant, receiver: Receiver) -> None:
    created = await acme.client.post(
        "/webhooks", json={"url": receiver.url, "events": ["call.completed"], "description": "crm"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["call.completed"]
    listed = (await acme.client.get("/webhooks")).json()["data"]
    assert [w["id"] for w in listed] == [body["id"]] and "secret" not in listed[0]
    log = (await acme.client.get(f"/webhooks/{body['id']}/deliveries")).json()
    assert log == {"data": [], "total": 0}

    assert (await other.client.get("/webhooks")).json()["data"] == []
    assert_error(await other.client.delete(f"/webhooks/{body['id']}"), 404, "WEBHOOK_NOT_FOUND")
    assert_error(await other.client.get(f"/webhooks/{body['id']}/deliveries"), 404, "WEBHOOK_NOT_FOUND")
    assert_error(await acme.client.delete("/webhooks/nope"), 400, "VALIDATION_ERROR")
    assert_error(await acme.public.get("/webhooks"), 403, "INSUFFICIENT_SCOPE")
    assert_error(await acme.anonymous.get("/webhooks"), 401, "UNAUTHORIZED")
    bad_url = {"url": "ftp://x.example/hook", "events": ["call.completed"]}
    assert_error(await acme.client.post("/webhooks", json=bad_url), 400, "VALIDATION_ERROR")
    bad_event = {"url": receiver.url, "events": ["call.exploded"]}
    assert_error(await acme.client.post("/webhooks", json=bad_event), 400, "VALIDATION_ERROR")
    assert_error(
        await acme.client.post("/webhooks", json={"url": receiver.url, "events": []}), 400, "VALIDATION_ERROR"
    )

    deleted = await acme.client.delete(f"/webhooks/{body['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"success": True, "id": body["id"]}
    assert_error(await acme.client.delete(f"/webhooks/{body['id']}"), 404, "WEBHOOK_NOT_FOUND")


async def test_campaign_events_are_signed_and_logged(
    acme: Tenant, other: Tenant, receiver: Receiver, metrics: Metrics
) -> None:
    hook = await subscribe(acme, receiver, "campaign.started", "campaign.paused", "campaign.resumed")
    campaign = (await acme.client.post("/campaigns", json=seed_body(acme.agent))).json()["campaign_id"]
    for verb in ("start", "pause", "resume"):
        assert (await acme.client.post(f"/campaigns/{campaign}/{verb}")).status_code == 200
    # Another tenant's campaign never reaches Acme's endpoint.
    theirs = (await other.client.post("/campaigns", json=seed_body(other.agent))).json()["campaign_id"]
    await other.client.post(f"/campaigns/{theirs}/start")
    await eventually(lambda: len(receiver.received) >= 3)

    types = [r.event["type"] for r in receiver.received]
    assert sorted(types) == ["campaign.paused", "campaign.resumed", "campaign.started"]
    for got in receiver.received:
        assert got.signature_ok
        assert verify(receiver.secret, got.headers["x-signature"], got.body)
        assert not verify(receiver.secret, got.headers["x-signature"], got.body + b" ")
        assert not verify("whsec_wrong", got.headers["x-signature"], got.body)
        event = got.event
        assert set(event) == {"id", "type", "created_at", "tenant_id", "data"}
        assert got.headers["x-webhook-id"] == event["id"] and event["tenant_id"] == str(acme.id)
        assert event["data"]["campaign_id"] == campaign
    started = receiver.of_type("campaign.started")[0].event
    assert started["data"]["status"] == "active"

    async def logged() -> bool:
        rows = (await acme.client.get(f"/webhooks/{hook}/deliveries")).json()["data"]
        return len(rows) == 3 and all(r["status"] == "delivered" for r in rows)

    await eventually(logged)
    rows = (await acme.client.get(f"/webhooks/{hook}/deliveries")).json()["data"]
    assert all(r["attempts"] == 1 and r["http_status"] == 200 and r["last_error"] is None for r in rows)
    assert delivered_count(metrics, "delivered") == 3


async def test_retries_after_500_then_succeeds(
    acme: Tenant, receiver: Receiver, emitter: WebhookEmitter, store: SqlStore, metrics: Metrics
) -> None:
    receiver.statuses = [500, 503, 200]
    hook = await subscribe(acme, receiver, "campaign.paused")
    emitter.emit("campaign.paused", {"campaign_id": None}, tenant_id=acme.id)
    await eventually(lambda: len(receiver.received) == 3)
    assert len({r.headers["x-webhook-id"] for r in receiver.received}) == 1  # one event, three tries
    assert len({r.body for r in receiver.received}) == 1 and all(r.signature_ok for r in receiver.received)

    async def delivered() -> bool:
        rows, _ = await store.list_deliveries(UUID(hook))
        return rows[0].status == "delivered"

    await eventually(delivered)
    [row], _ = await store.list_deliveries(UUID(hook))
    assert row.attempts == 3 and row.http_status == 200
    assert delivered_count(metrics, "retried") == 2 and delivered_count(metrics, "delivered") == 1


async def test_gives_up_after_the_last_try(
    acme: Tenant, receiver: Receiver, store: SqlStore, metrics: Metrics
) -> None:
    receiver.statuses = [500]
    hook = await subscribe(acme, receiver, "campaign.paused")
    sender = WebhookEmitter(
        WebhookSender(store, metrics, retry_delays=(0.01, 0.01), timeout=0.5, targets=LOOPBACK)
    )
    await sender.start()
    try:
        sender.emit("campaign.paused", {}, tenant_id=acme.id)

        async def failed() -> bool:
            rows, _ = await store.list_deliveries(UUID(hook))
            return bool(rows) and rows[0].status == "failed"

        await eventually(failed)
    finally:
        await sender.stop()
    [row], _ = await store.list_deliveries(UUID(hook))
    assert row.attempts == 3 and row.http_status == 500 and row.last_error == "HTTP 500"
    assert len(receiver.received) == 3 and delivered_count(metrics, "failed") == 1


async def test_pending_deliveries_survive_a_restart(
    acme: Tenant, receiver: Receiver, store: SqlStore
) -> None:
    receiver.statuses = [503, 200]
    hook = await subscribe(acme, receiver, "campaign.paused")
    first = WebhookSender(store, retry_delays=(60.0,), timeout=0.5, targets=LOOPBACK)
    await first.start()
    emitter = WebhookEmitter(first)
    emitter.emit("campaign.paused", {"n": 1}, tenant_id=acme.id)

    async def failed_once() -> bool:
        rows, _ = await store.list_deliveries(UUID(hook))
        return bool(rows) and rows[0].attempts == 1 and rows[0].last_error is not None

    await eventually(failed_once)
    await first.stop()  # "crash": the retry is a minute away and only the row remembers it

    later = datetime.now(UTC) + timedelta(seconds=61)
    second = WebhookSender(store, retry_delays=(60.0,), timeout=0.5, clock=lambda: later, targets=LOOPBACK)
    await second.start()
    try:

        async def delivered() -> bool:
            rows, _ = await store.list_deliveries(UUID(hook))
            return rows[0].status == "delivered"

        await eventually(delivered)
    finally:
        await second.stop()
    assert len(receiver.received) == 2 and receiver.received[1].signature_ok
    assert receiver.received[0].headers["x-webhook-id"] == receiver.received[1].headers["x-webhook-id"]


async def test_a_hanging_receiver_never_delays_emit(
    acme: Tenant, receiver: Receiver, emitter: WebhookEmitter, store: SqlStore
) -> None:
    receiver.hang = True
    await subscribe(acme, receiver, "campaign.paused")
    emitter.emit("campaign.paused", {}, tenant_id=acme.id)
    await eventually(lambda: len(receiver.received) >= 1)  # a POST is now stuck in the receiver
    # emit() is synchronous: each call returns at once with the event queued, whatever the receiver does.
    for i in range(500):
        assert emitter.emit("campaign.paused", {"i": i}, tenant_id=acme.id)
    # The loop is still free: the API answers while POSTs hang (a liveness bound, not a timing assertion).
    health = await asyncio.wait_for(acme.client.get("/health"), 10)
    assert health.status_code in (200, 503)


async def test_a_full_queue_drops_instead_of_waiting(store: SqlStore, metrics: Metrics) -> None:
    emitter = WebhookEmitter(WebhookSender(store, metrics, queue_size=2))  # never started: nothing drains
    assert emitter.emit("campaign.paused", {}, tenant_id=uuid4())
    assert emitter.emit("campaign.paused", {}, tenant_id=uuid4())
    assert not emitter.emit("campaign.paused", {}, tenant_id=uuid4())  # returns False at once, never waits
    assert delivered_count(metrics, "dropped") == 1


class FakeLauncher(CallLauncher):
    """A launcher whose calls only exist as the events the test fires."""

    def __init__(self) -> None:
        super().__init__()
        self.placed: list[CallRequest] = []

    async def place(self, request: CallRequest) -> None:
        self.placed.append(request)

    async def hangup(self, attempt_id: UUID) -> None:
        pass

    def capacity(self) -> int:
        return 4

    def live_attempts(self) -> set[UUID]:
        return set()


async def test_call_events_from_the_launcher(
    acme: Tenant, receiver: Receiver, emitter: WebhookEmitter, metrics: Metrics
) -> None:
    await subscribe(acme, receiver, "call.ringing", "call.answered", "call.completed", "call.transferred")
    gateway = FakeLauncher()
    launcher = MeteredLauncher(emitter.launcher(gateway), metrics)  # the runtime's order
    forwarded: list[CallEvent] = []
    launcher.on_event = forwarded.append
    call_id, campaign_id = uuid4(), uuid4()
    request = CallRequest(call_id, acme.id, campaign_id, acme.trunk, "+14155550100", "+14155552671", 30, 1)
    await launcher.place(request)
    t0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    events: list[CallEvent] = [
        CallRinging(call_id, t0 + timedelta(seconds=1), pdd_ms=1000.0),
        CallAnswered(call_id, t0 + timedelta(seconds=4)),
        CallEnded(
            call_id,
            t0 + timedelta(seconds=64),
            200,
            "Normal",
            True,
            invited_at=t0,
            answered_at=t0 + timedelta(seconds=4),
            transferred=True,
        ),
    ]
    for event in events:
        gateway.on_event(event)
    assert forwarded == events  # nothing is held back from the dispatcher
    await eventually(lambda: len(receiver.received) == 4)
    by_type = {r.event["type"]: r.event["data"] for r in receiver.received}
    assert set(by_type) == {"call.ringing", "call.answered", "call.transferred", "call.completed"}
    assert by_type["call.ringing"]["pdd_ms"] == 1000.0 and by_type["call.ringing"]["call_id"] == str(call_id)
    done = by_type["call.completed"]
    assert done["outcome"] == "transferred" and done["sip_code"] == 200
    assert done["ring_seconds"] == 4.0 and done["talk_seconds"] == 60.0 and done["total_seconds"] == 64.0
    assert done["campaign_id"] == str(campaign_id) and done["to_number"] == "+14155552671"


async def test_an_answering_machine_call_carries_its_verdict(
    acme: Tenant, receiver: Receiver, emitter: WebhookEmitter, metrics: Metrics
) -> None:
    await subscribe(acme, receiver, "call.completed")
    gateway = FakeLauncher()
    launcher = MeteredLauncher(emitter.launcher(gateway), metrics)
    call_id, campaign_id = uuid4(), uuid4()
    request = CallRequest(call_id, acme.id, campaign_id, acme.trunk, "+14155550100", "+14155552671", 30, 1)
    await launcher.place(request)
    t0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    answered = t0 + timedelta(seconds=3)
    ended = CallEnded(
        call_id, t0 + timedelta(seconds=9), 200, "Normal", True, invited_at=t0, answered_at=answered,
        answered_by="machine_end_beep", amd_seconds=2.4,
    )  # fmt: skip
    gateway.on_event(ended)
    await eventually(lambda: len(receiver.received) == 1)
    done = receiver.received[0].event["data"]
    assert done["outcome"] == "voicemail" and done["answered_by"] == "machine_end_beep"
    labels = {"campaign": str(campaign_id), "answered_by": "machine_end_beep"}
    assert metrics.registry.get_sample_value("dialer_amd_verdicts_total", labels) == 1
    count = metrics.registry.get_sample_value(
        "dialer_amd_detection_seconds_count", {"answered_by": "machine_end_beep"}
    )
    assert count == 1


async def test_an_inbound_call_handed_to_a_human_sends_call_transferred(
    acme: Tenant, receiver: Receiver, emitter: WebhookEmitter
) -> None:
    await subscribe(acme, receiver, "call.transferred", "call.completed")
    emitter.launcher(FakeLauncher())  # an outbound launcher that does not know the inbound call
    transferred, plain = uuid4(), uuid4()
    t0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    emitter.transfer_settled(
        transferred, "inbound_refer", t0 + timedelta(seconds=9), t0 + timedelta(seconds=10)
    )
    for call_id, outcome in ((transferred, Outcome.TRANSFERRED), (plain, Outcome.ANSWERED)):
        emitter.inbound_ended(
            acme.id,
            call_id,
            outcome,
            sip_code=200,
            reason="Normal call clearing",
            offered_at=t0,
            answered_at=t0 + timedelta(seconds=1),
            ended_at=t0 + timedelta(seconds=10),
        )
    await eventually(lambda: len(receiver.received) == 3)
    [sent] = receiver.of_type("call.transferred")
    data = sent.event["data"]
    assert data["call_id"] == str(transferred) and data["direction"] == "inbound"
    assert data["outcome"] == "transferred" and data["transfer"]["method"] == "inbound_refer"
    assert data["transfer"]["seconds"] == 1.0
    completed = {r.event["data"]["call_id"]: r.event["data"] for r in receiver.of_type("call.completed")}
    assert completed[str(transferred)]["transfer"] == data["transfer"]
    assert "transfer" not in completed[str(plain)]


class Counting(DispatchObserver):
    def __init__(self) -> None:
        self.completed: list[UUID] = []

    def campaign_completed(self, campaign_id: UUID) -> None:
        self.completed.append(campaign_id)


async def test_campaign_completed_reaches_the_owner(
    acme: Tenant, receiver: Receiver, emitter: WebhookEmitter
) -> None:
    await subscribe(acme, receiver, "campaign.completed")
    campaign = UUID((await acme.client.post("/campaigns", json=seed_body(acme.agent))).json()["campaign_id"])
    inner = Counting()
    observer = emitter.observer(inner)
    observer.campaign_completed(campaign)
    observer.campaign_completed(uuid4())  # an unknown campaign has no owner: nothing is sent
    assert inner.completed[0] == campaign
    await eventually(lambda: len(receiver.received) == 1)
    event = receiver.received[0].event
    assert event["type"] == "campaign.completed" and event["tenant_id"] == str(acme.id)
    assert event["data"] == {"campaign_id": str(campaign), "status": "completed"}
