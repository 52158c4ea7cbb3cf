"""Caller-ID choice: rank a campaign's DIDs for one callee; the dispatcher then leases the first free."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from dialer.domain import CampaignPlan, Did, Trunk
from dialer.ports import Slot


@dataclass(frozen=True)
class Candidate:
    """A DID and the trunk that carries it, with the slots a call through them occupies."""

    did: Did
    trunk: Trunk
    locality: int  # 2 same area, 1 same country, 0 foreign

    def slots(self, campaign_id: UUID, campaign_cap: int) -> tuple[Slot, ...]:
        """One unit each of the DID, its trunk and the campaign: the caps a call counts against."""
        return (
            Slot(did_resource(self.did.id), self.did.max_concurrent_calls),
            Slot(trunk_resource(self.trunk.id), self.trunk.max_concurrent_calls),
            Slot(campaign_resource(campaign_id), campaign_cap),
        )


def did_resource(did_id: UUID) -> str:
    """Coordination resource name of a DID's concurrency slots."""
    return f"did:{did_id}"


def trunk_resource(trunk_id: UUID) -> str:
    """Coordination resource name of a trunk's concurrency slots."""
    return f"trunk:{trunk_id}"


def campaign_resource(campaign_id: UUID) -> str:
    """Coordination resource name of a campaign's concurrency slots."""
    return f"campaign:{campaign_id}"


def cps_bucket(trunk_id: UUID) -> str:
    """Coordination bucket name of a trunk's calls-per-second budget."""
    return f"cps:{trunk_id}"


def rank_candidates(
    plan: CampaignPlan,
    callee_country: str,
    locality: Mapping[UUID, int],
    daily_used: Mapping[UUID, int],
    in_use: Mapping[UUID, int] | None = None,
) -> list[Candidate]:
    """Usable DIDs for one callee, best first.

    ``locality`` maps DID id → 2/1/0 (same area code / same country / foreign) for this callee;
    ``daily_used`` maps DID id → calls placed today (for daily caps); ``in_use`` → live calls, so
    that equally local DIDs share the load. DIDs that are inactive, capped for the day, on an
    unknown trunk, or whose trunk may not call the callee's country are left out.
    """
    trunks = {trunk.id: trunk for trunk in plan.trunks}
    busy = in_use or {}
    ranked: list[Candidate] = []
    for did in plan.dids:
        trunk = trunks.get(did.trunk_id)
        if trunk is None or not did.active or did.max_concurrent_calls <= 0:
            continue
        if trunk.allowed_countries and callee_country not in trunk.allowed_countries:
            continue
        if did.daily_cap is not None and daily_used.get(did.id, 0) >= did.daily_cap:
            continue
        ranked.append(Candidate(did, trunk, locality.get(did.id, 0)))
    ranked.sort(
        key=lambda c: (-c.locality, busy.get(c.did.id, 0), daily_used.get(c.did.id, 0), str(c.did.id))
    )
    return ranked
