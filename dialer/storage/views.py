"""What the REST API reads and edits on campaigns, prospects and calls beyond the dialing methods."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from dialer import transfers
from dialer.domain import Prospect, ProspectState
from dialer.outcome import Outcome
from dialer.storage.base import SqlBase, threaded, utcnow
from dialer.storage.records import (
    PROSPECT_COLUMNS,
    SPEC_FIELDS,
    AttemptRecord,
    NumberRecord,
    attempt_from_row,
    prospect_from_row,
)
from dialer.storage.replan import WINDOW_FIELDS, replan_window
from dialer.storage.tables import (
    agents,
    attempts,
    campaign_dids,
    campaigns,
    phone_numbers,
    prospects,
    tenants,
)

log = logging.getLogger(__name__)

#: The seed's call statuses, in the order a call goes through them.
CALL_STATUSES = ("triggered", "in-progress", "completed", "failed")
# Outcomes where the line connected: the seed's "completed"; every other end is "failed".
_CONNECTED = (Outcome.ANSWERED, Outcome.TRANSFERRED, Outcome.VOICEMAIL)
_CONNECTED_VALUES = [o.value for o in _CONNECTED]
_REMOVED = ProspectState.REMOVED.value
_EDITABLE = frozenset(SPEC_FIELDS) - {"default_region"}


def call_status(attempt: AttemptRecord) -> str:
    """The seed's status of a call record; ``call_status_clause`` is the same rule in SQL."""
    if attempt.ended_at is not None:
        return "completed" if attempt.outcome in _CONNECTED else "failed"
    if attempt.answered_at is not None or attempt.status == "in-progress":
        return "in-progress"
    return "triggered"


def call_status_clause(status: str) -> sa.ColumnElement[bool]:
    """SQL for "the call has the seed's ``status``"; ValueError for a status the seed does not name."""
    a = attempts.c
    ended, live = a.ended_at.is_not(None), a.ended_at.is_(None)
    talking = sa.or_(a.answered_at.is_not(None), a.status == "in-progress")
    clauses: dict[str, sa.ColumnElement[bool]] = {
        "triggered": sa.and_(live, sa.not_(talking)),
        "in-progress": sa.and_(live, talking),
        "completed": sa.and_(ended, a.outcome.in_(_CONNECTED_VALUES)),
        "failed": sa.and_(ended, sa.or_(a.outcome.is_(None), a.outcome.not_in(_CONNECTED_VALUES))),
    }
    if status not in clauses:
        raise ValueError(f"unknown call status {status!r}")
    return clauses[status]


@dataclass(frozen=True)
class CallView:
    """A call record with the names the seed's call objects show next to it."""

    attempt: AttemptRecord
    prospect_name: str | None
    prospect_custom: Mapping[str, Any]
    agent_name: str | None
    tenant_name: str | None = None  # the seed's ``agent.client.name``


@dataclass(frozen=True)
class CampaignTotals:
    """The counters of the seed's campaign list."""

    total_prospects: int = 0
    successful_calls: int = 0
    failed_calls: int = 0


def _call_query() -> sa.Select[Any]:
    return (
        sa.select(
            attempts,
            prospects.c.name.label("prospect_name"),
            prospects.c.custom.label("prospect_custom"),
            agents.c.name.label("agent_name"),
            tenants.c.name.label("tenant_name"),
        )
        .outerjoin(prospects, prospects.c.id == attempts.c.prospect_id)
        .outerjoin(agents, agents.c.id == attempts.c.agent_id)
        .join(tenants, tenants.c.id == attempts.c.tenant_id)
    )


def _call_view(row: sa.RowMapping) -> CallView:
    return CallView(
        attempt=attempt_from_row(row),
        prospect_name=row["prospect_name"],
        prospect_custom=dict(row["prospect_custom"] or {}),
        agent_name=row["agent_name"],
        tenant_name=row["tenant_name"],
    )


class CampaignViews(SqlBase):
    """Tenant-scoped pages and counters for the REST API, and the few edits it makes."""

    @threaded
    def list_calls(
        self,
        tenant_id: UUID,
        *,
        agent_id: UUID | None = None,
        status: str | None = None,
        campaign_id: UUID | None = None,
        direction: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[CallView], int]:
        """A page of the tenant's calls, newest first, and how many match in all."""
        where = [attempts.c.tenant_id == tenant_id]
        if agent_id is not None:
            where.append(attempts.c.agent_id == agent_id)
        if status is not None:
            where.append(call_status_clause(status))
        if campaign_id is not None:
            where.append(attempts.c.campaign_id == campaign_id)
        if direction is not None:
            where.append(attempts.c.direction == direction)
        page = (
            _call_query()
            .where(*where)
            .order_by(attempts.c.created_at.desc(), attempts.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self._engine.connect() as conn:
            total = conn.scalar(sa.select(sa.func.count()).select_from(attempts).where(*where)) or 0
            return [_call_view(row) for row in conn.execute(page).mappings()], total

    @threaded
    def get_call(self, tenant_id: UUID, call_id: UUID) -> CallView | None:
        """The tenant's call, or None (unknown, or another tenant's)."""
        query = _call_query().where(attempts.c.id == call_id, attempts.c.tenant_id == tenant_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _call_view(row) if row is not None else None

    @threaded
    def campaign_totals(self, tenant_id: UUID) -> dict[UUID, CampaignTotals]:
        """Prospects (removed ones excluded) and ended calls by result, per campaign of the tenant."""
        prospect_counts = (
            sa.select(prospects.c.campaign_id, sa.func.count())
            .where(prospects.c.tenant_id == tenant_id, prospects.c.state != _REMOVED)
            .group_by(prospects.c.campaign_id)
        )
        connected = sa.case((attempts.c.outcome.in_(_CONNECTED_VALUES), 1), else_=0)
        call_counts = (
            sa.select(attempts.c.campaign_id, sa.func.sum(connected), sa.func.count())
            .where(
                attempts.c.tenant_id == tenant_id,
                attempts.c.campaign_id.is_not(None),
                attempts.c.ended_at.is_not(None),
            )
            .group_by(attempts.c.campaign_id)
        )
        totals: dict[UUID, dict[str, int]] = {}
        with self._engine.connect() as conn:
            for campaign_id, count in conn.execute(prospect_counts):
                totals.setdefault(campaign_id, {})["total_prospects"] = count
            for campaign_id, good, ended in conn.execute(call_counts):
                entry = totals.setdefault(campaign_id, {})
                entry["successful_calls"] = int(good or 0)
                entry["failed_calls"] = ended - int(good or 0)
        return {campaign_id: CampaignTotals(**values) for campaign_id, values in totals.items()}

    @threaded
    def allocated_numbers(self, campaign_id: UUID) -> list[NumberRecord]:
        """The numbers allocated to the campaign as caller IDs, by number."""
        query = (
            sa.select(*(phone_numbers.c[f.name] for f in fields(NumberRecord)))
            .join(campaign_dids, campaign_dids.c.phone_number_id == phone_numbers.c.id)
            .where(campaign_dids.c.campaign_id == campaign_id)
            .order_by(phone_numbers.c.number)
        )
        with self._engine.connect() as conn:
            return [NumberRecord(**row) for row in conn.execute(query).mappings()]

    @threaded
    def list_prospects(
        self, campaign_id: UUID, *, state: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[Prospect], int]:
        """A page of the campaign's prospects in upload order, and how many match in all."""
        where = [prospects.c.campaign_id == campaign_id]
        if state is not None:
            where.append(prospects.c.state == state)
        page = (
            sa.select(*(prospects.c[name] for name in PROSPECT_COLUMNS))
            .where(*where)
            .order_by(prospects.c.created_at, prospects.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self._engine.connect() as conn:
            total = conn.scalar(sa.select(sa.func.count()).select_from(prospects).where(*where)) or 0
            return [prospect_from_row(row) for row in conn.execute(page).mappings()], total

    @threaded
    def remove_prospect(self, campaign_id: UUID, prospect_id: UUID) -> bool:
        """Take a prospect out of its campaign (state ``removed``: never dialled again, history kept).

        False when the campaign has no such prospect. A call already up goes on; finish_attempt leaves
        the ``removed`` state alone.
        """
        with self._engine.begin() as conn:
            result = conn.execute(
                sa.update(prospects)
                .where(prospects.c.id == prospect_id, prospects.c.campaign_id == campaign_id)
                .values(state=_REMOVED, updated_at=utcnow())
            )
            return result.rowcount == 1

    @threaded
    def update_campaign(
        self, campaign_id: UUID, changes: Mapping[str, Any], *, now: datetime | None = None
    ) -> bool:
        """Change campaign settings (CampaignSpec field names, already validated); False if unknown.

        A change of the calling window (zone, hours, days) re-plans, in the same transaction, the
        prospects the old window deferred (dialer/storage/replan.py): due at ``now`` or at their
        retry time, for the dispatcher to check against the new window.
        """
        if unknown := set(changes) - _EDITABLE:
            raise ValueError(f"cannot change {sorted(unknown)}")
        now = now or utcnow()
        values = dict(changes)
        if "call_days" in values:
            values["call_days"] = list(values["call_days"])
        values["updated_at"] = now
        with self._engine.begin() as conn:
            result = conn.execute(sa.update(campaigns).where(campaigns.c.id == campaign_id).values(values))
            if result.rowcount != 1:
                return False
            if WINDOW_FIELDS & set(changes):
                replanned = replan_window(conn, campaign_id, now)
                log.info(
                    "campaign %s: window changed, %d waiting prospects re-planned", campaign_id, replanned
                )
            return True

    @threaded
    def record_worker_connected(self, call_id: UUID, at: datetime) -> bool:
        """When the call's voice worker took it (first ``start`` on an open socket); a time already
        stored stays. False when the call is unknown or already has one."""
        with self._engine.begin() as conn:
            result = conn.execute(
                sa.update(attempts)
                .where(attempts.c.id == call_id, attempts.c.worker_connected_at.is_(None))
                .values(worker_connected_at=at)
            )
            return result.rowcount == 1

    @threaded
    def record_transfer(
        self,
        call_id: UUID,
        to: str | None,
        method: str,
        result: str,
        *,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
        sip_code: int | None = None,
    ) -> bool:
        """Set a call's transfer target (None: keep the stored one), method, result and times; False if
        unknown.

        Written when a transfer starts (result ``pending``: ``started_at``, now if not given, and no end
        yet) and again when it settles, whether or not the call has ended meanwhile (a completed REFER
        ends the call at about the same time): ``ended_at``, and ``started_at`` only where none is
        stored (a REFER from the far end has no ``pending`` row; a requested one keeps its request time).
        The ``transfer_*`` columns hold the last transfer; ``transfers`` every one, in order
        (dialer/transfers.py), read and written in one transaction with the row locked.
        """
        values: dict[str, Any] = {"transfer_method": method, "transfer_result": result}
        if to is not None:
            values["transfer_to"] = to
        with self._engine.begin() as conn:
            row = conn.execute(
                sa.select(attempts.c.transfers, attempts.c.transfer_started_at)
                .where(attempts.c.id == call_id)
                .with_for_update()
            ).first()
            if row is None:
                return False
            if result == transfers.PENDING:
                at = started_at or utcnow()
                values.update(transfer_started_at=at, transfer_ended_at=None)
                values["transfers"] = transfers.started(row.transfers, to, method, at)
            else:
                if started_at is not None and row.transfer_started_at is None:
                    values["transfer_started_at"] = started_at
                if ended_at is not None:
                    values["transfer_ended_at"] = ended_at
                values["transfers"] = transfers.settled(
                    row.transfers,
                    to=to,
                    method=method,
                    result=result,
                    sip_code=sip_code,
                    started_at=started_at,
                    ended_at=ended_at,
                )
            conn.execute(sa.update(attempts).where(attempts.c.id == call_id).values(values))
            return True
