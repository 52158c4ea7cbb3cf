"""The dispatch loop against real storage (SQLite) and real coordination, with a fake call launcher.

The clock is injected: every test drives time by hand, so nothing here waits on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from uuid import UUID

import pytest
import sqlalchemy as sa

from dialer.allocation import did_resource
from dialer.coordination import MemoryCoordinator, RedisCoordinator
from dialer.dispatch import Dispatcher
from dialer.domain import CampaignStatus, ProspectState
from dialer.outcome import Outcome
from dialer.ports import Coordinator
from dialer.regions import load_rules
from dialer.single_calls import SingleCalls
from dialer.storage import CampaignSpec, SqlStore, TrunkSpec
from dialer.storage.tables import attempts, phone_numbers
from tests.dispatch.fakes import FakeLauncher

# Monday 2026-03-02 17:00 UTC = 09:00 in Los Angeles: inside the federal and the campaign window.
T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
DIDS = ("+14155550100", "+14155550101", "+14155550102")


class Clock:
    """A hand-driven clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class World:
    store: SqlStore
    coordinator: Coordinator
    tenant: UUID
    campaign: UUID
    clock: Clock

    def dispatcher(self, launcher: FakeLauncher, node: str = "node-a", lease_ttl: float = 30.0) -> Dispatcher:
        return Dispatcher(
            self.store,
            self.coordinator,
            launcher,
            load_rules(),
            clock=self.clock,
            node_id=node,
            tick=0.01,
            lease_ttl=lease_ttl,
        )

    async def attempt_rows(self) -> list[sa.Row[tuple[UUID, UUID, str | None]]]:
        query = sa.select(attempts.c.id, attempts.c.prospect_id, attempts.c.outcome)
        with self.store.engine.connect() as conn:
            return list(conn.execute(query.where(attempts.c.campaign_id == self.campaign)))


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def coordinator(request: pytest.FixtureRequest) -> AsyncIterator[Coordinator]:
    if request.param == "memory":
        yield MemoryCoordinator()
        return
    namespace = f"test-dispatch-{id(request)}-{T0.timestamp()}"
    coord = RedisCoordinator.from_url(request.getfixturevalue("redis_url"), namespace=namespace)
    try:
        yield coord
    finally:
        await coord.close()


async def build_world(
    tmp_path: Path,
    coordinator: Coordinator,
    *,
    prospects: int,
    campaign_cap: int = 5,
    did_cap: int = 1,
    trunk_cap: int = 10,
    **spec: object,
) -> World:
    store = SqlStore(f"sqlite:///{tmp_path / 'dialer.db'}")
    store.migrate()
    tenant = await store.create_tenant("Acme Clinic")
    trunk = await store.create_trunk(
        tenant, TrunkSpec(name="main", host="127.0.0.1", max_concurrent_calls=trunk_cap, max_cps=1000)
    )
    dids = [
        await store.import_number(tenant, number, trunk, country="US", max_concurrent_calls=did_cap)
        for number in DIDS
    ]
    settings: dict[str, object] = {
        "timezone": "America/Los_Angeles",
        "call_hours_start": time(8, 0),
        "call_hours_end": time(20, 0),
        "call_days": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
        "max_concurrent_calls": campaign_cap,
    } | spec
    campaign = await store.create_campaign(
        tenant,
        CampaignSpec(name="Spring", **settings),
        status=CampaignStatus.ACTIVE,  # type: ignore[arg-type]
    )
    await store.allocate_dids(campaign, dids)
    rows = [(f"P{i}", f"+1415555{2600 + i:04d}", {}) for i in range(prospects)]
    await store.add_prospects(campaign, rows, now=T0)
    return World(store, coordinator, tenant, campaign, Clock(T0))


@pytest.fixture
async def make_world(tmp_path: Path, coordinator: Coordinator) -> AsyncIterator[object]:
    built: list[World] = []

    async def make(**kwargs: object) -> World:
        world = await build_world(tmp_path, coordinator, **kwargs)  # type: ignore[arg-type]
        built.append(world)
        return world

    yield make
    for world in built:
        world.store.dispose()


async def settle_all(dispatcher: Dispatcher, launcher: FakeLauncher, world: World, **end: object) -> None:
    """End every live call as the far end would and let the dispatcher settle each one."""
    for attempt_id in list(launcher.live):
        await dispatcher.handle(launcher.end(attempt_id, world.clock(), **end))  # type: ignore[arg-type]


async def test_caps_are_never_exceeded_across_refills(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=12, campaign_cap=5, did_cap=1)
    launcher = FakeLauncher(lines=100)
    dispatcher = world.dispatcher(launcher)

    # Three DIDs at one call each cap the campaign (cap 5) at three lines.
    assert await dispatcher.fill_all() == 3
    assert await dispatcher.fill_all() == 0, "a second pass with every DID busy must place nothing"
    for _ in range(10):
        await settle_all(dispatcher, launcher, world)
        world.clock.advance(minutes=1)
        await dispatcher.fill_all()
    assert launcher.peak == 3
    assert max(launcher.peak_per_from.values()) == 1
    assert len(launcher.placed) == 12
    assert len({r.to_number for r in launcher.placed}) == 12, "each prospect dialled exactly once"
    plan = await world.store.campaign_plan(world.campaign)
    assert plan is not None and len(plan.dids) == 3
    for did in plan.dids:
        assert await world.coordinator.in_use(did_resource(did.id)) == 0, "every lease given back"


async def test_campaign_cap_binds_before_did_caps(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=10, campaign_cap=2, did_cap=5)
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    assert await dispatcher.fill_all() == 2
    assert await dispatcher.fill_all() == 0
    assert launcher.peak == 2


async def test_trunk_cap_binds(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=10, campaign_cap=10, did_cap=5, trunk_cap=4)
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    assert await dispatcher.fill_all() == 4
    assert await dispatcher.fill_all() == 0


async def test_launcher_lines_bound_dispatch(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=10, campaign_cap=10, did_cap=5)
    launcher = FakeLauncher(lines=2)
    dispatcher = world.dispatcher(launcher)
    assert await dispatcher.fill_all() == 2
    assert launcher.peak == 2


async def test_two_dispatchers_share_caps_through_coordination(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=20, campaign_cap=20, did_cap=1)
    a, b = FakeLauncher(), FakeLauncher()
    first, second = world.dispatcher(a, "node-a"), world.dispatcher(b, "node-b")
    placed = await first.fill_all() + await second.fill_all() + await first.fill_all()
    assert placed == 3
    assert a.peak + b.peak == 3
    dialled = [r.to_number for r in a.placed + b.placed]
    assert len(dialled) == len(set(dialled)), "no prospect claimed by both nodes"


async def test_pause_stops_new_dials_and_running_calls_finish(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=6, did_cap=1)
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    assert await dispatcher.fill_all() == 3
    assert await world.store.set_campaign_status(world.campaign, CampaignStatus.PAUSED)
    await settle_all(dispatcher, launcher, world)
    assert await dispatcher.fill_all() == 0, "paused: nothing new is dialled"
    assert dispatcher.live_count() == 0, "the calls up at pause time were settled normally"
    rows = await world.attempt_rows()
    assert Counter(r.outcome for r in rows) == {"answered": 3}

    assert await world.store.set_campaign_status(world.campaign, CampaignStatus.ACTIVE)
    assert await dispatcher.fill_all() == 3


async def test_campaign_completes_when_no_prospect_can_be_dialled_again(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=4, did_cap=2)
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    for _ in range(5):
        await dispatcher.fill_all()
        await settle_all(dispatcher, launcher, world)
    plan = await world.store.campaign_plan(world.campaign)
    assert plan is not None and plan.status is CampaignStatus.COMPLETED
    counts = await world.store.campaign_counts(world.campaign)
    assert counts.get(ProspectState.COMPLETED.value) == 4


async def test_busy_is_retried_after_the_policy_delay_then_terminal(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=1, did_cap=1, max_retries_busy=1, retry_delay_busy_seconds=180)
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    assert await dispatcher.fill_all() == 1
    await settle_all(dispatcher, launcher, world, sip_code=486, confirmed=False, cause=17)
    world.clock.advance(seconds=179)
    assert await dispatcher.fill_all() == 0, "not before the busy delay"
    world.clock.advance(seconds=1)
    assert await dispatcher.fill_all() == 1
    await settle_all(dispatcher, launcher, world, sip_code=486, confirmed=False, cause=17)
    world.clock.advance(hours=1)
    assert await dispatcher.fill_all() == 0, "busy retries exhausted"
    rows = await world.attempt_rows()
    assert [r.outcome for r in rows] == ["busy", "busy"]
    assert len({r.id for r in rows}) == 2


async def test_an_answering_machine_is_voicemail_retried_by_its_own_rule(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(
        prospects=1,
        amd="detect",
        amd_timeout_seconds=12,
        max_retries_voicemail=1,
        retry_delay_voicemail_seconds=3600,
        max_retries_no_answer=0,  # the voicemail rule governs, not the no-answer one
    )
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    assert await dispatcher.fill_all() == 1
    request = launcher.placed[0]
    assert request.amd is not None and (request.amd.mode, request.amd.timeout_seconds) == ("detect", 12)
    await settle_all(dispatcher, launcher, world, answered_by="machine_end_beep")
    world.clock.advance(seconds=3599)
    assert await dispatcher.fill_all() == 0, "not before the voicemail delay"
    world.clock.advance(seconds=1)
    assert await dispatcher.fill_all() == 1
    await settle_all(dispatcher, launcher, world, answered_by="human")
    rows = await world.attempt_rows()
    assert [r.outcome for r in rows] == ["voicemail", "answered"]
    with world.store.engine.connect() as conn:
        verdicts = conn.execute(sa.select(attempts.c.answered_by).order_by(attempts.c.created_at)).scalars()
        assert list(verdicts) == ["machine_end_beep", "human"]
    prospect = await world.store.due_prospects(world.campaign, world.clock() + timedelta(days=9), 5)
    assert prospect == []  # reached: completed


async def test_closed_window_defers_to_the_next_opening(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=2, call_hours_start=time(10, 0), call_hours_end=time(12, 0))
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    assert await dispatcher.fill_all() == 0, "09:00 in Los Angeles is before the campaign's 10:00"
    assert dispatcher.stats.deferred == {"campaign_hours": 2}
    prospect_ids = {r.to_number for r in launcher.placed}
    assert not prospect_ids
    world.clock.advance(minutes=59)
    assert await dispatcher.fill_all() == 0, "deferred to 10:00 exactly, not re-checked before"
    world.clock.advance(minutes=1)
    assert await dispatcher.fill_all() == 2


async def test_a_window_change_redials_what_the_old_window_deferred_but_not_before_a_retry(
    make_world,
) -> None:  # type: ignore[no-untyped-def]
    # 09:00 in Los Angeles; the campaign's window closes at 09:01.
    world: World = await make_world(prospects=1, call_hours_start=time(8, 0), call_hours_end=time(9, 1))
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    assert await dispatcher.fill_all() == 1
    # Busy: the 180 s retry (09:03) falls outside the window, so it waits for tomorrow's 08:00.
    await settle_all(dispatcher, launcher, world, sip_code=486, confirmed=False, cause=17)
    world.clock.advance(minutes=1)
    await world.store.add_prospects(world.campaign, [("Q", "+14155552700", {})], now=world.clock())
    assert await dispatcher.fill_all() == 0
    assert dispatcher.stats.deferred == {"campaign_hours": 1}, "the new prospect waits for 08:00 tomorrow"

    await world.store.update_campaign(world.campaign, {"name": "Spring 2"}, now=world.clock())
    assert await dispatcher.fill_all() == 0, "a change that leaves the window alone re-plans nothing"

    await world.store.update_campaign(world.campaign, {"call_hours_end": time(20, 0)}, now=world.clock())
    assert await dispatcher.fill_all() == 1, "the deferred prospect is dialled as soon as the window opens"
    assert launcher.placed[-1].to_number == "+14155552700"
    world.clock.advance(seconds=119)  # 09:02:59: the busy retry is due at 09:03:00
    assert await dispatcher.fill_all() == 0, "a retry waits for its delay, new window or not"
    world.clock.advance(seconds=1)
    assert await dispatcher.fill_all() == 1
    assert [r.to_number for r in launcher.placed] == ["+14155552600", "+14155552700", "+14155552600"]


async def test_crash_reconciliation_settles_unknown_and_never_redials_the_attempt(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=3, did_cap=1, retry_delay_failed_seconds=300)
    crashed = FakeLauncher()
    # A short lease TTL so the dead node's slots come back within the test (real expiry, real clock).
    assert await world.dispatcher(crashed, "node-a", lease_ttl=0.3).fill_all() == 3
    lost = {r.attempt_id for r in crashed.placed}

    # A new process: nothing is live in its launcher; the three attempts are still 'dialing'.
    fresh = FakeLauncher()
    survivor = world.dispatcher(fresh, "node-b")
    assert await survivor.reconcile() == 0, "their leases still live: the calls may still be up somewhere"
    await asyncio.sleep(0.4)  # the dead node never renews: its leases run out
    assert await survivor.reconcile() == 3
    assert await survivor.reconcile() == 0, "reconciliation is idempotent"
    rows = await world.attempt_rows()
    assert {r.id: r.outcome for r in rows} == dict.fromkeys(lost, Outcome.UNKNOWN.value)

    # The dead node sent no BYE: its calls may still be up at the carrier until the longest a call
    # may last (3600 s by default) has passed since they started, however short the failed-call delay.
    # The retry is then a new attempt, never the lost attempt again.
    assert await survivor.fill_all() == 0
    world.clock.advance(seconds=300)
    assert await survivor.fill_all() == 0, "the failed-call delay alone is not enough"
    world.clock.advance(seconds=3600 - 300 - 1)
    assert await survivor.fill_all() == 0, "one second before the longest call could have ended"
    world.clock.advance(seconds=1)
    assert await survivor.fill_all() == 3
    assert not lost & {r.attempt_id for r in fresh.placed}


async def test_a_starting_node_leaves_another_nodes_live_calls_alone(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=2, did_cap=1)
    busy = FakeLauncher()
    assert await world.dispatcher(busy, "node-a").fill_all() == 2
    newcomer = world.dispatcher(FakeLauncher(), "node-b")
    assert await newcomer.reconcile() == 0
    assert {r.outcome for r in await world.attempt_rows()} == {None}, "still dialling on node-a"
    assert await newcomer.fill_all() == 0, "and never dialled a second time"


async def test_run_reconciles_periodically(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=1, did_cap=1)
    assert await world.dispatcher(FakeLauncher(), "node-a", lease_ttl=0.2).fill_all() == 1
    survivor = world.dispatcher(FakeLauncher(), "node-b", lease_ttl=0.2)
    running = asyncio.create_task(survivor.run())
    try:
        for _ in range(100):
            rows = await world.attempt_rows()
            if rows and rows[0].outcome == Outcome.UNKNOWN.value:
                break
            await asyncio.sleep(0.02)
        assert [r.outcome for r in await world.attempt_rows()] == [Outcome.UNKNOWN.value]
    finally:
        survivor.stop()
        await running


async def test_reconcile_leaves_live_calls_alone(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=2, did_cap=1)
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    assert await dispatcher.fill_all() == 2
    assert await dispatcher.reconcile() == 0
    assert dispatcher.live_count() == 2


async def test_dnc_prospect_is_never_dialled(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(prospects=3, did_cap=1)
    await world.store.add_dnc(world.tenant, "+14155552601")
    launcher = FakeLauncher()
    assert await world.dispatcher(launcher).fill_all() == 2
    assert "+14155552601" not in {r.to_number for r in launcher.placed}


async def test_single_calls_left_open_by_a_crash_are_reconciled(make_world) -> None:  # type: ignore[no-untyped-def]
    """API and inbound calls (no campaign) a dead node left open end as unknown, and only those."""
    world: World = await make_world(prospects=0, did_cap=2)
    store = world.store
    with store.engine.connect() as conn:
        did, trunk = conn.execute(
            sa.select(phone_numbers.c.id, phone_numbers.c.trunk_id).where(phone_numbers.c.number == DIDS[0])
        ).one()

    async def api_call(to: str) -> UUID:
        return await store.create_call(
            world.tenant, DIDS[0], to, from_did_id=did, trunk_id=trunk, created_at=T0
        )

    def singles(launcher: FakeLauncher, lease_ttl: float = 30.0) -> SingleCalls:
        return SingleCalls(store, world.coordinator, launcher, lease_ttl=lease_ttl, clock=world.clock)

    lost, still_up = await api_call("+14155552601"), await api_call("+14155552602")
    await singles(FakeLauncher(), lease_ttl=0.3).place(lost)  # its node dies: nobody renews the lease
    live_here = FakeLauncher()
    survivor = singles(live_here)
    await survivor.place(still_up)
    never_placed = await api_call("+14155552603")  # its API request is still under way
    old_inbound = await store.create_call(
        world.tenant, "+14155552604", DIDS[1], direction="inbound", created_at=T0 - timedelta(hours=2)
    )
    new_inbound = await store.create_call(
        world.tenant, "+14155552605", DIDS[1], direction="inbound", created_at=T0 - timedelta(minutes=5)
    )

    assert await survivor.reconcile() == 1, "only the inbound call older than any call may last"
    await asyncio.sleep(0.4)  # the dead node's lease runs out
    assert await survivor.reconcile() == 1
    assert await survivor.reconcile() == 0, "reconciliation is idempotent"
    outcomes = {}
    for call in (lost, still_up, never_placed, old_inbound, new_inbound):
        record = await store.get_attempt(call)
        assert record is not None
        outcomes[call] = record.outcome
    assert outcomes == {
        lost: Outcome.UNKNOWN,
        still_up: None,
        never_placed: None,
        old_inbound: Outcome.UNKNOWN,
        new_inbound: None,
    }
    assert [r.attempt_id for r in live_here.placed] == [still_up], "nothing was dialled again"


async def test_an_ended_call_frees_its_line_before_its_outcome_is_written(make_world) -> None:  # type: ignore[no-untyped-def]
    """The refill does not wait for the ended call's outcome write: the next prospect is dialled while
    that write is held, reconciliation leaves the call alone meanwhile, and the outcome is written once."""
    world: World = await make_world(prospects=3, did_cap=1, campaign_cap=1)
    launcher = FakeLauncher()
    dispatcher = world.dispatcher(launcher)
    writing, hold = asyncio.Event(), asyncio.Event()
    finish = world.store.finish_attempt

    async def held_finish(*args: object, **kwargs: object) -> bool:
        writing.set()
        await hold.wait()
        return await finish(*args, **kwargs)  # type: ignore[arg-type]

    world.store.finish_attempt = held_finish  # type: ignore[method-assign]
    runner = asyncio.create_task(dispatcher.run())
    try:
        for _ in range(200):
            if launcher.placed:
                break
            await asyncio.sleep(0.01)
        first = launcher.placed[0].attempt_id
        launcher.end(first, world.clock())  # through on_event, as the gateway reports it
        await asyncio.wait_for(writing.wait(), 5)
        for _ in range(200):
            if len(launcher.placed) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(launcher.placed) == 2, "the freed line was refilled while the outcome write waited"
        assert launcher.peak == 1, "the campaign cap of one held"
        assert await dispatcher.reconcile() == 0, "an ended call whose outcome waits is not lost"
        hold.set()
        for _ in range(200):
            if Counter(r.outcome for r in await world.attempt_rows())["answered"] == 1:
                break
            await asyncio.sleep(0.01)
        outcomes = {r.id: r.outcome for r in await world.attempt_rows()}
        assert outcomes[first] == "answered"
        assert outcomes[launcher.placed[1].attempt_id] is None, "the second call is still up"
    finally:
        hold.set()
        dispatcher.stop()
        await asyncio.wait_for(runner, 5)
