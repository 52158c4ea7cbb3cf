"""Calls placed one at a time through the API (``POST /calls/create``), outside any campaign.

They hold the same DID and trunk leases as campaign calls, so an API caller can never push a caller
ID or a trunk past its cap, and they are recorded in the same attempts table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from dialer.allocation import did_resource, trunk_resource
from dialer.dispatch import end_outcome
from dialer.domain import AmdSettings, AttemptResult
from dialer.journal import CallJournal
from dialer.outcome import Outcome, end_reason
from dialer.ports import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallLauncher,
    CallRequest,
    CallRinging,
    Coordinator,
    LauncherFull,
    LaunchRefused,
    Lease,
    Slot,
)
from dialer.storage import AttemptRecord, SqlStore

log = logging.getLogger(__name__)

#: Beyond the longest call allowed, how long an open call without a lease may stay unreconciled
#: (ringing, and a gateway's own hang-up at the limit, come on top of the talk time).
LOST_CALL_GRACE_SECONDS = 300.0


class CallNotPlaced(Exception):
    """The call could not be placed; ``reason`` says why (never the phone number)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Single:
    record: AttemptRecord
    lease: Lease
    ringing_at: datetime | None = None
    answered_at: datetime | None = None


class SingleCalls:
    """Places stored single calls and settles them when their events come back."""

    def __init__(
        self,
        store: SqlStore,
        coordinator: Coordinator,
        launcher: CallLauncher,
        *,
        lease_ttl: float = 30.0,
        max_call_seconds: float = 3600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        journal: CallJournal | None = None,
    ) -> None:
        self.store = store
        self.journal = journal or CallJournal(store, None)  # call-event writes survive an outage
        self.coordinator = coordinator
        self.launcher = launcher
        self.lease_ttl = lease_ttl
        self.max_call_seconds = max_call_seconds
        self.clock = clock
        self._live: dict[UUID, _Single] = {}
        self._renewer: asyncio.Task[None] | None = None

    def owns(self, attempt_id: UUID) -> bool:
        """Whether the call is one of ours (the runtime routes launcher events by this)."""
        return attempt_id in self._live

    def start(self) -> None:
        self._renewer = asyncio.create_task(self._renew_leases(), name="single-calls-renew")

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer

    async def place(self, call_id: UUID, *, timeout_seconds: int = 60) -> None:
        """Dial the stored call ``call_id`` (made by ``store.create_call``); CallNotPlaced if it cannot be."""
        record = await self.store.get_attempt(call_id)
        if record is None or record.status != "dialing" or record.ended_at is not None:
            raise CallNotPlaced("no such call waiting to be placed")
        if record.from_did_id is None or record.trunk_id is None:
            raise CallNotPlaced("the call has no caller ID on a trunk")
        trunk = await self.store.get_trunk(record.trunk_id)
        did_cap = await self.store.did_cap(record.from_did_id)
        if trunk is None or did_cap is None:
            raise CallNotPlaced("the caller ID or its trunk no longer exists")
        slots = (
            Slot(did_resource(record.from_did_id), did_cap),
            Slot(trunk_resource(record.trunk_id), trunk.spec.max_concurrent_calls),
        )
        lease = await self.coordinator.acquire(slots, f"api:{call_id}", self.lease_ttl)
        if lease is None:
            await self._end(call_id, None, Outcome.CAPACITY, "caller ID or trunk at its concurrent-call cap")
            raise CallNotPlaced("the caller ID or its trunk is at its concurrent-call cap")
        try:
            await self.store.record_lease(call_id, lease.token)  # before the INVITE: see reconcile()
        except BaseException:
            await self.coordinator.release(lease)
            raise
        self._live[call_id] = _Single(record, lease)
        request = CallRequest(
            attempt_id=call_id,
            tenant_id=record.tenant_id,
            campaign_id=None,
            trunk_id=record.trunk_id,
            from_number=record.from_number,
            to_number=record.to_number,
            timeout_seconds=timeout_seconds,
            lease_token=lease.token,
            agent_id=record.agent_id,
            prospect_id=record.prospect_id,  # the voice worker's ``start`` names who it is talking to
            prospect_name=record.callee_name,
            record=record.record,
            amd=AmdSettings(**record.amd) if record.amd else None,
        )
        try:
            await self.launcher.place(request)
        except LauncherFull:
            await self._settle(call_id, None, Outcome.CAPACITY, "no free SIP line")
            raise CallNotPlaced("no free SIP line") from None
        except LaunchRefused as refused:
            await self._settle(call_id, None, Outcome.FAILED, refused.reason)
            raise CallNotPlaced(refused.reason) from None
        except Exception:
            log.exception("launcher failed for call %s", call_id)
            await self._settle(call_id, None, Outcome.FAILED, "launcher error")
            raise CallNotPlaced("the SIP gateway could not place the call") from None

    async def handle(self, event: CallEvent) -> None:
        """Apply one launcher event for a call of ours."""
        call = self._live.get(event.attempt_id)
        if call is None:
            return
        if isinstance(event, CallRinging):
            call.ringing_at = event.at
            await self.journal.call_progress(event.attempt_id, ringing_at=event.at)
        elif isinstance(event, CallAnswered):
            call.answered_at = event.at
            await self.journal.call_progress(event.attempt_id, answered_at=event.at)
        elif isinstance(event, CallEnded):
            await self._settle(
                event.attempt_id, event, end_outcome(event), end_reason(event.sip_code, event.reason)
            )

    async def _settle(
        self, call_id: UUID, event: CallEnded | None, outcome: Outcome, reason: str | None
    ) -> None:
        call = self._live.pop(call_id, None)
        try:
            await self._end(call_id, event, outcome, reason, call)
        finally:
            if call is not None:
                await self.coordinator.release(call.lease)

    async def _end(
        self,
        call_id: UUID,
        event: CallEnded | None,
        outcome: Outcome,
        reason: str | None,
        call: _Single | None = None,
    ) -> None:
        result = AttemptResult(
            outcome=outcome,
            ended_at=event.at if event else datetime.now(UTC),
            sip_code=event.sip_code if event else None,
            reason=reason,
            q850_cause=event.q850_cause if event else None,
            invited_at=event.invited_at if event else None,
            ringing_at=(event.ringing_at if event else None) or (call.ringing_at if call else None),
            answered_at=(event.answered_at if event else None) or (call.answered_at if call else None),
            sip_worker=event.worker if event else None,
            answered_by=event.answered_by if event else None,
        )
        await self.journal.finish_attempt(call_id, result, None)

    async def reconcile(self) -> int:
        """Calls outside any campaign left open by a crash end as ``unknown``; returns how many.

        An API call placed under a lease is lost once no node is up with it here and its lease has
        run out (a live lease: some gateway still renews it). A call without one (inbound, or an API
        call that never got as far as its lease) is lost once it is older than the longest call
        allowed plus ``LOST_CALL_GRACE_SECONDS``: no gateway keeps a call that long.
        """
        live = self.launcher.live_attempts() | set(self._live) | self.journal.pending()
        oldest = self.clock() - timedelta(seconds=self.max_call_seconds + LOST_CALL_GRACE_SECONDS)
        settled = 0
        for call in await self.store.open_calls():
            if call.id in live:
                continue
            if call.lease_token is not None and call.from_did_id is not None:
                if await self.coordinator.holds(did_resource(call.from_did_id), call.lease_token):
                    continue
            elif call.created_at > oldest:
                continue
            result = AttemptResult(Outcome.UNKNOWN, self.clock(), reason="dialer lost track of the call")
            if await self.store.finish_attempt(call.id, result, None):
                settled += 1
        if settled:
            log.warning("reconciled %d calls outside campaigns left in flight as unknown", settled)
        return settled

    async def _renew_leases(self) -> None:
        """Keep live calls' leases (a call whose lease was lost is hung up: the caps stay true), and
        reconcile lost calls at start and about once per lease TTL."""
        next_reconcile = time.monotonic()
        while True:
            if time.monotonic() >= next_reconcile:
                next_reconcile = time.monotonic() + self.lease_ttl
                try:
                    await self.reconcile()
                except Exception:
                    log.exception("single-call reconciliation failed")
            await asyncio.sleep(max(0.05, self.lease_ttl / 3))
            for call_id, call in list(self._live.items()):
                renewed = await self.coordinator.renew(call.lease, self.lease_ttl)
                if renewed is None:
                    log.error("lease lost for call %s: hanging up to keep caps", call_id)
                    await self.launcher.hangup(call_id)
                else:
                    call.lease = renewed
