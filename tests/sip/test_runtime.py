"""The whole runtime of `dialer serve` (store, dispatcher, SIP workers, scheduler) against SIPp peers.

Storage is a real SQLite file, coordination is in-process, the calls are real SIP on loopback. The
numbers are London ones: the UK has no legal calling-hours rule, so the window is open whenever CI runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from config.settings import Settings
from dialer.allocation import campaign_resource, did_resource
from dialer.coordination import MemoryCoordinator
from dialer.domain import CampaignStatus
from dialer.regions import load_rules
from dialer.runtime import Runtime
from dialer.single_calls import CallNotPlaced
from dialer.storage import AttemptRecord, CampaignSpec, SqlStore, TrunkSpec
from dialer.storage.records import attempt_from_row
from dialer.storage.tables import attempts, campaigns
from sip.reference_worker import ReferenceWorker
from tests.sip.peers import free_port, until

pytestmark = pytest.mark.timeout(60)

DIDS = ("+442079460100", "+442079460101")
ALL_DAY = {"call_hours_start": time(0), "call_hours_end": time(0)}
EVERY_DAY = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass
class Stack:
    store: SqlStore
    runtime: Runtime
    tenant: UUID
    agent: UUID
    sip_port: int
    worker: ReferenceWorker

    async def trunk(self, port: int, **spec: object) -> UUID:
        return await self.store.create_trunk(
            self.tenant,
            TrunkSpec(name=f"t{port}", host="127.0.0.1", port=port, max_cps=100, **spec),  # type: ignore[arg-type]
        )

    def calls(self) -> list[AttemptRecord]:
        """Every call row, oldest first (read synchronously so ``until`` can poll it)."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(attempts).order_by(attempts.c.created_at)).mappings()
            return [attempt_from_row(row) for row in rows]

    def campaign_status(self, campaign_id: UUID) -> str | None:
        with self.store.engine.connect() as conn:
            status: str | None = conn.scalar(
                sa.select(campaigns.c.status).where(campaigns.c.id == campaign_id)
            )
        return status


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    port = free_port()
    settings = Settings(
        sip_port=port,
        sip_rtp_port=free_port(40),
        sip_rtp_ports_per_worker=40,
        dispatch_tick_seconds=0.2,
    )
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="test-node")
    worker = ReferenceWorker(greeting_seconds=0.2)
    tenant = await store.create_tenant("Acme Clinic", default_region="GB")
    agent = await store.create_agent(tenant, "Receptionist", await worker.start())
    await runtime.start()
    try:
        yield Stack(store, runtime, tenant, agent, port, worker)
    finally:
        await runtime.stop()
        await worker.stop()
        store.dispose()


def peak_overlap(calls: list[AttemptRecord]) -> int:
    """Most calls up at one instant, from their INVITE to their end."""
    edges = sorted([(c.invited_at or c.created_at, 1) for c in calls] + [(c.ended_at, -1) for c in calls])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


async def test_campaign_runs_to_completion_under_its_caps(stack: Stack, sipp) -> None:
    peer = sipp("answer_bye", calls=6)
    trunk = await stack.trunk(peer.port)
    dids = [
        await stack.store.import_number(stack.tenant, n, trunk, country="GB", max_concurrent_calls=1)
        for n in DIDS
    ]
    campaign = await stack.store.create_campaign(
        stack.tenant,
        CampaignSpec(
            name="Spring",
            agent_id=stack.agent,
            timezone="Europe/London",
            call_days=EVERY_DAY,
            max_concurrent_calls=5,
            **ALL_DAY,  # type: ignore[arg-type]
        ),
        status=CampaignStatus.ACTIVE,
    )
    await stack.store.allocate_dids(campaign, dids)
    await stack.store.add_prospects(
        campaign, [(f"P{i}", f"+44207946020{i}", {"plan": "gold"}) for i in range(6)]
    )
    stack.runtime.campaigns_changed()

    await until(lambda: stack.campaign_status(campaign) == "completed", 30)
    calls = stack.calls()
    assert len(calls) == 6
    assert {(c.outcome, c.sip_code, c.q850_cause, c.direction) for c in calls} == {
        ("answered", 200, 16, "outbound")
    }
    assert len({c.to_number for c in calls}) == 6, "each prospect dialled once"
    for did in dids:
        assert peak_overlap([c for c in calls if c.from_did_id == did]) == 1, "DID cap of one held"
    assert peak_overlap(calls) <= 2
    assert all(c.sip_worker == "sip-0" for c in calls)
    assert await peer.finished() == 0

    # Every answered call was streamed to the agent's voice worker, with who and why in `start`.
    sessions = await until(lambda: stack.worker.sessions if len(stack.worker.sessions) == 6 else None, 5)
    starts = [session.start for session in sessions]
    assert all(start is not None for start in starts)
    params = [start["customParameters"] for start in starts if start is not None]
    assert {p["campaign_id"] for p in params} == {str(campaign)}
    assert {p["prospect_name"] for p in params} == {f"P{i}" for i in range(6)}
    assert {(p["plan"], p["attempt_number"], p["direction"]) for p in params} == {("gold", "1", "outbound")}
    assert {p["attempt_id"] for p in params} == {str(c.id) for c in calls}
    assert all(session.media_frames > 0 for session in sessions), "audio flowed to the worker"

    metrics = stack.runtime.metrics
    await stack.runtime.refresh_metrics()
    value = metrics.registry.get_sample_value
    labels = {"campaign": str(campaign), "trunk": str(trunk)}
    assert value("dialer_call_attempts_total", labels | {"outcome": "answered"}) == 6
    assert value("dialer_calls_seized_total", {"trunk": str(trunk)}) == 6
    assert value("dialer_calls_answered_total", {"trunk": str(trunk)}) == 6
    assert value("dialer_calls_active", {"trunk": str(trunk), "direction": "outbound"}) == 0
    assert value("dialer_post_dial_delay_seconds_count", {"trunk": str(trunk)}) == 6
    assert value("dialer_call_duration_seconds_count", {"direction": "outbound"}) == 6
    assert value("dialer_dispatch_lag_seconds_count") == 6
    assert value("dialer_sip_capacity_calls") == stack.runtime.gateway.capacity() > 0
    assert value("dialer_sip_workers", {"state": "up"}) == 1
    assert value("dialer_sip_calls_in_use") == 0  # every call has ended
    assert value("dialer_sip_worker_cpu_seconds_total") > 0  # the worker streamed six calls
    assert value("dialer_sip_worker_rss_bytes") > 10 * 2**20
    await stack.runtime.health()
    sip_health = (await stack.runtime.health())["sip_workers"]
    assert sip_health["calls_in_use"] == 0 and sip_health["cpu_percent_per_call"] is None  # no call now
    assert isinstance(sip_health["worker_cpu_percent"], float) and sip_health["worker_cpu_percent"] >= 0
    exposition = generate_latest(metrics.registry).decode()
    assert not any(number.lstrip("+") in exposition for number in [*DIDS, *(c.to_number for c in calls)])


async def test_inbound_call_on_an_imported_number_is_recorded(stack: Stack, sipp) -> None:
    trunk = await stack.trunk(5060)
    number = await stack.store.import_number(
        stack.tenant, "+442079460150", trunk, country="GB", agent_id=stack.agent
    )
    await stack.runtime.refresh_inbound()  # else the workers learn of the number within 2 s
    caller = sipp("uac_answer", service="442079460150", target=f"127.0.0.1:{stack.sip_port}")
    assert await caller.finished() == 0
    call = await until(lambda: next((c for c in stack.calls() if c.ended_at is not None), None), 10)
    assert (call.direction, call.from_did_id, call.agent_id, call.tenant_id) == (
        "inbound",
        number,
        stack.agent,
        stack.tenant,
    )
    assert (call.outcome, call.sip_code) == ("answered", 200)
    assert call.answered_at is not None and call.duration_seconds is not None
    assert 0.4 < call.duration_seconds < 10  # the scenario holds ~1 s; the bound only tells it ended by BYE
    value = stack.runtime.metrics.registry.get_sample_value
    assert value("dialer_inbound_calls_total", {"outcome": "answered"}) == 1
    assert value("dialer_calls_active", {"trunk": str(trunk), "direction": "inbound"}) == 0


async def test_single_call_holds_the_did_cap(stack: Stack, sipp) -> None:
    peer = sipp("answer", calls=1)
    trunk = await stack.trunk(peer.port)
    did = await stack.store.import_number(stack.tenant, DIDS[0], trunk, country="GB", max_concurrent_calls=1)

    async def new_call() -> UUID:
        return await stack.store.create_call(
            stack.tenant, DIDS[0], "+442079460300", from_did_id=did, trunk_id=trunk, agent_id=stack.agent
        )

    first = await new_call()
    await stack.runtime.single_calls.place(first)
    await until(lambda: stack.runtime.gateway.live_attempts() == {first}, 5)
    second = await new_call()
    with pytest.raises(CallNotPlaced, match="cap"):
        await stack.runtime.single_calls.place(second)
    refused = await stack.store.get_attempt(second)
    assert refused is not None and (refused.outcome, refused.status) == ("capacity", "ended")

    # The voice worker hears from a call only once it is answered: hanging up before that (a loaded
    # machine) would end it as no_answer.
    await until(lambda: stack.worker.sessions or None, 10)
    assert (await live_call(stack)).id == first  # an API call shows as live too
    await stack.runtime.hangup_call(stack.tenant, first)
    ended = await until(lambda: next((c for c in stack.calls() if c.id == first and c.ended_at), None), 10)
    assert (ended.outcome, ended.campaign_id, ended.direction) == ("answered", None, "outbound")


async def test_stop_settles_every_live_call(tmp_path: Path, sipp) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'stop.db'}")
    store.migrate()
    settings = Settings(sip_port=free_port(), sip_rtp_port=free_port(40), sip_rtp_ports_per_worker=40)
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules())
    await runtime.start()
    try:
        peer = sipp("answer", calls=2)
        tenant = await store.create_tenant("Acme", default_region="GB")
        trunk = await store.create_trunk(
            tenant, TrunkSpec(name="t", host="127.0.0.1", port=peer.port, max_cps=50)
        )
        did = await store.import_number(tenant, DIDS[0], trunk, country="GB", max_concurrent_calls=5)
        campaign = await store.create_campaign(
            tenant,
            CampaignSpec(name="S", timezone="Europe/London", call_days=EVERY_DAY, **ALL_DAY),  # type: ignore[arg-type]
            status=CampaignStatus.ACTIVE,
        )
        await store.allocate_dids(campaign, [did])
        await store.add_prospects(campaign, [("A", "+442079460201", {}), ("B", "+442079460202", {})])
        runtime.campaigns_changed()
        await until(
            lambda: runtime.dispatcher.live_count() == 2 and len(runtime.gateway.live_attempts()) == 2, 10
        )
    finally:
        await runtime.stop()
    try:
        assert await store.open_attempts() == [], "no attempt left 'dialing' after a clean stop"
        counts = await store.campaign_counts(campaign)
        assert counts["dialing"] == 0
        assert counts["pending"] + counts["completed"] == 2
    finally:
        store.dispose()


async def test_killed_worker_calls_settle_unknown_and_free_their_caps(stack: Stack, sipp) -> None:
    peer = sipp("answer", calls=2)
    trunk = await stack.trunk(peer.port)
    did = await stack.store.import_number(stack.tenant, DIDS[0], trunk, country="GB", max_concurrent_calls=2)
    campaign = await stack.store.create_campaign(
        stack.tenant,
        CampaignSpec(name="S", timezone="Europe/London", call_days=EVERY_DAY, **ALL_DAY),  # type: ignore[arg-type]
        status=CampaignStatus.ACTIVE,
    )
    await stack.store.allocate_dids(campaign, [did])
    await stack.store.add_prospects(campaign, [("A", "+442079460201", {}), ("B", "+442079460202", {})])
    stack.runtime.campaigns_changed()
    gateway = stack.runtime.gateway
    await until(lambda: len(gateway.live_attempts()) == 2, 10)
    await asyncio.sleep(0.3)  # SIPp answers at once: kill the worker with both calls up
    await stack.runtime.refresh_metrics()
    value = stack.runtime.metrics.registry.get_sample_value
    slot = {"kind": "did", "id": str(did)}
    assert (value("dialer_slots_in_use", slot), value("dialer_slots_capacity", slot)) == (2, 2)
    assert value("dialer_prospects", {"campaign": str(campaign), "state": "dialing"}) == 2
    pid = gateway.workers()["sip-0"]
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

    calls = await until(lambda: [c for c in stack.calls() if c.ended_at] if len(
        [c for c in stack.calls() if c.ended_at]) == 2 else None, 10)  # fmt: skip
    assert {(c.outcome, c.reason) for c in calls} == {("unknown", "worker died")}
    # No BYE left the dead worker: the carrier may keep those calls up to DIALER_MAX_CALL_SECONDS.
    pending, _ = await stack.store.list_prospects(campaign, state="pending", limit=10)
    assert len(pending) == 2
    for p in pending:
        call = next(c for c in calls if c.to_number == p.phone)
        assert p.next_attempt_at is not None
        assert (p.next_attempt_at - call.created_at).total_seconds() >= 3600
    # Each lease is released right after its row is written: give that a moment, bounded.
    coordinator = stack.runtime.coordinator
    for _ in range(100):
        if await coordinator.in_use(did_resource(did)) == 0:
            break
        await asyncio.sleep(0.02)
    assert await coordinator.in_use(did_resource(did)) == 0, "the dead calls' DID slots are free"
    assert await coordinator.in_use(campaign_resource(campaign)) == 0
    restarted = await until(lambda: (p := gateway.workers()["sip-0"]) and p != pid and p, 15)
    assert restarted != pid
    # Nothing is redialled at once: the retry waits for the failed-call delay of the campaign policy.
    counts = await stack.store.campaign_counts(campaign)
    assert (counts["pending"], counts["dialing"]) == (2, 0)
    assert len(stack.calls()) == 2


async def test_worker_transfer_request_refers_the_callee_and_records_it(stack: Stack, sipp) -> None:
    from tests.sip.transfer_peers import HUMAN, fill, notify, takes_refer

    notifies = notify(1, "SIP/2.0 100 Trying") + notify(2, "SIP/2.0 200 OK", final=True)
    peer = sipp("refer_trunk", fill=fill(takes_refer(r"sip:[+]14155550142@", "202 Accepted", notifies)))
    trunk = await stack.trunk(peer.port)
    did = await stack.store.import_number(stack.tenant, DIDS[0], trunk, country="GB")
    call = await stack.store.create_call(
        stack.tenant, DIDS[0], "+442079460300", from_did_id=did, trunk_id=trunk, agent_id=stack.agent
    )
    await stack.runtime.single_calls.place(call)
    session = await until(lambda: next((s for s in stack.worker.sessions if s.start), None), 5)
    await session.send_transfer(HUMAN, "auto")  # what the reference worker does on DTMF 0
    ended = await until(lambda: next((c for c in stack.calls() if c.id == call and c.ended_at), None), 10)
    await until(lambda: (row := stack.calls()[-1]).transfer_result not in (None, "pending") and row, 5)
    row = next(c for c in stack.calls() if c.id == call)
    assert (ended.outcome, row.transfer_to, row.transfer_method, row.transfer_result) == (
        "transferred",
        HUMAN,
        "refer",
        "completed",
    )
    assert await peer.finished() == 0, "REFER sent, NOTIFYs followed, our BYE after the final one"
    value = stack.runtime.metrics.registry.get_sample_value
    assert value("dialer_transfers_total", {"method": "refer", "result": "completed"}) == 1


async def test_a_tenants_maximum_call_duration_is_enforced(stack: Stack, sipp) -> None:
    peer = sipp("answer", calls=1)
    tenant = await stack.store.create_tenant("Short calls", default_region="GB", max_call_duration_seconds=1)
    trunk = await stack.store.create_trunk(
        tenant, TrunkSpec(name="t", host="127.0.0.1", port=peer.port, max_cps=50)
    )
    did = await stack.store.import_number(tenant, DIDS[1], trunk, country="GB", max_concurrent_calls=1)
    await stack.runtime.refresh_metrics()  # picks up the new tenant's limit
    call_id = await stack.store.create_call(tenant, DIDS[1], "+442079460300", from_did_id=did, trunk_id=trunk)
    await stack.runtime.single_calls.place(call_id)
    ended = await until(lambda: next((c for c in stack.calls() if c.id == call_id and c.ended_at), None), 10)
    assert ended.answered_at is not None and ended.duration_seconds is not None
    assert 0.8 < ended.duration_seconds < 10, "hung up at the tenant's 1 s limit, not the node's hour"
    assert ended.reason is not None and "duration" in ended.reason


async def live_call(stack: Stack) -> AttemptRecord:
    """The one call the API would list as in progress, once there is one."""

    async def probe() -> AttemptRecord | None:
        calls, _ = await stack.store.list_calls(stack.tenant, status="in-progress")
        return calls[0].attempt if calls else None

    for _ in range(250):  # bounded: 10 s
        if (found := await probe()) is not None:
            return found
        await asyncio.sleep(0.04)
    raise AssertionError("no call in progress within 10 s")


async def test_campaign_call_shows_as_live_while_it_is_up(stack: Stack, sipp) -> None:
    peer = sipp("answer")  # rings, answers, holds until our BYE
    trunk = await stack.trunk(peer.port)
    did = await stack.store.import_number(stack.tenant, DIDS[0], trunk, country="GB")
    campaign = await stack.store.create_campaign(
        stack.tenant,
        CampaignSpec(
            name="Live", agent_id=stack.agent, timezone="Europe/London", call_days=EVERY_DAY, **ALL_DAY
        ),  # type: ignore[arg-type]
        status=CampaignStatus.ACTIVE,
    )
    await stack.store.allocate_dids(campaign, [did])
    await stack.store.add_prospects(campaign, [("Ann", "+442079460200", {})])
    stack.runtime.campaigns_changed()

    live = await live_call(stack)
    assert (live.status, live.campaign_id, live.ended_at) == ("in-progress", campaign, None)
    assert (
        live.ringing_at is not None and live.answered_at is not None and live.ringing_at <= live.answered_at
    )
    view = await stack.store.get_call(stack.tenant, live.id)
    assert view is not None and view.attempt.answered_at == live.answered_at

    await stack.runtime.hangup_call(stack.tenant, live.id)
    ended = await until(lambda: next((c for c in stack.calls() if c.ended_at), None), 10)
    assert (ended.outcome, ended.answered_at) == ("answered", live.answered_at)
    assert await stack.store.list_calls(stack.tenant, status="in-progress") == ([], 0)


async def test_inbound_call_shows_as_live_while_it_is_up(stack: Stack, sipp) -> None:
    trunk = await stack.trunk(5060)
    await stack.store.import_number(stack.tenant, "+442079460150", trunk, country="GB", agent_id=stack.agent)
    await stack.runtime.refresh_inbound()
    caller = sipp("uac_hold", service="442079460150", target=f"127.0.0.1:{stack.sip_port}")
    live = await live_call(stack)
    assert (live.status, live.direction, live.ended_at) == ("in-progress", "inbound", None)
    assert live.answered_at is not None
    await stack.runtime.hangup_call(stack.tenant, live.id)
    assert await caller.finished() == 0
    ended = await until(lambda: next((c for c in stack.calls() if c.ended_at), None), 10)
    assert (ended.outcome, ended.answered_at) == ("answered", live.answered_at)


async def test_a_trunk_host_that_no_longer_resolves_fails_the_attempt_not_capacity(stack: Stack) -> None:
    # Stored directly: POST /trunks would refuse this host; DNS may change after a trunk is saved.
    trunk = await stack.store.create_trunk(
        stack.tenant, TrunkSpec(name="gone", host="nonexistent.invalid", port=5060, max_cps=100)
    )
    did = await stack.store.import_number(stack.tenant, DIDS[0], trunk, country="GB")
    campaign = await stack.store.create_campaign(
        stack.tenant,
        CampaignSpec(
            name="Spring",
            agent_id=stack.agent,
            timezone="Europe/London",
            call_days=EVERY_DAY,
            retry_delay_failed_seconds=3600,
            **ALL_DAY,  # type: ignore[arg-type]
        ),
        status=CampaignStatus.ACTIVE,
    )
    await stack.store.allocate_dids(campaign, [did])
    await stack.store.add_prospects(campaign, [("Ann", "+442079460201", {})])
    stack.runtime.campaigns_changed()

    [call] = await until(lambda: [c for c in stack.calls() if c.ended_at is not None], 15)
    assert (call.outcome, call.reason, call.sip_code) == ("failed", "trunk host does not resolve", 502)
    [prospect], _ = await stack.store.list_prospects(campaign)
    assert prospect.last_outcome == "failed" and prospect.attempts_failed == 1
    assert prospect.state == "pending" and prospect.next_attempt_at is not None
    assert len(stack.calls()) == 1, "retried after the campaign's failed-call delay, not at once"
