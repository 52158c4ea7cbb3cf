"""APScheduler jobs: scheduled campaign starts, run only by the scheduler that holds the leadership lease;
and the recording retention, run by every node with SIP workers.

Several scheduler processes may run (one per node); the coordination store's leadership lease makes
exactly one of them act at a time, and a standby takes over within ``lead_ttl`` when the leader dies.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from uuid import UUID

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from dialer.domain import CampaignStatus
from dialer.ports import Coordinator
from dialer.storage import SqlStore

log = logging.getLogger(__name__)

LEADERSHIP = "scheduler"


def utc_now() -> datetime:
    return datetime.now(UTC)


def every(
    seconds: float, job: Callable[[], Awaitable[int]], name: str, *, first: datetime
) -> AsyncIOScheduler:
    """An APScheduler running ``job`` every ``seconds`` on the running event loop, first at ``first``;
    a run that would overlap the previous one is skipped, missed runs are coalesced into one."""
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        job, "interval", seconds=seconds, id=name, max_instances=1, coalesce=True, next_run_time=first
    )
    scheduler.start()
    return scheduler


class CampaignScheduler:
    """Starts campaigns whose ``scheduled_start_time`` has come; ``on_started(id)`` follows each start."""

    def __init__(
        self,
        store: SqlStore,
        coordinator: Coordinator,
        node_id: str,
        *,
        on_started: Callable[[UUID], None] = lambda campaign_id: None,
        interval: float = 5.0,
        lead_ttl: float = 15.0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.coordinator = coordinator
        self.node_id = node_id
        self.on_started = on_started
        self.interval = interval
        self.lead_ttl = lead_ttl
        self.clock = clock
        self.leading = False
        self._scheduler: AsyncIOScheduler | None = None

    def start(self) -> None:
        """Add the job and start APScheduler on the running event loop."""
        self._scheduler = every(self.interval, self.tick, "campaign-starts", first=self.clock())

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self.leading:
            await self.coordinator.resign(LEADERSHIP, self.node_id)
            self.leading = False

    async def tick(self) -> int:
        """One pass: renew or take leadership; when leading, start the campaigns that are due."""
        try:
            leading = await self.coordinator.lead(LEADERSHIP, self.node_id, self.lead_ttl)
        except Exception:
            log.exception("leadership check failed; not acting this tick")
            return 0
        if leading != self.leading:
            log.info("scheduler %s leadership", "took" if leading else "lost")
            self.leading = leading
        if not leading:
            return 0
        return await start_due_campaigns(self.store, self.clock(), self.on_started)


async def start_due_campaigns(store: SqlStore, now: datetime, on_started: Callable[[UUID], None]) -> int:
    """Move every ``scheduled`` campaign whose start time has come to ``active``; returns how many."""
    started = 0
    for campaign_id in await store.scheduled_campaigns_due(now):
        if await store.set_campaign_status(
            campaign_id, CampaignStatus.ACTIVE, expect=[CampaignStatus.SCHEDULED]
        ):
            log.info("campaign %s started on schedule", campaign_id)
            started += 1
            on_started(campaign_id)
    return started


class RecordingRetention:
    """Deletes call recordings past their tenant's retention every ``interval`` seconds (APScheduler job).

    Runs on every node with SIP workers, not only the leading scheduler: recordings kept on local disk
    are on the gateway node that made them. Passes on several nodes are harmless (a deletion is
    idempotent and a call's recording is forgotten once).
    """

    def __init__(self, purge: Callable[[], Awaitable[int]], *, interval: float = 3600.0) -> None:
        self.purge = purge
        self.interval = interval
        self._scheduler: AsyncIOScheduler | None = None

    def start(self) -> None:
        self._scheduler = every(self.interval, self.tick, "recording-retention", first=utc_now())

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    async def tick(self) -> int:
        try:
            return await self.purge()
        except Exception:  # storage down: the next pass tries again
            log.exception("recording retention pass failed")
            return 0
