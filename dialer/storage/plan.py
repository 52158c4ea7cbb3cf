"""Reads one campaign's CampaignPlan: settings, window, retry policy, usable DIDs and their trunks."""

from __future__ import annotations

from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from dialer.domain import (
    WEEKDAYS,
    AmdSettings,
    CampaignPlan,
    CampaignStatus,
    CampaignWindow,
    Did,
    RetryPolicy,
    RetryRule,
    Trunk,
)
from dialer.storage.tables import campaign_dids, campaigns, phone_numbers, trunks


def load_plan(conn: Connection, campaign_id: UUID) -> CampaignPlan | None:
    """The campaign's plan, or None when there is no such campaign."""
    row = conn.execute(sa.select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
    if row is None:
        return None
    dids = _dids(conn, row)
    return CampaignPlan(
        id=row["id"],
        tenant_id=row["tenant_id"],
        status=CampaignStatus(row["status"]),
        window=CampaignWindow(
            timezone=row["timezone"],
            start=row["call_hours_start"],
            end=row["call_hours_end"],
            days=frozenset(WEEKDAYS.index(day) for day in row["call_days"]),
        ),
        retry=_retry(row),
        max_concurrent_calls=row["max_concurrent_calls"],
        call_timeout_seconds=row["call_timeout_seconds"],
        agent_id=row["agent_id"],
        dids=dids,
        trunks=_trunks(conn, {d.trunk_id for d in dids}),
        default_region=row["default_region"],
        record=row["record"],
        amd=AmdSettings(
            row["amd"],
            row["amd_timeout_seconds"],
            row["amd_async"],
            row["amd_on_machine"],
            row["amd_message_url"],
        ),
    )


def _retry(row: RowMapping) -> RetryPolicy:
    def rule(bucket: str, setting: str) -> RetryRule:
        return RetryRule(
            row[f"retry_{setting}_calls"], row[f"max_retries_{bucket}"], row[f"retry_delay_{bucket}_seconds"]
        )

    return RetryPolicy(
        failed=rule("failed", "failed"),
        busy=rule("busy", "busy"),
        no_answer=rule("no_answer", "no_answer"),
        voicemail=rule("voicemail", "voicemail"),
        allow_reschedule=row["allow_reschedule"],
        max_reschedules_per_prospect=row["max_reschedules_per_prospect"],
        reschedule_min_delay_hours=row["reschedule_min_delay_hours"],
    )


def _dids(conn: Connection, campaign: RowMapping) -> tuple[Did, ...]:
    """Active numbers allocated to the campaign, plus the managed pool when it opted in.

    When ``provider`` names one of the tenant's trunks, only numbers on that trunk.
    """
    pn = phone_numbers
    allocated = pn.c.id.in_(
        sa.select(campaign_dids.c.phone_number_id).where(campaign_dids.c.campaign_id == campaign["id"])
    )
    source = sa.or_(allocated, pn.c.managed.is_(True)) if campaign["use_vanira_managed"] else allocated
    query = sa.select(pn).where(pn.c.active.is_(True), source).order_by(pn.c.number)
    if campaign["provider"]:
        # The seed's "provider" names a voice provider; here that is one of the tenant's trunks.
        provider_trunk = conn.scalar(
            sa.select(trunks.c.id).where(
                trunks.c.tenant_id == campaign["tenant_id"], trunks.c.name == campaign["provider"]
            )
        )
        if provider_trunk is not None:
            query = query.where(pn.c.trunk_id == provider_trunk)
    return tuple(
        Did(
            id=row["id"],
            number=row["number"],
            trunk_id=row["trunk_id"],
            max_concurrent_calls=row["max_concurrent_calls"],
            daily_cap=row["daily_cap"],
            active=row["active"],
        )
        for row in conn.execute(query).mappings()
    )


def _trunks(conn: Connection, trunk_ids: set[UUID]) -> tuple[Trunk, ...]:
    query = sa.select(trunks).where(trunks.c.id.in_(trunk_ids)).order_by(trunks.c.name)
    return tuple(
        Trunk(
            id=row["id"],
            name=row["name"],
            max_concurrent_calls=row["max_concurrent_calls"],
            max_cps=row["max_cps"],
            allowed_countries=frozenset(row["allowed_countries"]),
        )
        for row in conn.execute(query).mappings()
    )
