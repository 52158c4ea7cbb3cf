"""Contract suite for SqlStore: the same tests against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, timezone
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dialer.domain import (
    AttemptResult,
    CampaignStatus,
    NewAttempt,
    Prospect,
    ProspectState,
    ProspectUpdate,
    RetryRule,
)
from dialer.outcome import Outcome
from dialer.storage import CampaignSpec, Conflict, SqlStore, TrunkSpec
from dialer.storage.campaigns import ProspectRow
from dialer.storage.sql import due_query
from dialer.storage.tables import dnc_entries, metadata
from dialer.storage.tables import prospects as prospect_rows
from tests.conftest import postgres_schema

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday
DID_NUMBER = "+15550001000"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a PostgreSQL schema dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'dialer.db'}"
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    store = SqlStore(store_url)
    store.migrate()
    try:
        yield store
    finally:
        store.dispose()


@dataclass(frozen=True)
class World:
    """A tenant with one trunk, agent, DID and campaign (the DID allocated to it)."""

    tenant: UUID
    trunk: UUID
    agent: UUID
    did: UUID
    campaign: UUID


async def make_world(store: SqlStore, **spec: object) -> World:
    tenant = await store.create_tenant("Acme Clinic")
    trunk = await store.create_trunk(tenant, TrunkSpec(name="main", host="sip.example.net", max_cps=5))
    agent = await store.create_agent(tenant, "Receptionist", "wss://worker.example/stream")
    did = await store.import_number(tenant, DID_NUMBER, trunk, country="US", max_concurrent_calls=2)
    campaign = await store.create_campaign(
        tenant,
        CampaignSpec(name="Q1", agent_id=agent, timezone="America/New_York", **spec),  # type: ignore[arg-type]
    )
    assert await store.allocate_dids(campaign, [did]) == 1
    return World(tenant, trunk, agent, did, campaign)


async def add(store: SqlStore, world: World, *phones: str, at: datetime = T0) -> list[Prospect]:
    """Add prospects due at ``at``; returns them in the order given."""
    await store.add_prospects(world.campaign, [(f"P {p[-4:]}", p, {"k": p[-1]}) for p in phones], now=at)
    query = sa.select(prospect_rows.c.phone, prospect_rows.c.id).where(
        prospect_rows.c.campaign_id == world.campaign
    )
    with store.engine.connect() as conn:
        ids: dict[str, UUID] = {row.phone: row.id for row in conn.execute(query)}
    found = [await store.get_prospect(ids[p]) for p in phones]
    return [p for p in found if p is not None]


def attempt_for(prospect: Prospect, world: World, at: datetime = T0, number: int = 1) -> NewAttempt:
    return NewAttempt(
        id=uuid4(),
        tenant_id=prospect.tenant_id,
        campaign_id=prospect.campaign_id,
        prospect_id=prospect.id,
        attempt_number=number,
        from_did_id=world.did,
        from_number=DID_NUMBER,
        to_number=prospect.phone,
        trunk_id=world.trunk,
        lease_token=7,
        created_at=at,
    )


def ended(outcome: Outcome, at: datetime, **kw: object) -> AttemptResult:
    return AttemptResult(outcome=outcome, ended_at=at, **kw)  # type: ignore[arg-type]


def retry_at(when: datetime | None, outcome: Outcome) -> ProspectUpdate:
    state = ProspectState.PENDING if when else ProspectState.COMPLETED
    return ProspectUpdate(state=state, next_attempt_at=when, last_outcome=outcome)


# --- schema ---------------------------------------------------------------------------------------


async def test_migrate_twice_is_a_noop_and_matches_the_models(store: SqlStore) -> None:
    tenant = await store.create_tenant("Kept")
    store.migrate()
    await store.ping()
    assert await store.tenant_exists(tenant) and not await store.tenant_exists(uuid4())
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == ["0007"]
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert await store.list_campaigns(tenant) == []


def test_migrate_creates_the_sqlite_folder(tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "dialer.db"
    store = SqlStore(f"sqlite:///{path}")
    try:
        store.migrate()
    finally:
        store.dispose()
    assert path.exists()


async def test_timestamps_come_back_aware_utc(store: SqlStore) -> None:
    world = await make_world(store)
    kolkata = T0.astimezone(timezone(timedelta(hours=5, minutes=30)))
    [p] = await add(store, world, "+15550100001", at=kolkata)
    assert p.next_attempt_at == T0
    assert p.next_attempt_at is not None and p.next_attempt_at.utcoffset() == timedelta(0)
    with pytest.raises(sa.exc.StatementError, match="naive"):  # a programming error, loud
        await store.due_prospects(world.campaign, T0.replace(tzinfo=None), 10)


# --- due prospects, claims, attempts --------------------------------------------------------------


async def test_due_prospects_order_limit_and_exclusions(store: SqlStore) -> None:
    world = await make_world(store)
    [late] = await add(store, world, "+15550100001", at=T0 - timedelta(minutes=1))
    [early] = await add(store, world, "+15550100002", at=T0 - timedelta(minutes=9))
    [middle] = await add(store, world, "+15550100003", at=T0 - timedelta(minutes=5))
    await add(store, world, "+15550100004", at=T0 + timedelta(minutes=1))  # not yet due
    [in_flight, done, blocked] = await add(store, world, "+15550100005", "+15550100006", "+15550100007")
    assert await store.claim_attempt(attempt_for(in_flight, world), T0)
    attempt = attempt_for(done, world)
    assert await store.claim_attempt(attempt, T0)
    assert await store.finish_attempt(
        attempt.id, ended(Outcome.ANSWERED, T0), retry_at(None, Outcome.ANSWERED)
    )
    await store.add_dnc(world.tenant, blocked.phone, "asked")
    other = await make_world(store)  # another tenant's campaign is never mixed in
    await add(store, other, "+15550100008", at=T0 - timedelta(hours=1))

    due = await store.due_prospects(world.campaign, T0, 10)
    assert [p.id for p in due] == [early.id, middle.id, late.id]
    assert due[0].custom == {"k": "2"} and due[0].state is ProspectState.PENDING
    assert [p.id for p in await store.due_prospects(world.campaign, T0, 2)] == [early.id, middle.id]


async def test_due_prospects_skip_numbers_put_on_dnc_after_upload(store: SqlStore) -> None:
    world = await make_world(store)
    [p] = await add(store, world, "+15550100001")
    with store.engine.begin() as conn:  # a DNC row written without add_dnc's prospect update
        values = {"id": uuid4(), "tenant_id": world.tenant, "phone": p.phone, "reason": "", "created_at": T0}
        conn.execute(sa.insert(dnc_entries).values(values))
    assert await store.due_prospects(world.campaign, T0, 10) == []
    assert not await store.claim_attempt(attempt_for(p, world), T0)
    assert await store.campaign_exhausted(world.campaign)


async def test_claim_succeeds_once(store: SqlStore) -> None:
    world = await make_world(store)
    [p, future] = await add(store, world, "+15550100001", "+15550100002")
    first = attempt_for(p, world)
    assert await store.claim_attempt(first, T0)
    assert not await store.claim_attempt(attempt_for(p, world), T0)
    assert not await store.claim_attempt(attempt_for(future, world), T0 - timedelta(seconds=1))
    claimed = await store.get_prospect(p.id)
    assert claimed is not None and claimed.state is ProspectState.DIALING and claimed.total_attempts == 1
    [record] = await store.list_attempts(world.campaign)
    assert (record.id, record.status, record.lease_token, record.agent_id) == (
        first.id,
        "dialing",
        7,
        world.agent,
    )
    assert record.created_at == T0 and record.direction == "outbound"
    assert record.callee_name == "P 0001", "the call record names who was called"


async def test_concurrent_claims_exactly_one_wins(store: SqlStore) -> None:
    world = await make_world(store)
    prospects = await add(store, world, *(f"+1555010{i:04d}" for i in range(5)))
    for p in prospects:
        results = await asyncio.gather(*(store.claim_attempt(attempt_for(p, world), T0) for _ in range(3)))
        assert sorted(results) == [False, False, True]
    assert len(await store.list_attempts(world.campaign)) == 5


async def test_finish_attempt_is_idempotent_and_counts_the_bucket(store: SqlStore) -> None:
    world = await make_world(store)
    [p] = await add(store, world, "+15550100001")
    attempt = attempt_for(p, world)
    assert await store.claim_attempt(attempt, T0)
    result = ended(
        Outcome.BUSY,
        T0 + timedelta(seconds=9),
        sip_code=486,
        reason="Busy Here",
        q850_cause=17,
        invited_at=T0,
        ringing_at=T0 + timedelta(seconds=2),
        sip_worker="w1",
    )
    retry = retry_at(T0 + timedelta(minutes=3), Outcome.BUSY)
    assert await store.finish_attempt(attempt.id, result, retry)
    assert not await store.finish_attempt(attempt.id, result, retry)
    after = await store.get_prospect(p.id)
    assert after is not None
    assert (after.state, after.next_attempt_at, after.last_outcome) == (
        ProspectState.PENDING,
        T0 + timedelta(minutes=3),
        Outcome.BUSY,
    )
    assert (after.attempts_busy, after.attempts_no_answer, after.attempts_failed) == (1, 0, 0)
    record = await store.get_attempt(attempt.id)
    assert record is not None
    assert (record.status, record.outcome, record.sip_code, record.q850_cause) == (
        "ended",
        Outcome.BUSY,
        486,
        17,
    )
    assert (record.pdd_ms, record.duration_seconds, record.sip_worker) == (2000.0, 0.0, "w1")


async def test_finish_answered_records_duration_and_no_retry_counter(store: SqlStore) -> None:
    world = await make_world(store)
    [p] = await add(store, world, "+15550100001")
    attempt = attempt_for(p, world)
    await store.claim_attempt(attempt, T0)
    result = ended(Outcome.ANSWERED, T0 + timedelta(seconds=95), answered_at=T0 + timedelta(seconds=5))
    assert await store.finish_attempt(attempt.id, result, retry_at(None, Outcome.ANSWERED))
    after = await store.get_prospect(p.id)
    assert after is not None and after.state is ProspectState.COMPLETED and after.next_attempt_at is None
    assert after.attempts_busy + after.attempts_no_answer + after.attempts_failed == 0
    record = await store.get_attempt(attempt.id)
    assert record is not None and record.duration_seconds == 90.0


async def test_finish_does_not_overwrite_dnc(store: SqlStore) -> None:
    world = await make_world(store)
    [p] = await add(store, world, "+15550100001")
    attempt = attempt_for(p, world)
    await store.claim_attempt(attempt, T0)
    assert await store.add_dnc(world.tenant, p.phone, "said stop during the call") == 1
    update = retry_at(T0 + timedelta(minutes=10), Outcome.NO_ANSWER)
    assert await store.finish_attempt(attempt.id, ended(Outcome.NO_ANSWER, T0), update)
    after = await store.get_prospect(p.id)
    assert after is not None and after.state is ProspectState.DNC and after.attempts_no_answer == 1
    assert await store.open_attempts() == []


async def test_open_attempts(store: SqlStore) -> None:
    a, b = await make_world(store), await make_world(store)
    [a1, a2] = await add(store, a, "+15550100001", "+15550100002")
    [b1] = await add(store, b, "+15550100003")
    attempts = [attempt_for(a1, a), attempt_for(a2, a), attempt_for(b1, b)]
    for attempt in attempts:
        assert await store.claim_attempt(attempt, T0)
    await store.finish_attempt(attempts[1].id, ended(Outcome.FAILED, T0), retry_at(T0, Outcome.FAILED))
    everywhere = await store.open_attempts()
    assert {o.attempt_id for o in everywhere} == {attempts[0].id, attempts[2].id}
    [only] = await store.open_attempts(a.campaign)
    assert only.attempt_id == attempts[0].id and only.lease_token == attempts[0].lease_token
    assert only.prospect.id == a1.id and only.prospect.state is ProspectState.DIALING


async def test_dials_since_and_did_dials_since(store: SqlStore) -> None:
    world = await make_world(store)
    [p, q] = await add(store, world, "+15550100001", "+15550100002")
    for hour in range(3):
        at = T0 + timedelta(hours=hour)
        attempt = attempt_for(p, world, at, hour + 1)
        assert await store.claim_attempt(attempt, at)
        await store.finish_attempt(attempt.id, ended(Outcome.NO_ANSWER, at), retry_at(at, Outcome.NO_ANSWER))
    assert await store.claim_attempt(attempt_for(q, world, T0), T0)
    since = T0 + timedelta(minutes=30)
    assert await store.dials_since(world.tenant, p.phone, since) == [
        T0 + timedelta(hours=1),
        T0 + timedelta(hours=2),
    ]
    assert await store.dials_since(world.tenant, p.phone, T0) == [T0 + timedelta(hours=h) for h in range(3)]
    assert await store.dials_since(uuid4(), p.phone, T0) == []
    assert await store.did_dials_since(world.did, T0) == 4
    assert await store.did_dials_since(world.did, since) == 2


async def test_defer_and_hold(store: SqlStore) -> None:
    world = await make_world(store)
    [p, q, r] = await add(store, world, "+15550100001", "+15550100002", "+15550100003")
    await store.defer_prospect(p.id, T0 + timedelta(hours=14), "window closed")
    await store.defer_prospect(q.id, None, "no time zone", hold=True)
    assert await store.claim_attempt(attempt_for(r, world), T0)
    await store.defer_prospect(r.id, T0 + timedelta(days=1), "ignored: in flight")
    assert await store.due_prospects(world.campaign, T0, 10) == []
    deferred, held, flying = [await store.get_prospect(x.id) for x in (p, q, r)]
    assert deferred is not None and deferred.next_attempt_at == T0 + timedelta(hours=14)
    assert held is not None and held.state is ProspectState.HELD
    assert flying is not None and flying.state is ProspectState.DIALING and flying.next_attempt_at == T0
    with pytest.raises(ValueError):
        await store.defer_prospect(p.id, None, "neither")


async def test_calls_outside_campaigns(store: SqlStore) -> None:
    world = await make_world(store)
    call = await store.create_call(
        world.tenant, DID_NUMBER, "+15550100001", agent_id=world.agent, created_at=T0
    )
    assert await store.open_attempts() == []  # reconciliation is for campaign attempts
    answered = ended(Outcome.ANSWERED, T0 + timedelta(seconds=30), answered_at=T0 + timedelta(seconds=10))
    assert await store.finish_attempt(call, answered, retry_at(None, Outcome.ANSWERED))
    record = await store.get_attempt(call)
    assert record is not None and record.campaign_id is None and record.prospect_id is None
    assert (record.status, record.duration_seconds, record.agent_id) == ("ended", 20.0, world.agent)
    assert await store.dials_since(world.tenant, "+15550100001", T0) == [T0]


async def test_list_attempts_pages(store: SqlStore) -> None:
    world = await make_world(store)
    prospects = await add(store, world, *(f"+1555010{i:04d}" for i in range(5)))
    for n, p in enumerate(prospects):
        await store.claim_attempt(attempt_for(p, world, T0 + timedelta(seconds=n)), T0 + timedelta(seconds=n))
    everything = await store.list_attempts(world.campaign)
    assert [a.to_number for a in everything] == [p.phone for p in prospects]
    page = await store.list_attempts(world.campaign, limit=2, offset=2)
    assert [a.id for a in page] == [a.id for a in everything[2:4]]


# --- campaigns ------------------------------------------------------------------------------------


async def test_set_campaign_status_with_expect(store: SqlStore) -> None:
    world = await make_world(store)
    assert await store.active_campaign_ids() == []
    draft, active = [CampaignStatus.DRAFT], CampaignStatus.ACTIVE
    assert await store.set_campaign_status(world.campaign, active, expect=draft)
    assert not await store.set_campaign_status(world.campaign, active, expect=draft)
    assert await store.active_campaign_ids() == [world.campaign]
    started = (await store.get_campaign(world.campaign)).started_at  # type: ignore[union-attr]
    assert started is not None
    assert await store.set_campaign_status(world.campaign, CampaignStatus.PAUSED)
    assert await store.set_campaign_status(world.campaign, active, expect=[CampaignStatus.PAUSED])
    assert await store.set_campaign_status(world.campaign, CampaignStatus.COMPLETED)
    record = await store.get_campaign(world.campaign)
    assert record is not None and record.status is CampaignStatus.COMPLETED
    assert record.started_at == started and record.completed_at is not None
    assert not await store.set_campaign_status(uuid4(), active)


async def test_schedule_campaign(store: SqlStore) -> None:
    world = await make_world(store)
    assert await store.schedule_campaign(world.campaign, T0 + timedelta(hours=1))
    assert await store.scheduled_campaigns_due(T0) == []
    assert await store.scheduled_campaigns_due(T0 + timedelta(hours=1)) == [world.campaign]
    await store.set_campaign_status(world.campaign, CampaignStatus.ACTIVE)
    assert not await store.schedule_campaign(world.campaign, T0)


async def test_campaign_exhausted(store: SqlStore) -> None:
    world = await make_world(store)
    assert await store.campaign_exhausted(world.campaign)
    [p, q] = await add(store, world, "+15550100001", "+15550100002")
    await store.defer_prospect(q.id, None, "no zone", hold=True)
    assert not await store.campaign_exhausted(world.campaign)
    attempt = attempt_for(p, world)
    await store.claim_attempt(attempt, T0)
    assert not await store.campaign_exhausted(world.campaign)
    await store.finish_attempt(attempt.id, ended(Outcome.REJECTED, T0), retry_at(None, Outcome.REJECTED))
    assert await store.campaign_exhausted(world.campaign)
    assert (await store.campaign_counts(world.campaign)) == {
        "pending": 0,
        "dialing": 0,
        "held": 1,
        "completed": 1,
        "failed": 0,
        "dnc": 0,
        "removed": 0,
    }


async def test_campaign_plan(store: SqlStore) -> None:
    world = await make_world(
        store,
        call_hours_start=time(9, 30),
        call_hours_end=time(17, 0),
        call_days=("mon", "Wednesday", "FRI"),
        retry_busy_calls=False,
        max_retries_busy=4,
        retry_delay_busy_seconds=120,
        reschedule_min_delay_hours=2.5,
    )
    spare = await store.import_number(world.tenant, "+15550001001", world.trunk, country="US", active=False)
    await store.allocate_dids(world.campaign, [spare])
    plan = await store.campaign_plan(world.campaign)
    assert plan is not None
    assert (plan.id, plan.tenant_id, plan.status, plan.agent_id) == (
        world.campaign,
        world.tenant,
        CampaignStatus.DRAFT,
        world.agent,
    )
    assert plan.window.timezone == "America/New_York" and plan.window.days == frozenset({0, 2, 4})
    assert (plan.window.start, plan.window.end) == (time(9, 30), time(17, 0))
    assert plan.retry.busy == RetryRule(False, 4, 120) and plan.retry.failed == RetryRule(True, 3, 300)
    assert plan.retry.reschedule_min_delay_hours == 2.5
    assert (plan.max_concurrent_calls, plan.call_timeout_seconds, plan.default_region) == (5, 60, "US")
    [did] = plan.dids  # the inactive number is left out
    assert (did.id, did.number, did.trunk_id, did.max_concurrent_calls) == (
        world.did,
        DID_NUMBER,
        world.trunk,
        2,
    )
    [trunk] = plan.trunks
    assert (trunk.id, trunk.name, trunk.max_cps) == (world.trunk, "main", 5.0)
    assert await store.campaign_plan(uuid4()) is None


async def test_campaign_plan_managed_pool_and_provider(store: SqlStore) -> None:
    operator = await store.create_tenant("Operator")
    pool_trunk = await store.create_trunk(operator, TrunkSpec(name="pool", host="pool.example.net"))
    pooled = await store.import_number(operator, "+15550009000", pool_trunk, country="US", managed=True)
    await store.import_number(operator, "+15550009001", pool_trunk, country="US")  # not in the pool
    world = await make_world(store, use_vanira_managed=True)
    plan = await store.campaign_plan(world.campaign)
    assert plan is not None
    assert {d.id for d in plan.dids} == {world.did, pooled}
    assert {t.id for t in plan.trunks} == {world.trunk, pool_trunk}

    second = await store.create_trunk(world.tenant, TrunkSpec(name="vonage", host="sip.vonage.example"))
    on_second = await store.import_number(world.tenant, "+15550002000", second, country="US")
    restricted = await store.create_campaign(
        world.tenant, CampaignSpec(name="V", provider="vonage", use_vanira_managed=True)
    )
    await store.allocate_dids(restricted, [world.did, on_second])
    plan = await store.campaign_plan(restricted)
    assert plan is not None and [d.id for d in plan.dids] == [on_second]
    assert [t.name for t in plan.trunks] == ["vonage"]


async def test_add_prospects_skips_duplicates(store: SqlStore) -> None:
    world = await make_world(store)
    await store.add_dnc(world.tenant, "+15550100009", "complaint")
    rows: list[ProspectRow] = [
        ("A", "+15550100001", {}),
        ("B", "+15550100002", {"x": 1}),
        ("A again", "+15550100001", {}),
    ]
    assert await store.add_prospects(world.campaign, rows) == (2, 1)
    more: list[ProspectRow] = [
        ("B", "+15550100002", {}),
        ("C", "+15550100003", {}),
        ("D", "+15550100009", {}),
    ]
    assert await store.add_prospects(world.campaign, more) == (2, 1)
    counts = await store.campaign_counts(world.campaign)
    assert (counts["pending"], counts["dnc"]) == (3, 1)
    with pytest.raises(LookupError):
        await store.add_prospects(uuid4(), rows)


async def test_admin_conflicts_and_lookups(store: SqlStore) -> None:
    world = await make_world(store)
    with pytest.raises(Conflict):
        await store.import_number(world.tenant, DID_NUMBER, world.trunk, country="US")
    with pytest.raises(Conflict):
        await store.create_trunk(world.tenant, TrunkSpec(name="main", host="other.example.net"))
    stranger = await store.create_tenant("Other")
    trunk = await store.create_trunk(stranger, TrunkSpec(name="t", host="h", allowed_countries=("US", "CA")))
    foreign = await store.import_number(stranger, "+15550003000", trunk, country="us")
    with pytest.raises(LookupError):
        await store.allocate_dids(world.campaign, [foreign])
    with pytest.raises(LookupError):  # another tenant's trunk
        await store.import_number(world.tenant, "+15550003001", trunk, country="US")
    with pytest.raises(LookupError):  # another tenant's agent
        await store.create_campaign(stranger, CampaignSpec(name="x", agent_id=world.agent))
    assert await store.number_ids(world.tenant, [DID_NUMBER, "+15550003000"]) == {DID_NUMBER: world.did}
    [number] = await store.list_numbers(stranger)
    assert (number.country, number.managed, number.active) == ("US", False, True)
    [listed] = await store.list_trunks(stranger)
    assert listed.spec.allowed_countries == ("US", "CA")
    with pytest.raises(ValueError):
        CampaignSpec(name="bad", timezone="Mars/Olympus")
    with pytest.raises(ValueError):
        CampaignSpec(name="bad", call_days=("Funday",))


# --- API keys -------------------------------------------------------------------------------------


async def test_api_keys_are_stored_only_as_hashes(store: SqlStore) -> None:
    tenant = await store.create_tenant("Acme")
    secret_id, secret = await store.create_api_key(tenant)
    public_id, public = await store.create_api_key(tenant, publishable=True)
    assert secret.startswith("sk_live_") and len(secret) == len("sk_live_") + 48
    assert public.startswith("pk_live_")
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM api_keys")).all()
    dumped = repr(rows)
    for plaintext in (secret, public):
        assert plaintext not in dumped and plaintext[len("sk_live_") :] not in dumped
        assert hashlib.sha256(plaintext.encode()).hexdigest() in dumped
    assert await store.resolve_api_key(secret) == (tenant, "secret")
    assert await store.resolve_api_key(public) == (tenant, "publishable")
    assert await store.resolve_api_key(secret[:-1] + "x") is None
    assert await store.revoke_api_key(secret[:12])
    assert await store.resolve_api_key(secret) is None
    assert not await store.revoke_api_key(secret_id)
    assert await store.revoke_api_key(public_id)
    keys = await store.list_api_keys(tenant)
    assert {k.id for k in keys} == {secret_id, public_id} and all(k.revoked_at for k in keys)


# --- the dispatch query plan ----------------------------------------------------------------------


async def test_due_query_is_an_index_range_scan(store: SqlStore) -> None:
    worlds = [await make_world(store) for _ in range(4)]
    for n, world in enumerate(worlds):
        rows: list[ProspectRow] = [(f"P{i}", f"+1555{n}{i:06d}", {}) for i in range(1500)]
        await store.add_prospects(world.campaign, rows, now=T0 - timedelta(minutes=n))
    with store.engine.begin() as conn:  # a realistic mix: most prospects already done
        conn.execute(
            sa.text("UPDATE prospects SET state = 'completed' WHERE phone LIKE '%1' OR phone LIKE '%2'")
        )
        conn.execute(sa.text("ANALYZE"))
    query = due_query(worlds[0].campaign, T0, 100)
    sql = str(query.compile(dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
            assert "SEARCH prospects USING INDEX ix_prospects_due" in plan, plan
            assert "SCAN prospects" not in plan and "TEMP B-TREE" not in plan, plan
        else:
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql))
            assert "Index Scan using ix_prospects_due on prospects" in plan, plan
            assert "Seq Scan on prospects" not in plan and "Sort" not in plan, plan
    assert len(await store.due_prospects(worlds[0].campaign, T0, 100)) == 100


async def test_call_progress_shows_a_live_call_and_never_reopens_an_ended_one(store: SqlStore) -> None:
    world = await make_world(store)
    call = await store.create_call(
        world.tenant, DID_NUMBER, "+15550100001", agent_id=world.agent, created_at=T0
    )
    rang, answered = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
    assert await store.call_progress(call, ringing_at=rang)
    record = await store.get_attempt(call)
    assert record is not None and (record.status, record.ringing_at, record.answered_at) == (
        "ringing",
        rang,
        None,
    )
    assert await store.call_progress(call, answered_at=answered)
    assert not await store.call_progress(call, ringing_at=rang)  # a late 18x: the call stays in progress
    view = await store.get_call(world.tenant, call)
    assert view is not None and (view.attempt.status, view.attempt.answered_at) == ("in-progress", answered)
    calls, _ = await store.list_calls(world.tenant, status="in-progress")
    assert [c.attempt.id for c in calls] == [call]

    done = ended(Outcome.ANSWERED, T0 + timedelta(seconds=30), answered_at=answered)
    assert await store.finish_attempt(call, done, None)
    assert not await store.call_progress(call, answered_at=T0 + timedelta(seconds=40))
    record = await store.get_attempt(call)
    assert record is not None and (record.status, record.answered_at) == ("ended", answered)
