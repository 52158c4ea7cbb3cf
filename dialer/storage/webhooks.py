"""Webhook endpoints and their delivery log: what to send where, and how each delivery went."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa

from dialer.storage.base import SqlBase, threaded, utcnow
from dialer.storage.tables import campaigns, webhook_deliveries, webhooks

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass(frozen=True)
class WebhookRecord:
    """A stored endpoint, without its secret (which is returned once, by ``create_webhook``)."""

    id: UUID
    tenant_id: UUID
    url: str
    events: tuple[str, ...]
    description: str
    created_at: datetime


@dataclass(frozen=True)
class DeliveryJob:
    """What a sender needs for one delivery: where, the signing secret, and the exact body."""

    id: UUID
    webhook_id: UUID
    url: str
    secret: str
    event_id: UUID
    payload: str
    next_attempt_at: datetime


@dataclass(frozen=True)
class DeliveryRecord:
    """One line of an endpoint's delivery log."""

    id: UUID
    event_id: UUID
    event_type: str
    status: str
    attempts: int
    http_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


def _record(row: sa.RowMapping) -> WebhookRecord:
    return WebhookRecord(
        id=row["id"],
        tenant_id=row["tenant_id"],
        url=row["url"],
        events=tuple(row["events"]),
        description=row["description"],
        created_at=row["created_at"],
    )


_JOB_COLUMNS = (
    webhook_deliveries.c.id,
    webhook_deliveries.c.webhook_id,
    webhooks.c.url,
    webhooks.c.secret,
    webhook_deliveries.c.event_id,
    webhook_deliveries.c.payload,
    webhook_deliveries.c.next_attempt_at,
)
_RECORD_COLUMNS = [webhooks.c[n] for n in ("id", "tenant_id", "url", "events", "description", "created_at")]


class WebhookAdmin(SqlBase):
    """Endpoints per tenant (API) and the durable delivery rows the webhook sender works through."""

    @threaded
    def create_webhook(
        self, tenant_id: UUID, url: str, events: list[str], description: str = ""
    ) -> tuple[UUID, str]:
        """A new endpoint: ``(id, secret)``; the secret signs every delivery and is returned only here."""
        webhook_id = uuid4()
        secret = f"whsec_{secrets.token_hex(24)}"
        with self._engine.begin() as conn:
            conn.execute(
                sa.insert(webhooks).values(
                    id=webhook_id,
                    tenant_id=tenant_id,
                    url=url,
                    events=sorted(set(events)),
                    secret=secret,
                    description=description,
                    created_at=utcnow(),
                )
            )
        return webhook_id, secret

    @threaded
    def list_webhooks(self, tenant_id: UUID) -> list[WebhookRecord]:
        """The tenant's endpoints, oldest first."""
        query = (
            sa.select(*_RECORD_COLUMNS)
            .where(webhooks.c.tenant_id == tenant_id)
            .order_by(webhooks.c.created_at, webhooks.c.id)
        )
        with self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).mappings()]

    @threaded
    def tenant_webhook(self, tenant_id: UUID, webhook_id: UUID) -> WebhookRecord | None:
        """The tenant's endpoint, or None (unknown, or another tenant's)."""
        query = sa.select(*_RECORD_COLUMNS).where(
            webhooks.c.id == webhook_id, webhooks.c.tenant_id == tenant_id
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _record(row) if row is not None else None

    @threaded
    def delete_webhook(self, tenant_id: UUID, webhook_id: UUID) -> bool:
        """Remove the endpoint and its delivery log (pending deliveries are dropped with it)."""
        with self._engine.begin() as conn:
            owned = conn.scalar(
                sa.select(webhooks.c.id).where(webhooks.c.id == webhook_id, webhooks.c.tenant_id == tenant_id)
            )
            if owned is None:
                return False
            # Explicit rather than ON DELETE CASCADE: SQLite enforces it only with the pragma.
            conn.execute(sa.delete(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id))
            conn.execute(sa.delete(webhooks).where(webhooks.c.id == webhook_id))
        return True

    @threaded
    def campaign_tenant(self, campaign_id: UUID) -> UUID | None:
        """The tenant owning a campaign (events raised by campaign id alone)."""
        with self._engine.connect() as conn:
            found: UUID | None = conn.scalar(
                sa.select(campaigns.c.tenant_id).where(campaigns.c.id == campaign_id)
            )
            return found

    @threaded
    def enqueue_deliveries(
        self, tenant_id: UUID, event_id: UUID, event_type: str, payload: str, now: datetime
    ) -> list[DeliveryJob]:
        """One pending delivery row per endpoint of the tenant subscribed to ``event_type``."""
        jobs: list[DeliveryJob] = []
        with self._engine.begin() as conn:
            endpoints = conn.execute(
                sa.select(webhooks.c.id, webhooks.c.url, webhooks.c.secret, webhooks.c.events).where(
                    webhooks.c.tenant_id == tenant_id
                )
            ).all()
            for endpoint in endpoints:
                if event_type not in endpoint.events:
                    continue
                job = DeliveryJob(uuid4(), endpoint.id, endpoint.url, endpoint.secret, event_id, payload, now)
                conn.execute(
                    sa.insert(webhook_deliveries).values(
                        id=job.id,
                        webhook_id=endpoint.id,
                        tenant_id=tenant_id,
                        event_id=event_id,
                        event_type=event_type,
                        payload=payload,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
                jobs.append(job)
        return jobs

    @threaded
    def pending_deliveries(self, limit: int = 10_000) -> list[DeliveryJob]:
        """Deliveries still to be made, soonest first (re-queued when a sender starts)."""
        query = (
            sa.select(*_JOB_COLUMNS)
            .join(webhooks, webhooks.c.id == webhook_deliveries.c.webhook_id)
            .where(webhook_deliveries.c.status == PENDING)
            .order_by(webhook_deliveries.c.next_attempt_at)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [DeliveryJob(**row) for row in conn.execute(query).mappings()]

    @threaded
    def claim_delivery(self, delivery_id: UUID, now: datetime, hold: float) -> int | None:
        """Take the delivery for one attempt (``hold`` seconds); its attempt number, or None.

        None when it is no longer pending, not due yet, or another sender holds it: two senders that
        both re-queued the row at start never POST the same attempt twice at once.
        """
        row = webhook_deliveries.c
        with self._engine.begin() as conn:
            claimed = conn.execute(
                sa.update(webhook_deliveries)
                .where(
                    row.id == delivery_id,
                    row.status == PENDING,
                    row.next_attempt_at <= now,
                    sa.or_(row.locked_until.is_(None), row.locked_until < now),
                )
                .values(attempts=row.attempts + 1, locked_until=now + timedelta(seconds=hold), updated_at=now)
                .returning(row.attempts)
            ).first()
        return None if claimed is None else int(claimed.attempts)

    @threaded
    def finish_delivery(
        self,
        delivery_id: UUID,
        *,
        status: str,
        http_status: int | None,
        error: str | None,
        next_attempt_at: datetime | None,
        now: datetime,
    ) -> None:
        """Record one attempt's result: delivered, failed for good, or pending until ``next_attempt_at``."""
        values: dict[str, Any] = {
            "status": status,
            "http_status": http_status,
            "last_error": error[:500] if error else None,
            "next_attempt_at": next_attempt_at,
            "locked_until": None,
            "updated_at": now,
        }
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(webhook_deliveries).where(webhook_deliveries.c.id == delivery_id).values(values)
            )

    @threaded
    def list_deliveries(
        self, webhook_id: UUID, *, limit: int = 100, offset: int = 0
    ) -> tuple[list[DeliveryRecord], int]:
        """A page of an endpoint's delivery log, newest first, and its total size."""
        where = webhook_deliveries.c.webhook_id == webhook_id
        columns = [webhook_deliveries.c[n] for n in DeliveryRecord.__dataclass_fields__]
        query = (
            sa.select(*columns)
            .where(where)
            .order_by(webhook_deliveries.c.created_at.desc(), webhook_deliveries.c.id)
            .limit(limit)
            .offset(offset)
        )
        with self._engine.connect() as conn:
            total = conn.scalar(sa.select(sa.func.count()).select_from(webhook_deliveries).where(where)) or 0
            return [DeliveryRecord(**row) for row in conn.execute(query).mappings()], total
