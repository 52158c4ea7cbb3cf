"""The dispatch loop: due prospects → window check → leased caller ID → attempt row → call → outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from dialer.allocation import Candidate, campaign_resource, cps_bucket, rank_candidates
from dialer.domain import (
    AttemptResult,
    CampaignPlan,
    CampaignStatus,
    NewAttempt,
    OpenAttempt,
    Prospect,
    ProspectState,
    ProspectUpdate,
)
from dialer.journal import CallJournal
from dialer.outcome import Outcome, answered_outcome, classify, end_reason
from dialer.phone import country_of, is_local_to
from dialer.ports import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallLauncher,
    CallRequest,
    CallRinging,
    Coordinator,
    DialStore,
    DispatchObserver,
    LauncherFull,
    LaunchRefused,
    Lease,
    StorageUnavailable,
)
from dialer.regions import RuleBook, callee_profile
from dialer.retry import after_attempt, orphan_gone_at
from dialer.window import BlockReason, check_window, next_open

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock; tests pass their own."""
    return datetime.now(UTC)


@dataclass
class LiveCall:
    """What the dispatcher remembers about a call it placed, until the call ends."""

    attempt_id: UUID
    plan: CampaignPlan
    prospect: Prospect
    lease: Lease
    did_id: UUID
    placed_at: datetime
    ringing_at: datetime | None = None
    answered_at: datetime | None = None


@dataclass
class DispatchStats:
    """Counters the loop keeps for tests, logs and the demo table (metrics come from these events)."""

    placed: int = 0
    deferred: dict[str, int] = field(default_factory=dict)
    ended: dict[str, int] = field(default_factory=dict)
    lease_lost: int = 0


def end_outcome(event: CallEnded) -> Outcome:
    """The outcome of an ended call: lost calls are ``unknown`` whatever the SIP stack last saw."""
    if event.lost:
        return Outcome.UNKNOWN
    if event.transferred:
        return Outcome.TRANSFERRED
    outcome = classify(event.sip_code, event.confirmed, event.q850_cause, event.reason)
    return answered_outcome(event.answered_by) if outcome is Outcome.ANSWERED else outcome


class Dispatcher:
    """Fills each active campaign's free lines with due prospects, and settles calls as they end.

    One task runs ``run()``: it refills whenever a call ends or a campaign changes (``wake()``), and
    at least every ``tick`` seconds as a safety net. Call events arrive through ``launcher.on_event``
    on the loop thread and are settled by a second task, so a slow dial never delays an outcome.
    A call's line is freed as its end arrives (its lease released, the loop woken), before the
    outcome is written: the next call does not wait for that write, nor for earlier calls' writes.
    """

    def __init__(
        self,
        store: DialStore,
        coordinator: Coordinator,
        launcher: CallLauncher,
        rules: RuleBook,
        *,
        clock: Clock = utc_now,
        node_id: str | None = None,
        lease_ttl: float = 30.0,
        tick: float = 1.0,
        observer: DispatchObserver | None = None,
        max_call_seconds: float = 3600.0,
        journal: CallJournal | None = None,
    ) -> None:
        self.store = store
        self.coordinator = coordinator
        self.launcher = launcher
        self.rules = rules
        self.clock = clock
        self.node_id = node_id or f"node-{uuid4().hex[:8]}"
        self.lease_ttl = lease_ttl
        self.tick = tick
        self.max_call_seconds = max_call_seconds  # a lost call may be up at the carrier this long
        # Call-event writes go through the journal, which holds them while storage is down. One made
        # here (none given: tests, single-purpose use) is drained by run(); a given one by its owner.
        self._owns_journal = journal is None
        self.journal = journal or CallJournal(store, None)
        self.journal.on_drained = self.wake
        self.stats = DispatchStats()
        self.observer = observer or DispatchObserver()
        self._live: dict[UUID, LiveCall] = {}
        # Ended calls whose line is free (or being freed) but whose outcome is not written yet:
        # reconciliation leaves them alone. ``_releases``: their lease releases, until settled.
        self._settling: dict[UUID, LiveCall] = {}
        self._releases: dict[UUID, asyncio.Future[None]] = {}
        self._freed: list[UUID] = []  # campaigns whose lines were freed since the last pass
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._stopping = False
        launcher.on_event = self._on_event

    # ---- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Reconcile, then dispatch until ``stop()``; settles events and renews leases alongside.

        Fails closed: while storage is down (or call events still wait in the journal) nothing is
        dialled; the loop retries every tick and refills as soon as the journal has drained.
        """
        settle = asyncio.create_task(self._settle_events(), name="dispatch-settle")
        renew = asyncio.create_task(self._renew_leases(), name="dispatch-renew")
        helpers = [settle, renew]
        if self._owns_journal:
            helpers.append(asyncio.create_task(self.journal.run(), name="call-journal"))
        next_reconcile = 0.0  # at once: attempts a crashed run left in flight
        storage_down = False
        try:
            while not self._stopping:
                try:
                    if self.journal.backlog:
                        raise StorageUnavailable(f"{self.journal.backlog} call events wait to be written")
                    if time.monotonic() >= next_reconcile:
                        # Calls of a node that died keep their leases until the TTL: settle them after.
                        await self.reconcile()
                        next_reconcile = time.monotonic() + self.lease_ttl
                    await self.fill_all()
                    if storage_down:
                        log.warning("storage back: dialing resumes")
                    storage_down = False
                except StorageUnavailable as exc:
                    if not storage_down:
                        log.error("storage unavailable, dialing stops until it is back: %s", exc)
                    storage_down = True
                except Exception:
                    log.exception("dispatch pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.tick)
                self._wake.clear()
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)

    def stop(self) -> None:
        """Stop placing calls; calls already up are left to finish."""
        self._stopping = True
        self._wake.set()

    async def settle_pending(self) -> int:
        """Settle the call events already queued (at shutdown, after ``run()`` has returned)."""
        settled = 0
        while not self._events.empty():
            await self.handle(self._events.get_nowait())
            settled += 1
        return settled

    def wake(self) -> None:
        """Refill now (a call ended, a campaign started or resumed, prospects were added)."""
        self._wake.set()

    def live_count(self, campaign_id: UUID | None = None) -> int:
        """Calls this dispatcher has up, for one campaign or all."""
        if campaign_id is None:
            return len(self._live)
        return sum(1 for call in self._live.values() if call.plan.id == campaign_id)

    # ---- crash recovery ------------------------------------------------------------------------

    async def reconcile(self) -> int:
        """Attempts left ``dialing`` with no live call become ``unknown``; the policy decides next.

        A call is live when this node has it up, or when the lease it was dialled under is still
        held (another node has it up, or a crashed node's lease has not run out yet: it is settled
        on a later pass). Never redials the same attempt: the attempt is ended, and any retry is a
        new attempt whose time the campaign's failed-call policy sets.
        """
        # Taken before reading the open attempts: a journal write applied in between has ended its row.
        live = self.launcher.live_attempts() | set(self._live) | set(self._settling) | self.journal.pending()
        settled = 0
        for open_attempt in await self.store.open_attempts():
            attempt_id, prospect = open_attempt.attempt_id, open_attempt.prospect
            if attempt_id in live or await self._lease_alive(open_attempt):
                continue
            plan = await self.store.campaign_plan(prospect.campaign_id)
            now = self.clock()
            gone = orphan_gone_at(open_attempt.started_at or now, self.max_call_seconds)
            update = (
                after_attempt(
                    prospect, Outcome.UNKNOWN, plan.retry, now, self._snapper(plan, prospect), not_before=gone
                )
                if plan is not None
                else ProspectUpdate(ProspectState.FAILED, None, Outcome.UNKNOWN, reason="campaign gone")
            )
            result = AttemptResult(Outcome.UNKNOWN, now, reason="dialer lost track of the call")
            if await self.store.finish_attempt(attempt_id, result, update):
                settled += 1
        if settled:
            log.warning("reconciled %d attempts left in flight as unknown", settled)
        return settled

    async def _lease_alive(self, attempt: OpenAttempt) -> bool:
        if attempt.lease_token is None:
            return False
        return await self.coordinator.holds(
            campaign_resource(attempt.prospect.campaign_id), attempt.lease_token
        )

    # ---- filling lines -------------------------------------------------------------------------

    async def fill_all(self) -> int:
        """One pass over every active campaign, first those whose calls just ended (their freed lines
        are refilled before the list of active campaigns is even read); returns how many were placed."""
        freed = list(dict.fromkeys(self._freed))
        self._freed.clear()
        placed = 0
        for campaign_id in freed:
            placed += await self._fill_one(campaign_id)
        for campaign_id in await self.store.active_campaign_ids():
            if campaign_id not in freed:
                placed += await self._fill_one(campaign_id)
        return placed

    async def _fill_one(self, campaign_id: UUID) -> int:
        if self._stopping:
            return 0
        try:
            return await self.fill(campaign_id)
        except StorageUnavailable:  # not this campaign's fault: stop the pass, dial nothing
            raise
        except Exception:  # one campaign's fault must not stop the others
            log.exception("dispatch failed for campaign %s", campaign_id)
            return 0

    async def fill(self, campaign_id: UUID) -> int:
        """Place as many calls for one campaign as its free lines allow, now."""
        plan = await self.store.campaign_plan(campaign_id)
        if plan is None or plan.status is not CampaignStatus.ACTIVE:
            return 0
        free = min(
            plan.max_concurrent_calls - await self.coordinator.in_use(campaign_resource(plan.id)),
            self.launcher.capacity() - len(self._live),
        )
        if free <= 0:
            return 0
        now = self.clock()
        # Fetch a few more than the free lines: some will be deferred by the window check.
        due = await self.store.due_prospects(plan.id, now, limit=free * 2 + 10)
        if not due:
            await self._complete_if_exhausted(plan)
            return 0
        placed = 0
        for prospect in due:
            if placed >= free or self._stopping:
                break
            verdict = await self._dial_one(plan, prospect, now)
            if verdict == "placed":
                placed += 1
            elif verdict == "stop":
                break
        return placed

    async def _complete_if_exhausted(self, plan: CampaignPlan) -> None:
        """Mark the campaign completed when nothing is in flight and no prospect can be dialled again."""
        settling = any(call.plan.id == plan.id for call in self._settling.values())
        if self.live_count(plan.id) or settling or not await self.store.campaign_exhausted(plan.id):
            return
        if await self.store.set_campaign_status(
            plan.id, CampaignStatus.COMPLETED, expect=[CampaignStatus.ACTIVE]
        ):
            log.info("campaign %s completed", plan.id)
            self.observer.campaign_completed(plan.id)

    async def _dial_one(self, plan: CampaignPlan, prospect: Prospect, now: datetime) -> str:
        """Try one prospect: 'placed', 'skipped' (deferred or lost the claim) or 'stop' (caps full)."""
        profile = callee_profile(prospect.phone)
        recent = await self.store.dials_since(plan.tenant_id, prospect.phone, now - timedelta(hours=24))
        decision = check_window(profile, plan.window, self.rules, now, recent)
        if not decision.open:
            reason = decision.reason or BlockReason.NEVER_OPENS
            self.stats.deferred[reason.value] = self.stats.deferred.get(reason.value, 0) + 1
            self.observer.deferred(plan.id, reason.value)
            hold = decision.next_open is None
            await self.store.defer_prospect(prospect.id, decision.next_open, reason.value, hold=hold)
            return "skipped"
        chosen = await self._lease_caller_id(plan, prospect, now)
        if chosen is None:
            return "stop"
        candidate, lease = chosen
        wait = await self.coordinator.take_token(
            cps_bucket(candidate.trunk.id), candidate.trunk.max_cps, max(1, int(candidate.trunk.max_cps))
        )
        if wait > 0:
            await self.coordinator.release(lease)
            asyncio.get_running_loop().call_later(wait, self._wake.set)
            return "stop"
        attempt = NewAttempt(
            id=uuid4(),
            tenant_id=plan.tenant_id,
            campaign_id=plan.id,
            prospect_id=prospect.id,
            attempt_number=prospect.total_attempts + 1,
            from_did_id=candidate.did.id,
            from_number=candidate.did.number,
            to_number=prospect.phone,
            trunk_id=candidate.trunk.id,
            lease_token=lease.token,
            created_at=now,
        )
        # The attempt is durable before anything leaves: a crash after this line is reconciled.
        try:
            claimed = await self.store.claim_attempt(attempt, now)
        except BaseException:  # storage down: nothing is dialled, and the slots go back at once
            await self.coordinator.release(lease)
            raise
        if not claimed:
            await self.coordinator.release(lease)
            return "skipped"
        self._live[attempt.id] = LiveCall(attempt.id, plan, prospect, lease, candidate.did.id, now)
        request = CallRequest(
            attempt_id=attempt.id,
            tenant_id=plan.tenant_id,
            campaign_id=plan.id,
            trunk_id=candidate.trunk.id,
            from_number=candidate.did.number,
            to_number=prospect.phone,
            timeout_seconds=plan.call_timeout_seconds,
            lease_token=lease.token,
            agent_id=plan.agent_id,
            prospect_id=prospect.id,
            prospect_name=prospect.name,
            attempt_number=attempt.attempt_number,
            custom=prospect.custom,
            record=plan.record,
            amd=plan.amd if plan.amd.enabled else None,
        )
        try:
            await self.launcher.place(request)
        except LauncherFull:
            await self._settle(attempt.id, None, "no free SIP line", Outcome.CAPACITY)
            return "stop"
        except LaunchRefused as refused:
            await self._settle(attempt.id, None, refused.reason, Outcome.FAILED, final=True)
            return "skipped"
        except Exception:
            log.exception("launcher failed for attempt %s", attempt.id)
            await self._settle(attempt.id, None, "launcher error", Outcome.FAILED)
            return "skipped"
        self.stats.placed += 1
        due = prospect.next_attempt_at or now
        self.observer.placed(request, (self.clock() - due).total_seconds())
        return "placed"

    async def _lease_caller_id(
        self, plan: CampaignPlan, prospect: Prospect, now: datetime
    ) -> tuple[Candidate, Lease] | None:
        """Lease the best DID with a free slot (and its trunk's and the campaign's), or None."""
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        locality = {did.id: is_local_to(did.number, prospect.phone) for did in plan.dids}
        daily = {
            did.id: await self.store.did_dials_since(did.id, day_start)
            for did in plan.dids
            if did.daily_cap is not None
        }
        in_use = {
            did_id: sum(1 for call in self._live.values() if call.did_id == did_id) for did_id in locality
        }
        holder = f"{self.node_id}:{uuid4().hex}"
        for candidate in rank_candidates(plan, country_of(prospect.phone), locality, daily, in_use):
            lease = await self.coordinator.acquire(
                candidate.slots(plan.id, plan.max_concurrent_calls), holder, self.lease_ttl
            )
            if lease is not None:
                return candidate, lease
        return None

    # ---- settling calls ------------------------------------------------------------------------

    def _on_event(self, event: CallEvent) -> None:
        """A launcher event (loop thread): an end frees its line now; every event is settled in order."""
        if isinstance(event, CallEnded):
            self._free_line(event.attempt_id)
        self._events.put_nowait(event)

    def _free_line(self, attempt_id: UUID) -> asyncio.Future[None] | None:
        """Take an ended call off the live calls and release its lease (the refill is woken when it is
        released); idempotent. None if the call is not this dispatcher's or was settled already."""
        release = self._releases.get(attempt_id)
        if release is None and (call := self._live.pop(attempt_id, None)) is not None:
            self._settling[attempt_id] = call
            release = self._releases[attempt_id] = asyncio.ensure_future(self._release(call))
        return release

    async def _release(self, call: LiveCall) -> None:
        try:
            await self.coordinator.release(call.lease)
        except Exception:  # the lease runs out by its TTL; the caps stay true meanwhile
            log.exception("could not release the lease of attempt %s", call.attempt_id)
        finally:
            self._freed.append(call.plan.id)
            self.wake()

    async def _settle_events(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self.handle(event)
            except Exception:
                log.exception("could not settle a call event")

    async def handle(self, event: CallEvent) -> None:
        """Apply one launcher event (public so tests can drive it without the queue)."""
        call = self._live.get(event.attempt_id) or self._settling.get(event.attempt_id)
        if call is None:
            return
        if isinstance(event, CallRinging):
            call.ringing_at = event.at
            await self.journal.call_progress(event.attempt_id, ringing_at=event.at)
        elif isinstance(event, CallAnswered):
            call.answered_at = event.at
            await self.journal.call_progress(event.attempt_id, answered_at=event.at)
        elif isinstance(event, CallEnded):
            outcome = end_outcome(event)
            await self._settle(event.attempt_id, event, end_reason(event.sip_code, event.reason), outcome)

    async def _settle(
        self,
        attempt_id: UUID,
        event: CallEnded | None,
        reason: str | None,
        outcome: Outcome,
        *,
        final: bool = False,
    ) -> None:
        self._free_line(attempt_id)
        release = self._releases.pop(attempt_id, None)  # whoever takes it settles the call, once
        if release is None:
            return
        try:
            await self._write_outcome(self._settling[attempt_id], event, reason, outcome, final)
        finally:
            await release
            del self._settling[attempt_id]
            self.stats.ended[outcome.value] = self.stats.ended.get(outcome.value, 0) + 1
            self.wake()

    async def _write_outcome(
        self, call: LiveCall, event: CallEnded | None, reason: str | None, outcome: Outcome, final: bool
    ) -> None:
        now = self.clock()
        if final:
            update = ProspectUpdate(ProspectState.FAILED, None, outcome, reason=reason)
        else:
            snap = self._snapper(call.plan, call.prospect)
            # A lost call (its SIP worker died, no BYE sent) may still be up at the carrier.
            started = (event.invited_at if event else None) or call.placed_at
            gone = orphan_gone_at(started, self.max_call_seconds) if outcome is Outcome.UNKNOWN else None
            update = after_attempt(call.prospect, outcome, call.plan.retry, now, snap, not_before=gone)
        result = AttemptResult(
            outcome=outcome,
            ended_at=event.at if event else now,
            sip_code=event.sip_code if event else None,
            reason=reason,
            q850_cause=event.q850_cause if event else None,
            invited_at=event.invited_at if event else None,
            ringing_at=(event.ringing_at if event else None) or call.ringing_at,
            answered_at=(event.answered_at if event else None) or call.answered_at,
            sip_worker=event.worker if event else None,
            answered_by=event.answered_by if event else None,
        )
        await self.journal.finish_attempt(call.attempt_id, result, update)

    def _snapper(self, plan: CampaignPlan, prospect: Prospect) -> Callable[[datetime], datetime | None]:
        profile = callee_profile(prospect.phone)

        def snap(moment: datetime) -> datetime | None:
            return next_open(profile, plan.window, self.rules, moment)

        return snap

    async def _renew_leases(self) -> None:
        """Keep live calls' leases alive; a call whose lease was lost is hung up (caps stay true)."""
        while True:
            await asyncio.sleep(max(0.05, self.lease_ttl / 3))
            for call in list(self._live.values()):
                renewed = await self.coordinator.renew(call.lease, self.lease_ttl)
                if renewed is None:
                    self.stats.lease_lost += 1
                    self.observer.lease_lost(call.plan.id)
                    log.error("lease lost for attempt %s: hanging up to keep caps", call.attempt_id)
                    await self.launcher.hangup(call.attempt_id)
                else:
                    call.lease = renewed
