"""A scheduled start survives a restart: the schedule lives in the campaigns table, not in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from api.app import create_app
from dialer.coordination.memory import MemoryCoordinator
from dialer.storage import SqlStore
from scheduler.jobs import CampaignScheduler
from tests.api.conftest import ROOMY, FakeRuntime, make_tenant, serve
from tests.api.test_campaigns import seed_body


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _first_life(store_url: str, when: datetime) -> UUID:
    """Create and schedule a campaign through the API, then tear app and store down."""
    store = SqlStore(store_url)
    store.migrate()
    try:
        async for url in serve(create_app(store, runtime=FakeRuntime(), limits=ROOMY)):
            async for acme in make_tenant(store, url):
                created = await acme.client.post("/campaigns", json=seed_body(acme.agent))
                campaign = UUID(created.json()["campaign_id"])
                scheduled = await acme.client.post(
                    f"/campaigns/{campaign}/schedule-start", json={"scheduled_start_time": when.isoformat()}
                )
                assert scheduled.status_code == 200, scheduled.text
                assert scheduled.json()["status"] == "scheduled"
        return campaign
    finally:
        store.dispose()


async def test_schedule_start_survives_a_restart(store_url: str) -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    campaign = await _first_life(store_url, when)

    store = SqlStore(store_url)  # the restarted process: a new store over the same database
    store.migrate()
    try:
        woken: list[int] = []
        early = CampaignScheduler(
            store, MemoryCoordinator(), "node-b", clock=lambda: when - timedelta(minutes=1)
        )
        assert await early.tick() == 0  # not yet
        scheduler = CampaignScheduler(
            store,
            MemoryCoordinator(),
            "node-b",
            on_started=lambda campaign_id: woken.append(1),
            clock=lambda: when + timedelta(seconds=1),
        )
        assert await scheduler.tick() == 1 and woken == [1]
        record = await store.get_campaign(campaign)
        assert record is not None and record.status.value == "active"
        assert await scheduler.tick() == 0  # started once only
    finally:
        store.dispose()
