"""Opt-out during a call, over real SIP: the campaign's opt-out digit pressed by a pjsua2 far end (RFC
2833), and the voice worker's ``opt_out`` event. Either puts the number on the tenant's do-not-call
list at once, stops every later attempt to it in every campaign, is told by webhook, and leaves the
call up. Storage is a real SQLite file; the numbers are London ones (no legal calling-hours rule).
"""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa

from config.settings import Settings
from dialer.coordination import MemoryCoordinator
from dialer.domain import CampaignStatus
from dialer.regions import load_rules
from dialer.runtime import Runtime
from dialer.storage import AttemptRecord, CampaignSpec, SqlStore, TrunkSpec
from dialer.storage.records import attempt_from_row
from dialer.storage.tables import attempts, campaigns
from sip.audio import RATE, tone
from sip.events import InboundAnswered, InboundRoute
from sip.reference_worker import ReferenceWorker, WorkerSession
from tests.api.webhook_receiver import Receiver, eventually, run_receiver
from tests.sip.peers import GatewayFactory, free_port, until

pytestmark = pytest.mark.timeout(60)

DID = "+442079460100"
CALLEE = "+442079460201"
OTHER = "+442079460202"
EVERY_DAY = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass
class Stack:
    store: SqlStore
    runtime: Runtime
    tenant: UUID
    agent: UUID
    worker: ReferenceWorker
    receiver: Receiver

    def calls(self) -> list[AttemptRecord]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.select(attempts).order_by(attempts.c.created_at)).mappings()
            return [attempt_from_row(row) for row in rows]

    def campaign_status(self, campaign_id: UUID) -> str | None:
        with self.store.engine.connect() as conn:
            status: str | None = conn.scalar(
                sa.select(campaigns.c.status).where(campaigns.c.id == campaign_id)
            )
        return status

    async def trunk(self, port: int) -> UUID:
        spec = TrunkSpec(name=f"t{port}", host="127.0.0.1", port=port, max_cps=100)
        return await self.store.create_trunk(self.tenant, spec)

    async def campaign(
        self, did: UUID | None, people: list[tuple[str, str]], *, active: bool, digit: str | None = None
    ) -> UUID:
        spec = CampaignSpec(
            name="Spring",
            agent_id=self.agent,
            timezone="Europe/London",
            call_days=EVERY_DAY,
            call_hours_start=time(0),
            call_hours_end=time(0),
            opt_out_digit=digit,
        )
        status = CampaignStatus.ACTIVE if active else CampaignStatus.DRAFT
        campaign = await self.store.create_campaign(self.tenant, spec, status=status)
        if did is not None:
            await self.store.allocate_dids(campaign, [did])
        await self.store.add_prospects(campaign, [(name, phone, {}) for name, phone in people])
        return campaign

    async def states(self, campaign: UUID) -> dict[str, str]:
        """Prospect state by phone."""
        found, _ = await self.store.list_prospects(campaign)
        return {p.phone: p.state.value for p in found}

    async def session(self) -> WorkerSession:
        found: WorkerSession = await until(
            lambda: next((s for s in self.worker.sessions if s.start is not None), None), 5
        )
        return found


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    settings = Settings(
        sip_port=free_port(),
        sip_rtp_port=free_port(40),
        sip_rtp_ports_per_worker=40,
        dispatch_tick_seconds=0.2,
        webhook_allow_private=True,  # the webhook receiver listens on loopback
    )
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="opt-out-node")
    worker = ReferenceWorker(greeting_seconds=0.2)
    tenant = await store.create_tenant("Acme Clinic", default_region="GB")
    agent = await store.create_agent(tenant, "Receptionist", await worker.start())
    await runtime.start()
    try:
        async for receiver in run_receiver(Receiver()):
            receiver.secret = (await store.create_webhook(tenant, receiver.url, ["prospect.opted_out"]))[1]
            yield Stack(store, runtime, tenant, agent, worker, receiver)
    finally:
        await runtime.stop()
        await worker.stop()
        store.dispose()


def quiet_wav(path: Path) -> str:
    """A phone always sends audio, and pjsua sends queued DTMF only while its stream is fed frames."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(tone(440, 1.0, 0.01))
    return str(path)


async def test_the_opt_out_digit_stops_every_later_attempt_and_the_call_goes_on(
    stack: Stack, gateway: GatewayFactory, tmp_path: Path
) -> None:
    far = await gateway()  # the callee's phone: a second pjsua2 endpoint answering CALLEE
    far.routes[CALLEE] = InboundRoute(uuid4(), uuid4(), uuid4())
    did = await stack.store.import_number(stack.tenant, DID, await stack.trunk(far.port), country="GB")
    dialling = await stack.campaign(did, [("Ann", CALLEE)], active=True, digit="5")
    later = await stack.campaign(None, [("Ann", CALLEE), ("Bob", OTHER)], active=False)
    stack.runtime.campaigns_changed()

    answered = await until(lambda: next((e for e in far.inbound if isinstance(e, InboundAnswered)), None), 10)
    [call] = stack.calls()
    assert call.callee_name == "Ann", "the call record names who was called"
    session = await stack.session()
    assert session.start is not None and session.start["customParameters"]["prospect_name"] == "Ann"
    assert far.gateway.play(answered.call_id, quiet_wav(tmp_path / "quiet.wav"))
    assert not await stack.runtime.opt_outs.digit_pressed(call.id, "3"), "only the campaign's digit"

    assert far.gateway.send_dtmf(answered.call_id, "5")
    await until(lambda: session.digits == ["5"], 5)  # the worker hears it too: it decides what to say
    await eventually(lambda: stack.store.has_dnc(stack.tenant, CALLEE), 5)
    assert call.id in stack.runtime.gateway.live_attempts(), "the opt-out does not hang up"
    assert await stack.states(later) == {CALLEE: "dnc", OTHER: "pending"}
    assert await stack.states(dialling) == {CALLEE: "dnc"}  # in flight: never dialled again
    entries, _ = await stack.store.list_dnc(stack.tenant)
    assert [(e.phone, e.reason) for e in entries] == [
        (CALLEE, "opted out during a call: the callee pressed the opt-out digit")
    ]
    await eventually(lambda: len(stack.receiver.received) == 1, 5)
    [told] = stack.receiver.received
    assert told.signature_ok and told.event["type"] == "prospect.opted_out"
    assert told.event["data"] == {"phone": CALLEE, "call_id": str(call.id), "stopped_prospects": 2}

    await stack.runtime.hangup_call(stack.tenant, call.id)
    await until(lambda: stack.campaign_status(dialling) == "completed", 10)
    assert [c.id for c in stack.calls()] == [call.id], "no later attempt to the number"
    assert await stack.states(dialling) == {CALLEE: "dnc"}


async def test_the_workers_opt_out_event_on_an_api_call(stack: Stack, sipp) -> None:
    peer = sipp("answer", calls=1)
    trunk = await stack.trunk(peer.port)
    did = await stack.store.import_number(stack.tenant, DID, trunk, country="GB")
    waiting = await stack.campaign(None, [("Carol", OTHER)], active=False)
    call = await stack.store.create_call(
        stack.tenant, DID, OTHER, from_did_id=did, trunk_id=trunk, agent_id=stack.agent, callee_name="Carol"
    )
    await stack.runtime.single_calls.place(call)
    session = await stack.session()
    assert session.start is not None and session.start["customParameters"]["prospect_name"] == "Carol"

    await session.send("opt_out")
    await eventually(lambda: stack.store.has_dnc(stack.tenant, OTHER), 5)
    assert await stack.states(waiting) == {OTHER: "dnc"}
    assert call in stack.runtime.gateway.live_attempts(), "the opt-out does not hang up"
    entries, _ = await stack.store.list_dnc(stack.tenant)
    assert [e.reason for e in entries] == ["opted out during a call: the voice worker reported an opt-out"]
    await eventually(lambda: len(stack.receiver.received) == 1, 5)
    assert stack.receiver.received[0].event["data"]["stopped_prospects"] == 1
    await stack.runtime.hangup_call(stack.tenant, call)
    ended = await until(lambda: next((c for c in stack.calls() if c.id == call and c.ended_at), None), 10)
    assert ended.outcome == "answered"
