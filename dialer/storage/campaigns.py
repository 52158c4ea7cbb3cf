"""Admin methods for campaigns: create, read, schedule, fill with prospects and DIDs, report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from dialer.domain import CampaignStatus, Prospect, ProspectState
from dialer.storage.base import SqlBase, insert_ignoring_duplicates, require_owned, threaded, utcnow
from dialer.storage.records import (
    AttemptRecord,
    CampaignRecord,
    CampaignSpec,
    OpenCall,
    attempt_from_row,
    campaign_from_row,
    prospect_from_row,
)
from dialer.storage.tables import (
    agents,
    attempts,
    campaign_dids,
    campaigns,
    dnc_entries,
    phone_numbers,
    prospects,
    tenants,
)

# Bound parameters per IN (...) list: well under SQLite's and PostgreSQL's limits.
_CHUNK = 500

ProspectRow = tuple[str, str, Mapping[str, Any]]  # (name, E.164 phone, custom fields)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class CampaignAdmin(SqlBase):
    """Campaign management for the CLI and the REST API; the dispatch loop uses the DialStore methods."""

    @threaded
    def create_campaign(
        self, tenant_id: UUID, spec: CampaignSpec, *, status: CampaignStatus = CampaignStatus.DRAFT
    ) -> UUID:
        """A new campaign with no prospects or DIDs yet; LookupError for an unknown tenant or agent."""
        campaign_id, now = uuid4(), utcnow()
        values = asdict(spec) | {"call_days": list(spec.call_days)}
        with self._engine.begin() as conn:
            region = conn.scalar(sa.select(tenants.c.default_region).where(tenants.c.id == tenant_id))
            if region is None:
                raise LookupError(f"tenant {tenant_id} not found")
            if spec.agent_id is not None:
                require_owned(conn, agents, spec.agent_id, tenant_id)
            values["default_region"] = spec.default_region or region
            conn.execute(
                sa.insert(campaigns).values(
                    id=campaign_id,
                    tenant_id=tenant_id,
                    status=status.value,
                    created_at=now,
                    updated_at=now,
                    **values,
                )
            )
        return campaign_id

    @threaded
    def get_campaign(self, campaign_id: UUID) -> CampaignRecord | None:
        """One campaign, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(campaigns).where(campaigns.c.id == campaign_id)).mappings().first()
        return campaign_from_row(row) if row is not None else None

    @threaded
    def list_campaigns(self, tenant_id: UUID) -> list[CampaignRecord]:
        """The tenant's campaigns, newest first."""
        query = (
            sa.select(campaigns)
            .where(campaigns.c.tenant_id == tenant_id)
            .order_by(campaigns.c.created_at.desc())
        )
        with self._engine.connect() as conn:
            return [campaign_from_row(row) for row in conn.execute(query).mappings()]

    @threaded
    def schedule_campaign(self, campaign_id: UUID, start_at: datetime) -> bool:
        """Set a future auto-start: status ``scheduled``, only from draft, paused or scheduled."""
        allowed = [s.value for s in (CampaignStatus.DRAFT, CampaignStatus.PAUSED, CampaignStatus.SCHEDULED)]
        with self._engine.begin() as conn:
            result = conn.execute(
                sa.update(campaigns)
                .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(allowed))
                .values(
                    status=CampaignStatus.SCHEDULED.value, scheduled_start_time=start_at, updated_at=utcnow()
                )
            )
            return result.rowcount == 1

    @threaded
    def scheduled_campaigns_due(self, now: datetime) -> list[UUID]:
        """Scheduled campaigns whose start time has come (the scheduler then starts them)."""
        with self._engine.connect() as conn:
            return list(
                conn.scalars(
                    sa.select(campaigns.c.id).where(
                        campaigns.c.status == CampaignStatus.SCHEDULED.value,
                        campaigns.c.scheduled_start_time <= now,
                    )
                )
            )

    @threaded
    def add_prospects(
        self, campaign_id: UUID, rows: Iterable[ProspectRow], *, now: datetime | None = None
    ) -> tuple[int, int]:
        """Add ``(name, phone, custom)`` rows, due at ``now``; returns ``(inserted, duplicates)``.

        A phone already in the campaign (or repeated in ``rows``) is a duplicate and skipped, so an
        upload can be retried safely. A phone on the tenant's do-not-call list is stored as ``dnc``.
        One call is one transaction: feed big files in batches of some thousands of rows.
        """
        now = now or utcnow()
        fresh: dict[str, tuple[str, Mapping[str, Any]]] = {}
        duplicates = 0
        for name, phone, custom in rows:
            if phone in fresh:
                duplicates += 1
            else:
                fresh[phone] = (name, custom)
        with self._engine.begin() as conn:
            tenant_id = conn.scalar(sa.select(campaigns.c.tenant_id).where(campaigns.c.id == campaign_id))
            if tenant_id is None:
                raise LookupError(f"campaign {campaign_id} not found")
            existing: set[str] = set()
            blocked: set[str] = set()
            for chunk in _chunks(list(fresh)):
                existing.update(
                    conn.scalars(
                        sa.select(prospects.c.phone).where(
                            prospects.c.campaign_id == campaign_id, prospects.c.phone.in_(chunk)
                        )
                    )
                )
                blocked.update(
                    conn.scalars(
                        sa.select(dnc_entries.c.phone).where(
                            dnc_entries.c.tenant_id == tenant_id, dnc_entries.c.phone.in_(chunk)
                        )
                    )
                )
            new = [
                {
                    "id": uuid4(),
                    "campaign_id": campaign_id,
                    "tenant_id": tenant_id,
                    "name": name,
                    "phone": phone,
                    "custom": dict(custom),
                    "state": (ProspectState.DNC if phone in blocked else ProspectState.PENDING).value,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for phone, (name, custom) in fresh.items()
                if phone not in existing
            ]
            if new:
                # Ignoring conflicts: a concurrent upload of the same phone must not fail this batch.
                conn.execute(insert_ignoring_duplicates(conn, prospects), new)
        return len(new), duplicates + len(existing)

    @threaded
    def allocate_dids(self, campaign_id: UUID, phone_number_ids: Sequence[UUID]) -> int:
        """Give the campaign these numbers as caller IDs; returns how many were newly allocated.

        LookupError when the campaign is unknown or a number is neither the tenant's nor managed.
        """
        wanted = list(dict.fromkeys(phone_number_ids))
        with self._engine.begin() as conn:
            tenant_id = conn.scalar(sa.select(campaigns.c.tenant_id).where(campaigns.c.id == campaign_id))
            if tenant_id is None:
                raise LookupError(f"campaign {campaign_id} not found")
            usable = set(
                conn.scalars(
                    sa.select(phone_numbers.c.id).where(
                        phone_numbers.c.id.in_(wanted),
                        sa.or_(phone_numbers.c.tenant_id == tenant_id, phone_numbers.c.managed.is_(True)),
                    )
                )
            )
            if missing := [n for n in wanted if n not in usable]:
                raise LookupError(f"phone numbers not found for this tenant: {missing}")
            have = set(
                conn.scalars(
                    sa.select(campaign_dids.c.phone_number_id).where(
                        campaign_dids.c.campaign_id == campaign_id
                    )
                )
            )
            new = [
                {"id": uuid4(), "campaign_id": campaign_id, "phone_number_id": n}
                for n in wanted
                if n not in have
            ]
            if new:
                conn.execute(insert_ignoring_duplicates(conn, campaign_dids), new)
        return len(new)

    @threaded
    def get_prospect(self, prospect_id: UUID) -> Prospect | None:
        """One prospect, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(prospects).where(prospects.c.id == prospect_id)).mappings().first()
        return prospect_from_row(row) if row is not None else None

    @threaded
    def list_attempts(
        self, campaign_id: UUID, *, limit: int | None = None, offset: int = 0
    ) -> list[AttemptRecord]:
        """The campaign's call records, oldest first (a page of them with ``limit``/``offset``)."""
        query = (
            sa.select(attempts)
            .where(attempts.c.campaign_id == campaign_id)
            .order_by(attempts.c.created_at, attempts.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self._engine.connect() as conn:
            return [attempt_from_row(row) for row in conn.execute(query).mappings()]

    @threaded
    def create_call(
        self,
        tenant_id: UUID,
        from_number: str,
        to_number: str,
        *,
        direction: str = "outbound",
        from_did_id: UUID | None = None,
        trunk_id: UUID | None = None,
        agent_id: UUID | None = None,
        created_at: datetime | None = None,
        call_id: UUID | None = None,
        prospect_id: UUID | None = None,
        callee_name: str | None = None,
        record: bool = False,
        amd: dict[str, Any] | None = None,
    ) -> UUID:
        """Record a call outside any campaign (API single call, inbound call), status ``dialing``.

        ``call_id`` lets the SIP gateway keep the id it already gave an inbound call. finish_attempt
        ends it like any attempt; open_attempts does not list it (no campaign). ``prospect_id`` links an
        API call to an existing prospect (its record is shown with the call; its state is not touched),
        ``callee_name`` is who is called (``sip_data.name``).
        """
        call_id = call_id or uuid4()
        with self._engine.begin() as conn:
            conn.execute(
                sa.insert(attempts).values(
                    id=call_id,
                    tenant_id=tenant_id,
                    direction=direction,
                    from_did_id=from_did_id,
                    from_number=from_number,
                    to_number=to_number,
                    trunk_id=trunk_id,
                    agent_id=agent_id,
                    prospect_id=prospect_id,
                    callee_name=callee_name,
                    record=record,
                    amd=amd,
                    status="dialing",
                    created_at=created_at or utcnow(),
                )
            )
        return call_id

    @threaded
    def record_lease(self, call_id: UUID, token: int) -> bool:
        """The fencing token of the lease a call outside any campaign is placed under (written before
        its INVITE leaves, so reconciliation can tell a call some node still has up from a lost one)."""
        with self._engine.begin() as conn:
            result = conn.execute(
                sa.update(attempts)
                .where(attempts.c.id == call_id, attempts.c.ended_at.is_(None))
                .values(lease_token=token)
            )
            return result.rowcount == 1

    @threaded
    def open_calls(self) -> list[OpenCall]:
        """Calls outside any campaign (API single calls, inbound calls) not ended yet, oldest first."""
        query = (
            sa.select(
                attempts.c.id,
                attempts.c.direction,
                attempts.c.from_did_id,
                attempts.c.lease_token,
                attempts.c.created_at,
            )
            .where(attempts.c.ended_at.is_(None), attempts.c.campaign_id.is_(None))
            .order_by(attempts.c.created_at)
        )
        with self._engine.connect() as conn:
            return [OpenCall(**row) for row in conn.execute(query).mappings()]

    @threaded
    def get_attempt(self, attempt_id: UUID) -> AttemptRecord | None:
        """One call record, or None."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(attempts).where(attempts.c.id == attempt_id)).mappings().first()
        return attempt_from_row(row) if row is not None else None

    @threaded
    def campaign_counts(self, campaign_id: UUID) -> dict[str, int]:
        """Prospects per state (every state present, zeros included)."""
        counts = {state.value: 0 for state in ProspectState}
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(prospects.c.state, sa.func.count())
                .where(prospects.c.campaign_id == campaign_id)
                .group_by(prospects.c.state)
            )
            counts.update({state: count for state, count in rows})
        return counts
