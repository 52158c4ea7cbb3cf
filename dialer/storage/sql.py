"""SqlStore: the DialStore port on SQLite or PostgreSQL, with the admin methods mixed in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dialer.domain import (
    AttemptResult,
    CampaignPlan,
    CampaignStatus,
    NewAttempt,
    OpenAttempt,
    Prospect,
    ProspectState,
    ProspectUpdate,
)
from dialer.outcome import retry_bucket
from dialer.ports import DialStore
from dialer.storage.base import threaded, utcnow
from dialer.storage.campaigns import CampaignAdmin
from dialer.storage.catalog import DirectoryCatalog
from dialer.storage.directory import DirectoryAdmin
from dialer.storage.edits import DirectoryEdits
from dialer.storage.plan import load_plan
from dialer.storage.recordings import RecordingAdmin
from dialer.storage.records import PROSPECT_COLUMNS, prospect_from_row
from dialer.storage.routing import RoutingLookups
from dialer.storage.tables import (
    UtcDateTime,
    attempts,
    campaigns,
    dnc_entries,
    prospects,
)
from dialer.storage.views import CampaignViews
from dialer.storage.webhooks import WebhookAdmin

_PROSPECT = [prospects.c[name] for name in PROSPECT_COLUMNS]
PENDING = ProspectState.PENDING.value
DIALING = ProspectState.DIALING.value


def _not_on_dnc() -> sa.ColumnElement[bool]:
    """The prospect's phone is not on its tenant's do-not-call list (correlated, one index probe)."""
    return ~sa.exists().where(
        dnc_entries.c.tenant_id == prospects.c.tenant_id, dnc_entries.c.phone == prospects.c.phone
    )


def due_query(campaign_id: UUID, now: datetime, limit: int) -> sa.Select[Any]:
    """The dispatch query: a range scan of ix_prospects_due that stops after ``limit`` rows."""
    return (
        sa.select(*_PROSPECT)
        .where(
            prospects.c.campaign_id == campaign_id,
            prospects.c.state == PENDING,
            prospects.c.next_attempt_at <= now,
            _not_on_dnc(),
        )
        .order_by(prospects.c.next_attempt_at)
        .limit(limit)
    )


def _if_dialing(value: Any, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """``value`` when the prospect is still being dialled, else the column unchanged (dnc, removed)."""
    return sa.case((prospects.c.state == DIALING, sa.literal(value, column.type)), else_=column)


class SqlStore(
    DirectoryAdmin,
    CampaignAdmin,
    RoutingLookups,
    DirectoryCatalog,
    DirectoryEdits,
    CampaignViews,
    WebhookAdmin,
    RecordingAdmin,
    DialStore,
):
    """Persistent truth for dialling in SQLite (embedded default) or PostgreSQL.

    ``SqlStore(url)`` makes the engine but connects lazily; call ``migrate()`` once at start-up and
    ``dispose()`` at shutdown. Every async method runs its SQL in a worker thread.
    """

    @threaded
    def active_campaign_ids(self) -> list[UUID]:
        with self._engine.connect() as conn:
            query = sa.select(campaigns.c.id).where(campaigns.c.status == CampaignStatus.ACTIVE.value)
            return list(conn.scalars(query.order_by(campaigns.c.created_at)))

    @threaded
    def campaign_plan(self, campaign_id: UUID) -> CampaignPlan | None:
        with self._engine.connect() as conn:
            return load_plan(conn, campaign_id)

    @threaded
    def due_prospects(self, campaign_id: UUID, now: datetime, limit: int) -> list[Prospect]:
        with self._engine.connect() as conn:
            rows = conn.execute(due_query(campaign_id, now, limit)).mappings().all()
        return [prospect_from_row(row) for row in rows]

    @threaded
    def defer_prospect(
        self, prospect_id: UUID, until: datetime | None, reason: str, *, hold: bool = False
    ) -> None:
        if until is None and not hold:
            raise ValueError("a deferred prospect needs a time; pass hold=True to hold it instead")
        values: dict[str, Any] = {"next_attempt_at": until, "updated_at": utcnow()}
        if hold:
            values |= {"state": ProspectState.HELD.value, "hold_reason": reason}
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(prospects)
                .where(prospects.c.id == prospect_id, prospects.c.state == PENDING)
                .values(values)
            )

    @threaded
    def claim_attempt(self, attempt: NewAttempt, now: datetime) -> bool:
        with self._engine.begin() as conn:
            # The conditional UPDATE is the claim: of two dispatchers racing for one prospect, the
            # database lets exactly one see state 'pending'; the loser writes nothing.
            claimed = conn.execute(
                sa.update(prospects)
                .where(
                    prospects.c.id == attempt.prospect_id,
                    prospects.c.campaign_id == attempt.campaign_id,
                    prospects.c.state == PENDING,
                    prospects.c.next_attempt_at <= now,
                    _not_on_dnc(),
                )
                .values(state=DIALING, total_attempts=prospects.c.total_attempts + 1, updated_at=now)
            )
            if claimed.rowcount != 1:
                return False
            agent = (
                sa.select(campaigns.c.agent_id).where(campaigns.c.id == attempt.campaign_id).scalar_subquery()
            )
            name = sa.select(prospects.c.name).where(prospects.c.id == attempt.prospect_id).scalar_subquery()
            record = (
                sa.select(campaigns.c.record).where(campaigns.c.id == attempt.campaign_id).scalar_subquery()
            )
            conn.execute(
                sa.insert(attempts).values(
                    id=attempt.id,
                    tenant_id=attempt.tenant_id,
                    campaign_id=attempt.campaign_id,
                    prospect_id=attempt.prospect_id,
                    attempt_number=attempt.attempt_number,
                    direction="outbound",
                    from_did_id=attempt.from_did_id,
                    from_number=attempt.from_number,
                    to_number=attempt.to_number,
                    trunk_id=attempt.trunk_id,
                    agent_id=agent,
                    callee_name=name,
                    record=record,
                    lease_token=attempt.lease_token,
                    status="dialing",
                    created_at=attempt.created_at,
                )
            )
        return True

    @threaded
    def finish_attempt(self, attempt_id: UUID, result: AttemptResult, update: ProspectUpdate | None) -> bool:
        values: dict[str, Any] = {
            "status": "ended",
            "outcome": result.outcome.value,
            "ended_at": result.ended_at,
            "sip_code": result.sip_code,
            "reason": result.reason,
            "q850_cause": result.q850_cause,
            "invited_at": result.invited_at,
            "ringing_at": result.ringing_at,
            "answered_at": result.answered_at,
            "duration_seconds": (
                (result.ended_at - result.answered_at).total_seconds() if result.answered_at else 0.0
            ),
            "pdd_ms": (
                (result.ringing_at - result.invited_at).total_seconds() * 1000
                if result.ringing_at and result.invited_at
                else None
            ),
        }
        if result.sip_worker is not None:
            values["sip_worker"] = result.sip_worker
        if result.answered_by is not None:
            values["answered_by"] = result.answered_by
        with self._engine.begin() as conn:
            # ended_at IS NULL makes a second report of the same end (reconciliation racing the live
            # event) a no-op instead of a double count.
            ended = conn.execute(
                sa.update(attempts)
                .where(attempts.c.id == attempt_id, attempts.c.ended_at.is_(None))
                .values(values)
                .returning(attempts.c.prospect_id)
            ).first()
            if ended is None:
                return False
            if ended.prospect_id is not None and update is not None:
                _apply_to_prospect(conn, ended.prospect_id, result, update)
        return True

    @threaded
    def call_progress(
        self, attempt_id: UUID, *, ringing_at: datetime | None = None, answered_at: datetime | None = None
    ) -> bool:
        values: dict[str, Any] = {}
        if ringing_at is not None:
            values |= {"status": "ringing", "ringing_at": ringing_at}
        if answered_at is not None:
            values |= {"status": "in-progress", "answered_at": answered_at}
        if not values:
            return False
        live = sa.and_(attempts.c.id == attempt_id, attempts.c.ended_at.is_(None))
        if answered_at is None:  # a late 18x after the answer must not step the status back
            live = sa.and_(live, attempts.c.answered_at.is_(None))
        with self._engine.begin() as conn:
            return conn.execute(sa.update(attempts).where(live).values(values)).rowcount > 0

    @threaded
    def open_attempts(self, campaign_id: UUID | None = None) -> list[OpenAttempt]:
        query = (
            sa.select(
                attempts.c.id.label("attempt_id"),
                attempts.c.lease_token,
                attempts.c.created_at.label("started_at"),
                *_PROSPECT,
            )
            .join(prospects, prospects.c.id == attempts.c.prospect_id)
            .where(attempts.c.ended_at.is_(None), attempts.c.campaign_id.is_not(None))
            .order_by(attempts.c.created_at)
        )
        if campaign_id is not None:
            query = query.where(attempts.c.campaign_id == campaign_id)
        with self._engine.connect() as conn:
            return [
                OpenAttempt(row["attempt_id"], prospect_from_row(row), row["lease_token"], row["started_at"])
                for row in conn.execute(query).mappings()
            ]

    @threaded
    def dials_since(self, tenant_id: UUID, phone: str, since: datetime) -> list[datetime]:
        with self._engine.connect() as conn:
            return list(
                conn.scalars(
                    sa.select(attempts.c.created_at)
                    .where(
                        attempts.c.tenant_id == tenant_id,
                        attempts.c.to_number == phone,
                        attempts.c.created_at >= since,
                        attempts.c.direction == "outbound",
                    )
                    .order_by(attempts.c.created_at)
                )
            )

    @threaded
    def did_dials_since(self, did_id: UUID, since: datetime) -> int:
        query = sa.select(sa.func.count()).where(
            attempts.c.from_did_id == did_id, attempts.c.created_at >= since
        )
        with self._engine.connect() as conn:
            return conn.scalar(query) or 0

    @threaded
    def set_campaign_status(
        self, campaign_id: UUID, status: CampaignStatus, *, expect: Sequence[CampaignStatus] | None = None
    ) -> bool:
        now = utcnow()
        values: dict[str, Any] = {"status": status.value, "updated_at": now}
        if status is CampaignStatus.ACTIVE:
            # First start only: resuming a paused campaign keeps its original start time.
            values["started_at"] = sa.func.coalesce(campaigns.c.started_at, sa.literal(now, UtcDateTime()))
        elif status is CampaignStatus.COMPLETED:
            values["completed_at"] = now
        query = sa.update(campaigns).where(campaigns.c.id == campaign_id)
        if expect is not None:
            query = query.where(campaigns.c.status.in_([s.value for s in expect]))
        with self._engine.begin() as conn:
            return conn.execute(query.values(values)).rowcount == 1

    @threaded
    def campaign_exhausted(self, campaign_id: UUID) -> bool:
        # Two probes with an equality on state each, so both stay index range scans that stop at the
        # first hit; an OR over states would let a planner walk the whole campaign.
        in_flight = prospects.c.state == DIALING
        # A pending prospect whose phone went on the DNC list after upload can never be dialled.
        dialable = sa.and_(prospects.c.state == PENDING, _not_on_dnc())
        with self._engine.connect() as conn:
            for live in (in_flight, dialable):
                query = sa.select(prospects.c.id).where(prospects.c.campaign_id == campaign_id, live).limit(1)
                if conn.execute(query).first() is not None:
                    return False
        return True


def _apply_to_prospect(
    conn: Connection, prospect_id: UUID, result: AttemptResult, update: ProspectUpdate
) -> None:
    """Apply the policy's decision; a prospect that left ``dialing`` meanwhile (dnc) only gets history."""
    values: dict[str, Any] = {
        "state": _if_dialing(update.state.value, prospects.c.state),
        "next_attempt_at": _if_dialing(update.next_attempt_at, prospects.c.next_attempt_at),
        "not_before": _if_dialing(update.not_before, prospects.c.not_before),
        "hold_reason": _if_dialing(update.reason, prospects.c.hold_reason),
        "last_outcome": update.last_outcome.value,
        "updated_at": result.ended_at,
    }
    bucket = retry_bucket(result.outcome)
    if bucket is not None:
        counter = prospects.c[f"attempts_{bucket}"]
        values[counter.name] = counter + 1
    conn.execute(sa.update(prospects).where(prospects.c.id == prospect_id).values(values))
