"""Transfers through the whole runtime: what the voice worker hears and what the call record, GET
/calls/{id} and the ``call.transferred`` webhook say.

A real Runtime (SQLite, SIP workers, the reference worker over a real WebSocket) calls a SIPp callee
(``refer_trunk.xml``); the API and a webhook receiver are real HTTP servers on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from config.settings import Settings
from dialer.coordination import MemoryCoordinator
from dialer.regions import load_rules
from dialer.runtime import Runtime
from dialer.storage import AttemptRecord, SqlStore, TrunkSpec
from dialer.storage.records import attempt_from_row
from dialer.storage.tables import attempts
from sip.reference_worker import ReferenceWorker, WorkerSession
from tests.api.conftest import serve
from tests.api.webhook_receiver import Receiver, run_receiver
from tests.sip.peers import Sipp, free_port, until
from tests.sip.transfer_peers import HUMAN, answers_refer, fill, notify, takes_refer, waits_for_bye

pytestmark = pytest.mark.timeout(60)

DID = "+442079460100"
CALLEE = "+442079460300"


@dataclass
class Stack:
    store: SqlStore
    runtime: Runtime
    tenant: UUID
    agent: UUID
    worker: ReferenceWorker
    api: httpx.AsyncClient
    hooks: Receiver

    def call(self, call_id: UUID) -> AttemptRecord:
        """The call's row, read synchronously so ``until`` can poll it."""
        with self.store.engine.connect() as conn:
            row = conn.execute(sa.select(attempts).where(attempts.c.id == call_id)).mappings().one()
            return attempt_from_row(row)

    async def answered_call(self, peer: Sipp, **trunk: Any) -> tuple[UUID, WorkerSession]:
        """A single call to CALLEE through a trunk to ``peer``, answered and streamed to the worker."""
        spec = TrunkSpec(name="t", host="127.0.0.1", port=peer.port, max_cps=100, **trunk)
        trunk_id = await self.store.create_trunk(self.tenant, spec)
        did = await self.store.import_number(self.tenant, DID, trunk_id, country="GB")
        call = await self.store.create_call(
            self.tenant, DID, CALLEE, from_did_id=did, trunk_id=trunk_id, agent_id=self.agent
        )
        await self.runtime.single_calls.place(call)
        session = await until(lambda: next((s for s in self.worker.sessions if s.start), None), 5)
        return call, session


def as_stored(entry: dict[str, Any]) -> dict[str, Any]:
    """A transfer as the API shows it, its times written as the call's row keeps them."""
    times = {k: datetime.fromisoformat(entry[k]).isoformat() for k in ("started_at", "ended_at") if entry[k]}
    return entry | times


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    settings = Settings(
        sip_port=free_port(),
        sip_rtp_port=free_port(40),
        sip_rtp_ports_per_worker=40,
        webhook_allow_private=True,  # the receiver is on loopback
    )
    runtime = Runtime(settings, store, MemoryCoordinator(), load_rules(), node_id="test-node")
    worker = ReferenceWorker(greeting_seconds=0.2)
    tenant = await store.create_tenant("Acme Clinic", default_region="GB")
    agent = await store.create_agent(tenant, "Receptionist", await worker.start())
    _key_id, key = await store.create_api_key(tenant)
    await runtime.start()
    try:
        async for hooks in run_receiver(Receiver()):
            events = ["call.transferred", "call.completed"]
            _hook_id, hooks.secret = await store.create_webhook(tenant, hooks.url, events)
            async for base in serve(create_app(store, runtime=runtime)):
                async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": key}) as api:
                    yield Stack(store, runtime, tenant, agent, worker, api, hooks)
    finally:
        await runtime.stop()
        await worker.stop()
        store.dispose()


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("+4420794601", "the transfer target is"),  # too short to be a number
        ("+449098790000", "premium-rate"),  # a destination the gateway never calls
        (HUMAN, "country US is not allowed"),  # the trunk only calls GB
    ],
)
async def test_a_worker_transfer_refused_before_it_starts_is_told_and_recorded(
    stack: Stack, sipp: Any, target: str, why: str
) -> None:
    peer = sipp("refer_trunk", fill=fill(waits_for_bye()))
    call, session = await stack.answered_call(peer, allowed_countries=("GB",))
    await session.send_transfer(target, "auto")

    failed = await until(
        lambda: next((e for e in session.events if e["event"] == "transfer_failed"), None), 5
    )
    body = failed["transfer_failed"]
    assert why in body["reason"] and body["code"] is None, body
    assert target.lstrip("+") not in body["reason"], "the worker's message never names the number"
    row = await until(lambda: (r := stack.call(call)).transfer_ended_at and r, 5)
    assert row.transfer_result is not None and row.transfer_result.startswith("failed (")
    assert why in row.transfer_result and row.transfer_started_at is not None
    assert row.transfer_started_at <= row.transfer_ended_at
    assert stack.runtime.gateway.live_attempts() == {call} and not session.stopped, "the call stays up"

    detail = (await stack.api.get(f"/calls/{call}")).json()
    transfer = detail["transfer"]
    assert transfer["result"] == row.transfer_result and transfer["method"] == "auto"
    assert datetime.fromisoformat(transfer["ended_at"]) == row.transfer_ended_at

    await stack.runtime.hangup_call(stack.tenant, call)
    ended = await until(lambda: (r := stack.call(call)).ended_at and r, 10)
    assert ended.outcome == "answered", "not transferred"
    assert await peer.finished() == 0, "no REFER and no second INVITE reached the trunk"
    assert not stack.hooks.of_type("call.transferred")


async def test_a_completed_transfer_has_its_times_on_the_record_the_api_and_the_webhook(
    stack: Stack, sipp: Any
) -> None:
    notifies = notify(1, "SIP/2.0 100 Trying") + notify(2, "SIP/2.0 200 OK", final=True)
    peer = sipp("refer_trunk", fill=fill(takes_refer(r"sip:[+]14155550142@", "202 Accepted", notifies)))
    call, session = await stack.answered_call(peer)
    await session.send_transfer(HUMAN, "auto")  # what the reference worker does on DTMF 0

    row = await until(lambda: (r := stack.call(call)).ended_at and r.transfer_ended_at and r, 10)
    assert (row.outcome, row.transfer_method, row.transfer_result) == ("transferred", "refer", "completed")
    assert row.transfer_started_at is not None and row.transfer_ended_at is not None
    assert row.answered_at is not None and row.ended_at is not None
    assert row.answered_at <= row.transfer_started_at <= row.transfer_ended_at <= row.ended_at

    transfer = (await stack.api.get(f"/calls/{call}")).json()["transfer"]
    assert (transfer["to"], transfer["method"], transfer["result"]) == (HUMAN, "refer", "completed")
    assert datetime.fromisoformat(transfer["started_at"]) == row.transfer_started_at
    assert datetime.fromisoformat(transfer["ended_at"]) == row.transfer_ended_at

    hook = await until(lambda: next(iter(stack.hooks.of_type("call.transferred")), None), 10)
    assert hook.signature_ok
    data = hook.event["data"]
    assert data["call_id"] == str(call) and data["outcome"] == "transferred"
    sent = data["transfer"]
    started, settled = datetime.fromisoformat(sent["started_at"]), datetime.fromisoformat(sent["ended_at"])
    assert sent["method"] == "refer" and sent["seconds"] == round((settled - started).total_seconds(), 3)
    assert row.transfer_started_at <= started <= settled, "the SIP worker started it after it was asked"
    assert settled == row.transfer_ended_at
    assert await peer.finished() == 0
    took = row.transfer_ended_at - row.transfer_started_at
    print(f"worker asked → REFER's final NOTIFY: {took.total_seconds() * 1000:.0f} ms")


async def test_every_transfer_of_a_call_is_on_the_record_the_api_and_the_webhooks(
    stack: Stack, sipp: Any
) -> None:
    """Two transfers of one call: the callee declines the first REFER (603), the worker hears
    ``transfer_failed`` and asks again for another human, whose REFER completes."""
    second_human = "+14155550143"
    declined = answers_refer(r"sip:[+]14155550142@", "603 Decline")
    notifies = notify(1, "SIP/2.0 100 Trying") + notify(2, "SIP/2.0 200 OK", final=True)
    accepted = takes_refer(r"sip:[+]14155550143@", "202 Accepted", notifies)
    peer = sipp("refer_trunk", fill=fill(declined + accepted))
    call, session = await stack.answered_call(peer)

    await session.send_transfer(HUMAN, "refer")
    failed = await until(
        lambda: next((e for e in session.events if e["event"] == "transfer_failed"), None), 5
    )
    assert failed["transfer_failed"]["code"] == 603, failed
    await until(lambda: (r := stack.call(call)).transfer_ended_at and r, 5)
    await session.send_transfer(second_human, "refer")

    row = await until(lambda: (r := stack.call(call)).ended_at and r.transfer_result == "completed" and r, 10)
    assert row.outcome == "transferred"
    first, second = row.transfers
    assert (first["to"], first["method"], first["sip_code"]) == (HUMAN, "refer", 603)
    assert first["result"].startswith("failed (")
    assert (second["to"], second["method"], second["result"], second["sip_code"]) == (
        second_human,
        "refer",
        "completed",
        200,
    )
    assert first["started_at"] <= first["ended_at"] <= second["started_at"] <= second["ended_at"]
    # The single-transfer fields are the last one.
    assert (row.transfer_to, row.transfer_result) == (second_human, "completed")
    assert row.transfer_ended_at is not None and row.transfer_ended_at.isoformat() == second["ended_at"]

    detail = (await stack.api.get(f"/calls/{call}")).json()
    assert [as_stored(t) for t in detail["transfers"]] == row.transfers
    assert detail["transfer"]["to"] == second_human and detail["transfer"]["sip_code"] == 200

    for kind in ("call.transferred", "call.completed"):
        hook = await until(lambda kind=kind: next(iter(stack.hooks.of_type(kind)), None), 10)
        assert hook.signature_ok and hook.event["data"]["transfers"] == row.transfers, kind
    assert await peer.finished() == 0
