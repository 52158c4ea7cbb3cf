"""Caller-ID ranking: locality first, then load; inactive, capped and disallowed DIDs are left out."""

from datetime import time
from uuid import UUID, uuid4

from dialer.allocation import rank_candidates
from dialer.domain import CampaignPlan, CampaignStatus, CampaignWindow, Did, RetryPolicy, Trunk

US_TRUNK = Trunk(uuid4(), "us", max_concurrent_calls=10, max_cps=5, allowed_countries=frozenset({"US", "CA"}))
ANY_TRUNK = Trunk(uuid4(), "any", max_concurrent_calls=10, max_cps=5)


def plan(*dids: Did, trunks: tuple[Trunk, ...] = (US_TRUNK, ANY_TRUNK)) -> CampaignPlan:
    return CampaignPlan(
        id=uuid4(),
        tenant_id=uuid4(),
        status=CampaignStatus.ACTIVE,
        window=CampaignWindow("UTC", time(0), time(0)),
        retry=RetryPolicy(),
        max_concurrent_calls=5,
        call_timeout_seconds=30,
        agent_id=None,
        dids=dids,
        trunks=trunks,
    )


def did(trunk: Trunk = US_TRUNK, **kw: object) -> Did:
    return Did(uuid4(), "+12025550100", trunk.id, **kw)  # type: ignore[arg-type]


def ids(candidates: list) -> list[UUID]:  # type: ignore[type-arg]
    return [c.did.id for c in candidates]


def test_local_did_first_then_same_country() -> None:
    far, local, country = did(), did(), did()
    ranked = rank_candidates(plan(far, local, country), "US", {local.id: 2, country.id: 1}, {})
    assert ids(ranked) == [local.id, country.id, far.id]


def test_equal_locality_prefers_the_less_loaded() -> None:
    a, b = did(), did()
    ranked = rank_candidates(plan(a, b), "US", {a.id: 1, b.id: 1}, {}, in_use={a.id: 2, b.id: 0})
    assert ids(ranked) == [b.id, a.id]


def test_excluded_dids() -> None:
    inactive = did(active=False)
    disabled = did(max_concurrent_calls=0)
    capped = did(daily_cap=10)
    orphan = Did(uuid4(), "+12025550100", uuid4())
    ok = did()
    ranked = rank_candidates(plan(inactive, disabled, capped, orphan, ok), "US", {}, {capped.id: 10})
    assert ids(ranked) == [ok.id]


def test_trunk_country_restriction() -> None:
    us_only, anywhere = did(US_TRUNK), did(ANY_TRUNK)
    assert ids(rank_candidates(plan(us_only, anywhere), "GB", {}, {})) == [anywhere.id]


def test_slots_cover_did_trunk_and_campaign() -> None:
    d = did(max_concurrent_calls=2)
    p = plan(d)
    [candidate] = rank_candidates(p, "US", {}, {})
    slots = candidate.slots(p.id, 5)
    assert [(s.resource, s.capacity) for s in slots] == [
        (f"did:{d.id}", 2),
        (f"trunk:{US_TRUNK.id}", 10),
        (f"campaign:{p.id}", 5),
    ]
