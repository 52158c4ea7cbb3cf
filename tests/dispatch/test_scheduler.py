"""Scheduled campaign starts: only the leading scheduler acts, a standby takes over when it goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from dialer.coordination import MemoryCoordinator, RedisCoordinator
from dialer.domain import CampaignStatus
from dialer.ports import Coordinator
from dialer.storage import CampaignSpec, SqlStore
from scheduler.jobs import CampaignScheduler

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def coordinator(request: pytest.FixtureRequest) -> AsyncIterator[Coordinator]:
    if request.param == "memory":
        yield MemoryCoordinator()
        return
    coord = RedisCoordinator.from_url(request.getfixturevalue("redis_url"), namespace=f"test-{uuid4().hex}")
    try:
        yield coord
    finally:
        await coord.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    try:
        yield store
    finally:
        store.dispose()


async def scheduled(store: SqlStore, at: datetime) -> UUID:
    tenant = await store.create_tenant("Acme")
    campaign = await store.create_campaign(tenant, CampaignSpec(name="Later", timezone="Europe/London"))
    assert await store.schedule_campaign(campaign, at)
    return campaign


async def status(store: SqlStore, campaign: UUID) -> CampaignStatus | None:
    record = await store.get_campaign(campaign)
    return record.status if record else None


async def test_due_campaign_starts_and_wakes_the_dispatcher(
    store: SqlStore, coordinator: Coordinator
) -> None:
    campaign = await scheduled(store, T0)
    woken: list[int] = []
    now = [T0 - timedelta(seconds=1)]
    jobs = CampaignScheduler(
        store, coordinator, "a", on_started=lambda campaign_id: woken.append(1), clock=lambda: now[0]
    )
    assert await jobs.tick() == 0, "not before its start time"
    assert await status(store, campaign) is CampaignStatus.SCHEDULED
    now[0] = T0
    assert await jobs.tick() == 1
    assert await status(store, campaign) is CampaignStatus.ACTIVE
    assert woken == [1]
    assert await jobs.tick() == 0, "started once"


async def test_only_the_leader_acts_and_a_standby_takes_over(
    store: SqlStore, coordinator: Coordinator
) -> None:
    await scheduled(store, T0)
    leader = CampaignScheduler(store, coordinator, "a", lead_ttl=0.3, clock=lambda: T0)
    standby = CampaignScheduler(store, coordinator, "b", lead_ttl=0.3, clock=lambda: T0)
    assert await leader.tick() == 1 and leader.leading
    second = await scheduled(store, T0)
    assert await standby.tick() == 0 and not standby.leading, "a standby never acts while the leader lives"
    assert await status(store, second) is CampaignStatus.SCHEDULED
    await asyncio.sleep(0.4)  # the leader died without resigning: its lease runs out
    assert await standby.tick() == 1 and standby.leading
    assert await status(store, second) is CampaignStatus.ACTIVE
    assert await leader.tick() == 0 and not leader.leading


async def test_stop_resigns_so_a_standby_leads_at_once(store: SqlStore, coordinator: Coordinator) -> None:
    leader = CampaignScheduler(store, coordinator, "a", lead_ttl=30, clock=lambda: T0)
    standby = CampaignScheduler(store, coordinator, "b", lead_ttl=30, clock=lambda: T0)
    await leader.tick()
    await standby.tick()
    assert leader.leading and not standby.leading
    await leader.stop()
    await standby.tick()
    assert standby.leading


async def test_apscheduler_runs_the_tick(store: SqlStore, coordinator: Coordinator) -> None:
    campaign = await scheduled(store, datetime.now(UTC) - timedelta(minutes=1))
    jobs = CampaignScheduler(store, coordinator, "a", interval=0.1)
    jobs.start()
    try:
        for _ in range(100):
            if await status(store, campaign) is CampaignStatus.ACTIVE:
                break
            await asyncio.sleep(0.05)
        assert await status(store, campaign) is CampaignStatus.ACTIVE
    finally:
        await jobs.stop()
