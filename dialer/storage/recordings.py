"""Call recordings in the store: where each call's WAV is kept, and each tenant's retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

import sqlalchemy as sa

from dialer.storage.base import SqlBase, threaded
from dialer.storage.tables import attempts, tenants

MAX_RETENTION_DAYS = 36_500  # a hundred years: past that a retention is a typo


@dataclass(frozen=True)
class StoredRecording:
    """A call's recording as kept: a local path or ``s3://bucket/key``."""

    call_id: UUID
    tenant_id: UUID
    location: str
    made_at: datetime


class RecordingAdmin(SqlBase):
    """Recordings of calls (attempts rows) and the tenant setting that expires them."""

    @threaded
    def record_recording(self, call_id: UUID, location: str, made_at: datetime, seconds: float) -> bool:
        """The call's recording is complete at ``location``; False when there is no such call."""
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(attempts)
                .where(attempts.c.id == call_id)
                .values(
                    recording_location=location,
                    recording_at=made_at,
                    recording_seconds=seconds,
                    recording_deleted_at=None,
                )
            )
        return done.rowcount == 1

    @threaded
    def forget_recording(self, call_id: UUID, location: str, deleted_at: datetime) -> bool:
        """The recording at ``location`` was deleted: the call keeps when, not where (False: it had
        moved on meanwhile, e.g. a newer recording)."""
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(attempts)
                .where(attempts.c.id == call_id, attempts.c.recording_location == location)
                .values(recording_location=None, recording_deleted_at=deleted_at)
            )
        return done.rowcount == 1

    @threaded
    def expired_recordings(self, now: datetime, limit: int = 500) -> list[StoredRecording]:
        """Up to ``limit`` recordings older than their tenant's retention, oldest first per tenant."""
        found: list[StoredRecording] = []
        with self._engine.connect() as conn:
            kept = conn.execute(
                sa.select(tenants.c.id, tenants.c.recording_retention_days).where(
                    tenants.c.recording_retention_days.is_not(None)
                )
            ).all()
            for tenant_id, days in kept:
                if len(found) >= limit:
                    break
                rows = conn.execute(
                    sa.select(attempts.c.id, attempts.c.recording_location, attempts.c.recording_at)
                    .where(
                        attempts.c.tenant_id == tenant_id,
                        attempts.c.recording_location.is_not(None),
                        attempts.c.recording_at < now - timedelta(days=days),
                    )
                    .order_by(attempts.c.recording_at)
                    .limit(limit - len(found))
                ).all()
                found += [StoredRecording(row[0], tenant_id, row[1], row[2]) for row in rows]
        return found

    @threaded
    def set_recording_retention(self, tenant_id: UUID, days: int | None) -> bool:
        """Keep the tenant's recordings ``days`` days (None: until deleted by hand); False: no tenant."""
        if days is not None and not 0 <= days <= MAX_RETENTION_DAYS:
            raise ValueError(f"retention must be 0 to {MAX_RETENTION_DAYS} days")
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(tenants).where(tenants.c.id == tenant_id).values(recording_retention_days=days)
            )
        return done.rowcount == 1

    @threaded
    def recording_retention(self, tenant_id: UUID) -> int | None:
        """The tenant's retention in days (None: kept until deleted)."""
        with self._engine.connect() as conn:
            days: int | None = conn.scalar(
                sa.select(tenants.c.recording_retention_days).where(tenants.c.id == tenant_id)
            )
        return days
