"""Tenant-scoped lookups and edits the REST API adds to the directory: agents, trunks, numbers, DNC."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from dialer.storage.base import SqlBase, require_owned, threaded
from dialer.storage.records import NumberRecord, TrunkRecord
from dialer.storage.routing import trunk_from_row
from dialer.storage.tables import agents, campaign_dids, dnc_entries, phone_numbers, tenants, trunks

_NUMBER_COLUMNS = [phone_numbers.c[f.name] for f in fields(NumberRecord)]


@dataclass(frozen=True)
class AgentRecord:
    """A stored voice worker."""

    id: UUID
    tenant_id: UUID
    name: str
    worker_url: str
    transfer_number: str | None


@dataclass(frozen=True)
class DncRecord:
    """One entry of a tenant's do-not-call list."""

    phone: str
    reason: str
    created_at: datetime


class DirectoryCatalog(SqlBase):
    """Reads and small edits keyed by tenant, so another tenant's rows look exactly like missing ones."""

    @threaded
    def tenant_region(self, tenant_id: UUID) -> str | None:
        """The tenant's default region (for national-format numbers), or None for an unknown tenant."""
        with self._engine.connect() as conn:
            region: str | None = conn.scalar(
                sa.select(tenants.c.default_region).where(tenants.c.id == tenant_id)
            )
            return region

    @threaded
    def tenant_agent(self, tenant_id: UUID, agent_id: UUID) -> AgentRecord | None:
        """The tenant's agent, or None (unknown, or another tenant's)."""
        query = sa.select(agents).where(agents.c.id == agent_id, agents.c.tenant_id == tenant_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return AgentRecord(**row) if row is not None else None

    @threaded
    def list_agents(self, tenant_id: UUID) -> list[AgentRecord]:
        """The tenant's agents by name."""
        query = sa.select(agents).where(agents.c.tenant_id == tenant_id).order_by(agents.c.name, agents.c.id)
        with self._engine.connect() as conn:
            return [AgentRecord(**row) for row in conn.execute(query).mappings()]

    @threaded
    def tenant_trunk(self, tenant_id: UUID, trunk_id: UUID) -> TrunkRecord | None:
        """The tenant's trunk, or None (unknown, or another tenant's)."""
        query = sa.select(trunks).where(trunks.c.id == trunk_id, trunks.c.tenant_id == tenant_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        return trunk_from_row(row)

    @threaded
    def find_number(self, tenant_id: UUID, number: str) -> NumberRecord | None:
        """The tenant's DID with this E.164 number, or None."""
        query = sa.select(*_NUMBER_COLUMNS).where(
            phone_numbers.c.tenant_id == tenant_id, phone_numbers.c.number == number
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return NumberRecord(**row) if row is not None else None

    @threaded
    def managed_numbers(self) -> list[NumberRecord]:
        """Active numbers of the operator's shared pool (caller IDs for calls that name none), by number."""
        query = (
            sa.select(*_NUMBER_COLUMNS)
            .where(phone_numbers.c.managed.is_(True), phone_numbers.c.active.is_(True))
            .order_by(phone_numbers.c.number)
        )
        with self._engine.connect() as conn:
            return [NumberRecord(**row) for row in conn.execute(query).mappings()]

    @threaded
    def link_number(self, tenant_id: UUID, number: str, agent_id: UUID | None) -> bool:
        """Route the number's inbound calls to ``agent_id``; False when the tenant has no such number.

        LookupError for another tenant's agent.
        """
        with self._engine.begin() as conn:
            if agent_id is not None:
                require_owned(conn, agents, agent_id, tenant_id)
            result = conn.execute(
                sa.update(phone_numbers)
                .where(phone_numbers.c.tenant_id == tenant_id, phone_numbers.c.number == number)
                .values(agent_id=agent_id)
            )
            return result.rowcount == 1

    @threaded
    def update_number(self, tenant_id: UUID, number: str, **changes: Any) -> bool:
        """Change caps, label or active flag of the tenant's number; False when there is no such number."""
        allowed = {"label", "max_concurrent_calls", "daily_cap", "active"}
        if unknown := set(changes) - allowed:
            raise ValueError(f"cannot change {sorted(unknown)}")
        if not changes:
            return False
        with self._engine.begin() as conn:
            result = conn.execute(
                sa.update(phone_numbers)
                .where(phone_numbers.c.tenant_id == tenant_id, phone_numbers.c.number == number)
                .values(**changes)
            )
            return result.rowcount == 1

    @threaded
    def delete_number(self, tenant_id: UUID, number: str) -> bool:
        """Remove the tenant's number and its campaign allocations; False when there is no such number.

        Past call records keep their from_number text; their from_did_id becomes NULL (the FK says so).
        """
        with self._engine.begin() as conn:
            number_id = conn.scalar(
                sa.select(phone_numbers.c.id).where(
                    phone_numbers.c.tenant_id == tenant_id, phone_numbers.c.number == number
                )
            )
            if number_id is None:
                return False
            # Explicit rather than relying on ON DELETE CASCADE: SQLite enforces it only with the pragma.
            conn.execute(sa.delete(campaign_dids).where(campaign_dids.c.phone_number_id == number_id))
            conn.execute(sa.delete(phone_numbers).where(phone_numbers.c.id == number_id))
        return True

    @threaded
    def list_dnc(self, tenant_id: UUID, *, limit: int = 100, offset: int = 0) -> tuple[list[DncRecord], int]:
        """A page of the tenant's do-not-call list, newest first, and the list's total size."""
        where = dnc_entries.c.tenant_id == tenant_id
        query = (
            sa.select(dnc_entries.c.phone, dnc_entries.c.reason, dnc_entries.c.created_at)
            .where(where)
            .order_by(dnc_entries.c.created_at.desc(), dnc_entries.c.phone)
            .limit(limit)
            .offset(offset)
        )
        with self._engine.connect() as conn:
            total = conn.scalar(sa.select(sa.func.count()).select_from(dnc_entries).where(where)) or 0
            return [DncRecord(**row) for row in conn.execute(query).mappings()], total

    @threaded
    def has_dnc(self, tenant_id: UUID, phone: str) -> bool:
        """Whether ``phone`` is on the tenant's do-not-call list."""
        query = sa.select(dnc_entries.c.id).where(
            dnc_entries.c.tenant_id == tenant_id, dnc_entries.c.phone == phone
        )
        with self._engine.connect() as conn:
            return conn.scalar(query) is not None
